//! A directory on another host backed up into a repository store as a native restic tree:
//! restic lists every file under the host's path, one file comes back alone, hostile
//! names (a newline, runs of spaces, a leading dash, shell syntax) round-trip, and a
//! re-backup after one file changed brings only that file through the connection (the
//! bytes counted in the manifest), with the previous backup really used as the parent.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::common::vault::{PASSWORD, sha256_file};

/// Names a host may hold that a careless fetch would break on.
const HOSTILE: [&str; 4] = [
    "line\nbreak.txt",
    "two  spaces and trailing .txt",
    "-rf",
    "it's a \"file\" $(id).txt",
];

/// `make_tree`, plus many small files, one larger file to change, and hostile names.
fn make_many(root: &Path) {
    make_tree(root);
    fs::create_dir_all(root.join("many")).unwrap();
    for i in 0..60 {
        fs::write(
            root.join(format!("many/f{i:02}.txt")),
            vec![b'a' + (i % 26) as u8; 20_000],
        )
        .unwrap();
    }
    fs::write(root.join("many/changing.bin"), vec![1u8; 1 << 20]).unwrap();
    fs::write(root.join("many/empty"), b"").unwrap();
    for (i, name) in HOSTILE.iter().enumerate() {
        fs::write(root.join(name), format!("hostile {i}\n")).unwrap();
    }
}

fn restic(vault: &Path, args: &[&str]) -> String {
    let out = Command::new("restic")
        .arg("-r")
        .arg(vault)
        .arg("--no-cache")
        .args(args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .expect("restic (scripts/test.sh installs it)");
    assert!(out.status.success(), "restic {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `lifeboat backup files --json`, its log at `info`: every file fetched came in the one
/// stream (none was fetched alone, which the log would say).
fn backup_in_one_stream(s: &Setup) -> serde_json::Value {
    let out = s
        .home
        .command(&["backup", "files", "--json"])
        .env("LIFEBOAT_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("fetched alone"), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tree_facts(m: &serde_json::Value) -> &serde_json::Value {
    &m["directory"]["tree"]
}

/// The regular files the target's globs keep (`cache/` and `*.tmp` left out), with
/// their sizes.
fn kept_files(root: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let meta = fs::symlink_metadata(e.path()).unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel.starts_with("cache") || rel.ends_with(".tmp") {
                continue;
            }
            if meta.is_dir() {
                todo.push(e.path());
            } else if meta.is_file() {
                out.push((rel, meta.len()));
            }
        }
    }
    out
}

#[test]
fn a_remote_tree_is_native_and_a_re_backup_fetches_only_the_changed_file() {
    let s = Setup::new();
    let vault = s.use_repository_with("exclude = [\"cache\", \"*.tmp\"]\n");
    let tree = s.remote("data/tree");
    make_many(&tree);
    let kept = kept_files(&tree);
    let files = kept.len() as u64;
    let total: u64 = kept.iter().map(|(_, size)| size).sum();

    let first = backup_in_one_stream(&s);
    let facts = tree_facts(&first);
    assert_eq!(facts["files_read"], files, "{first}");
    assert!(facts.get("parent").is_none(), "{first}");
    let fetched = facts["content_bytes_fetched"].as_u64().unwrap();
    assert!(
        fetched >= total && fetched < total + 200_000,
        "{fetched} for {total}"
    );
    assert!(
        facts["listing_bytes_fetched"].as_u64().unwrap() > 0,
        "{first}"
    );
    assert_eq!(first["consistent"], true, "{first}");

    // restic sees one node per file under the host's own path.
    let root = tree.to_string_lossy();
    let listed = restic(&vault, &["ls", "latest"]);
    for want in [
        format!("{root}/docs/deep/er/data.bin"),
        format!("{root}/many/f59.txt"),
        format!("{root}/two  spaces and trailing .txt"),
        format!("{root}/-rf"),
        format!("{root}/readme-link"),
    ] {
        assert!(
            listed.lines().any(|l| l == want),
            "{want} not in:\n{listed}"
        );
    }
    assert!(
        !listed.contains("scratch.tmp") && !listed.contains("/cache"),
        "{listed}"
    );
    let shown = s.home.json(&["ls", "files", "many"]);
    assert_eq!(shown["entries"].as_array().unwrap().len(), 62, "{shown}");

    // One file back alone, and every hostile name.
    let one = s.remote("restores/one");
    // `--path=<p>`: a path may begin with a dash.
    let paths: Vec<String> = HOSTILE.iter().map(|n| format!("--path={n}")).collect();
    let mut args = vec!["restore", "files", "--path", "docs/deep/er/data.bin"];
    args.extend(paths.iter().map(String::as_str));
    args.extend(["--to", one.to_str().unwrap(), "--yes"]);
    s.home.ok(&args);
    assert_eq!(
        fs::read(one.join("docs/deep/er/data.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    for (i, name) in HOSTILE.iter().enumerate() {
        assert_eq!(
            fs::read_to_string(one.join(name)).unwrap(),
            format!("hostile {i}\n")
        );
    }
    assert!(!one.join("many").exists() && !one.join("run.sh").exists());

    // One file of many changes: only it comes through the connection.
    let changed = vec![2u8; 1 << 20];
    fs::write(tree.join("many/changing.bin"), &changed).unwrap();
    let second = backup_in_one_stream(&s);
    let facts = tree_facts(&second);
    assert_eq!(facts["parent"], first["id"], "{second}");
    assert_eq!(facts["files_read"], 1, "{second}");
    assert_eq!(facts["files_unchanged"], files - 1, "{second}");
    let fetched = facts["content_bytes_fetched"].as_u64().unwrap();
    assert!(
        fetched >= changed.len() as u64 && fetched <= 2 * changed.len() as u64,
        "{fetched} bytes fetched for one changed file of {}",
        changed.len()
    );
    // restic's own record names the first backup's snapshot as the parent.
    let snaps: serde_json::Value =
        serde_json::from_str(&restic(&vault, &["snapshots", "--json"])).unwrap();
    let newest = snaps.as_array().unwrap().last().unwrap();
    assert_eq!(newest["parent"], first["artifact"], "{newest}");

    // The new backup is whole: it verifies and restores to the tree as it is now.
    let v = s.home.json(&["verify", "files"]);
    assert_eq!(v["ok"], true, "{v}");
    let whole = s.remote("restores/whole");
    s.home
        .ok(&["restore", "files", "--to", whole.to_str().unwrap(), "--yes"]);
    assert_eq!(
        sha256_file(&whole.join("many/changing.bin")),
        sha256_file(&tree.join("many/changing.bin"))
    );
    assert_eq!(kept_files(&whole).len(), kept.len());
    for (rel, _) in &kept {
        assert_eq!(
            sha256_file(&whole.join(rel)),
            sha256_file(&tree.join(rel)),
            "{rel}"
        );
    }
    let (a, b) = (
        fs::symlink_metadata(whole.join("run.sh")).unwrap(),
        fs::symlink_metadata(tree.join("run.sh")).unwrap(),
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!((a.mode(), a.mtime()), (b.mode(), b.mtime()));
    assert_eq!(
        fs::read_link(whole.join("readme-link")).unwrap(),
        Path::new("docs/readme.md")
    );
}
