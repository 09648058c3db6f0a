//! Directory targets as native restic trees in a repository store, through the real
//! binary: restic lists and restores single files of what lifeboat wrote; a re-backup
//! takes unchanged files from its parent without reading them (counted in the manifest,
//! checked against restic's own record of the parent); restores, partial restores,
//! verify and drills work on the tree; a flipped byte in any file is found.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use serde_json::Value;

use crate::common::stdout;
use crate::common::vault::{Vault, largest_pack, sha256_file};

const SITE: &str = "[targets.site]\nkind = \"directory\"\npath = \"../data/site\"\nstore = \"vault\"\n\
                    restore_roots = [\"../restores\"]\nexclude = [\"*.tmp\"]\n";

/// A tree with nested folders, a link, an owner and modes to keep, a file left out by
/// `exclude`, and many small files.
fn make_site(root: &Path) {
    fs::create_dir_all(root.join("docs/sub")).unwrap();
    fs::write(root.join("index.html"), b"<h1>hello</h1>\n").unwrap();
    fs::write(root.join("docs/x.md"), b"# x\n").unwrap();
    fs::write(root.join("docs/sub/y.bin"), vec![9u8; 5000]).unwrap();
    fs::set_permissions(
        root.join("docs/sub/y.bin"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::chown(root.join("docs/sub/y.bin"), Some(1234), Some(2345)).unwrap();
    symlink("x.md", root.join("docs/latest.md")).unwrap();
    fs::write(root.join("scratch.tmp"), b"left out").unwrap();
    fs::create_dir_all(root.join("many")).unwrap();
    for i in 0..40 {
        fs::write(
            root.join(format!("many/f{i:02}.txt")),
            format!("file {i}\n"),
        )
        .unwrap();
    }
    // Incompressible, so a flipped byte in its pack lands in its data.
    let mut big = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while big.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    fs::write(root.join("big.bin"), big).unwrap();
}

fn vault() -> Vault {
    let v = Vault::local(SITE);
    make_site(&v.path("data/site"));
    v.ok(&["store", "init", "vault"]);
    v
}

fn id(m: &Value) -> String {
    m["id"].as_str().unwrap().to_string()
}

fn root_of(v: &Vault) -> String {
    fs::canonicalize(v.path("data/site"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_directory_backup_is_a_tree_restic_lists_and_restores_file_by_file() {
    let v = vault();
    let m = v.backup("site");
    let tree = &m["directory"]["tree"];
    assert_eq!(tree["files_read"], 44, "{m}");
    assert_eq!(tree["files_unchanged"], 0);
    assert!(tree.get("parent").is_none(), "a first backup has no parent");
    let root = root_of(&v);

    // restic sees one node per file, folder and link, under the tree's own path.
    let listed = v.restic_ok(&["ls", "--long", &m["artifact"].as_str().unwrap()[..8]]);
    for want in [
        format!("{root}/index.html"),
        format!("{root}/docs/sub/y.bin"),
        format!("{root}/many/f39.txt"),
        format!("{root}/docs/latest.md -> x.md"),
    ] {
        assert!(listed.contains(&want), "{want} not in:\n{listed}");
    }
    assert!(!listed.contains("scratch.tmp"), "{listed}");
    let y = listed
        .lines()
        .find(|l| l.ends_with("/docs/sub/y.bin"))
        .unwrap();
    assert!(
        y.starts_with("-rw-r-----") && y.contains(" 1234 ") && y.contains(" 2345 "),
        "{y}"
    );
    let snaps: Value = serde_json::from_str(&v.restic_ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps[0]["paths"][0], root.as_str());

    // `restic restore --include` brings back one file and nothing else.
    let out = v.path("restic-out");
    v.restic_ok(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--include",
        &format!("{root}/docs/x.md"),
    ]);
    let restored = out.join(root.trim_start_matches('/'));
    assert_eq!(fs::read(restored.join("docs/x.md")).unwrap(), b"# x\n");
    assert!(!restored.join("big.bin").exists());
    v.restic_ok(&["check", "--read-data"]);

    // lifeboat restores the whole tree: contents, modes, owners, links, times.
    let to = v.path("restores/whole");
    v.ok(&["restore", "site", "--to", to.to_str().unwrap(), "--yes"]);
    let src = v.path("data/site");
    for rel in [
        "index.html",
        "docs/x.md",
        "docs/sub/y.bin",
        "big.bin",
        "many/f07.txt",
    ] {
        assert_eq!(
            sha256_file(&to.join(rel)),
            sha256_file(&src.join(rel)),
            "{rel}"
        );
        let (a, b) = (
            fs::metadata(to.join(rel)).unwrap(),
            fs::metadata(src.join(rel)).unwrap(),
        );
        assert_eq!(
            (a.mode(), a.uid(), a.gid(), a.mtime()),
            (b.mode(), b.uid(), b.gid(), b.mtime()),
            "{rel}"
        );
    }
    assert_eq!(
        fs::read_link(to.join("docs/latest.md")).unwrap(),
        Path::new("x.md")
    );
    assert!(!to.join("scratch.tmp").exists());

    assert_eq!(v.json(&["verify", "site"])["ok"], true);
    let drill = v.run(&["drill", "site", "--json"]);
    let drill: Value = serde_json::from_str(&stdout(&drill)).unwrap();
    assert_eq!(drill["ok"], true, "{drill}");
    let ls = v.json(&["ls", "site", "docs"]);
    assert!(ls.to_string().contains("latest.md"), "{ls}");
}

#[test]
fn a_re_backup_reads_only_the_files_that_changed_since_its_parent() {
    let v = vault();
    let first = v.backup("site");
    fs::write(v.path("data/site/many/f03.txt"), b"file 3, edited\n").unwrap();
    fs::write(v.path("data/site/docs/new.md"), b"new\n").unwrap();
    let second = v.backup("site");
    let tree = &second["directory"]["tree"];
    assert_eq!(tree["parent"], first["id"], "{second}");
    assert_eq!(tree["files_read"], 2, "{second}");
    assert_eq!(tree["files_unchanged"], 43, "{second}");
    assert!(
        second["size_bytes"].as_u64().unwrap() < 64 << 10,
        "a small change added {} bytes",
        second["size_bytes"]
    );
    // restic's record agrees: the parent is the first backup's snapshot.
    let snaps: Value = serde_json::from_str(&v.restic_ok(&["snapshots", "--json"])).unwrap();
    let snap = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == second["artifact"])
        .unwrap();
    assert_eq!(snap["parent"], first["artifact"], "{snap}");
    assert_eq!(
        snaps.as_array().unwrap().len(),
        2,
        "no unfinished snapshot left: {snaps}"
    );

    // Nothing changed: nothing read. Unchanged files keep their SHA-256 from the parent.
    let third = v.backup("site");
    assert_eq!(third["directory"]["tree"]["files_read"], 0, "{third}");
    assert_eq!(third["directory"]["tree"]["parent"], second["id"]);
    for m in [&first, &second, &third] {
        let r = v.json(&["verify", "site", &id(m)]);
        assert_eq!(r["ok"], true, "{r}");
    }
    // The first backup still has the file as it was.
    let to = v.path("restores/then");
    v.ok(&[
        "restore",
        "site",
        &id(&first),
        "--path",
        "many/f03.txt",
        "--to",
        to.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(fs::read(to.join("many/f03.txt")).unwrap(), b"file 3\n");
    let d = v.json(&["diff", "site", &id(&first), &id(&third)]);
    assert_eq!(d["changed"][0]["path"], "many/f03.txt", "{d}");
    assert_eq!(d["added"][0]["path"], "docs/new.md", "{d}");
}

#[test]
fn a_flipped_byte_in_a_tree_is_found_by_verify_and_stops_a_restore() {
    let v = vault();
    let m = v.backup("site");
    let pack = largest_pack(&v.path("vault"));
    let mut bytes = fs::read(&pack).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    fs::set_permissions(&pack, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&pack, bytes).unwrap();

    let out = v.run(&["verify", "site", &id(&m), "--json"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["problems"].to_string().contains("big.bin"),
        "{report}"
    );
    let to = v.path("restores/broken");
    let out = v.run(&["restore", "site", "--to", to.to_str().unwrap(), "--yes"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        !to.exists(),
        "nothing is put in place from a damaged backup"
    );
    // One small file from elsewhere in the tree still comes back.
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
}

/// A tree with one big file read first, a small one, and a log in a folder read later.
fn volume_vault(extra: &str) -> Vault {
    let v = Vault::local(&format!(
        "[targets.volume]\nkind = \"directory\"\npath = \"../data/volume\"\nstore = \"vault\"\n\
         restore_roots = [\"../restores\"]\n{extra}"
    ));
    crate::changed_while_read::make_volume(&v.path("data/volume"));
    v.ok(&["store", "init", "vault"]);
    v
}

#[test]
fn a_tree_changing_while_read_is_flagged_or_refused_as_a_stream_is() {
    use crate::changed_while_read::{append, backup_changing, flagged, open_app};
    let v = volume_vault("");
    let app = open_app(&v.home);
    let root = v.path("data/volume");
    let m = backup_changing(&app, "volume", move || append(&root.join("a.bin"), b"more"))
        .expect("kept with on_change = warn");
    assert!(m.is_native_tree(), "{m:?}");
    assert_eq!(flagged(&m), ["a.bin"]);
    // The copy holds the size it listed, and reads back whole.
    let a = m
        .directory
        .as_ref()
        .unwrap()
        .entries
        .iter()
        .find(|e| e.path == "a.bin")
        .unwrap();
    assert_eq!(a.size, Some(3 << 20));
    assert_eq!(v.json(&["verify", "volume", &m.id])["ok"], true);

    let v = volume_vault("on_change = \"fail\"\n");
    let app = open_app(&v.home);
    let root = v.path("data/volume");
    let refused = backup_changing(&app, "volume", move || append(&root.join("b.txt"), b"x"));
    let err = refused
        .expect_err("refused with on_change = fail")
        .to_string();
    assert!(err.contains("nothing was published"), "{err}");
    assert_eq!(v.json(&["list", "volume"]).as_array().unwrap().len(), 0);
    // Not even an unfinished snapshot is left for restic to see.
    let snaps: Value = serde_json::from_str(&v.restic_ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 0, "{snaps}");
}

#[test]
fn hooks_run_around_reading_a_tree_and_after_backup_before_it_is_published() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let l = log.path().display();
    let sh = |script: String| format!("[\"sh\", \"-c\", {}]", toml::Value::String(script));
    let v = volume_vault("");
    let repo = v.path("vault");
    let hooks = format!(
        "[targets.volume.hooks]\nbefore_backup = [{}]\nafter_backup = [{}]\n",
        sh(format!("echo before >> {l}")),
        sh(format!(
            "echo after $LIFEBOAT_RESULT >> {l}; RESTIC_PASSWORD='{}' restic -r {} --no-cache \
             snapshots --tag lifeboat --json >> {l}",
            crate::common::vault::PASSWORD,
            repo.display()
        )),
    );
    let config = fs::read_to_string(v.home.config_path()).unwrap();
    fs::write(v.home.config_path(), format!("{config}{hooks}")).unwrap();
    let m = v.backup("volume");
    assert!(m["directory"]["tree"].is_object(), "{m}");
    let lines: Vec<String> = fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // When reading ended, the tree was stored but nothing was published yet.
    assert_eq!(lines, ["before", "after ok", "[]"], "{lines:?}");
    assert_eq!(v.json(&["list", "volume"]).as_array().unwrap().len(), 1);
}

/// A tree whose only file node is named `name`, crafted through rustic_core's archiver.
struct Crafted {
    root: std::path::PathBuf,
    name: &'static str,
}

impl rustic_core::ReadSource for Crafted {
    type Open = std::io::Cursor<Vec<u8>>;
    type Iter = std::vec::IntoIter<
        rustic_core::RusticResult<rustic_core::ReadSourceEntry<std::io::Cursor<Vec<u8>>>>,
    >;

    fn size(&self) -> rustic_core::RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        use rustic_core::repofile::{Metadata, Node, NodeType};
        let meta = |mode, size| Metadata {
            mode: Some(mode),
            size,
            ..Metadata::default()
        };
        let dir = Node::new_node("site".as_ref(), NodeType::Dir, meta(0o755 | 1 << 31, 0));
        let file = Node::new_node(self.name.as_ref(), NodeType::File, meta(0o644, 4));
        vec![
            Ok(rustic_core::ReadSourceEntry {
                path: self.root.clone(),
                node: dir,
                open: None,
            }),
            Ok(rustic_core::ReadSourceEntry {
                path: self.root.join("x"),
                node: file,
                open: Some(std::io::Cursor::new(b"evil".to_vec())),
            }),
        ]
        .into_iter()
    }
}

#[test]
fn a_stored_tree_whose_names_climb_out_is_refused_before_anything_is_written() {
    use rustic_core::repofile::SnapshotFile;
    use rustic_core::{BackupOptions, Credentials, ParentOptions, Repository, RepositoryOptions};
    let v = vault();
    let real = v.backup("site");
    let root = std::path::PathBuf::from(root_of(&v));
    let backends = lifeboat::stores::repository::Location::parse(v.path("vault").to_str().unwrap())
        .unwrap()
        .backends()
        .unwrap();
    let repo = Repository::new(&RepositoryOptions::default().no_cache(true), &backends)
        .unwrap()
        .open(&Credentials::password(crate::common::vault::PASSWORD))
        .unwrap()
        .to_indexed_ids()
        .unwrap();
    for (n, name) in ["../../escaped", "a/../../b", "/tmp/abs"]
        .into_iter()
        .enumerate()
    {
        // A manifest as lifeboat writes one, naming the crafted entry.
        let id = format!("20300101T00000{n}Z");
        let mut m = real.clone();
        m["id"] = id.clone().into();
        m["created_at"] = format!("2030-01-01T00:00:0{n}Z").into();
        m["content_bytes"] = 4.into();
        m["directory"] = serde_json::json!({
            "files": 1, "directories": 0, "symlinks": 0, "skipped": [],
            "entries": [{"path": name, "type": "file", "mode": 420, "size": 4,
                         "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"evil"))}],
            "tree": {"files_read": 1, "files_unchanged": 0}
        });
        let mut snap = SnapshotFile {
            description: Some(m.to_string()),
            ..SnapshotFile::default()
        };
        for tag in [
            "lifeboat".to_string(),
            "target=site".into(),
            format!("id={id}"),
        ] {
            snap.tags.add(tag);
        }
        let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
        repo.archive(
            &opts,
            &Crafted {
                root: root.clone(),
                name,
            },
            snap,
            std::slice::from_ref(&root),
        )
        .unwrap();
        v.ok(&["catalog", "rebuild"]);

        let to = v.path("restores/crafted");
        let out = v.run(&[
            "restore",
            "site",
            &id,
            "--to",
            to.to_str().unwrap(),
            "--yes",
        ]);
        assert_ne!(out.status.code(), Some(0), "{name}");
        let said = crate::common::stderr(&out);
        assert!(said.contains("not a plain name"), "{name}: {said}");
        assert!(!to.exists(), "{name}: nothing is written");
        for outside in ["escaped", "b", "restores/b", "restores/escaped"] {
            assert!(!v.path(outside).exists(), "{name}: {outside} written");
        }
        assert!(!std::path::Path::new("/tmp/abs").exists());
        let out = v.run(&["verify", "site", &id, "--json"]);
        let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(report["ok"], false, "{report}");
    }
}
