//! Faults during jobs: the process killed mid-backup, Ctrl-C, a second backup while one
//! runs, and a full disk. Each leaves nothing that looks complete, and the next run works.

use std::io::Read;
use std::process::Stdio;

use crate::common::*;

fn big_home(mb: usize) -> Home {
    let home = Home::new();
    ConfigBuilder::new()
        .sqlite_target("big", "../data/big.db")
        .write(&home);
    make_big_db(&home.path("data/big.db"), mb);
    home
}

fn temp_files(home: &Home) -> Vec<String> {
    home.store_files("big")
        .into_iter()
        .filter(|f| f.starts_with(".tmp-"))
        .collect()
}

/// Start `backup big` and return once its artifact is being written to the store.
fn backup_under_way(home: &Home, stderr_to: Stdio) -> std::process::Child {
    let child = home
        .command(&["backup", "big"])
        .stdout(Stdio::null())
        .stderr(stderr_to)
        .spawn()
        .unwrap();
    wait_for(60, "the artifact to be written", || {
        !temp_files(home).is_empty()
    });
    child
}

/// The backup ended as cancelled (exit 1, says so) and left nothing in the store.
fn assert_cancelled_leaving_nothing(home: &Home, child: std::process::Child) {
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    assert!(
        home.store_files("big").is_empty(),
        "{:?}",
        home.store_files("big")
    );
}

/// A home whose target `big` is a database the application holds a write transaction
/// on: a backup of it starts its artifact and then waits until the test commits.
fn held_home() -> (Home, rusqlite::Connection) {
    let home = Home::new();
    ConfigBuilder::new()
        .sqlite_target("big", "../data/big.db")
        .write(&home);
    let app = held_db(&home.path("data/big.db"));
    (home, app)
}

#[test]
fn killed_mid_backup_leaves_nothing_listed_and_is_reported() {
    let (home, app) = held_home();
    // Kill while the artifact is open in the store (and the backup surely unfinished).
    let mut child = backup_under_way(&home, Stdio::null());
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    app.execute_batch("COMMIT").unwrap();

    assert_eq!(home.json(&["list", "big"]).as_array().unwrap().len(), 0);
    let status = home.json(&["status"]);
    assert_eq!(status[0]["backups"], 0);
    // The commands above noticed the dead job and recorded it.
    let jobs_db = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    let state: String = jobs_db
        .query_row("SELECT state FROM jobs ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(state, "interrupted");
    let audited: i64 = jobs_db
        .query_row(
            "SELECT count(*) FROM audit WHERE outcome = 'interrupted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1);

    // The next backup works and clears the leftovers.
    let b = home.json(&["backup", "big"]);
    assert_eq!(b["status"], "complete");
    assert!(
        temp_files(&home).is_empty(),
        "{:?}",
        home.store_files("big")
    );
    assert_eq!(home.store_files("big").len(), 2);
    assert!(home.json(&["verify", "big"])["ok"].as_bool().unwrap());
}

#[test]
fn interrupted_job_is_reported_by_the_next_command() {
    let (home, _app) = held_home();
    let mut child = backup_under_way(&home, Stdio::null());
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let out = home.run(&["list"]);
    assert!(stderr(&out).contains("was interrupted"), "{}", stderr(&out));
    let again = home.run(&["list"]);
    assert!(
        !stderr(&again).contains("was interrupted"),
        "reported once: {}",
        stderr(&again)
    );
}

#[test]
fn ctrl_c_cancels_cleanly() {
    let home = big_home(96);
    let child = backup_under_way(&home, Stdio::piped());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_cancelled_leaving_nothing(&home, child);
    let status = home.json(&["status"]);
    assert!(
        status[0]["last_job"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{status}"
    );
}

#[test]
fn ctrl_c_stops_a_directory_backup_in_the_middle_of_a_large_file() {
    let home = Home::new();
    home.write_config(
        "[targets.big]\nkind = \"directory\"\npath = \"../data/tree\"\nstore = \"local\"\n",
    );
    // A path too long for a plain tar header, so the body goes through the tar crate's own
    // copy loop, which retries interrupted reads: cancellation must not look like one.
    let dir = home.path(&format!("data/tree/{}", "deep-directory-name/".repeat(6)));
    std::fs::create_dir_all(&dir).unwrap();
    let mut big = std::fs::File::create(dir.join("volume.bin")).unwrap();
    std::io::copy(
        &mut std::fs::File::open("/dev/urandom").unwrap().take(384 << 20),
        &mut big,
    )
    .unwrap();
    let mut child = backup_under_way(&home, Stdio::piped());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the backup did not stop within 30 s of Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_cancelled_leaving_nothing(&home, child);
}

#[test]
fn a_second_backup_while_one_runs_is_refused_naming_it() {
    let (home, app) = held_home();
    let mut child = home
        .command(&["backup", "big"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(60, "the first backup to start", || {
        !temp_files(&home).is_empty()
    });
    let out = home.run(&["backup", "big"]);
    let first_done = child.try_wait().unwrap().is_some();
    assert!(!first_done, "the first backup waits for the application");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("busy") && err.contains("job 1") && err.contains("backup by cli:"),
        "{err}"
    );
    app.execute_batch("COMMIT").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(home.json(&["list", "big"]).as_array().unwrap().len(), 1);
}

/// A real full disk: a 4 MiB tmpfs as the store (needs root, as the test command runs).
#[test]
fn disk_full_fails_clearly_and_publishes_nothing() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test mounts a tmpfs and must run as root"
    );
    let home = big_home(16);
    let store = home.path("backups");
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&store)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(store.clone());

    let out = home.run(&["backup", "big"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no space left on device"),
        "{}",
        stderr(&out)
    );
    assert!(
        home.store_files("big").is_empty(),
        "{:?}",
        home.store_files("big")
    );
    assert_eq!(home.json(&["list", "big"]).as_array().unwrap().len(), 0);

    // Room again: the next backup works.
    std::fs::remove_file(home.path("data/big.db")).unwrap();
    drop(make_app_db(&home.path("data/big.db"), 100));
    assert_eq!(home.json(&["backup", "big"])["status"], "complete");
}
