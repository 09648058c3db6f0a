//! A directory on another host (a real sshd on loopback) changing while it is backed up:
//! the host lists the tree once more at the end, in one command, and lifeboat compares.

use std::fs;

use super::*;
use crate::common::sshd::Sshd;

#[test]
fn over_ssh_written_deleted_and_created_files_are_named() {
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let root = remote.path().join("volume");
    make_volume(&root);
    let home = Home::new();
    home.write_config(&format!(
        "[targets.files]\nkind = \"directory\"\npath = \"{}\"\nstore = \"local\"\nexclude = [\"*.tmp\"]\n{}",
        root.display(),
        sshd.target_keys()
    ));
    let app = open_app(&home);

    let clean = home.json(&["backup", "files"]);
    assert_eq!(clean["consistent"], true, "{clean}");

    let r = root.clone();
    let written = backup_changing(&app, "files", move || {
        append(&r.join("state/app.log"), b"more\n");
        fs::write(r.join("scratch.tmp"), "excluded").unwrap();
    })
    .unwrap();
    assert_eq!(flagged(&written), ["state/app.log"]);

    let r = root.clone();
    let deleted = backup_changing(&app, "files", move || {
        fs::remove_file(r.join("b.txt")).unwrap();
    })
    .unwrap();
    assert_eq!(flagged(&deleted), ["b.txt"]);

    let r = root.clone();
    let created = backup_changing(&app, "files", move || {
        fs::write(r.join("state/system.duckdb.wal"), "wal").unwrap();
    })
    .unwrap();
    assert_eq!(flagged(&created), ["state/system.duckdb.wal"]);

    // Each flagged backup is whole and verifies; an untouched tree backs up consistent.
    let verify = home.json(&["verify", "files"]);
    assert_eq!(verify["ok"], true, "{verify}");
    let again = home.json(&["backup", "files"]);
    assert_eq!(again["consistent"], true, "{again}");
    assert_eq!(again["changed_while_read"], serde_json::json!([]));
}

#[test]
fn over_ssh_on_change_fail_publishes_nothing() {
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let root = remote.path().join("volume");
    make_volume(&root);
    let home = Home::new();
    home.write_config(&format!(
        "[targets.files]\nkind = \"directory\"\npath = \"{}\"\nstore = \"local\"\non_change = \"fail\"\n{}",
        root.display(),
        sshd.target_keys()
    ));
    let app = open_app(&home);
    let r = root.clone();
    let e = backup_changing(&app, "files", move || append(&r.join("a.bin"), b"x"))
        .expect_err("refused");
    assert_eq!(e.exit_code(), 1);
    assert!(
        e.to_string().contains("a.bin") && e.to_string().contains("nothing was published"),
        "{e}"
    );
    assert!(
        home.store_files("files").is_empty(),
        "{:?}",
        home.store_files("files")
    );
}

/// Into a repository store, where only new and changed files come through the
/// connection: a file written while the fetch streams is named, the backup kept and
/// flagged, and the next backup, with nothing changing, is consistent again and fetches
/// only that file.
#[test]
fn over_ssh_into_a_repository_a_file_written_during_the_fetch_is_named() {
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let root = remote.path().join("volume");
    make_volume(&root);
    let home = Home::new();
    home.write_config(&format!(
        "[stores.vault]\nkind = \"repository\"\nlocation = \"{}\"\n\
         password = \"${{LIFEBOAT_REPO_PASSWORD}}\"\n\n\
         [targets.files]\nkind = \"directory\"\npath = \"{}\"\nstore = \"vault\"\n{}",
        home.path("vault").display(),
        root.display(),
        sshd.target_keys()
    ));
    home.ok(&["store", "init", "vault"]);
    let app = open_app(&home);

    let r = root.clone();
    let written = backup_changing(&app, "files", move || {
        append(&r.join("state/app.log"), b"more\n");
    })
    .unwrap();
    assert!(written.is_native_tree(), "{written:?}");
    assert_eq!(flagged(&written), ["state/app.log"]);

    let again = home.json(&["backup", "files"]);
    assert_eq!(again["consistent"], true, "{again}");
    let tree = &again["directory"]["tree"];
    assert_eq!(tree["parent"], written.id.as_str(), "{again}");
    assert_eq!(
        tree["files_read"], 1,
        "only the file written meanwhile: {again}"
    );
    let fetched = tree["content_bytes_fetched"].as_u64().unwrap();
    assert!(
        fetched < 100_000,
        "{fetched} bytes for one small file: {again}"
    );
}
