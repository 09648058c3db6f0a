//! A VACUUM that changes the page size. SQLite refuses a new page size in WAL mode, so an
//! application does it out of WAL mode and back, which it can only do while no replicator
//! holds the database: the next replicator finds a log it does not know, starts a new
//! generation with a base copy of the new page size, and both generations restore.

use super::*;

/// The page size SQLite reads from a database file.
fn page_size(db: &Path) -> i64 {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA page_size;")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn a_page_size_changed_by_vacuum_while_no_replicator_ran_is_a_new_generation() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    assert_eq!(page_size(&db), 4096);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let first = position(&home)["generation"].as_str().unwrap().to_string();
    let log = home.path("data/commits.log");
    finish(writer(&db, 300, &log, &["noauto"]));
    let before = commits(&log);
    home.wait_replicated_past(before.last().unwrap().committed);
    rep.kill();

    // The application's maintenance: out of WAL mode, a new page size, VACUUM, back.
    let script = format!(
        "import sqlite3\n\
         c = sqlite3.connect({path:?}, isolation_level=None)\n\
         assert c.execute('PRAGMA journal_mode=DELETE').fetchone()[0] == 'delete'\n\
         c.execute('PRAGMA page_size=8192')\n\
         c.execute('VACUUM')\n\
         assert c.execute('PRAGMA journal_mode=WAL').fetchone()[0] == 'wal'\n\
         c.close()\n",
        path = db.display().to_string()
    );
    let ok = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(page_size(&db), 8192, "the VACUUM changed the page size");

    let mut again = Replicator::start(home.command(&["replicate", "app"]));
    again.wait_for("new replication generation");
    let second = position(&home)["generation"].as_str().unwrap().to_string();
    assert_ne!(first, second, "a new generation");
    finish(writer(&db, 200, &log, &[]));
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);

    // The newest moment: every row, in a database of the new page size.
    let now = home.path("restores/now.db");
    let replicated_to = home.status()["replicated_to"].as_str().unwrap().to_string();
    let plan = home.restore_at(&replicated_to, &now);
    assert_eq!(plan["point"]["generation"], second.as_str(), "{plan}");
    assert_eq!(restored_ids(&now), (1..=500).collect::<Vec<i64>>());
    assert_eq!(page_size(&now), 8192);

    // A moment of the first generation: its own base and history, the old page size.
    let at = (before[149].committed + before[150].began) / 2.0;
    let old = home.path("restores/old.db");
    let plan = home.restore_at(&rfc3339(at), &old);
    assert_eq!(plan["point"]["generation"], first.as_str(), "{plan}");
    assert_exactly_by(&restored_ids(&old), &rows, at, slack());
    assert_eq!(page_size(&old), 4096);
    again.kill();
}
