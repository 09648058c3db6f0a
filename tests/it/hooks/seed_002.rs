//! Seed 002 end to end: a Gitea-style SQLite app stopped and started around a restore
//! in place by its hooks.

use super::{gone, lines, pid_in, sh};
use crate::common::{ConfigBuilder, Home, count, make_app_db, stderr, wait_for};

/// Seed 002: a Gitea-style app holding its SQLite database open. `before_restore` stops
/// it (and waits until it is gone), `after_restore` starts it again; the restarted app
/// sees the restored data.
#[test]
fn seed_002_a_restore_in_place_stops_and_starts_the_app_holding_the_database() {
    let home = Home::new();
    let db = home.path("data/gitea.db");
    let conn = make_app_db(&db, 3);
    drop(conn);
    let app = home.path("app.py");
    let seen = home.path("seen.txt");
    let pidfile = home.path("app.pid");
    // The app: opens the database, says what it sees, and keeps the connection (and a
    // read of the WAL index) open until it is stopped.
    std::fs::write(
        &app,
        "import os, sqlite3, sys, time\n\
         conn = sqlite3.connect(sys.argv[1])\n\
         n = conn.execute('SELECT count(*) FROM repository').fetchone()[0]\n\
         open(sys.argv[3], 'w').write(str(os.getpid()))\n\
         open(sys.argv[2], 'a').write(f'{os.getpid()} {n}\\n')\n\
         while True:\n    time.sleep(3600)\n",
    )
    .unwrap();
    let start = format!(
        "python3 {} {} {} {} </dev/null >/dev/null 2>&1 &",
        app.display(),
        db.display(),
        seen.display(),
        pidfile.display()
    );
    let stop = format!(
        "pid=$(cat {}); kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.05; done",
        pidfile.display()
    );
    ConfigBuilder::new()
        .sqlite_target("gitea", "../data/gitea.db")
        .raw(&format!(
            "[targets.gitea.hooks]\nbefore_restore = [{}]\nafter_restore = [{}]\n",
            sh(&stop),
            sh(&start)
        ))
        .write(&home);
    // The app runs, holding the database open, while it is backed up.
    let first = std::process::Command::new("sh")
        .arg("-c")
        .arg(&start)
        .status()
        .unwrap();
    assert!(first.success());
    wait_for(30, "the app to start", || lines(&seen).len() == 1);
    let first_pid = pid_in(&pidfile);
    assert!(lines(&seen)[0].ends_with(" 3"));
    home.ok(&["backup", "gitea"]);
    // Work after the backup: two more repositories.
    let writer = rusqlite::Connection::open(&db).unwrap();
    crate::common::insert_rows(&writer, 2);
    assert_eq!(count(&writer, "repository"), 5);
    drop(writer);
    let out = home.run(&["restore", "gitea", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(gone(first_pid), "before_restore stopped the app");
    wait_for(30, "the app to be started again", || {
        lines(&seen).len() == 2
    });
    let restarted = &lines(&seen)[1];
    let new_pid = pid_in(&pidfile);
    assert_ne!(new_pid, first_pid);
    assert_eq!(
        restarted,
        &format!("{new_pid} 3"),
        "the app sees the restored data"
    );
    unsafe { libc::kill(new_pid, libc::SIGTERM) };
    wait_for(30, "the app to stop", || gone(new_pid));
}
