//! `verify` compares the replayed history with every later base copy of the same
//! generation (the replicator's scheduled ones): equal page for page when healthy; a base
//! copy whose record names another transaction than the one it holds is a mismatch naming
//! both base copies and the transaction; a damaged one is named.

use super::chain::{texts, verify};
use super::*;

/// The scheduled base records of the one generation: (path, backup id, txid), by txid.
pub(super) fn base_records(home: &Home) -> Vec<(PathBuf, String, u64)> {
    let mut out = Vec::new();
    for g in std::fs::read_dir(home.path("backups/app.wal"))
        .unwrap()
        .flatten()
    {
        if !g.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(g.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("base-") && name.ends_with(".json") {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap();
                out.push((
                    f.path(),
                    v["backup"].as_str().unwrap().to_string(),
                    v["txid"].as_u64().unwrap(),
                ));
            }
        }
    }
    out.sort_by_key(|r| r.2);
    out
}

#[test]
fn verify_compares_the_replay_with_each_later_base_and_names_a_tampered_one() {
    let (home, db) = scheduled_app("* * * * * *");
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app every 200ms");
    let log = home.path("data/commits.log");
    // Rows, a scheduled base copy after them, more rows, another base copy after those.
    for _ in 0..2 {
        finish(writer(&db, 400, &log, &[]));
        let before = rep.times("scheduled base copy");
        rep.wait_times("scheduled base copy", before + 1);
    }
    finish(writer(&db, 100, &log, &[]));
    home.wait_replicated_past(commits(&log).last().unwrap().committed);
    assert!(rep.stop().success());

    let records = base_records(&home);
    let compared: Vec<&(PathBuf, String, u64)> = records.iter().filter(|r| r.2 > 0).collect();
    assert!(compared.len() >= 2, "{records:?}");
    let (ok, report) = verify(&home);
    assert!(ok, "{report}");
    let proved = texts(&report["chain"]["proved"]);
    for (_, backup, txid) in &compared {
        assert!(
            proved.contains(&format!(
                "to transaction {txid}, the database equals base copy {backup} page for page"
            )),
            "{proved}"
        );
    }
    // The history after the last base copy is still replayed and checked whole.
    assert!(proved.contains("900 transactions replayed"), "{proved}");

    // A record claiming another transaction than the copy holds: a mismatch naming the
    // generation's base copy, the later one and the transaction.
    // The newest copy: taken after 800 rows, so its transaction minus 3 is still one to
    // compare at (a copy taken in the first rows could name one before the base's).
    let (path, backup, txid) = compared.last().copied().unwrap().clone();
    assert!(txid > 400, "{records:?}");
    let original = std::fs::read(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&original).unwrap();
    v["txid"] = serde_json::json!(txid - 3);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let (ok, report) = verify(&home);
    assert!(!ok, "{report}");
    let problems = texts(&report["chain"]["problems"]);
    let generation: serde_json::Value = serde_json::from_slice(
        &std::fs::read(path.parent().unwrap().join("generation.json")).unwrap(),
    )
    .unwrap();
    let first_base = generation["base_backup"].as_str().unwrap();
    assert!(
        problems.contains(&format!(
            "replayed from base copy {first_base} to transaction {}, the database differs from base copy {backup}, which records that transaction",
            txid - 3
        )) && problems.contains("pages differ"),
        "{problems}"
    );
    std::fs::write(&path, &original).unwrap();
    let (ok, report) = verify(&home);
    assert!(ok, "the record put back verifies again: {report}");

    // A damaged later base copy is named.
    let artifact = home.path(&format!("backups/app/{backup}.sqlite.zst"));
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&artifact, &bytes).unwrap();
    let (ok, report) = verify(&home);
    assert!(!ok, "{report}");
    let problems = texts(&report["chain"]["problems"]);
    assert!(
        problems.contains(&format!(
            "base copy {backup} (transaction {txid}) could not be compared"
        )) && problems.contains("damaged"),
        "{problems}"
    );
}
