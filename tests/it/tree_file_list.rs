//! A native tree's per-file list kept in small files beside the tree
//! (`<root>.lifeboat-files/<group>/<shard>`) rather than in the snapshot's description: a
//! re-backup after one file changed stores one new shard and shares the rest with its
//! parent's (measured on the repository's files); restic lists, checks, dumps and
//! restores it all, and `--include` of the root leaves it out;
//! a flipped byte in the list is found by verify; a new repository's key file asks
//! scrypt for restic's usual memory and restic opens it.

use std::fs;
use std::path::Path;

use rustic_core::repofile::Node;
use rustic_core::{Credentials, IndexedFullStatus, Repository, RepositoryOptions};
use serde_json::Value;

use crate::common::stdout;
use crate::common::vault::{PASSWORD, Vault, dir_size, sha256_file};

fn vault(target: &str) -> Vault {
    Vault::local(&format!(
        "[targets.{target}]\nkind = \"directory\"\npath = \"../data/{target}\"\nstore = \"vault\"\n\
         restore_roots = [\"../restores\"]\n"
    ))
}

fn root_of(v: &Vault, target: &str) -> String {
    fs::canonicalize(v.path(&format!("data/{target}")))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn open_repo(v: &Vault) -> Repository<IndexedFullStatus> {
    let backends = lifeboat::stores::repository::Location::parse(v.path("vault").to_str().unwrap())
        .unwrap()
        .backends()
        .unwrap();
    Repository::new(&RepositoryOptions::default().no_cache(true), &backends)
        .unwrap()
        .open(&Credentials::password(PASSWORD))
        .unwrap()
        .to_indexed()
        .unwrap()
}

/// The file list's shards in the snapshot of backup `m`, in order.
fn list_shards(repo: &Repository<IndexedFullStatus>, m: &Value, root: &str) -> Vec<Node> {
    let snap = repo
        .get_snapshot_from_str(m["artifact"].as_str().unwrap(), |_| true)
        .unwrap();
    let dir = repo
        .node_from_path(snap.tree, Path::new(&format!("{root}.lifeboat-files")))
        .unwrap();
    let mut shards = Vec::new();
    for group in repo.get_tree(&dir.subtree.unwrap()).unwrap().nodes {
        shards.extend(repo.get_tree(&group.subtree.unwrap()).unwrap().nodes);
    }
    shards
}

/// The description of backup `m`'s snapshot (restic 0.14 does not show descriptions).
fn description(repo: &Repository<IndexedFullStatus>, m: &Value) -> String {
    repo.get_snapshot_from_str(m["artifact"].as_str().unwrap(), |_| true)
        .unwrap()
        .description
        .unwrap()
}

#[test]
fn a_re_backup_of_many_unchanged_files_shares_its_file_list_with_its_parent() {
    let v = vault("many");
    let root = v.path("data/many");
    // Names as varied as hashes, long: 60,000 files make a list of about 15 MiB, which
    // restic's chunker cuts in several chunks (lines of hex cut in chunks of about
    // 3 MiB, twice restic's average).
    let name = |d: u32, f: u32| {
        let h = |s: String| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(s));
        format!(
            "folder-{d:03}/{}-{}.txt",
            h(format!("{d} {f}")),
            h(format!("{f} {d}"))
        )
    };
    for d in 0..100 {
        fs::create_dir_all(root.join(format!("folder-{d:03}"))).unwrap();
        for f in 0..600 {
            fs::write(root.join(name(d, f)), format!("{d:03} {f:04}\n")).unwrap();
        }
    }
    v.ok(&["store", "init", "vault"]);
    let first = v.backup("many");
    assert_eq!(first["directory"]["files"], 60_000, "{first}");
    let before = dir_size(&v.path("vault"));
    // Same size, other bytes: in the list, only this file's SHA-256 changes.
    let changed = root.join(name(50, 150));
    assert!(changed.exists());
    fs::write(&changed, b"changed!\n").unwrap();
    let second = v.backup("many");
    assert_eq!(second["directory"]["tree"]["files_read"], 1, "{second}");
    let grown = dir_size(&v.path("vault")) - before;

    let canonical = root_of(&v, "many");
    let repo = open_repo(&v);
    let blobs = |m: &Value| -> Vec<_> {
        list_shards(&repo, m, &canonical)
            .into_iter()
            .flat_map(|n| n.content.unwrap())
            .collect()
    };
    // A shard taken from the parent keeps the parent's node, stamp and all: the first
    // backup's shards (all its files read, none known before) are found unchanged too.
    let stamps = |m: &Value| -> Vec<_> {
        list_shards(&repo, m, &canonical)
            .into_iter()
            .map(|n| n.meta.mtime)
            .collect()
    };
    let (old_stamps, new_stamps) = (stamps(&first), stamps(&second));
    let restamped = old_stamps
        .iter()
        .zip(&new_stamps)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(restamped, 1, "{restamped} shards stamped anew");
    let (old, new) = (blobs(&first), blobs(&second));
    assert_eq!(old.len(), new.len(), "the same shards");
    assert!(new.len() >= 100, "a list of {} shards", new.len());
    let fresh = new.iter().filter(|id| !old.contains(id)).count();
    assert_eq!(
        fresh,
        1,
        "{fresh} of the list's {} shards are new",
        new.len()
    );
    // What a list written whole would have added at least, packed as it is stored.
    let whole: u64 = new
        .iter()
        .map(|id| u64::from(repo.get_index_entry(id).unwrap().location.length))
        .sum();
    eprintln!(
        "list of {} shards, {fresh} new; the re-backup added {grown} bytes; the whole list takes {whole}",
        new.len()
    );
    // One shard, its group's and the list's trees, the changed file's own: a small
    // fraction of the list (which restic's chunker would have cut in 512 KiB pieces).
    assert!(
        grown * 40 < whole,
        "the re-backup added {grown} bytes; the whole list takes {whole}"
    );
    // The snapshot names its list; it does not carry it.
    let said = description(&repo, &second);
    assert!(said.len() < 4096, "a description of {} bytes", said.len());
    assert!(said.contains("lifeboat-files"), "{said}");

    // Both backups read whole, each with its own content of the changed file.
    for m in [&first, &second] {
        let r = v.json(&["verify", "many", m["id"].as_str().unwrap()]);
        assert_eq!(r["ok"], true, "{r}");
    }
    let d = v.json(&[
        "diff",
        "many",
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    ]);
    assert_eq!(d["changed"].as_array().unwrap().len(), 1, "{d}");
}

fn small_site(v: &Vault) {
    let root = v.path("data/site");
    fs::create_dir_all(root.join("docs")).unwrap();
    fs::write(root.join("index.html"), b"<h1>hello</h1>\n").unwrap();
    fs::write(root.join("docs/x.md"), b"# x\n").unwrap();
    std::os::unix::fs::symlink("x.md", root.join("docs/latest.md")).unwrap();
    v.ok(&["store", "init", "vault"]);
}

#[test]
fn restic_lists_checks_and_restores_a_tree_with_its_file_list_beside_it() {
    let v = vault("site");
    small_site(&v);
    // The key file lifeboat wrote: restic's format, scrypt at 32 MiB.
    let keys: Vec<_> = fs::read_dir(v.path("vault/keys"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(keys.len(), 1);
    let key: Value = serde_json::from_slice(&fs::read(keys[0].path()).unwrap()).unwrap();
    assert_eq!(
        (&key["N"], &key["r"], &key["p"]),
        (&32768.into(), &8.into(), &4.into())
    );
    assert_eq!(key["kdf"], "scrypt");
    let m = v.backup("site");
    let root = root_of(&v, "site");
    let list = format!("{root}.lifeboat-files");

    let listed = v.restic_ok(&["ls", "latest"]);
    assert!(listed.lines().any(|l| l == list), "{listed}");
    assert!(listed.lines().any(|l| l == format!("{root}/docs/x.md")));
    v.restic_ok(&["check", "--read-data"]);

    // One JSON entry a line, each file with its SHA-256; a tree this small is one shard.
    let shard = format!("{list}/00000000/00000000");
    assert!(listed.lines().any(|l| l == shard), "{listed}");
    let dumped = v.restic_ok(&["dump", "latest", &shard]);
    let entries: Vec<Value> = dumped
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["docs", "docs/latest.md", "docs/x.md", "index.html"]);
    assert_eq!(
        entries[3]["sha256"].as_str().unwrap(),
        sha256_file(&v.path("data/site/index.html"))
    );

    // Restoring the target's path brings its files and not the list.
    let out = v.path("restic-out");
    v.restic_ok(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--include",
        &root,
    ]);
    let restored = out.join(root.trim_start_matches('/'));
    assert_eq!(fs::read(restored.join("docs/x.md")).unwrap(), b"# x\n");
    assert!(!out.join(list.trim_start_matches('/')).exists());

    // lifeboat reads the list back for everything that needs it.
    let ls = v.json(&["ls", "site", "docs"]);
    assert!(ls.to_string().contains("latest.md"), "{ls}");
    assert_eq!(v.json(&["verify", "site"])["ok"], true);
    let to = v.path("restores/whole");
    v.ok(&["restore", "site", "--to", to.to_str().unwrap(), "--yes"]);
    assert_eq!(
        fs::read(to.join("index.html")).unwrap(),
        b"<h1>hello</h1>\n"
    );
    assert!(!v.path("restores/whole.lifeboat-files").exists());
    let one = v.path("restores/one");
    v.ok(&[
        "restore",
        "site",
        "--path",
        "docs/x.md",
        "--to",
        one.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(fs::read(one.join("docs/x.md")).unwrap(), b"# x\n");
    assert!(m["directory"]["tree"]["file_list"].is_object(), "{m}");
}

#[test]
fn a_flipped_byte_in_the_file_list_is_found_by_verify_and_stops_a_restore() {
    let v = vault("site");
    small_site(&v);
    let m = v.backup("site");
    let root = root_of(&v, "site");
    let repo = open_repo(&v);
    let blob = list_shards(&repo, &m, &root)[0].content.as_ref().unwrap()[0];
    let at = repo.get_index_entry(&blob).unwrap();
    drop(repo);
    let pack = at.pack.to_hex();
    let path = v
        .path("vault/data")
        .join(&pack.as_str()[..2])
        .join(pack.as_str());
    let mut bytes = fs::read(&path).unwrap();
    bytes[(at.location.offset + at.location.length / 2) as usize] ^= 0x01;
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&path, bytes).unwrap();

    let out = v.run(&["verify", "site", m["id"].as_str().unwrap(), "--json"]);
    let said = format!("{}{}", stdout(&out), crate::common::stderr(&out));
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("file list"), "{said}");
    let to = v.path("restores/broken");
    let out = v.run(&["restore", "site", "--to", to.to_str().unwrap(), "--yes"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        !to.exists(),
        "nothing is put in place from a damaged backup"
    );
}
