//! Faults of continuous replication, each with a real writer in another process: the
//! replicator SIGKILLed mid-load, the application's own TRUNCATE checkpoint (while
//! lifeboat holds the log, and while no replicator runs), a second replicator, a
//! database not in WAL mode.

use super::*;

/// The replicator's position as the local store holds it.
#[test]
fn a_replicator_killed_mid_load_resumes_with_no_gap() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let generation = position(&home)["generation"].as_str().unwrap().to_string();
    let (log, gate) = (home.path("data/commits.log"), home.path("data/go"));
    // No checkpoint of the application's own while the replicator is gone, and none of
    // lifeboat's before (it checkpoints after 1000 frames), so the log it left off in is
    // still there: it must resume, not start over.
    let gate_opt = format!("gate=401:{}", gate.display());
    let w = writer(&db, 2000, &log, &["noauto", "noclose", &gate_opt]);
    let first_half = loop {
        let rows = commits(&log);
        if rows.len() == 400 {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    home.wait_replicated_past(first_half[299].committed);
    rep.kill(); // SIGKILL: no last round, the lease left behind
    std::fs::write(&gate, "").unwrap();
    finish(w);
    let rows = commits(&log);
    assert_eq!(rows.len(), 2000);

    // The lease names a process that is gone: the new replicator takes it over at once.
    let mut again = Replicator::start(home.command(&["replicate", "app"]));
    again.wait_for("with no gap");
    assert!(
        again
            .text()
            .contains(&format!("resumed generation {generation}")),
        "{}",
        again.text()
    );
    home.wait_replicated_past(rows.last().unwrap().committed);
    assert_eq!(position(&home)["generation"], generation.as_str());
    let all = home.path("restores/all.db");
    home.restore_at(position(&home)["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all), (1..=2000).collect::<Vec<i64>>());
    // A moment before the kill still restores exactly.
    let at = (first_half[199].committed + first_half[200].began) / 2.0;
    let early = home.path("restores/early.db");
    home.restore_at(&rfc3339(at), &early);
    assert_exactly_by(&restored_ids(&early), &rows, at, slack());
}

#[test]
fn the_applications_truncate_checkpoint_loses_nothing_while_lifeboat_holds_the_log() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let log = home.path("data/commits.log");
    finish(writer(&db, 1500, &log, &["truncate=700"]));
    let text = std::fs::read_to_string(&log).unwrap();
    let truncate = text.lines().find(|l| l.starts_with("# truncate")).unwrap();
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);
    // Either SQLite refused to truncate past lifeboat's read transaction, or it truncated a
    // log lifeboat had shipped whole; both ways every row is in, none twice, no hole.
    eprintln!("the application's checkpoint: {truncate}");
    let all = home.path("restores/all.db");
    home.restore_at(position(&home)["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all), (1..=1500).collect::<Vec<i64>>());
    let at = (rows[999].committed + rows[1000].began) / 2.0;
    let after = home.path("restores/after.db");
    home.restore_at(&rfc3339(at), &after);
    assert_exactly_by(&restored_ids(&after), &rows, at, slack());
}

#[test]
fn a_log_truncated_while_no_replicator_ran_starts_a_new_generation_still_restorable() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let first = position(&home)["generation"].as_str().unwrap().to_string();
    let log = home.path("data/commits.log");
    finish(writer(&db, 600, &log, &["noauto"]));
    let before = commits(&log);
    home.wait_replicated_past(before.last().unwrap().committed);
    rep.kill();
    // Behind lifeboat's back: more rows, then the application truncates the log.
    finish(writer(&db, 400, &log, &["noauto", "truncate=1000"]));
    let rows = commits(&log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("# truncate 0 0 0"),
        "the truncate went through: {text:.200}"
    );

    let mut again = Replicator::start(home.command(&["replicate", "app"]));
    again.wait_for("new replication generation");
    let second = position(&home)["generation"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    let audit = home.state_strings(
        "SELECT detail FROM audit WHERE action = 'replication generation' ORDER BY id",
    );
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(
        audit[1].contains(&second) && audit[1].contains("WAL"),
        "{audit:?}"
    );
    // Then it goes on shipping in the new generation.
    finish(writer(&db, 300, &log, &[]));
    let rows_now = commits(&log);
    home.wait_replicated_past(rows_now.last().unwrap().committed);
    let all = home.path("restores/all.db");
    home.restore_at(position(&home)["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all), (1..=1300).collect::<Vec<i64>>());
    // A moment in the first generation restores from its own base copy and history.
    let at = (before[299].committed + before[300].began) / 2.0;
    let old = home.path("restores/old.db");
    let plan = home.restore_at(&rfc3339(at), &old);
    assert_eq!(plan["point"]["generation"], first.as_str(), "{plan}");
    assert_exactly_by(&restored_ids(&old), &rows, at, slack());
    // The gap between the generations is refused, never filled with a guess.
    let gap = (rows[700].committed + rows[701].began) / 2.0;
    let out = home.out(&[
        "restore",
        "app",
        "--at",
        &rfc3339(gap),
        "--to",
        "/tmp/never",
    ]);
    if out.status.success() {
        panic!(
            "a moment in the missing history was restored: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let err = stderr(&out);
    assert!(
        err.contains("missing") || err.contains("no base copy"),
        "{err}"
    );
}

#[test]
fn a_second_replicator_refuses_naming_the_first() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    // An application that is still running, its log in place.
    let log = home.path("data/commits.log");
    finish(writer(&db, 200, &log, &["noclose"]));
    home.wait_replicated_past(commits(&log).last().unwrap().committed);
    let out = home.out(&["replicate", "app"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let pid = rep.child.id();
    assert!(
        err.contains("already being replicated by") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    // A clean stop gives the lease up: the next one starts at once.
    assert!(rep.stop().success());
    let mut next = Replicator::start(home.command(&["replicate", "app"]));
    next.wait_for("resumed generation");
    let all = home.path("restores/all.db");
    home.restore_at(position(&home)["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all), (1..=200).collect::<Vec<i64>>());
}

#[test]
fn a_database_not_in_wal_mode_is_refused_and_left_as_it_was() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, false);
    let before = std::fs::read(&db).unwrap();
    let out = home.out(&["replicate", "app"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("PRAGMA journal_mode=WAL") && err.contains("not in WAL mode"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database is untouched"
    );
    assert!(
        !home.path("backups/app.wal/lease.json").exists(),
        "no lease left behind"
    );
    // And the keys are refused on other kinds at load.
    let dir = Home::with_config(&ConfigBuilder::new().raw(
        "[targets.files]\nkind = \"directory\"\npath = \"../data\"\nstore = \"local\"\ncontinuous = \"1s\"\n",
    ));
    let out = dir.run(&["config", "check"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("targets.files.continuous"),
        "{}",
        stderr(&out)
    );
}

/// The replicator's peak resident memory, from the kernel.
pub(super) fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    kib / 1024.0
}

#[test]
fn a_192_mib_transaction_is_shipped_in_bounded_memory() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let idle = peak_rss_mib(rep.child.id());
    let committed = one_192_mib_transaction(&db);
    home.wait_replicated_past(committed);
    let peak = peak_rss_mib(rep.child.id());
    let wal = std::fs::metadata(home.path("data/app.db-wal"))
        .unwrap()
        .len() as f64
        / 1048576.0;
    eprintln!("a {wal:.0} MiB WAL shipped: peak RSS {peak:.1} MiB, {idle:.1} MiB before");
    assert!(wal > 190.0, "the transaction is in the log: {wal} MiB");
    assert!(
        peak - idle < 32.0,
        "the replicator grew by {} MiB for a {wal} MiB transaction",
        peak - idle
    );
    let all = home.path("restores/all.db");
    home.restore_at(position(&home)["replicated_to"].as_str().unwrap(), &all);
    assert_eq!(restored_ids(&all), (1..=192).collect::<Vec<i64>>());
}

/// One transaction of 192 MiB of incompressible rows (ids 1 to 192), by another process;
/// when it committed.
pub(super) fn one_192_mib_transaction(db: &Path) -> f64 {
    let script = format!(
        "import sqlite3, time; c = sqlite3.connect({:?}, isolation_level=None, timeout=60); c.execute('BEGIN'); c.execute(\"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 192) INSERT INTO t(id, v) SELECT i, hex(randomblob(512 * 1024)) FROM n\"); c.execute('COMMIT'); print(time.time())",
        db.display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn replication_behind_max_lag_alerts_once_and_recovers() {
    use crate::common::fakes::FakeApi;
    let api = FakeApi::start();
    let config = ConfigBuilder::new()
        .channels(&["slack:C0ALERTS"])
        .slack(&api, Some("C0ALERTS"))
        .raw(&format!("{}max_lag = \"1s\"\n", target("local")));
    let home = Home::with_config(&config);
    create_db(&db_path(&home), true);
    // Another replicator holds the lease; serve's own is refused while it lives.
    let mut other = Replicator::start(home.command(&["replicate", "app"]));
    other.wait_for("replicating app");
    let serve = fakes::Serve::start(&home);
    // Frozen, not gone: its lease keeps serve's replicator out, and nothing ships.
    unsafe { libc::kill(other.child.id() as i32, libc::SIGSTOP) };
    let posted = |needle: &str| {
        api.wait_until(120, needle, |calls| {
            calls.iter().any(|c| {
                c.path.ends_with("chat.postMessage")
                    && c.body["text"].as_str().unwrap_or("").contains(needle)
            })
        });
    };
    posted("replication of app is");
    let status = home.status();
    assert_eq!(status["health"], "red", "{status}");
    // Gone: serve's replicator takes the lease over and catches up.
    other.kill();
    posted("replication of app caught up");
    // The replication alert's own entries: a takeover may also start a new generation,
    // which is an alert of its own kind.
    let alerts = home.state_strings(
        "SELECT outcome FROM audit WHERE action IN ('alert', 'recovery') AND target = 'app' AND detail LIKE '% replication: %' ORDER BY id",
    );
    assert_eq!(
        alerts.first().map(String::as_str),
        Some("opened"),
        "{alerts:?}"
    );
    assert_eq!(
        alerts.last().map(String::as_str),
        Some("closed"),
        "{alerts:?}"
    );
    let behind = api
        .calls_to("chat.postMessage")
        .iter()
        .filter(|c| {
            c.body["text"]
                .as_str()
                .unwrap_or("")
                .contains("replication of app is")
        })
        .count();
    assert_eq!(behind, 1, "one alert, edited in place while it lasts");
    serve.stop();
}

#[test]
fn an_in_place_restore_under_a_running_replicator_is_replicated_as_a_new_generation() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let generation = position(&home)["generation"].as_str().unwrap().to_string();
    let log = home.path("data/commits.log");
    finish(writer(&db, 300, &log, &[]));
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);

    // The live database goes back to a moment while the replicator still runs: it must
    // follow the file now at the path, not the one moved aside.
    // A restore from the newest backup alone would leave the shipped transactions out:
    // its plan says how far replication reaches and how to include them.
    let plan: serde_json::Value = serde_json::from_str(&home.ok(&[
        "restore",
        "app",
        "--to",
        &home.path("restores/base.db").display().to_string(),
        "--dry-run",
        "--json",
    ]))
    .unwrap();
    assert!(
        plan["notes"]
            .to_string()
            .contains("replication of app reaches")
            && plan["notes"].to_string().contains("--at "),
        "{plan}"
    );
    let at = (rows[99].committed + rows[100].began) / 2.0;
    home.ok(&["restore", "app", "--at", &rfc3339(at), "--yes"]);
    rep.wait_for("was replaced by another file");
    let start = Instant::now();
    while position(&home)["generation"] == generation.as_str() {
        assert!(
            start.elapsed() < DEADLINE,
            "no new generation: {}",
            rep.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let restored = restored_ids(&db);
    let k = restored.len() as i64;
    assert_eq!(restored, (1..=k).collect::<Vec<i64>>());

    // The application writes on in the restored database; those rows are replicated.
    let after = home.path("data/after.log");
    finish(writer(&db, 50, &after, &[]));
    let later = commits(&after);
    home.wait_replicated_past(later.last().unwrap().committed);
    let newest = home.path("restores/newest.db");
    home.restore_at(home.status()["replicated_to"].as_str().unwrap(), &newest);
    assert_eq!(restored_ids(&newest), (1..=k + 50).collect::<Vec<i64>>());
    assert!(rep.stop().success());
}
