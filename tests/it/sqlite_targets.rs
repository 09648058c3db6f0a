//! SQLite targets end to end through the real binary: online backup while the app writes,
//! verify, restore in place and to a new path, point in time, and damaged backups.

use crate::common::*;
use rusqlite::Connection;

fn sqlite_home() -> Home {
    let home = Home::new();
    home.write_config(
        "[targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\nrestore_roots = [\"../restores\"]\n",
    );
    home
}

#[test]
fn backup_while_the_app_writes_restores_to_exactly_the_manifest() {
    let home = sqlite_home();
    let db_path = home.path("data/app.db");
    drop(make_app_db(&db_path, 20_000));

    // The application keeps inserting in its own transactions during the backup.
    let writer = AppWriter::start(&db_path);
    let backup = home.json(&["backup", "app-db"]);
    // Writes after the backup too: the live database keeps them.
    writer.wait_more(1);
    let batches = writer.stop();
    assert!(batches > 0, "the writer made no progress");

    assert_eq!(backup["status"], "complete");
    assert_eq!(backup["kind"], "sqlite");
    assert_eq!(backup["target"], "app-db");
    assert_eq!(backup["store"], "local");
    let repos = backup["sqlite"]["tables"]["repository"].as_u64().unwrap();
    let issues = backup["sqlite"]["tables"]["issue"].as_u64().unwrap();
    assert_eq!(
        repos, issues,
        "a consistent copy has as many issues as repositories"
    );
    assert!(repos >= 20_000);
    assert_eq!(backup["sqlite"]["quick_check"], "ok");
    assert_eq!(backup["sha256"].as_str().unwrap().len(), 64);

    let verify = home.json(&["verify", "app-db"]);
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["problems"].as_array().unwrap().len(), 0);

    let dest = home.path("restores/copy.db");
    let out = home.json(&["restore", "app-db", "--to", dest.to_str().unwrap(), "--yes"]);
    assert_eq!(out["ok"], true);
    let restored = Connection::open(&dest).unwrap();
    let check: String = restored
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert_eq!(count(&restored, "repository") as u64, repos);
    assert_eq!(count(&restored, "issue") as u64, issues);
    // The live database kept every row written after the copy.
    let live = Connection::open(&db_path).unwrap();
    assert_eq!(count(&live, "repository"), 20_000 + 50 * batches);
}

#[test]
fn restore_in_place_moves_the_current_data_aside() {
    let home = sqlite_home();
    let db_path = home.path("data/app.db");
    let conn = make_app_db(&db_path, 100);
    let first = home.json(&["backup", "app-db"]);
    insert_rows(&conn, 25); // data written after the backup, in the WAL
    drop(conn);

    let plan = home.ok(&["restore", "app-db", "--dry-run"]);
    assert!(plan.contains(first["id"].as_str().unwrap()), "{plan}");
    assert!(plan.contains("move aside"), "{plan}");
    assert_eq!(
        count(&Connection::open(&db_path).unwrap(), "repository"),
        125,
        "dry run changed nothing"
    );

    // Without --yes, only the plan is printed.
    let no_yes = home.ok(&["restore", "app-db"]);
    assert!(no_yes.contains("--yes"), "{no_yes}");
    assert_eq!(
        count(&Connection::open(&db_path).unwrap(), "repository"),
        125
    );

    let out = home.json(&["restore", "app-db", "latest", "--yes"]);
    let aside = out["move_aside"][0]["to"].as_str().unwrap().to_string();
    assert!(aside.contains(".pre-restore-"), "{aside}");
    assert_eq!(
        count(&Connection::open(&db_path).unwrap(), "repository"),
        100
    );
    // Nothing was deleted: the old database is intact beside it, with its WAL.
    let old = Connection::open(&aside).unwrap();
    assert_eq!(count(&old, "repository"), 125);
}

#[test]
fn point_in_time_picks_the_newest_backup_at_or_before() {
    let home = sqlite_home();
    let db_path = home.path("data/app.db");
    let conn = make_app_db(&db_path, 10);
    let first = home.json(&["backup", "app-db"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    insert_rows(&conn, 10);
    let second = home.json(&["backup", "app-db"]);
    assert_ne!(first["id"], second["id"]);

    let at_first = first["created_at"].as_str().unwrap();
    let plan = home.json(&["restore", "app-db", "--at", at_first, "--dry-run"]);
    assert_eq!(plan["backup"]["id"], first["id"]);
    let plan = home.json(&["restore", "app-db", "--at", "2999-01-01 00:00", "--dry-run"]);
    assert_eq!(plan["backup"]["id"], second["id"]);
    let out = home.run(&["restore", "app-db", "--at", "2001-01-01 00:00", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(first["id"].as_str().unwrap()),
        "{}",
        stderr(&out)
    );

    let listed = home.json(&["list", "app-db"]);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            second["id"].as_str().unwrap(),
            first["id"].as_str().unwrap()
        ],
        "newest first"
    );
}

#[test]
fn a_flipped_byte_fails_verify_and_restore_changes_nothing() {
    let home = sqlite_home();
    let db_path = home.path("data/app.db");
    drop(make_app_db(&db_path, 2000));
    let backup = home.json(&["backup", "app-db"]);
    let artifact = home
        .path("backups")
        .join(backup["artifact"].as_str().unwrap());
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&artifact, bytes).unwrap();

    let out = home.run(&["verify", "app-db", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify must fail: {}",
        stdout(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let problems = report["problems"].to_string();
    assert!(problems.contains("stored bytes differ"), "{problems}");

    let before = std::fs::read(&db_path).unwrap();
    let out = home.run(&["restore", "app-db", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is damaged"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&db_path).unwrap(),
        before,
        "the live database was not touched"
    );
    let leftovers: Vec<_> = std::fs::read_dir(home.path("data"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("pre-restore") || n.contains("lifeboat-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_backup_without_its_manifest_does_not_exist() {
    let home = sqlite_home();
    drop(make_app_db(&home.path("data/app.db"), 10));
    let backup = home.json(&["backup", "app-db"]);
    let id = backup["id"].as_str().unwrap();
    std::fs::remove_file(home.path(&format!("backups/app-db/{id}.manifest.json"))).unwrap();

    assert_eq!(home.json(&["list", "app-db"]).as_array().unwrap().len(), 0);
    let out = home.run(&["restore", "app-db", id, "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no backups yet"), "{}", stderr(&out));
    // The next backup removes the orphaned artifact.
    home.json(&["backup", "app-db"]);
    let files = home.store_files("app-db");
    assert_eq!(files.len(), 2, "one artifact and one manifest: {files:?}");
}

#[test]
fn bad_sources_fail_with_plain_errors_and_leave_nothing() {
    let home = sqlite_home();
    let out = home.run(&["backup", "app-db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    std::fs::write(
        home.path("data/app.db"),
        b"this is not a database, it is a text file",
    )
    .unwrap();
    let out = home.run(&["backup", "app-db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a usable SQLite database"),
        "{}",
        stderr(&out)
    );
    assert!(
        home.store_files("app-db").is_empty(),
        "{:?}",
        home.store_files("app-db")
    );
    let status = home.json(&["status"]);
    assert!(
        status[0]["last_job"].as_str().unwrap().contains("failed"),
        "{status}"
    );
}

#[test]
fn restore_destinations_outside_the_allowed_roots_are_refused_before_writing() {
    let home = sqlite_home();
    drop(make_app_db(&home.path("data/app.db"), 10));
    home.json(&["backup", "app-db"]);
    let outside = tempfile::tempdir().unwrap();
    let cases = [
        outside.path().join("x.db").to_str().unwrap().to_string(),
        home.path("restores/../../escape.db")
            .to_str()
            .unwrap()
            .to_string(),
        "/etc/passwd".to_string(),
        home.path("data/app.db").to_str().unwrap().to_string(), // exists
        home.path("restores/missing-dir/x.db")
            .to_str()
            .unwrap()
            .to_string(),
    ];
    for to in &cases {
        let out = home.run(&["restore", "app-db", "--to", to, "--yes"]);
        assert_eq!(out.status.code(), Some(2), "{to}: {}", stderr(&out));
        assert!(stderr(&out).contains("--to"), "{to}: {}", stderr(&out));
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(home.path("restores")).unwrap().count(), 0);
    // Beside the live database is allowed.
    let beside = home.path("data/app-restored.db");
    home.ok(&[
        "restore",
        "app-db",
        "--to",
        beside.to_str().unwrap(),
        "--yes",
    ]);
    assert!(beside.exists());
}

#[test]
fn unknown_names_list_what_exists() {
    let home = sqlite_home();
    drop(make_app_db(&home.path("data/app.db"), 10));
    let b = home.json(&["backup", "app-db"]);
    let out = home.run(&["backup", "gitea"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("app-db"), "{}", stderr(&out));
    let out = home.run(&["verify", "app-db", "20000101T000000Z"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(b["id"].as_str().unwrap()),
        "{}",
        stderr(&out)
    );
}

#[test]
fn each_store_compresses_at_its_own_level() {
    let home = Home::new();
    std::fs::create_dir_all(home.path("dense")).unwrap();
    home.write_config(
        "[stores.dense]\nkind = \"local\"\npath = \"../dense\"\ncompression_level = 19\n\n\
         [targets.fast]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\n\
         [targets.small]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"dense\"\n",
    );
    let conn = make_app_db(&home.path("data/app.db"), 5_000);
    conn.execute_batch("UPDATE issue SET title = title || ' ' || title || ' with more words'")
        .unwrap();
    drop(conn);
    let fast = home.json(&["backup", "fast"]);
    let small = home.json(&["backup", "small"]);
    assert_eq!(
        fast["content_sha256"], small["content_sha256"],
        "the same bytes"
    );
    let (fast, small) = (
        fast["size_bytes"].as_u64().unwrap(),
        small["size_bytes"].as_u64().unwrap(),
    );
    assert!(
        small < fast,
        "level 19 ({small} bytes) vs the default ({fast} bytes)"
    );
    let verify = home.json(&["verify", "small"]);
    assert_eq!(verify["ok"], true, "{verify}");
}
