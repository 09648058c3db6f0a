//! The restic-format repository store, end to end through the real binary: restic itself
//! reads what lifeboat wrote and lifeboat works in a repository restic made; re-backups
//! deduplicate; a wrong password is refused without a change; flipped pack bytes, a
//! SIGKILL mid-backup and a full disk each have their defined outcome; S3 through moto.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::cutter::Cutter;
use common::moto::{Moto, aws_env};
use common::{Home, count, insert_rows, make_app_db, make_big_db, stderr, stdout, wait_for};

const PASSWORD: &str = "correct horse battery staple";

/// A lifeboat home with a repository store `vault` at `location` and the given targets.
struct Vault {
    home: Home,
    location: String,
    password: String,
    /// Extra environment (S3 credentials) for lifeboat and restic alike.
    s3: bool,
}

impl Vault {
    fn local(targets: &str) -> Vault {
        let home = Home::new();
        let location = home.path("vault").to_string_lossy().into_owned();
        Vault::with(home, location, targets, false)
    }

    fn with(home: Home, location: String, targets: &str, s3: bool) -> Vault {
        home.write_config(&format!(
            "[stores.vault]\nkind = \"repository\"\nlocation = \"{location}\"\n\
             password = \"${{LIFEBOAT_REPO_PASSWORD}}\"\n\n{targets}"
        ));
        Vault {
            home,
            location,
            password: PASSWORD.into(),
            s3,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.home.command(args);
        cmd.env("LIFEBOAT_REPO_PASSWORD", &self.password);
        if self.s3 {
            aws_env(&mut cmd, &self.home, "test", "test");
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lifeboat {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    fn backup(&self, target: &str) -> serde_json::Value {
        self.json(&["backup", target])
    }

    /// The real restic on this repository.
    fn restic(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("restic");
        cmd.arg("-r")
            .arg(&self.location)
            .arg("--no-cache")
            .args(args)
            .env("RESTIC_PASSWORD", &self.password);
        if self.s3 {
            aws_env(&mut cmd, &self.home, "test", "test");
        }
        cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run restic ({e}); these tests need it: run scripts/test.sh (apt: restic)"
            )
        })
    }

    fn restic_ok(&self, args: &[&str]) -> String {
        let out = self.restic(args);
        assert!(
            out.status.success(),
            "restic {args:?} failed:\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.home.path(rel)
    }
}

fn sqlite_target(name: &str, file: &str) -> String {
    format!("[targets.{name}]\nkind = \"sqlite\"\npath = \"../data/{file}\"\nstore = \"vault\"\n\n")
}

fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Every file under `dir` with its SHA-256, for "nothing changed" comparisons.
fn tree_hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), sha256_file(&p));
            }
        }
    }
    out
}

/// The largest pack file of a local repository.
fn largest_pack(repo: &Path) -> PathBuf {
    let mut packs: Vec<(u64, PathBuf)> = Vec::new();
    for sub in std::fs::read_dir(repo.join("data")).unwrap().flatten() {
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            packs.push((f.metadata().unwrap().len(), f.path()));
        }
    }
    packs.sort();
    packs.pop().expect("the repository has packs").1
}

#[test]
fn restic_reads_what_lifeboat_wrote() {
    let v = Vault::local(&format!(
        "{}[targets.site]\nkind = \"directory\"\npath = \"../data/site\"\nstore = \"vault\"\n",
        sqlite_target("gitea-db", "gitea.db")
    ));
    drop(make_app_db(&v.path("data/gitea.db"), 3000));
    std::fs::create_dir_all(v.path("data/site/assets")).unwrap();
    std::fs::write(v.path("data/site/index.html"), "<h1>hello</h1>\n").unwrap();
    std::fs::write(v.path("data/site/assets/app.bin"), vec![7u8; 300_000]).unwrap();

    let init = v.ok(&["store", "init", "vault"]);
    assert!(init.contains("initialised"), "{init}");
    assert!(
        v.ok(&["store", "init", "vault"])
            .contains("nothing to initialise")
    );

    let db = v.backup("gitea-db");
    assert_eq!(db["compression"], "restic");
    v.backup("site");

    // restic lists both snapshots with lifeboat's tags, and finds nothing wrong.
    let snaps: serde_json::Value =
        serde_json::from_str(&v.restic_ok(&["snapshots", "--json"])).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let tags: Vec<String> = snaps[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(tags.contains(&"lifeboat".to_string()), "{tags:?}");
    assert!(
        snaps.iter().any(|s| s["id"] == db["artifact"]),
        "lifeboat's artifact is the snapshot id: {snaps:?}"
    );
    v.restic_ok(&["check", "--read-data"]);

    // `restic restore` gives the database file back byte for byte.
    let out = v.path("restic-out");
    v.restic_ok(&[
        "restore",
        db["artifact"].as_str().unwrap(),
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        sha256_file(&out.join("gitea.db")),
        sha256_file(&v.path("data/gitea.db"))
    );
    assert_eq!(
        sha256_file(&out.join("gitea.db")),
        db["content_sha256"].as_str().unwrap()
    );

    // `restic dump … | tar -x` gives the directory back.
    let dump = v.restic(&["dump", "--tag", "target=site", "latest", "site.tar"]);
    assert!(dump.status.success(), "{}", stderr(&dump));
    let untarred = v.path("untarred");
    std::fs::create_dir_all(&untarred).unwrap();
    tar::Archive::new(&dump.stdout[..])
        .unpack(&untarred)
        .unwrap();
    assert_eq!(
        std::fs::read(untarred.join("assets/app.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    assert_eq!(
        std::fs::read_to_string(untarred.join("index.html")).unwrap(),
        "<h1>hello</h1>\n"
    );
}

#[test]
fn lifeboat_works_in_a_repository_restic_made() {
    let v = Vault::local(&sqlite_target("app", "app.db"));
    drop(make_app_db(&v.path("data/app.db"), 500));
    v.restic_ok(&["init"]);
    std::fs::write(v.path("data/notes.txt"), "kept by restic\n").unwrap();
    v.restic_ok(&["backup", v.path("data/notes.txt").to_str().unwrap()]);

    let m = v.backup("app");
    let listed = v.json(&["list", "app"]);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "only lifeboat's own: {listed}"
    );
    let report = v.json(&["verify", "app", "--read-data"]);
    assert_eq!(report["ok"], true, "{report}");

    // Retention and prune leave restic's own snapshot alone.
    v.ok(&["prune"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&v.restic_ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2, "{snaps}");
    v.restic_ok(&["check"]);
    let out = v.path("out");
    v.restic_ok(&[
        "restore",
        "latest",
        "--path",
        v.path("data/notes.txt").to_str().unwrap(),
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(m["target"], "app");
}

#[test]
fn re_backups_store_only_what_changed_and_dedup_across_targets() {
    let v = Vault::local(&format!(
        "{}{}",
        sqlite_target("one", "one.db"),
        sqlite_target("two", "two.db")
    ));
    make_big_db(&v.path("data/one.db"), 8);
    let first = v.backup("one");
    let first_size = first["size_bytes"].as_u64().unwrap();
    assert!(first_size > 7 << 20, "incompressible 8 MiB stored: {first}");

    // About 1 % of the rows rewritten.
    let conn = rusqlite::Connection::open(v.path("data/one.db")).unwrap();
    conn.execute(
        "UPDATE blobs SET data = randomblob(65536) WHERE id % 100 = 0",
        [],
    )
    .unwrap();
    drop(conn);
    let second = v.backup("one");
    let second_size = second["size_bytes"].as_u64().unwrap();
    assert!(
        second_size < first_size / 4,
        "a re-backup after 1 % changed added {second_size} bytes (first: {first_size})"
    );

    // The same data under another target adds next to nothing.
    std::fs::copy(v.path("data/one.db"), v.path("data/two.db")).unwrap();
    let other = v.backup("two");
    assert!(
        other["size_bytes"].as_u64().unwrap() < 64 << 10,
        "a copy under another target was stored again: {other}"
    );
    // Each backup still restores to its own content.
    for (target, m) in [("one", &first), ("one", &second), ("two", &other)] {
        let r = v.json(&["verify", target, m["id"].as_str().unwrap()]);
        assert_eq!(r["ok"], true, "{r}");
    }
}

#[test]
fn a_wrong_password_is_refused_and_changes_nothing() {
    let mut v = Vault::local(&sqlite_target("app", "app.db"));
    drop(make_app_db(&v.path("data/app.db"), 200));
    v.backup("app");
    let before = tree_hashes(&v.path("vault"));

    v.password = "not the password".into();
    for args in [&["backup", "app"][..], &["verify", "app"], &["prune"]] {
        let out = v.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("the password does not open this repository"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        tree_hashes(&v.path("vault")),
        before,
        "the repository changed"
    );

    v.password = PASSWORD.into();
    assert_eq!(v.json(&["verify", "app"])["ok"], true);
}

#[test]
fn flipped_pack_bytes_are_found_by_verify_and_drill() {
    let v = Vault::local(&sqlite_target("app", "app.db"));
    make_big_db(&v.path("data/app.db"), 2);
    v.backup("app");
    assert_eq!(v.json(&["verify", "app"])["ok"], true);

    let pack = largest_pack(&v.path("vault"));
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();

    let out = v.run(&["verify", "app", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false);
    let problems = report["problems"].to_string();
    assert!(problems.contains("cannot be read back"), "{problems}");

    let out = v.run(&["drill", "app", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let drill: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(drill["ok"], false, "{drill}");

    // The repository's own full read names the damaged pack too.
    let out = v.run(&["store", "check", "vault", "--read-data"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("repository check"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_killed_backup_leaves_the_repository_consistent() {
    let v = Vault::local(&sqlite_target("big", "big.db"));
    drop(make_app_db(&v.path("data/big.db"), 300));
    let earlier = v.backup("big");
    let earlier_sha = sha256_file(&v.path("data/big.db"));
    std::fs::remove_file(v.path("data/big.db")).unwrap();
    let _ = std::fs::remove_file(v.path("data/big.db-wal"));
    let _ = std::fs::remove_file(v.path("data/big.db-shm"));
    make_big_db(&v.path("data/big.db"), 96);

    // SIGKILL once the new backup has written packs of its own.
    let packs_before = count_packs(&v.path("vault"));
    let mut child = v.command(&["backup", "big"]).spawn().unwrap();
    wait_for(120, "the backup to write packs", || {
        count_packs(&v.path("vault")) > packs_before + 2
    });
    child.kill().unwrap();
    child.wait().unwrap();

    // restic finds the repository consistent (packs no index names are not errors).
    v.restic_ok(&["check"]);
    let listed = v.json(&["list", "big"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // The next backup works and the earlier one still restores byte for byte.
    let next = v.backup("big");
    assert_eq!(
        v.json(&["verify", "big", next["id"].as_str().unwrap()])["ok"],
        true
    );
    let out = v.path("earlier");
    v.restic_ok(&[
        "restore",
        earlier["artifact"].as_str().unwrap(),
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(sha256_file(&out.join("big.db")), earlier_sha);
    v.restic_ok(&["check"]);
}

#[test]
fn a_cancelled_backup_leaves_nothing_listed() {
    let v = Vault::local(&sqlite_target("big", "big.db"));
    make_big_db(&v.path("data/big.db"), 96);
    v.ok(&["store", "init", "vault"]);
    let mut child = v.command(&["backup", "big"]).spawn().unwrap();
    wait_for(120, "the backup to write packs", || {
        count_packs(&v.path("vault")) > 2
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the backup finished before it was cancelled"
    );
    assert_eq!(v.json(&["list", "big"]).as_array().unwrap().len(), 0);
    let snaps: serde_json::Value =
        serde_json::from_str(&v.restic_ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 0, "{snaps}");
    v.restic_ok(&["check"]);
}

fn count_packs(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("data"))
        .map(|d| {
            d.flatten()
                .map(|s| std::fs::read_dir(s.path()).map(|f| f.count()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// A real full disk: the repository on a 3 MiB tmpfs (needs root, as the test command runs).
#[test]
fn a_full_disk_fails_clearly_and_keeps_earlier_backups() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test mounts a tmpfs and must run as root"
    );
    let v = Vault::local(&sqlite_target("app", "app.db"));
    let repo = v.path("vault");
    std::fs::create_dir_all(&repo).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&repo)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(repo.clone());

    drop(make_app_db(&v.path("data/app.db"), 100));
    let small = v.backup("app");
    make_big_db(&v.path("data/app.db"), 8);
    let out = v.run(&["backup", "app"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .to_lowercase()
            .contains("no space left on device"),
        "{}",
        stderr(&out)
    );
    let listed = v.json(&["list", "app"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        v.json(&["verify", "app", small["id"].as_str().unwrap()])["ok"],
        true
    );
    v.restic_ok(&["check"]);
}

#[test]
fn every_action_works_on_a_repository_store() {
    let v = Vault::local(
        "[targets.app]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"vault\"\n\
         restore_roots = [\"../restores\"]\nretention = { last = 1 }\nrto = \"10m\"\nrpo = \"1d\"\n",
    );
    let conn = make_app_db(&v.path("data/app.db"), 1000);
    let first = v.backup("app");
    insert_rows(&conn, 500);
    let second = v.backup("app");
    assert_ne!(first["id"], second["id"]);

    let status = v.json(&["status"]);
    assert!(
        status.to_string().contains(second["id"].as_str().unwrap()),
        "{status}"
    );

    // Restore the first backup (by time) to a new path: the rows of that moment.
    let to = v.path("restores/app.db");
    v.ok(&[
        "restore",
        "app",
        "--at",
        first["created_at"].as_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
        "--yes",
    ]);
    let restored = rusqlite::Connection::open(&to).unwrap();
    assert_eq!(count(&restored, "repository"), 1000);

    let out = v.run(&["drill", "app", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let drill: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(drill["ok"], true, "{drill}");

    // Prune: the plan names the bytes it frees, and forgetting + pruning frees them.
    let plan = v.ok(&["prune", "--dry-run"]);
    assert!(
        plan.contains("remove 1") && plan.contains("frees"),
        "{plan}"
    );
    assert!(!plan.contains("frees 0 B"), "{plan}");
    let before = dir_size(&v.path("vault"));
    v.ok(&["prune"]);
    assert!(dir_size(&v.path("vault")) < before, "prune freed nothing");
    let left = v.json(&["list", "app"]);
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], second["id"]);
    v.restic_ok(&["check", "--read-data"]);
    assert_eq!(v.json(&["verify", "app"])["ok"], true);

    // A lost state database: the catalog comes back from the repository's snapshots.
    for f in ["lifeboat.db", "lifeboat.db-wal", "lifeboat.db-shm"] {
        let _ = std::fs::remove_file(v.path("var").join(f));
    }
    v.ok(&["catalog", "rebuild"]);
    let rebuilt = v.json(&["list", "app"]);
    assert_eq!(rebuilt.as_array().unwrap().len(), 1, "{rebuilt}");
    assert_eq!(rebuilt[0]["id"], second["id"]);
    assert_eq!(rebuilt[0]["content_sha256"], second["content_sha256"]);
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

#[test]
fn a_repository_on_s3_through_moto() {
    let moto = Moto::start();
    moto.create_bucket("acme-backups", false);
    let home = Home::new();
    let location = format!("s3:{}/acme-backups/lifeboat", moto.url());
    let v = Vault::with(home, location, &sqlite_target("app", "app.db"), true);
    drop(make_app_db(&v.path("data/app.db"), 800));

    let m = v.backup("app");
    assert_eq!(v.json(&["verify", "app", "--read-data"])["ok"], true);
    let objects = moto.objects("acme-backups");
    assert!(
        objects.iter().any(|(k, _)| k == "lifeboat/config"),
        "{objects:?}"
    );
    assert!(objects.iter().any(|(k, _)| k.starts_with("lifeboat/data/")));

    // restic reads the same bucket and gives the database back.
    let out = v.path("restic-out");
    v.restic_ok(&[
        "restore",
        m["artifact"].as_str().unwrap(),
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        sha256_file(&out.join("app.db")),
        m["content_sha256"].as_str().unwrap()
    );
}

#[test]
fn a_network_cut_mid_backup_leaves_the_s3_repository_consistent() {
    let moto = Moto::start();
    moto.create_bucket("cut", false);
    let cable = Cutter::start(moto.addr());
    let location = format!("s3:{}/cut/vault", cable.url());
    let v = Vault::with(Home::new(), location, &sqlite_target("big", "big.db"), true);
    drop(make_app_db(&v.path("data/big.db"), 300));
    let earlier = v.backup("big");
    for f in ["big.db", "big.db-wal", "big.db-shm"] {
        let _ = std::fs::remove_file(v.path("data").join(f));
    }
    make_big_db(&v.path("data/big.db"), 64);

    let before = moto.objects("cut").len();
    let child = v
        .command(&["backup", "big"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(120, "the backup to upload packs", || {
        moto.objects("cut").len() > before + 2
    });
    cable.cut();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("backup"), "{}", stderr(&out));

    // Link back: restic finds the bucket consistent, the failed backup is not listed,
    // the next one works and the earlier one restores byte for byte.
    cable.mend();
    v.restic_ok(&["check"]);
    assert_eq!(v.json(&["list", "big"]).as_array().unwrap().len(), 1);
    let next = v.backup("big");
    assert_eq!(
        v.json(&["verify", "big", next["id"].as_str().unwrap()])["ok"],
        true
    );
    let r = v.json(&["verify", "big", earlier["id"].as_str().unwrap()]);
    assert_eq!(r["ok"], true, "{r}");
}
