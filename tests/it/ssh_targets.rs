//! Targets on another host, against a real sshd on loopback with throwaway keys: SQLite
//! and directory round trips while the data changes, restores with move-aside on the
//! remote side, refused host and client keys, a connection killed mid-transfer and a
//! missing remote binary. Each failure must say why in plain words and leave nothing
//! that looks complete on either side.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::sshd::{Sshd, keygen};
use crate::common::*;
use rusqlite::Connection;

/// A lifeboat home whose targets live on `sshd`'s host, under `remote`.
struct Setup {
    sshd: Sshd,
    home: Home,
    remote: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup::on(Sshd::start())
    }

    fn on(sshd: Sshd) -> Setup {
        let remote = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(remote.path().join("data")).unwrap();
        std::fs::create_dir_all(remote.path().join("restores")).unwrap();
        let home = Home::new();
        let setup = Setup { sshd, home, remote };
        setup.write_config(&setup.sshd.target_keys());
        setup
    }

    fn remote(&self, rel: &str) -> PathBuf {
        self.remote.path().join(rel)
    }

    /// Targets `app-db` (sqlite) and `files` (directory) with the given SSH keys.
    fn write_config(&self, ssh_keys: &str) {
        let r = self.remote.path().display();
        self.home.write_config(&format!(
            "[targets.app-db]\nkind = \"sqlite\"\npath = \"{r}/data/app.db\"\nstore = \"local\"\n\
             restore_roots = [\"{r}/restores\"]\n{ssh_keys}\n\
             [targets.files]\nkind = \"directory\"\npath = \"{r}/data/tree\"\nstore = \"local\"\n\
             exclude = [\"cache\", \"*.tmp\"]\nrestore_roots = [\"{r}/restores\"]\n{ssh_keys}\n"
        ));
    }

    /// The same targets, backed up into a restic-format repository store `vault`.
    fn use_repository(&self) -> PathBuf {
        let r = self.remote.path().display();
        let keys = self.sshd.target_keys();
        let vault = self.home.path("vault");
        self.home.write_config(&format!(
            "[stores.vault]\nkind = \"repository\"\nlocation = \"{}\"\n\
             password = \"${{LIFEBOAT_REPO_PASSWORD}}\"\n\n\
             [targets.app-db]\nkind = \"sqlite\"\npath = \"{r}/data/app.db\"\nstore = \"vault\"\n\
             restore_roots = [\"{r}/restores\"]\n{keys}\n\
             [targets.files]\nkind = \"directory\"\npath = \"{r}/data/tree\"\nstore = \"vault\"\n\
             restore_roots = [\"{r}/restores\"]\n{keys}\n",
            vault.display()
        ));
        vault
    }

    /// Files lifeboat left in the remote data directory besides the data itself.
    fn remote_leftovers(&self) -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(self.remote("data"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.contains("lifeboat"))
            .collect();
        found.extend(
            std::fs::read_dir("/tmp")
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with(".lifeboat-backup.") || n.starts_with(".lifeboat-pin.")),
        );
        found
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.home.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "lifeboat {args:?} should fail:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stderr(&out)
    }

    fn nothing_stored(&self, target: &str) {
        assert!(
            self.home.store_files(target).is_empty(),
            "{:?}",
            self.home.store_files(target)
        );
        assert_eq!(
            self.home.json(&["list", target]).as_array().unwrap().len(),
            0
        );
    }
}

fn writer_thread(path: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let conn = Connection::open(&path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        let mut batches = 0;
        while !stop.load(Ordering::Relaxed) {
            insert_rows(&conn, 50);
            batches += 1;
        }
        batches
    })
}

#[test]
fn remote_sqlite_round_trip_while_the_app_writes() {
    let s = Setup::new();
    let db_path = s.remote("data/app.db");
    drop(make_app_db(&db_path, 20_000));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = writer_thread(db_path.clone(), stop.clone());
    std::thread::sleep(std::time::Duration::from_millis(100));
    let backup = s.home.json(&["backup", "app-db"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let batches = writer.join().unwrap();
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

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("docs/deep/er")).unwrap();
    std::fs::create_dir_all(root.join("cache/sub")).unwrap();
    std::fs::write(root.join("docs/readme.md"), "hello\n").unwrap();
    std::fs::write(root.join("docs/deep/er/data.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("it's a \"file\" $(id).txt"), "quoted name\n").unwrap();
    std::fs::write(root.join("scratch.tmp"), "excluded\n").unwrap();
    std::fs::write(root.join("cache/sub/big"), vec![1u8; 100_000]).unwrap();
    std::os::unix::fs::symlink("docs/readme.md", root.join("readme-link")).unwrap();
    let script = root.join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).unwrap();
}

#[test]
fn remote_directory_round_trip() {
    let s = Setup::new();
    let tree = s.remote("data/tree");
    make_tree(&tree);
    let backup = s.home.json(&["backup", "files"]);
    assert_eq!(backup["kind"], "directory");
    let verify = s.home.json(&["verify", "files"]);
    assert_eq!(verify["ok"], true, "{verify}");

    let manifest_path = s.home.path(&format!(
        "backups/files/{}.manifest.json",
        backup["id"].as_str().unwrap()
    ));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_path).unwrap()).unwrap();
    let entries = manifest["directory"]["entries"].as_array().unwrap();
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("cache") || p.ends_with(".tmp")),
        "{paths:?}"
    );
    let data = entries
        .iter()
        .find(|e| e["path"] == "docs/deep/er/data.bin")
        .unwrap();
    let want = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(vec![7u8; 300_000]))
    };
    assert_eq!(data["sha256"], want.as_str());
    let link = entries.iter().find(|e| e["path"] == "readme-link").unwrap();
    assert_eq!(link["type"], "symlink");

    let dest = s.remote("restores/tree");
    s.home
        .ok(&["restore", "files", "--to", dest.to_str().unwrap(), "--yes"]);
    assert_eq!(
        std::fs::read(dest.join("docs/deep/er/data.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("it's a \"file\" $(id).txt")).unwrap(),
        "quoted name\n"
    );
    assert_eq!(
        std::fs::read_link(dest.join("readme-link")).unwrap(),
        Path::new("docs/readme.md")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dest.join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    assert!(!dest.join("cache").exists() && !dest.join("scratch.tmp").exists());

    // In place: the current tree is moved aside on the host, never deleted.
    std::fs::write(tree.join("docs/readme.md"), "changed after the backup\n").unwrap();
    let out = s.home.json(&["restore", "files", "--yes"]);
    let aside = PathBuf::from(out["move_aside"][0]["to"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(tree.join("docs/readme.md")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(aside.join("docs/readme.md")).unwrap(),
        "changed after the backup\n"
    );
}

#[test]
fn remote_targets_back_up_into_a_repository_that_restic_reads() {
    let s = Setup::new();
    let vault = s.use_repository();
    drop(make_app_db(&s.remote("data/app.db"), 2_000));
    make_tree(&s.remote("data/tree"));
    let db = s.home.json(&["backup", "app-db"]);
    let files = s.home.json(&["backup", "files"]);
    assert_eq!(db["compression"], "restic");
    for target in ["app-db", "files"] {
        let v = s.home.json(&["verify", target]);
        assert_eq!(v["ok"], true, "{v}");
    }
    let dest = s.remote("restores/tree");
    s.home
        .ok(&["restore", "files", "--to", dest.to_str().unwrap(), "--yes"]);
    assert_eq!(
        std::fs::read(dest.join("docs/deep/er/data.bin")).unwrap(),
        vec![7u8; 300_000]
    );

    // restic gives the remote database back as it was backed up.
    let out = s.home.path("restic-out");
    let restic = std::process::Command::new("restic")
        .arg("-r")
        .arg(&vault)
        .args([
            "--no-cache",
            "restore",
            db["artifact"].as_str().unwrap(),
            "--target",
        ])
        .arg(&out)
        .env("RESTIC_PASSWORD", crate::common::vault::PASSWORD)
        .output()
        .expect("restic (scripts/test.sh installs it)");
    assert!(restic.status.success(), "{}", stderr(&restic));
    let restored = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(out.join("app.db")).unwrap(),
        ))
    };
    assert_eq!(restored, db["content_sha256"].as_str().unwrap());
    assert_ne!(files["artifact"], db["artifact"]);
}

#[test]
fn two_targets_on_one_host_back_up_at_once() {
    let s = Setup::new();
    drop(make_app_db(&s.remote("data/app.db"), 5_000));
    make_tree(&s.remote("data/tree"));
    let spawn = |target: &str| {
        s.home
            .command(&["backup", target])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("app-db"), spawn("files"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(s.home.json(&["list"]).as_array().unwrap().len(), 2);
}

#[test]
fn a_changed_host_key_is_refused() {
    let s = Setup::new();
    drop(make_app_db(&s.remote("data/app.db"), 10));
    // known_hosts names this host and port with some other machine's key.
    let other = keygen(&s.home.path("config/other_host"));
    let key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let kh = s.home.path("config/known_hosts");
    std::fs::write(&kh, format!("[127.0.0.1]:{} {key}", s.sshd.port)).unwrap();
    s.write_config(&format!(
        "host = \"{}\"\nssh_identity = \"{}\"\nssh_known_hosts = \"known_hosts\"\n",
        s.sshd.url(),
        s.sshd.client_key().display()
    ));
    let err = s.fails(&["backup", "app-db"]);
    assert!(err.contains("host key does not match"), "{err}");
    assert!(err.contains(kh.to_str().unwrap()), "{err}");
    s.nothing_stored("app-db");

    // A host missing from known_hosts is refused too, naming the line to add.
    std::fs::write(&kh, "").unwrap();
    let err = s.fails(&["backup", "app-db"]);
    assert!(err.contains("has no matching key"), "{err}");
    assert!(
        err.contains(&format!("[127.0.0.1]:{}", s.sshd.port)),
        "{err}"
    );
    let check = s.home.run(&["config", "check"]);
    assert_ne!(check.status.code(), Some(0));
    assert!(
        stderr(&check).contains("has no key for"),
        "{}",
        stderr(&check)
    );
}

#[test]
fn a_refused_client_key_and_an_unreachable_host_fail_in_plain_words() {
    let s = Setup::new();
    drop(make_app_db(&s.remote("data/app.db"), 10));
    let stranger = keygen(&s.home.path("config/stranger"));
    s.write_config(&format!(
        "host = \"{}\"\nssh_identity = \"{}\"\nssh_known_hosts = \"{}\"\n",
        s.sshd.url(),
        stranger.display(),
        s.sshd.known_hosts().display()
    ));
    let err = s.fails(&["backup", "app-db"]);
    assert!(err.contains("refused lifeboat's key"), "{err}");
    assert!(err.contains("authorized_keys"), "{err}");
    s.nothing_stored("app-db");

    // Nobody listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kh = s.home.path("config/kh2");
    std::fs::write(&kh, format!("[127.0.0.1]:{port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFrZWtleWZvcnRlc3Rzb25seWZha2VrZXlmb3J0\n")).unwrap();
    s.write_config(&format!(
        "host = \"ssh://root@127.0.0.1:{port}\"\nssh_identity = \"{}\"\nssh_known_hosts = \"{}\"\n",
        s.sshd.client_key().display(),
        kh.display()
    ));
    let err = s.fails(&["backup", "app-db"]);
    assert!(err.contains("refused the connection"), "{err}");
    s.nothing_stored("app-db");
}

#[test]
fn a_connection_killed_mid_transfer_leaves_nothing_complete() {
    let s = Setup::new();
    make_big_db(&s.remote("data/app.db"), 96);
    let child = s
        .home
        .command(&["backup", "app-db"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let writing = || {
        std::fs::read_dir(s.home.path("backups/app-db"))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
            })
            .unwrap_or(false)
    };
    wait_for(60, "the artifact to be written", writing);
    assert!(s.sshd.kill_connections() > 0, "no connection to kill");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("connection to root@127.0.0.1") && err.contains("was lost"),
        "{err}"
    );
    s.nothing_stored("app-db");
    // The host's shell removed its temporary copy when the stream broke.
    wait_for(30, "the remote temporary copy to be removed", || {
        s.remote_leftovers().is_empty()
    });
    // The next backup works.
    assert_eq!(s.home.json(&["backup", "app-db"])["status"], "complete");
}

#[test]
fn a_missing_remote_binary_is_named() {
    // The host's PATH offers every command of /usr/bin except sqlite3 and tar.
    let bin = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("/usr/bin").unwrap().flatten() {
        let name = entry.file_name();
        if name != "sqlite3" && name != "tar" {
            let _ = std::os::unix::fs::symlink(entry.path(), bin.path().join(&name));
        }
    }
    let sshd = Sshd::start_with(&format!("SetEnv PATH={}", bin.path().display()));
    let s = Setup::on(sshd);
    drop(make_app_db(&s.remote("data/app.db"), 10));
    make_tree(&s.remote("data/tree"));

    let err = s.fails(&["backup", "app-db"]);
    assert!(err.contains("has no `sqlite3` command"), "{err}");
    assert!(err.contains("apt install sqlite3"), "{err}");
    s.nothing_stored("app-db");
    let err = s.fails(&["backup", "files"]);
    assert!(err.contains("has no `tar` command"), "{err}");
    s.nothing_stored("files");
    assert!(
        s.remote_leftovers().is_empty(),
        "{:?}",
        s.remote_leftovers()
    );
}

#[test]
fn runbook_command_steps_run_on_the_targets_host() {
    let s = Setup::new();
    drop(make_app_db(&s.remote("data/app.db"), 40));
    let host = s.sshd.url();
    std::fs::create_dir_all(s.home.path("runbooks")).unwrap();
    // No keys in the steps: they are borrowed from the target on the same host.
    std::fs::write(
        s.home.path("runbooks/remote-checks.toml"),
        format!(
            "title = \"Checks on the database host\"\n\
             [[step]]\ntitle = \"Integrity\"\nestimate = \"1m\"\nhost = \"{host}\"\n\
             command = [\"sqlite3\", \"{{path:app-db}}\", \"PRAGMA integrity_check;\"]\noutput_contains = \"ok\"\n\
             [[step]]\ntitle = \"Disk space\"\nestimate = \"1m\"\nhost = \"{host}\"\n\
             command = [\"sh\", \"-c\", \"echo 'disk full' >&2; exit 3\"]\n"
        ),
    )
    .unwrap();
    let out = s.home.run(&["runbook", "run", "remote-checks"]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}\n{}", stderr(&out));
    assert!(
        report.contains("| 1 | Integrity | command | 1m |"),
        "{report}"
    );
    assert!(report.contains("sqlite3 exited 0: ok"), "{report}");
    assert!(
        report.contains("sh exited 3, expected 0: disk full"),
        "{report}"
    );
    assert!(report.contains("❌ failed"), "{report}");
}

#[test]
fn a_remote_target_drills_into_a_sandbox_on_the_bot_host() {
    let s = Setup::new();
    drop(make_app_db(&s.remote("data/app.db"), 60));
    s.home.ok(&["backup", "app-db"]);
    let before = std::fs::read(s.remote("data/app.db")).unwrap();
    let r = s.home.json(&["drill", "app-db"]);
    assert_eq!(r["ok"], true, "{r:#}");
    assert!(r["rto_seconds"].as_f64().unwrap() >= 0.0);
    let sandbox = r["sandbox"].as_str().unwrap();
    assert!(
        sandbox.starts_with(s.home.dir.path().to_str().unwrap()),
        "{sandbox}"
    );
    assert!(!Path::new(sandbox).exists(), "the sandbox is removed");
    assert_eq!(std::fs::read(s.remote("data/app.db")).unwrap(), before);
    assert!(
        s.remote_leftovers().is_empty(),
        "{:?}",
        s.remote_leftovers()
    );
}
