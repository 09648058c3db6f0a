//! Continuous replication into moto's S3 server: segments, the position and the lease as
//! objects beside the backups, merged by compaction while it runs, a restore to a moment
//! read back from the bucket.

use super::*;
use crate::common::moto::{Moto, S3Home};

impl Lifeboat for S3Home {
    fn cmd(&self, args: &[&str]) -> Command {
        self.command(args)
    }
}

#[test]
fn replication_into_s3_restores_a_moment_exactly() {
    let moto = Moto::start();
    moto.create_bucket("pitr", false);
    // One-second spans: segments are merged while it runs, the parts deleted from S3.
    let config = format!("{}continuous_compact = \"1s\"\n", target("offsite"));
    let home = S3Home::new(&moto.url(), "pitr", "", &config);
    let db = home.path("data/app.db");
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let log = home.path("data/commits.log");
    finish(writer(&db, 1500, &log, &[]));
    let rows = commits(&log);
    let status = home.wait_replicated_past(rows.last().unwrap().committed);
    let keys: Vec<String> = moto.objects("pitr").into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("lifeboat/app.wal/") && k.ends_with(".seg.zst")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"lifeboat/app.wal/lease.json".to_string()),
        "{keys:?}"
    );
    rep.wait_for("compacted");
    let keys: Vec<String> = moto.objects("pitr").into_iter().map(|(k, _)| k).collect();
    assert!(keys.iter().any(|k| k.ends_with("-m.seg.zst")), "{keys:?}");
    let at = (rows[899].committed + rows[900].began) / 2.0;
    let copy = home.path("restores/middle.db");
    home.restore_at(&rfc3339(at), &copy);
    assert_exactly_by(&restored_ids(&copy), &rows, at, slack());
    let all = home.path("restores/all.db");
    home.restore_at(status["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all).len(), 1500);
    assert!(rep.stop().success());
    let keys: Vec<String> = moto.objects("pitr").into_iter().map(|(k, _)| k).collect();
    assert!(
        !keys.contains(&"lifeboat/app.wal/lease.json".to_string()),
        "the lease is given up"
    );
}
