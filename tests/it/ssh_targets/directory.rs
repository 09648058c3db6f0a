//! Remote directory targets over SSH, remote targets backed up into a repository that
//! restic reads, and two targets on one host at once.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::*;
use crate::common::*;

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

/// A partial restore of a remote tree writes only the paths asked for, on the host, under
/// a new folder there (unpacked by the host's tar as a full restore is).
#[test]
fn a_partial_restore_writes_only_the_paths_asked_for_on_the_host() {
    let s = Setup::new();
    let tree = s.remote("data/tree");
    make_tree(&tree);
    s.home.json(&["backup", "files"]);
    let listing = s.home.json(&["ls", "files", "docs"]);
    assert_eq!(listing["entries"][0]["path"], "docs/deep");
    let dest = s.remote("restores/some");
    let args = [
        "restore",
        "files",
        "--path",
        "docs/deep",
        "--path",
        "it's a \"file\" $(id).txt",
        "--to",
        dest.to_str().unwrap(),
    ];
    let plan = s.home.ok(&args);
    assert!(plan.contains("restores:    2 files"), "{plan}");
    let mut yes = args.to_vec();
    yes.push("--yes");
    s.home.ok(&yes);
    assert_eq!(
        std::fs::read(dest.join("docs/deep/er/data.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("it's a \"file\" $(id).txt")).unwrap(),
        "quoted name\n"
    );
    assert!(!dest.join("docs/readme.md").exists() && !dest.join("run.sh").exists());
    let out = s.home.run(&[
        "restore",
        "files",
        "--path",
        "docs",
        "--to",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

/// A backup as lifeboat kept trees over SSH before they were native trees: the tar stream
/// of the local store's newest backup of `files`, written into the repository `vault` as
/// one `files.tar` with the same manifest. The published manifest.
fn as_tar_snapshot(s: &Setup, vault: &Path) -> serde_json::Value {
    use lifeboat::stores::BackupStore;
    let local = lifeboat::stores::objects::ObjectBackups::new(
        std::sync::Arc::new(lifeboat::stores::local::LocalStore::new(
            "local",
            s.home.path("backups"),
        )),
        3,
    );
    let (found, _) = local.backups("files").unwrap();
    let mut m = found[0].clone();
    let repo = lifeboat::stores::repository::RepositoryStore::new(
        "vault",
        &vault.to_string_lossy(),
        crate::common::vault::PASSWORD,
        None,
    )
    .unwrap();
    let mut writer = repo
        .begin(&lifeboat::stores::NewBackup {
            target: "files".into(),
            id: m.id.clone(),
            kind: m.kind,
            artifact_ext: "tar",
            file_name: "files.tar".into(),
        })
        .unwrap();
    std::io::copy(&mut local.read(&m).unwrap(), &mut writer).unwrap();
    m.store = "vault".into();
    let published = writer
        .publish(m, &lifeboat::progress::JobContext::silent())
        .unwrap();
    serde_json::to_value(published).unwrap()
}

/// A tree kept the older way (one tar file in a snapshot, as backups over SSH were before
/// they were native trees) keeps verifying, restoring, listing and comparing beside
/// native trees of the same target.
#[test]
fn tar_snapshots_and_native_trees_of_one_target_live_side_by_side() {
    let s = Setup::new();
    let tree = s.remote("data/tree");
    make_tree(&tree);
    s.home.json(&["backup", "files"]);
    let vault = s.use_repository();
    s.home.ok(&["store", "init", "vault"]);
    let old = as_tar_snapshot(&s, &vault);
    assert!(old["directory"].get("tree").is_none(), "a tar: {old}");
    // The same tree, now read on this host: a native tree, with no native parent.
    let r = s.remote.path().display();
    s.home.write_config(&format!(
        "[stores.vault]\nkind = \"repository\"\nlocation = \"{}\"\n\
         password = \"${{LIFEBOAT_REPO_PASSWORD}}\"\n\n\
         [targets.files]\nkind = \"directory\"\npath = \"{r}/data/tree\"\nstore = \"vault\"\n\
         restore_roots = [\"{r}/restores\"]\n",
        vault.display()
    ));
    std::fs::write(tree.join("docs/readme.md"), "hello again\n").unwrap();
    let new = s.home.json(&["backup", "files"]);
    assert_eq!(new["directory"]["tree"]["files_read"], 6, "{new}");
    for m in [&old, &new] {
        let v = s.home.json(&["verify", "files", m["id"].as_str().unwrap()]);
        assert_eq!(v["ok"], true, "{v}");
    }
    let old_id = old["id"].as_str().unwrap();
    let whole = s.remote("restores/old");
    s.home.ok(&[
        "restore",
        "files",
        old_id,
        "--to",
        whole.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(
        std::fs::read_to_string(whole.join("docs/readme.md")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read(whole.join("docs/deep/er/data.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    let one = s.remote("restores/one");
    s.home.ok(&[
        "restore",
        "files",
        old_id,
        "--path",
        "run.sh",
        "--to",
        one.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(
        std::fs::read_to_string(one.join("run.sh")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    let listing = s.home.json(&["ls", "files", "docs", "--backup", old_id]);
    assert_eq!(listing["entries"][0]["path"], "docs/deep", "{listing}");
    let d = s
        .home
        .json(&["diff", "files", old_id, new["id"].as_str().unwrap()]);
    assert_eq!(d["changed"][0]["path"], "docs/readme.md", "{d}");
}
