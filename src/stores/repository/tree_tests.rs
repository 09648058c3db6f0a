//! Native trees in a real repository on disk: which files a re-backup reads (size,
//! mtime, ctime and inode each make a file read again, and the store tells which
//! beforehand), and snapshots crafted through
//! rustic_core's own archiver with node names no tree of lifeboat's has, refused at the
//! first byte read.

use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::sync::Arc;

use rustic_core::repofile::{Metadata, Node, NodeType, SnapshotFile};
use rustic_core::{BackupOptions, ParentOptions, ReadSource, ReadSourceEntry, RusticResult};

use super::{RepositoryStore, snapshots};
use crate::config::TargetKind;
use crate::progress::JobContext;
use crate::stores::manifest::{DirectoryFacts, FileEntry, Manifest};
use crate::stores::{BackupStore, NewBackup, Tree, TreeEntry, TreeEntryKind, TreeWritten};

const ROOT: &str = "/srv/site";

fn store(dir: &tempfile::TempDir) -> RepositoryStore {
    let store = RepositoryStore::new(
        "vault",
        dir.path().join("repo").to_str().unwrap(),
        "pw",
        None,
    )
    .unwrap();
    store.init().unwrap();
    store
}

fn entry(rel: &str, kind: TreeEntryKind, size: u64, inode: u64, ctime: i64) -> TreeEntry {
    TreeEntry {
        rel: rel.into(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size,
        mtime: (1_700_000_000, 0),
        ctime: (ctime, 0),
        inode,
        device: 1,
        links: 1,
    }
}

/// A root with one file `a.txt` holding "hello".
fn tree(inode: u64, ctime: i64) -> Tree {
    Tree {
        root: PathBuf::from(ROOT),
        entries: vec![
            entry("", TreeEntryKind::Dir, 0, 10, ctime),
            entry("a.txt", TreeEntryKind::File, 5, inode, ctime),
        ],
        open: Arc::new(|_| Ok(Box::new(Cursor::new(b"hello".to_vec())) as Box<dyn Read + Send>)),
    }
}

fn manifest(id: &str, entries: Vec<FileEntry>, written: &TreeWritten) -> Manifest {
    let mut m: Manifest = serde_json::from_value(serde_json::json!({
        "format": 1, "id": id, "target": "site", "kind": "directory", "store": "vault",
        "created_at": format!("2026-12-05T10:00:0{id}Z"), "finished_at": "2026-12-05T10:00:09Z",
        "duration_seconds": 1.0, "status": "complete", "artifact": "", "compression": "",
        "size_bytes": 0, "sha256": "", "content_bytes": 0, "content_sha256": "",
        "lifeboat_version": "0",
    }))
    .unwrap();
    m.directory = Some(DirectoryFacts {
        files: entries.iter().filter(|e| e.kind == "file").count() as u64,
        directories: 0,
        symlinks: 0,
        skipped: Vec::new(),
        entries,
        tree: Some(written.facts.clone()),
    });
    m
}

fn new_backup(id: &str) -> NewBackup {
    NewBackup {
        target: "site".into(),
        id: id.into(),
        kind: TargetKind::Directory,
        artifact_ext: "tar",
        file_name: "site.tar".into(),
    }
}

/// Back `tree` up as backup `id`: what was read, and the published manifest.
fn back_up(store: &RepositoryStore, id: &str, tree: Tree) -> (TreeWritten, Manifest) {
    let ctx = JobContext::silent();
    let mut writer = store.begin(&new_backup(id)).unwrap();
    let said = writer
        .as_tree()
        .unwrap()
        .unchanged(&tree.root, &tree.entries, &ctx)
        .unwrap();
    let written = writer.as_tree().unwrap().write_tree(tree, &ctx).unwrap();
    // What the store said beforehand it would take from the parent (a tree on another
    // host fetches the rest) is exactly what it did not read.
    assert_eq!(said.len() as u64, written.facts.files_unchanged, "{id}");
    assert_eq!(
        said.contains("a.txt"),
        written.facts.files_read == 0,
        "{id}"
    );
    let file = FileEntry {
        path: "a.txt".into(),
        kind: "file".into(),
        mode: 0o644,
        size: Some(5),
        sha256: written.sha256.get("a.txt"),
        link: None,
    };
    let m = manifest(id, vec![file], &written);
    let published = writer.publish(m, &ctx).unwrap();
    (written, published)
}

/// A previous backup whose file list does not read back (here its manifest records
/// another SHA-256 for it) cannot give a re-backup the hashes of the files it would take
/// unchanged: it is no parent, both when the store says beforehand which files it will
/// not read (none) and when it stores the tree (every file read).
#[test]
fn a_parent_whose_file_list_does_not_read_back_is_no_parent_beforehand_either() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    back_up(&store, "1", tree(100, 1_700_000_000));
    let repo = store.open_existing().unwrap();
    let mut snap = repo.get_all_snapshots().unwrap().pop().unwrap();
    let mut m = snapshots::manifest_of(&snap).unwrap();
    let tree_facts = m.directory.as_mut().unwrap().tree.as_mut().unwrap();
    tree_facts.file_list.as_mut().expect("kept apart").sha256 = "0".repeat(64);
    snap.description = Some(snapshots::description_of(&m));
    let old = snap.id;
    repo.save_snapshots(vec![snap]).unwrap();
    repo.delete_snapshots(&[old]).unwrap();

    // `back_up` checks that what was said beforehand is what was not read.
    let (second, _) = back_up(&store, "2", tree(100, 1_700_000_000));
    assert_eq!((second.facts.files_read, second.facts.parent), (1, None));
    assert_eq!(second.facts.files_unchanged, 0);
}

#[test]
fn a_re_backup_reads_again_only_files_whose_stamp_or_inode_moved() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let (first, _) = back_up(&store, "1", tree(100, 1_700_000_000));
    assert_eq!((first.facts.files_read, first.facts.parent), (1, None));

    let (same, _) = back_up(&store, "2", tree(100, 1_700_000_000));
    assert_eq!(same.facts.files_read, 0);
    assert_eq!(same.facts.files_unchanged, 1);
    assert_eq!(same.facts.parent.as_deref(), Some("1"));
    assert_eq!(
        same.sha256.get("a.txt").expect("known"),
        first.sha256.get("a.txt").expect("read"),
        "taken from the parent"
    );

    // Only the inode differs (a file replaced by another of the same size and times):
    // rustic_core 0.13 compares inodes only with `ignore_inode` set.
    let (moved, _) = back_up(&store, "3", tree(101, 1_700_000_000));
    assert_eq!(moved.facts.files_read, 1, "a new inode is read again");
    let (touched, m) = back_up(&store, "4", tree(101, 1_700_000_001));
    assert_eq!(touched.facts.files_read, 1, "a new ctime is read again");

    let mut content = Vec::new();
    store.read(&m).unwrap().read_to_end(&mut content).unwrap();
    let mut archive = tar::Archive::new(&content[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.txt"]);
    let (listed, _) = store.backups("site").unwrap();
    assert_eq!(listed.len(), 4);
}

/// Entries of a crafted tree: the root, then one file whose node is named `name`.
struct Crafted {
    name: &'static str,
}

impl ReadSource for Crafted {
    type Open = Cursor<Vec<u8>>;
    type Iter = std::vec::IntoIter<RusticResult<ReadSourceEntry<Cursor<Vec<u8>>>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        let meta = |size| Metadata {
            mode: Some(0o644),
            size,
            ..Metadata::default()
        };
        let root = Node::new_node("site".as_ref(), NodeType::Dir, meta(0));
        let file = Node::new_node(self.name.as_ref(), NodeType::File, meta(4));
        vec![
            Ok(ReadSourceEntry {
                path: ROOT.into(),
                node: root,
                open: None,
            }),
            Ok(ReadSourceEntry {
                path: format!("{ROOT}/x").into(),
                node: file,
                open: Some(Cursor::new(b"evil".to_vec())),
            }),
        ]
        .into_iter()
    }
}

#[test]
fn node_names_that_are_not_plain_names_refuse_the_whole_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    for (n, name) in ["../evil", "..", "a/b", "/etc/passwd", "nul\0byte", "."]
        .into_iter()
        .enumerate()
    {
        let id = format!("{n}");
        let written = TreeWritten::default();
        let file = FileEntry {
            path: name.into(),
            kind: "file".into(),
            mode: 0o644,
            size: Some(4),
            sha256: Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"evil"))),
            link: None,
        };
        let mut m = manifest(&id, vec![file], &written);
        m.content_bytes = 4;
        let mut snap = SnapshotFile {
            description: Some(snapshots::description_of(&m)),
            ..SnapshotFile::default()
        };
        for tag in [
            snapshots::TAG.to_string(),
            snapshots::target_tag("site"),
            snapshots::id_tag(&id),
        ] {
            snap.tags.add(tag);
        }
        let repo = store.open_existing().unwrap().to_indexed_ids().unwrap();
        let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
        let saved = repo
            .archive(&opts, &Crafted { name }, snap, &[PathBuf::from(ROOT)])
            .unwrap();
        let m = snapshots::manifest_of(&saved).expect("a well-formed lifeboat snapshot");
        for read in [store.read(&m), store.read_paths(&m, &[name.to_string()])] {
            let mut first = [0u8; 1];
            let err = read
                .unwrap()
                .read(&mut first)
                .expect_err("refused at the first byte");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
            assert!(
                err.to_string().contains("not a plain name"),
                "{name:?}: {err}"
            );
        }
    }
}

/// Backups made before file lists moved into the tree keep theirs in the description:
/// such a snapshot (made here with rustic_core's own archiver) lists with its entries
/// and reads back. A new backup keeps the list beside its tree and reads it from there.
#[test]
fn a_file_list_kept_in_the_description_as_older_backups_keep_it_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let file = FileEntry {
        path: "x".into(),
        kind: "file".into(),
        mode: 0o644,
        size: Some(4),
        sha256: Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"evil"))),
        link: None,
    };
    let mut m = manifest("1", vec![file], &TreeWritten::default());
    m.content_bytes = 4;
    let mut snap = SnapshotFile {
        description: Some(snapshots::description_of(&m)),
        ..SnapshotFile::default()
    };
    for tag in [
        snapshots::TAG.to_string(),
        snapshots::target_tag("site"),
        snapshots::id_tag("1"),
    ] {
        snap.tags.add(tag);
    }
    let repo = store.open_existing().unwrap().to_indexed_ids().unwrap();
    let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
    repo.archive(&opts, &Crafted { name: "x" }, snap, &[PathBuf::from(ROOT)])
        .unwrap();
    let (listed, _) = store.backups("site").unwrap();
    let m = &listed[0];
    assert!(m.file_list_apart().is_none());
    assert_eq!(m.directory.as_ref().unwrap().entries.len(), 1, "{m:?}");
    let m = store.with_file_list(m.clone()).unwrap();
    let mut content = Vec::new();
    store.read(&m).unwrap().read_to_end(&mut content).unwrap();
    let names: Vec<String> = tar::Archive::new(&content[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["x"]);

    let (written, published) = back_up(&store, "2", tree(100, 1_700_000_000));
    let apart = written
        .facts
        .file_list
        .clone()
        .expect("kept beside the tree");
    assert_eq!(apart.path, format!("{ROOT}.lifeboat-files"));
    assert_eq!(apart.entries, 1);
    assert_eq!(published.directory.as_ref().unwrap().entries.len(), 1);
    let (listed, _) = store.backups("site").unwrap();
    let m = listed.iter().find(|m| m.id == "2").unwrap();
    assert!(m.file_list_apart().is_some(), "listings leave the list out");
    let whole = store.with_file_list(m.clone()).unwrap();
    assert_eq!(
        whole.directory.as_ref().unwrap().entries,
        published.directory.as_ref().unwrap().entries
    );
}

/// A file gone between the listing and its reading is not in the backup: its line of
/// the file list becomes padding (the list's size was given before any file was read),
/// and the list reads back as the manifest lists the tree, without it.
#[test]
fn a_file_gone_before_it_is_read_leaves_the_file_list_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let tree = Tree {
        root: PathBuf::from(ROOT),
        entries: vec![
            entry("", TreeEntryKind::Dir, 0, 10, 1_700_000_000),
            entry("a.txt", TreeEntryKind::File, 5, 100, 1_700_000_000),
            entry("gone.txt", TreeEntryKind::File, 3, 101, 1_700_000_000),
        ],
        open: Arc::new(|rel| match rel {
            "gone.txt" => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            _ => Ok(Box::new(Cursor::new(b"hello".to_vec())) as Box<dyn Read + Send>),
        }),
    };
    let ctx = JobContext::silent();
    let mut writer = store.begin(&new_backup("1")).unwrap();
    let written = writer.as_tree().unwrap().write_tree(tree, &ctx).unwrap();
    assert_eq!(written.vanished, ["gone.txt"]);
    let apart = written.facts.file_list.clone().unwrap();
    assert_eq!(apart.entries, 1);
    let file = FileEntry {
        path: "a.txt".into(),
        kind: "file".into(),
        mode: 0o644,
        size: Some(5),
        sha256: written.sha256.get("a.txt"),
        link: None,
    };
    let m = manifest("1", vec![file.clone()], &written);
    writer.publish(m, &ctx).unwrap();
    let (listed, _) = store.backups("site").unwrap();
    let whole = store.with_file_list(listed[0].clone()).unwrap();
    assert_eq!(whole.directory.as_ref().unwrap().entries, [file]);
    let mut content = Vec::new();
    store
        .read(&whole)
        .unwrap()
        .read_to_end(&mut content)
        .unwrap();
    let names: Vec<String> = tar::Archive::new(&content[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.txt"]);
}

/// What was stored of a file list is held to the bytes meant for it, shard by shard,
/// without reading it back: a shard taken from the parent passes when it holds the
/// bytes made from the hashes known now, one opened by the archiver when it got them;
/// either fails, naming the shard, when a file's hash differs. Before the archive, a
/// parent's shard that would be taken while holding other bytes is stamped anew.
#[test]
fn a_stored_file_list_is_held_to_the_bytes_meant_for_it() {
    use super::list_check::{check_stored, restamp_stale};
    use super::list_shards::{self, Cut, ShardPlan};
    use super::tree_write::LogState;
    use crate::stores::file_hashes::FileShas;

    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let (written, m) = back_up(&store, "1", tree(100, 1_700_000_000));
    let recorded = written.facts.file_list.clone().expect("kept apart");
    assert_eq!(recorded.shards, 1);
    let repo = store.open_existing().unwrap().to_indexed_ids().unwrap();
    let snap = repo.get_snapshot_from_str(&m.artifact, |_| true).unwrap();
    let list_dir = PathBuf::from(format!("{ROOT}.lifeboat-files"));
    let parent =
        list_shards::by_place(list_shards::stored_shards(&repo, snap.tree, &list_dir).unwrap());
    let entries = tree(100, 1_700_000_000).entries;
    let cut = Cut {
        line_len: &super::file_list::line_len,
        unknown: &|_| false,
        nonce: 7,
        max_bytes: list_shards::max_shard_bytes(repo.config()),
    };
    let plan = || ShardPlan::new(list_dir.clone(), &entries, &cut);
    let shas = |sha: &str| {
        let mut shas = FileShas::default();
        shas.push("a.txt", sha).unwrap();
        shas.seal();
        shas
    };
    let hello = written.sha256.get("a.txt").unwrap();

    // Before: the shard holding the hashes known is left to be taken; with another hash
    // for a.txt it is stamped anew, so the archiver makes it again.
    assert_eq!(
        restamp_stale(&mut plan(), &entries, &parent, &shas(&hello), 7),
        0
    );
    let mut stale = plan();
    assert_eq!(
        restamp_stale(&mut stale, &entries, &parent, &shas(&"ab".repeat(32)), 7),
        1
    );
    assert_ne!(stale.shards, plan().shards, "its stamp changed");

    // After, taken from the parent: passes with the hash it holds, fails with another.
    let taken = |sha: &str| {
        let mut log = LogState::default();
        log.parent = shas(sha);
        check_stored(&plan(), &entries, &log, &parent)
    };
    assert_eq!(taken(&hello).unwrap(), recorded);
    let why = taken(&"ab".repeat(32)).unwrap_err();
    assert!(
        why.contains("00000000/00000000") && why.contains("not stored as written"),
        "{why}"
    );
    // After, opened: held to the bytes the archiver was handed, whatever the parent's.
    let opened = |handed: &str, now: &str| {
        let mut log = LogState::default();
        log.parent = shas(handed);
        let mut made = Vec::new();
        let hashes = super::file_list::Hashes::of(&log);
        let shard = &plan().shards[0];
        let run = &entries[shard.lines.clone()];
        let mut lines = sha2::Sha256::default();
        super::file_list::shard_bytes(run, &hashes, shard.size, &mut lines, &mut made).unwrap();
        log.list_handed
            .insert(0, <sha2::Sha256 as sha2::Digest>::digest(&made).into());
        log.parent = shas(now);
        check_stored(&plan(), &entries, &log, &Default::default())
    };
    assert_eq!(
        opened(&"cd".repeat(32), &"cd".repeat(32)).unwrap().shards,
        1
    );
    assert!(opened(&"cd".repeat(32), &hello).is_err());
}

/// A file that vanished while the parent was read and is there again, with the listing's
/// very stat, in the next backup: the archiver reads it (the parent's tree does not hold
/// it), so its shard of the list is made again, not taken from the parent where its line
/// is padding; the re-backup stores and lists it.
#[test]
fn a_file_gone_while_the_parent_was_read_is_listed_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let tree = |gone: bool| Tree {
        root: PathBuf::from(ROOT),
        entries: vec![
            entry("", TreeEntryKind::Dir, 0, 10, 1_700_000_000),
            entry("a.txt", TreeEntryKind::File, 5, 100, 1_700_000_000),
            entry("gone.txt", TreeEntryKind::File, 3, 101, 1_700_000_000),
        ],
        open: Arc::new(move |rel| match rel {
            "gone.txt" if gone => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            "gone.txt" => Ok(Box::new(Cursor::new(b"abc".to_vec())) as Box<dyn Read + Send>),
            _ => Ok(Box::new(Cursor::new(b"hello".to_vec())) as Box<dyn Read + Send>),
        }),
    };
    let ctx = JobContext::silent();
    let mut writer = store.begin(&new_backup("1")).unwrap();
    let first = writer
        .as_tree()
        .unwrap()
        .write_tree(tree(true), &ctx)
        .unwrap();
    assert_eq!(first.vanished, ["gone.txt"]);
    let a = FileEntry {
        path: "a.txt".into(),
        kind: "file".into(),
        mode: 0o644,
        size: Some(5),
        sha256: first.sha256.get("a.txt"),
        link: None,
    };
    writer
        .publish(manifest("1", vec![a.clone()], &first), &ctx)
        .unwrap();

    let mut writer = store.begin(&new_backup("2")).unwrap();
    let second = writer.as_tree().unwrap().write_tree(tree(false), &ctx);
    let second = second.expect("the re-backup stores the file that is back");
    assert_eq!(
        (second.facts.files_read, second.facts.files_unchanged),
        (1, 1)
    );
    let back = FileEntry {
        path: "gone.txt".into(),
        size: Some(3),
        sha256: second.sha256.get("gone.txt"),
        ..a.clone()
    };
    assert!(back.sha256.is_some());
    writer
        .publish(manifest("2", vec![a, back.clone()], &second), &ctx)
        .unwrap();
    let (listed, _) = store.backups("site").unwrap();
    let newest = listed.iter().find(|m| m.id == "2").unwrap().clone();
    let whole = store.with_file_list(newest).unwrap();
    assert!(whole.directory.unwrap().entries.contains(&back));
}
