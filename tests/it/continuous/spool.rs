//! The spool: an S3 server taken away under a writer (rclone's, killed and started again
//! on the same folder and port — moto keeps its objects in memory, so it cannot come
//! back with them), a replicator SIGKILLed while the store is away, a spool at its bound
//! (one alert), and a spool on a full filesystem (a small tmpfs). Every committed row is
//! restorable afterwards, in order, with no gap.

use super::*;
use crate::common::fakes::{Call, FakeApi};
use crate::common::moto::{S3Home, S3Kind, S3Server};

/// A home replicating `app` into the rclone bucket `pitr`, with `extra` target keys.
fn s3_home(server: &S3Server, config: ConfigBuilder, extra: &str) -> S3Home {
    let home = Home::new();
    config
        .raw(&format!(
            "[stores.offsite]\nkind = \"s3\"\nbucket = \"pitr\"\nprefix = \"lifeboat/\"\nendpoint = \"{}\"\n\n{}{extra}",
            server.url(),
            target("offsite")
        ))
        .write(&home);
    S3Home {
        home,
        key: "test".into(),
        secret: "test".into(),
        trusted_ca: None,
    }
}

fn rclone() -> S3Server {
    let server = S3Server::on(S3Kind::Rclone);
    server.create_bucket("pitr", false);
    server
}

/// What the replicator says its spool holds (`var/spool/app/state.json`, by default
/// beside the state database).
fn spool_state(home: &Home) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(home.path("var/spool/app/state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Wait until the spool holds every transaction committed by `t`.
fn wait_spooled_past(home: &Home, t: f64) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Some(s) = spool_state(home)
            && s["spooled_to"].as_str().is_some_and(|at| unix(at) > t)
        {
            return s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the spool never reached {}: {:?}",
            rfc3339(t),
            spool_state(home)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn segments_in(dir: &Path) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".seg.zst"))
        .count()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn verify_proves_the_chain(home: &dyn Lifeboat) {
    let report: serde_json::Value =
        serde_json::from_str(&home.ok(&["verify", "app", "--json"])).unwrap();
    let proved = report["chain"]["proved"].to_string();
    assert!(
        proved.contains("with no gap") && proved.contains("integrity_check ok"),
        "{report}"
    );
}

#[test]
fn a_store_away_under_a_writer_loses_nothing_and_gets_the_spool_in_order() {
    let mut server = rclone();
    let home = s3_home(&server, ConfigBuilder::new(), "");
    let db = home.path("data/app.db");
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let log = home.path("data/commits.log");
    finish(writer(&db, 300, &log, &["noauto"]));
    home.wait_replicated_past(commits(&log).last().unwrap().committed);

    server.go_away();
    // Only lifeboat checkpoints (noauto): about 3000 frames committed while it is away.
    finish(writer(&db, 3000, &log, &["noauto"]));
    let rows = commits(&log);
    let last = rows.last().unwrap().committed;
    rep.wait_for("cannot upload to the store");
    let state = wait_spooled_past(&home.home, last);
    assert!(state["segments"].as_u64().unwrap() > 0, "{state}");
    assert!(state["upload_failing"].is_string(), "{state}");
    // Durable in the store is what counts: status does not claim what is only spooled.
    let status = home.status();
    let reached = unix(status["replicated_to"].as_str().unwrap());
    assert!(
        reached < rows[300].began,
        "replicated_to {} claims a row committed while the store was away: {status}",
        rfc3339(reached)
    );
    assert!(status["spooled_bytes"].as_u64().unwrap() > 0, "{status}");
    let problem = status["replication_problem"].as_str().unwrap();
    assert!(
        problem.contains("cannot be read") && problem.contains("spooled"),
        "{status}"
    );
    // Spooled frames were checkpointed: the WAL holds far fewer than were committed.
    let wal = std::fs::metadata(home.path("data/app.db-wal"))
        .unwrap()
        .len();
    assert!(
        wal < 2000 * (4096 + 24),
        "the WAL grew to {wal} bytes while the store was away"
    );

    server.come_back();
    rep.wait_for("the store takes uploads again");
    let status = home.wait_replicated_past(last);
    assert!(status["spooled_bytes"].is_null(), "{status}");
    assert_eq!(segments_in(&home.path("var/spool/app")), 0);
    let all = home.path("restores/all.db");
    home.restore_at(status["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all), (1..=3300).collect::<Vec<i64>>());
    // A moment while the store was away restores exactly.
    let at = (rows[1799].committed + rows[1800].began) / 2.0;
    let mid = home.path("restores/mid.db");
    home.restore_at(&rfc3339(at), &mid);
    assert_exactly_by(&restored_ids(&mid), &rows, at, slack());
    verify_proves_the_chain(&home);
    assert!(rep.stop().success());
}

#[test]
fn a_replicator_killed_while_the_store_is_away_uploads_its_spool_first_at_restart() {
    let mut server = rclone();
    let home = s3_home(&server, ConfigBuilder::new(), "");
    let db = home.path("data/app.db");
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let log = home.path("data/commits.log");
    finish(writer(&db, 200, &log, &["noauto", "noclose"]));
    home.wait_replicated_past(commits(&log).last().unwrap().committed);

    server.go_away();
    // noclose: the application keeps running, so its close does not checkpoint the log.
    finish(writer(&db, 800, &log, &["noauto", "noclose"]));
    let rows = commits(&log);
    let last = rows.last().unwrap().committed;
    wait_spooled_past(&home.home, last);
    rep.kill(); // SIGKILL with everything since the outage only in the spool
    assert!(segments_in(&home.path("var/spool/app")) > 0);

    server.come_back();
    let mut again = Replicator::start(home.command(&["replicate", "app"]));
    again.wait_for("with no gap");
    let text = again.text();
    let uploaded = text
        .find("waiting in the spool")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(uploaded < text.find("with no gap").unwrap(), "{text}");
    assert!(text.contains("resumed generation"), "{text}");
    let status = home.wait_replicated_past(last);
    let all = home.path("restores/all.db");
    home.restore_at(status["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all), (1..=1000).collect::<Vec<i64>>());
    let at = (rows[599].committed + rows[600].began) / 2.0;
    let mid = home.path("restores/mid.db");
    home.restore_at(&rfc3339(at), &mid);
    assert_exactly_by(&restored_ids(&mid), &rows, at, slack());
    verify_proves_the_chain(&home);
}

const ALERTS: &str = "C0ALERTS";

fn said(calls: &[Call], needle: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.body["channel"] == ALERTS)
        .filter_map(|c| c.body["text"].as_str())
        .filter(|t| t.contains(needle))
        .map(String::from)
        .collect()
}

#[test]
fn a_spool_at_its_bound_is_one_alert_and_nothing_is_lost() {
    let api = FakeApi::start();
    let mut server = rclone();
    let home = s3_home(
        &server,
        ConfigBuilder::new().slack(&api, Some(ALERTS)),
        "max_lag = \"10s\"\ncontinuous_spool_max = \"16KiB\"\n",
    );
    let db = home.path("data/app.db");
    create_db(&db, true);
    let serve = fakes::Serve::from_command(home.command(&["serve"]));
    let log = home.path("data/commits.log");
    finish(writer(&db, 100, &log, &["noauto", "noclose"]));
    home.wait_replicated_past(commits(&log).last().unwrap().committed);

    server.go_away();
    finish(writer(&db, 1500, &log, &["noauto", "noclose"]));
    let calls = api.wait_until(120, "the stuck alert", |calls| {
        !said(calls, "is stuck").is_empty()
    });
    let text = said(&calls, "is stuck").remove(0);
    assert!(
        text.contains("replication of app") && text.contains("continuous_spool_max"),
        "{text}"
    );
    let state = spool_state(&home.home).unwrap();
    assert!(
        state["stuck"].as_str().unwrap().contains("its bound"),
        "{state}"
    );

    server.come_back();
    let rows = commits(&log);
    let status = home.wait_replicated_past(rows.last().unwrap().committed);
    let calls = api.wait_until(120, "the recovery notice", |calls| {
        !said(calls, "replication caught up").is_empty()
    });
    let posted = calls
        .iter()
        .filter(|c| c.path.ends_with("chat.postMessage"))
        .filter(|c| c.body["channel"] == ALERTS)
        .filter(|c| {
            c.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("replication of app is"))
        })
        .count();
    assert_eq!(posted, 1, "one alert: {:?}", said(&calls, "replication"));
    assert!(serve.log_text().contains("shipping works again"));
    serve.stop();
    let all = home.path("restores/all.db");
    home.restore_at(status["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all), (1..=1600).collect::<Vec<i64>>());
}

/// Every file (not folder) under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "mounting a tmpfs at {} (as root)",
            at.display()
        );
        SmallDisk(at)
    }

    /// Fill it up with a file of its own, to the last byte.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            if let Err(e) = std::io::Write::write_all(&mut f, &chunk) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_spool_disk_stops_shipping_without_loss_and_it_resumes_when_there_is_room() {
    let home = Home::new();
    let disk = SmallDisk::mount(home.path("spooldisk"), "1m");
    let config = format!("{}continuous_spool = \"../spooldisk\"\n", target("local"));
    ConfigBuilder::new().raw(&config).write(&home);
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let log = home.path("data/commits.log");
    finish(writer(&db, 100, &log, &["noauto", "noclose"]));
    home.wait_replicated_past(commits(&log).last().unwrap().committed);
    // The uploader removes a segment's files just after its position is in the store:
    // only once the spool holds no file can nothing it removes later make room again.
    wait_for(60, "an empty spool", || files_under(&disk.0).is_empty());

    let filler = disk.fill();
    finish(writer(&db, 1200, &log, &["noauto", "noclose"]));
    let rows = commits(&log);
    rep.wait_for("no space left on device");
    let text = rep.text();
    assert!(text.contains("spooldisk"), "names the spool: {text}");
    // Stuck, and honest about it: nothing committed since is claimed.
    let status = home.status();
    let problem = status["replication_problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("no space left on device"),
        "{status}\n{}",
        rep.text()
    );
    assert!(
        unix(status["replicated_to"].as_str().unwrap()) < rows.last().unwrap().began,
        "{status}\n{}",
        rep.text()
    );

    std::fs::remove_file(&filler).unwrap();
    rep.wait_for("shipping works again");
    let status = home.wait_replicated_past(rows.last().unwrap().committed);
    assert!(status["replication_problem"].is_null(), "{status}");
    let all = home.path("restores/all.db");
    home.restore_at(status["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all), (1..=1300).collect::<Vec<i64>>());
    verify_proves_the_chain(&home);
    assert!(rep.stop().success());
    drop(disk);
}
