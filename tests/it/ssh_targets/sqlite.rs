//! Remote SQLite targets over SSH: round trips while the application writes, a remote
//! reader that makes the backup copy instead, and restores in place with move-aside.

use std::path::Path;

use rusqlite::Connection;

use super::*;
use crate::common::*;

#[test]
fn remote_sqlite_round_trip_while_the_app_writes() {
    let s = Setup::new();
    let db_path = s.remote("data/app.db");
    drop(make_app_db(&db_path, 20_000));
    let writer = AppWriter::start(&db_path);
    let backup = s.home.json(&["backup", "app-db"]);
    writer.wait_more(1);
    let batches = writer.stop();
    assert!(batches > 0, "the writer made no progress");

    assert_eq!(backup["status"], "complete");
    assert_eq!(backup["kind"], "sqlite");
    let repos = backup["sqlite"]["tables"]["repository"].as_u64().unwrap();
    let issues = backup["sqlite"]["tables"]["issue"].as_u64().unwrap();
    assert_eq!(repos, issues, "a consistent copy: {backup}");
    assert!(repos >= 20_000);
    assert_eq!(backup["sqlite"]["quick_check"], "ok");
    assert!(
        s.remote_leftovers().is_empty(),
        "{:?}",
        s.remote_leftovers()
    );
    // The database file itself was streamed (no temporary copy on the host).
    let phases = s.home.job_phases("app-db");
    assert!(
        phases
            .iter()
            .any(|p| p.contains("pinned at one transaction")),
        "{phases:?}"
    );

    let verify = s.home.json(&["verify", "app-db"]);
    assert_eq!(verify["ok"], true, "{verify}");

    let dest = s.remote("restores/copy.db");
    let out = s
        .home
        .json(&["restore", "app-db", "--to", dest.to_str().unwrap(), "--yes"]);
    assert_eq!(out["ok"], true);
    let restored = Connection::open(&dest).unwrap();
    let check: String = restored
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert_eq!(count(&restored, "repository") as u64, repos);
    let live = Connection::open(&db_path).unwrap();
    assert_eq!(count(&live, "repository"), 20_000 + 50 * batches);
}

#[test]
fn a_remote_reader_holding_old_frames_makes_the_backup_copy_instead() {
    let s = Setup::new();
    let db_path = s.remote("data/app.db");
    let app = make_app_db(&db_path, 2_000);
    // An application reader on the host keeps an old snapshot while newer rows commit:
    // the WAL cannot be checkpointed completely, so the file cannot be pinned.
    let reader = Connection::open(&db_path).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM repository;")
        .unwrap();
    insert_rows(&app, 10);
    let backup = s.home.json(&["backup", "app-db"]);
    assert_eq!(backup["sqlite"]["tables"]["repository"], 2_010);
    assert_eq!(backup["sqlite"]["tables"]["issue"], 2_010);
    assert_eq!(backup["sqlite"]["quick_check"], "ok");
    let phases = s.home.job_phases("app-db");
    assert!(
        phases.iter().any(|p| p.contains("streaming the copy")),
        "{phases:?}"
    );
    assert!(
        s.remote_leftovers().is_empty(),
        "{:?}",
        s.remote_leftovers()
    );
    drop(reader);
    let verify = s.home.json(&["verify", "app-db"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn remote_restore_in_place_moves_the_current_data_aside_there() {
    let s = Setup::new();
    let db_path = s.remote("data/app.db");
    let conn = make_app_db(&db_path, 100);
    let first = s.home.json(&["backup", "app-db"]);
    insert_rows(&conn, 25); // written after the backup, still in the WAL
    drop(conn);

    let plan = s.home.ok(&["restore", "app-db", "--dry-run"]);
    assert!(plan.contains(first["id"].as_str().unwrap()), "{plan}");
    assert!(plan.contains("move aside"), "{plan}");
    assert!(
        plan.contains(&format!("root@127.0.0.1:{}:", s.sshd.port)),
        "{plan}"
    );
    assert_eq!(
        count(&Connection::open(&db_path).unwrap(), "repository"),
        125
    );

    let out = s.home.json(&["restore", "app-db", "latest", "--yes"]);
    assert_eq!(out["ok"], true);
    assert_eq!(out["host"], format!("root@127.0.0.1:{}", s.sshd.port));
    let aside = out["move_aside"][0]["to"].as_str().unwrap().to_string();
    assert!(aside.contains(".pre-restore-"), "{aside}");
    assert_eq!(
        count(&Connection::open(&db_path).unwrap(), "repository"),
        100
    );
    // Nothing was deleted: the old database is beside it, with its WAL.
    assert_eq!(count(&Connection::open(&aside).unwrap(), "repository"), 125);
    let staging: Vec<String> = s
        .remote_leftovers()
        .into_iter()
        .filter(|n| n.contains("lifeboat-restore"))
        .collect();
    assert!(staging.is_empty(), "{staging:?}");

    // --to is checked on the remote host's terms, before anything is written.
    for to in [
        "relative/copy.db".to_string(),
        format!("{}/restores/../../escape.db", s.remote.path().display()),
        "/etc/lifeboat-escape.db".to_string(),
        db_path.display().to_string(), // exists
        format!("{}/restores/missing-dir/x.db", s.remote.path().display()),
    ] {
        let out = s.home.run(&["restore", "app-db", "--to", &to, "--yes"]);
        assert_eq!(out.status.code(), Some(2), "{to}: {}", stderr(&out));
        assert!(stderr(&out).contains("--to"), "{to}: {}", stderr(&out));
    }
    assert!(!Path::new("/etc/lifeboat-escape.db").exists());
}
