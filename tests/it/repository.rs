//! The restic-format repository store, end to end through the real binary: restic itself
//! reads what lifeboat wrote and lifeboat works in a repository restic made; re-backups
//! deduplicate; a wrong password is refused without a change; every action, on a local
//! path and on S3 through moto and through rclone. Faults are in `repository_faults.rs`.

use crate::common::moto::{S3Kind, S3Server};
use crate::common::vault::{PASSWORD, Vault, dir_size, sha256_file, sqlite_target, tree_hashes};
use crate::common::{Home, count, insert_rows, make_app_db, make_big_db, stderr, stdout};

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

    // The directory is a tree restic reads file by file: `restic dump` gives one back.
    let root = std::fs::canonicalize(v.path("data/site")).unwrap();
    let app = root.join("assets/app.bin");
    let dump = v.restic(&[
        "dump",
        "--tag",
        "target=site",
        "latest",
        app.to_str().unwrap(),
    ]);
    assert!(dump.status.success(), "{}", stderr(&dump));
    assert_eq!(dump.stdout, vec![7u8; 300_000]);
    let index = root.join("index.html");
    let dump = v.restic(&[
        "dump",
        "--tag",
        "target=site",
        "latest",
        index.to_str().unwrap(),
    ]);
    assert_eq!(stdout(&dump), "<h1>hello</h1>\n");
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

crate::on_moto_and_rclone!(a_repository_on_s3);
fn a_repository_on_s3(kind: S3Kind) {
    let s3 = S3Server::on(kind);
    s3.create_bucket("acme-backups", false);
    let home = Home::new();
    let location = format!("s3:{}/acme-backups/lifeboat", s3.url());
    let v = Vault::with(home, location, &sqlite_target("app", "app.db"), true);
    drop(make_app_db(&v.path("data/app.db"), 800));

    let m = v.backup("app");
    assert_eq!(v.json(&["verify", "app", "--read-data"])["ok"], true);
    let objects = s3.objects("acme-backups");
    assert!(
        objects.iter().any(|(k, _)| k == "lifeboat/config"),
        "{objects:?}"
    );
    assert!(objects.iter().any(|(k, _)| k.starts_with("lifeboat/data/")));
    // Objects only, as restic writes: no directory markers (`lifeboat/data/00/`), which
    // rclone's server keeps as files that break every key under them.
    let markers: Vec<_> = objects.iter().filter(|(k, _)| k.ends_with('/')).collect();
    assert!(markers.is_empty(), "{markers:?}");
    v.restic_ok(&["check", "--read-data"]);

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
