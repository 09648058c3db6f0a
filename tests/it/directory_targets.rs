//! Directory targets end to end: round trips keep modes, mtimes, symlinks and empty
//! directories; include/exclude; verify per file; hostile archives are refused.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use crate::common::*;
use sha2::{Digest, Sha256};

fn dir_home(extra: &str) -> Home {
    let home = Home::new();
    home.write_config(&format!(
        "[targets.volume]\nkind = \"directory\"\npath = \"../data/volume\"\nstore = \"local\"\nrestore_roots = [\"../restores\"]\n{extra}"
    ));
    home
}

/// A tree like a Docker data volume: parquet files, a DuckDB file, config, links.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("parquet/2026/11")).unwrap();
    fs::create_dir_all(root.join("empty/nested")).unwrap();
    fs::create_dir_all(root.join("cache")).unwrap();
    for i in 0..20 {
        let body: Vec<u8> = (0..(i * 997 + 13)).map(|n| (n * 31 % 251) as u8).collect();
        fs::write(
            root.join(format!("parquet/2026/11/part-{i:03}.parquet")),
            body,
        )
        .unwrap();
    }
    fs::write(root.join("analytics.duckdb"), vec![7u8; 300_000]).unwrap();
    fs::write(root.join("cache/tmp.bin"), b"rebuildable").unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(root.join("secret.env"), b"TOKEN=x\n").unwrap();
    fs::set_permissions(root.join("secret.env"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink(
        "parquet/2026/11/part-001.parquet",
        root.join("latest.parquet"),
    )
    .unwrap();
    symlink("../volume/run.sh", root.join("parquet/up-and-back")).unwrap();
    let old = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_mtime(root.join("analytics.duckdb"), old).unwrap();
}

/// Every entry under `root`: (relative path, kind, mode, mtime, content hash or link).
fn snapshot(root: &Path) -> Vec<(String, String, u32, i64, String)> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String, u32, i64, String)>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.push((
                    rel,
                    "link".into(),
                    0,
                    0,
                    fs::read_link(&p).unwrap().to_string_lossy().into(),
                ));
            } else if m.is_dir() {
                out.push((
                    rel,
                    "dir".into(),
                    m.mode() & 0o7777,
                    m.mtime(),
                    String::new(),
                ));
                walk(root, &p, out);
            } else {
                let sha = hex::encode(Sha256::digest(fs::read(&p).unwrap()));
                out.push((rel, "file".into(), m.mode() & 0o7777, m.mtime(), sha));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

#[test]
fn round_trip_keeps_modes_mtimes_links_and_empty_dirs() {
    let home = dir_home("");
    let src = home.path("data/volume");
    make_tree(&src);
    let before = snapshot(&src);
    let backup = home.json(&["backup", "volume"]);
    assert_eq!(backup["kind"], "directory");
    assert_eq!(backup["directory"]["files"], 24);
    assert_eq!(backup["directory"]["symlinks"], 2);
    assert!(home.json(&["verify", "volume"])["ok"].as_bool().unwrap());

    let dest = home.path("restores/volume-copy");
    home.ok(&["restore", "volume", "--to", dest.to_str().unwrap(), "--yes"]);
    assert_eq!(snapshot(&dest), before);
}

#[test]
fn restore_in_place_moves_the_tree_aside() {
    let home = dir_home("");
    let src = home.path("data/volume");
    make_tree(&src);
    let before = snapshot(&src);
    home.json(&["backup", "volume"]);
    fs::write(src.join("analytics.duckdb"), b"overwritten by a bad deploy").unwrap();
    fs::remove_dir_all(src.join("parquet")).unwrap();
    let damaged = snapshot(&src);

    let out = home.json(&["restore", "volume", "--yes"]);
    assert_eq!(snapshot(&src), before);
    let aside = out["move_aside"][0]["to"].as_str().unwrap();
    assert_eq!(
        snapshot(Path::new(aside)),
        damaged,
        "the damaged tree was kept, not deleted"
    );
}

#[test]
fn include_and_exclude_globs() {
    let home = dir_home("exclude = [\"cache\", \"*.env\"]\n");
    let src = home.path("data/volume");
    make_tree(&src);
    let backup = home.json(&["backup", "volume"]);
    let entries = backup["directory"]["entries"].to_string();
    assert_eq!(entries, "[]", "list output leaves out the per-file list");
    let dest = home.path("restores/v");
    home.ok(&["restore", "volume", "--to", dest.to_str().unwrap(), "--yes"]);
    assert!(!dest.join("cache").exists());
    assert!(!dest.join("secret.env").exists());
    assert!(dest.join("parquet/2026/11/part-000.parquet").exists());

    let home = dir_home("include = [\"**/*.parquet\"]\n");
    let src = home.path("data/volume");
    make_tree(&src);
    let backup = home.json(&["backup", "volume"]);
    assert_eq!(backup["directory"]["files"], 20);
}

#[test]
fn verify_names_the_changed_file() {
    let home = dir_home("");
    make_tree(&home.path("data/volume"));
    let backup = home.json(&["backup", "volume"]);
    // Rewrite the artifact with one file's content changed but a consistent outer checksum,
    // as a bad disk under an honest store would not do but a tampering one could.
    let id = backup["id"].as_str().unwrap();
    let manifest_path = home.path(&format!("backups/volume/{id}.manifest.json"));
    let artifact_path = home
        .path("backups")
        .join(backup["artifact"].as_str().unwrap());
    let tar = zstd::decode_all(fs::File::open(&artifact_path).unwrap()).unwrap();
    let needle = vec![7u8; 64];
    let at = tar
        .windows(64)
        .position(|w| w == needle.as_slice())
        .unwrap();
    let mut tampered = tar.clone();
    tampered[at] = 8;
    let (compressed, _) = write_artifact(&artifact_path, &tampered);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    manifest["sha256"] = hex::encode(Sha256::digest(&compressed)).into();
    manifest["size_bytes"] = compressed.len().into();
    fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();

    let out = home.run(&["verify", "volume", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("analytics.duckdb: content differs"), "{text}");
}

fn write_artifact(path: &Path, tar: &[u8]) -> (Vec<u8>, String) {
    let compressed = zstd::encode_all(tar, 3).unwrap();
    fs::write(path, &compressed).unwrap();
    let sha = hex::encode(Sha256::digest(tar));
    (compressed, sha)
}

/// A tar header with an arbitrary name, bypassing the tar crate's own safety checks.
fn raw_entry(name: &str, kind: tar::EntryType, link: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(body.len() as u64);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// Replace a real backup's artifact with a hostile archive whose checksums all match.
fn plant_archive(home: &Home, id: &str, artifact: &str, entries: &[Vec<u8>]) {
    let mut tar: Vec<u8> = entries.concat();
    tar.extend_from_slice(&[0u8; 1024]);
    let artifact_path = home.path("backups").join(artifact);
    let (compressed, content_sha) = write_artifact(&artifact_path, &tar);
    let manifest_path = home.path(&format!("backups/volume/{id}.manifest.json"));
    let mut m: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    m["sha256"] = hex::encode(Sha256::digest(&compressed)).into();
    m["size_bytes"] = compressed.len().into();
    m["content_sha256"] = content_sha.into();
    m["content_bytes"] = tar.len().into();
    fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
}

#[test]
fn hostile_archives_are_refused_and_write_nothing_outside() {
    use tar::EntryType::*;
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "parent",
            vec![raw_entry("../escaped.txt", Regular, None, b"pwned")],
        ),
        (
            "absolute",
            vec![raw_entry(
                "/tmp/lifeboat-escaped.txt",
                Regular,
                None,
                b"pwned",
            )],
        ),
        (
            "link out",
            vec![raw_entry("out", Symlink, Some("../../.."), b"")],
        ),
        (
            "absolute link",
            vec![raw_entry("etc", Symlink, Some("/etc"), b"")],
        ),
        (
            "write through link",
            vec![
                raw_entry("sub", Directory, None, b""),
                raw_entry("sub/x", Symlink, Some("../.."), b""),
                raw_entry("sub/x/escaped.txt", Regular, None, b"pwned"),
            ],
        ),
        (
            "hard link out",
            vec![raw_entry("h", Link, Some("../../../etc/passwd"), b"")],
        ),
    ];
    for (what, entries) in cases {
        let home = dir_home("");
        make_tree(&home.path("data/volume"));
        let backup = home.json(&["backup", "volume"]);
        plant_archive(
            &home,
            backup["id"].as_str().unwrap(),
            backup["artifact"].as_str().unwrap(),
            &entries,
        );
        let before = snapshot(&home.path("data/volume"));
        let dest = home.path("restores/v");
        let out = home.run(&["restore", "volume", "--to", dest.to_str().unwrap(), "--yes"]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("outside the destination")
                || stderr(&out).contains("escape the destination"),
            "{what}: {}",
            stderr(&out)
        );
        assert!(!dest.exists(), "{what}: nothing is left at the destination");
        assert!(
            !home.path("escaped.txt").exists() && !home.path("restores/escaped.txt").exists(),
            "{what}"
        );
        assert!(!Path::new("/tmp/lifeboat-escaped.txt").exists(), "{what}");
        let staged: Vec<_> = fs::read_dir(home.path("restores")).unwrap().collect();
        assert!(staged.is_empty(), "{what}: staging removed: {staged:?}");
        // In place: the live tree is untouched.
        let out = home.run(&["restore", "volume", "--yes"]);
        assert_eq!(out.status.code(), Some(1), "{what}");
        assert_eq!(snapshot(&home.path("data/volume")), before, "{what}");
    }
}
