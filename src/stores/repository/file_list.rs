//! A native tree's per-file list (path, kind, mode, size, SHA-256, link of every entry)
//! kept in the backup's own tree, not in the snapshot's description: the description is
//! written whole at every backup, while the list is cut into small files (`list_shards`)
//! of which a re-backup stores only those around what changed.
//!
//! The list sits beside the tree's root: `/srv/data.lifeboat-files/` for a root
//! `/srv/data`, the last nodes of the snapshot in restic's order (a name sorts right after
//! its own prefix), so its shards are made after every file of the tree has been read
//! and hashed, and a restore of the root (`restic restore --include /srv/data`) does not
//! see it. Being in the tree, it is reachable (no prune removes it) and encrypted like
//! the rest. One JSON entry a line in the tree's order; a shard is given its size before
//! it is read, which counts every file, so a file that vanished while read leaves its
//! line's bytes as newlines at the shard's end. A tree rooted at `/` has no place beside
//! it and keeps its list in the description.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustic_core::repofile::{Node, SnapshotFile};
use rustic_core::{IndexedFull, Repository};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::list_shards::{self, ParentShards, ShardPlan};
use super::reader::dump_once;
use super::tree_write::{LogState, ReadLog};
use crate::progress::Cancel;
use crate::stores::file_hashes::FileShas;
use crate::stores::manifest::{FileEntry, FileListApart, Manifest};
use crate::stores::{TreeEntry, TreeEntryKind};

/// What follows the root's name in the list's name.
const SUFFIX: &str = ".lifeboat-files";

/// The list's path for a tree rooted at `root`, or `None` when the root has no parent
/// directory to hold it (`/`).
pub fn path_beside(root: &Path) -> Option<PathBuf> {
    let name = root.file_name()?;
    let parent = root.parent()?;
    let mut list = name.to_os_string();
    list.push(SUFFIX);
    Some(parent.join(list))
}

/// One line of the list, borrowed from a tree entry or a manifest entry: the same
/// fields, order and omissions as a [`FileEntry`] serialized, without copying a string.
#[derive(Serialize)]
struct LineOut<'a> {
    path: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    mode: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'a str>,
}

impl<'a> LineOut<'a> {
    fn of_tree(e: &'a TreeEntry, sha256: Option<&'a str>) -> LineOut<'a> {
        let (kind, link) = match &e.kind {
            TreeEntryKind::Dir => ("dir", None),
            TreeEntryKind::File => ("file", None),
            TreeEntryKind::Symlink(to) => ("symlink", Some(to.as_str())),
        };
        LineOut {
            path: &e.rel,
            kind,
            mode: e.mode,
            size: (e.kind == TreeEntryKind::File).then_some(e.size),
            sha256,
            link,
        }
    }

    fn of_manifest(e: &'a FileEntry) -> LineOut<'a> {
        LineOut {
            path: &e.path,
            kind: &e.kind,
            mode: e.mode,
            size: e.size,
            sha256: e.sha256.as_deref(),
            link: e.link.as_deref(),
        }
    }

    /// The line, newline included, in `out` (cleared first).
    fn write_to(&self, out: &mut Vec<u8>) {
        out.clear();
        serde_json::to_writer(&mut *out, self).expect("an entry serializes");
        out.push(b'\n');
    }
}

/// A SHA-256 in hex: every one has the same length, so a line's length is known before
/// its file is hashed.
const NO_SHA_YET: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry's line's size, newline included, with its file kept.
pub fn line_len(e: &TreeEntry) -> u64 {
    let mut buf = Vec::with_capacity(256);
    let sha = (e.kind == TreeEntryKind::File).then_some(NO_SHA_YET);
    LineOut::of_tree(e, sha).write_to(&mut buf);
    buf.len() as u64
}

/// The list's facts for a manifest's entries, stored as the shards of `apart`: their
/// count, and the SHA-256 of their lines (the padding of files that vanished left out).
pub fn facts_of(entries: &[FileEntry], apart: &FileListApart) -> FileListApart {
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(256);
    for e in entries {
        LineOut::of_manifest(e).write_to(&mut buf);
        hasher.update(&buf);
    }
    FileListApart {
        entries: entries.len() as u64,
        sha256: hex::encode(hasher.finalize()),
        ..apart.clone()
    }
}

/// The hashes a list is written from: of the files read now, and of the parent's files
/// taken unchanged.
pub struct Hashes<'a> {
    pub read: &'a HashMap<String, String>,
    pub parent: &'a FileShas,
    pub vanished: &'a HashSet<String>,
}

impl<'a> Hashes<'a> {
    pub(super) fn of(log: &'a LogState) -> Hashes<'a> {
        Hashes {
            read: &log.done,
            parent: &log.parent,
            vanished: &log.vanished,
        }
    }
}

/// A shard's bytes: the lines of `entries` (a run of the tree's), each also hashed into
/// `lines`, padded with newlines to `size`; how many lines it holds.
pub(super) fn shard_bytes(
    entries: &[TreeEntry],
    hashes: &Hashes<'_>,
    size: u64,
    lines: &mut Sha256,
    out: &mut Vec<u8>,
) -> io::Result<u64> {
    out.clear();
    let mut count = 0u64;
    let mut buf = Vec::with_capacity(256);
    let mut parent_hex = [0u8; 64];
    for e in entries {
        let sha: Option<&str> = if e.kind != TreeEntryKind::File {
            None
        } else if hashes.vanished.contains(&e.rel) {
            continue;
        } else if let Some(read) = hashes.read.get(&e.rel) {
            Some(read)
        } else if let Some(sha) = hashes.parent.get(&e.rel) {
            hex::encode_to_slice(sha, &mut parent_hex).expect("64 hex digits for 32 bytes");
            Some(std::str::from_utf8(&parent_hex).expect("hex is ASCII"))
        } else {
            return Err(io::Error::other(format!(
                "{} was neither read nor has a SHA-256 in the parent backup",
                e.rel
            )));
        };
        LineOut::of_tree(e, sha).write_to(&mut buf);
        lines.update(&buf);
        out.extend_from_slice(&buf);
        count += 1;
    }
    if out.len() as u64 > size {
        return Err(io::Error::other(
            "a shard of the file list grew past the size it was given",
        ));
    }
    out.resize(size as usize, b'\n');
    Ok(count)
}

/// `m` (whose list is kept apart in the tree of `snap`) with its entries read back from
/// there, checked against the size, count and SHA-256 its manifest recorded.
pub fn read_into<S: IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    mut m: Manifest,
) -> Result<Manifest, String> {
    let Some(apart) = m.file_list_apart().cloned() else {
        return Ok(m);
    };
    let shards = list_shards::stored_shards(repo, snap.tree, Path::new(&apart.path))?;
    let Sink::Entries(entries) = read_checked(repo, &shards, &apart, Sink::Entries(Vec::new()))?
    else {
        unreachable!("the sink read into is the one given");
    };
    if let Some(d) = m.directory.as_mut() {
        d.entries = entries;
    }
    Ok(m)
}

/// The SHA-256 of every file in the list `apart` of the tree of `snap`, checked as
/// [`read_into`] checks the whole list (only paths and hashes are kept), and the list's
/// shards as stored.
pub fn read_shas<S: IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    apart: &FileListApart,
) -> Result<(FileShas, ParentShards), String> {
    let shards = list_shards::stored_shards(repo, snap.tree, Path::new(&apart.path))?;
    let Sink::Shas(mut shas) = read_checked(repo, &shards, apart, Sink::Shas(FileShas::default()))?
    else {
        unreachable!("the sink read into is the one given");
    };
    shas.seal();
    Ok((shas, list_shards::by_place(shards)))
}

/// The list `apart` read from its stored `shards` into `sink`, checked against the size,
/// count and SHA-256 its manifest recorded.
fn read_checked<S: IndexedFull>(
    repo: &Repository<S>,
    shards: &[(String, Node)],
    apart: &FileListApart,
    sink: Sink,
) -> Result<Sink, String> {
    let size: u64 = shards.iter().map(|(_, n)| n.meta.size).sum();
    if shards.len() as u64 != apart.shards || size != apart.bytes {
        return Err(format!(
            "its file list {} holds {} shards of {size} bytes, not the {} of {} its manifest records",
            apart.path,
            shards.len(),
            apart.shards,
            apart.bytes
        ));
    }
    let mut lines = Lines::new(sink);
    for (_, node) in shards {
        dump_once(repo, node, &mut lines)
            .map_err(|e| format!("reading its file list: {}", super::one_line(&e)))?;
    }
    lines.finish()?;
    let sha = hex::encode(std::mem::take(&mut lines.hasher).finalize());
    if sha != apart.sha256 || lines.count != apart.entries || lines.bytes != apart.bytes {
        return Err(format!(
            "its file list {} differs from what its manifest records (SHA-256 mismatch)",
            apart.path
        ));
    }
    Ok(lines.sink)
}

/// Where the lines of a list read back go: whole entries, or only files' hashes.
enum Sink {
    Entries(Vec<FileEntry>),
    Shas(FileShas),
}

/// The fields of a line a parent's hashes need, borrowed where the text allows.
#[derive(Deserialize)]
struct LineIn<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    sha256: Option<Cow<'a, str>>,
}

/// The list's bytes as the dump writes them: hashed, and parsed line by line.
struct Lines {
    /// Of every line, newline included, padding left out.
    hasher: Sha256,
    bytes: u64,
    count: u64,
    partial: Vec<u8>,
    sink: Sink,
    bad: Option<String>,
}

impl Lines {
    fn new(sink: Sink) -> Lines {
        Lines {
            hasher: Sha256::new(),
            bytes: 0,
            count: 0,
            partial: Vec::new(),
            sink,
            bad: None,
        }
    }

    fn take(&mut self, line: &[u8]) {
        if self.bad.is_some() || line.iter().all(|b| *b == b' ') {
            return;
        }
        self.count += 1;
        self.hasher.update(line);
        self.hasher.update(b"\n");
        let took = match &mut self.sink {
            Sink::Entries(entries) => serde_json::from_slice(line)
                .map(|e| entries.push(e))
                .map_err(|e| e.to_string()),
            Sink::Shas(shas) => match serde_json::from_slice::<LineIn<'_>>(line) {
                Ok(LineIn {
                    path,
                    kind,
                    sha256: Some(sha),
                }) if kind == "file" => shas.push(&path, &sha),
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
        };
        if let Err(e) = took {
            self.bad = Some(format!("its file list has an unreadable line: {e}"));
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        let rest = std::mem::take(&mut self.partial);
        self.take(&rest);
        match self.bad.take() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

impl Write for Lines {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.bytes += data.len() as u64;
        let mut rest = data;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                self.take(&rest[..end]);
            } else {
                let mut l = std::mem::take(&mut self.partial);
                l.extend_from_slice(&rest[..end]);
                self.take(&l);
            }
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The tree's entries, shared between the archiver's walk and the list made at its end.
pub type SharedEntries = Arc<Vec<TreeEntry>>;

/// A shard of the file list, made when the archiver opens it.
pub struct ListOpen {
    pub plan: Arc<ShardPlan>,
    pub shard: usize,
    /// The files of the tree: the list waits for the archiver to be done with them all.
    pub files: u64,
    pub entries: SharedEntries,
    pub log: Arc<ReadLog>,
    pub cancel: Cancel,
}

impl ListOpen {
    /// Wait until the archiver is done with every file (they all come before the list,
    /// and are in its other threads or done), then make the shard's bytes for it to read.
    pub fn open(self) -> io::Result<io::Cursor<Vec<u8>>> {
        let made = self.make();
        if let Err(e) = &made {
            let mut log = self.log.state.lock().unwrap();
            let path = self.plan.dir.to_string_lossy().into_owned();
            log.failed.push((path, e.to_string()));
        }
        made
    }

    fn make(&self) -> io::Result<io::Cursor<Vec<u8>>> {
        let mut state = self.log.state.lock().unwrap();
        while state.settled < self.files {
            self.cancel.check()?;
            // Woken by every file settled; the timeout only lets a cancel through.
            state = self
                .log
                .settled
                .wait_timeout(state, Duration::from_millis(200))
                .unwrap()
                .0;
        }
        let shard = &self.plan.shards[self.shard];
        let mut bytes = Vec::with_capacity(shard.size as usize);
        let run = &self.entries[shard.lines.clone()];
        shard_bytes(
            run,
            &Hashes::of(&state),
            shard.size,
            &mut Sha256::new(),
            &mut bytes,
        )?;
        // What the archiver is handed is what the check after it holds the list to.
        let handed = Sha256::digest(&bytes).into();
        state.list_handed.insert(self.shard, handed);
        Ok(io::Cursor::new(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel: &str, kind: TreeEntryKind, size: u64) -> TreeEntry {
        TreeEntry {
            rel: rel.into(),
            kind,
            mode: 0o640,
            uid: 0,
            gid: 0,
            size,
            mtime: (0, 0),
            ctime: (0, 0),
            inode: 1,
            device: 1,
            links: 1,
        }
    }

    #[test]
    fn the_list_sits_beside_the_root_and_sorts_right_after_it() {
        assert_eq!(
            path_beside(Path::new("/srv/data")),
            Some(PathBuf::from("/srv/data.lifeboat-files"))
        );
        assert_eq!(path_beside(Path::new("/")), None);
        assert!("data" < "data.lifeboat-files");
    }

    /// A file that vanished leaves its bytes as newlines in its shard: the size given
    /// before reading holds, the lines read back are what was kept, and their hash is the
    /// one the manifest's entries give.
    #[test]
    fn a_vanished_file_pads_its_shard_and_the_lines_read_back_as_the_manifest_lists_them() {
        let entries = [
            entry("", TreeEntryKind::Dir, 0),
            entry("a", TreeEntryKind::Dir, 0),
            entry("a/gone.txt", TreeEntryKind::File, 3),
            entry("a/kept.txt", TreeEntryKind::File, 4),
            entry("l", TreeEntryKind::Symlink("a/kept.txt".into()), 0),
        ];
        let size: u64 = entries[1..].iter().map(line_len).sum();
        // The kept file's hash from the parent's list; a read one would win over it.
        let mut parent = FileShas::default();
        parent.push("a/kept.txt", &"ab".repeat(32)).unwrap();
        parent.push("l", &"cd".repeat(32)).unwrap();
        parent.seal();
        let vanished = HashSet::from(["a/gone.txt".to_string()]);
        let hashes = Hashes {
            read: &HashMap::new(),
            parent: &parent,
            vanished: &vanished,
        };
        let (mut out, mut hashed) = (Vec::new(), Sha256::new());
        let count = shard_bytes(&entries[1..], &hashes, size, &mut hashed, &mut out).unwrap();
        assert_eq!(out.len() as u64, size);
        assert_eq!(count, 3);
        assert!(
            out.ends_with(b"\n\n\n"),
            "the vanished line's bytes are padding"
        );
        let mut lines = Lines::new(Sink::Entries(Vec::new()));
        lines.write_all(&out).unwrap();
        lines.finish().unwrap();
        assert_eq!(lines.count, 3);
        let line_sha = hex::encode(std::mem::take(&mut lines.hasher).finalize());
        assert_eq!(line_sha, hex::encode(hashed.finalize()));
        let Sink::Entries(back) = lines.sink else {
            unreachable!()
        };
        assert_eq!(
            back.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ["a", "a/kept.txt", "l"]
        );
        assert_eq!(back[1].sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(back[2].link.as_deref(), Some("a/kept.txt"));
        assert_eq!(back[2].sha256, None, "only files carry a hash");
        // The manifest's entries give the same facts, so publishing can compare them.
        let apart = FileListApart {
            path: "/srv/data.lifeboat-files".into(),
            entries: 0,
            bytes: size,
            sha256: String::new(),
            shards: 1,
        };
        let facts = facts_of(&back, &apart);
        assert_eq!((facts.entries, facts.sha256), (3, line_sha));
        // Read back for a re-backup: only the files' hashes are kept.
        let mut lines = Lines::new(Sink::Shas(FileShas::default()));
        lines.write_all(&out).unwrap();
        lines.finish().unwrap();
        let Sink::Shas(mut shas) = lines.sink else {
            unreachable!()
        };
        shas.seal();
        assert_eq!(shas.len(), 1);
        assert_eq!(shas.get("a/kept.txt"), Some(&[0xab; 32]));
        // A file with no hash from anywhere fails the shard rather than leaving it out.
        let none = HashMap::new();
        let missing = Hashes {
            read: &none,
            parent: &FileShas::default(),
            vanished: &HashSet::new(),
        };
        let made = shard_bytes(&entries[1..], &missing, size, &mut Sha256::new(), &mut out);
        assert!(made.is_err());
    }
}
