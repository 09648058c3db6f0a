//! A native tree's per-file list (path, kind, mode, size, SHA-256, link of every entry)
//! kept as a file of the backup's own tree, not in the snapshot's description: the
//! description is written whole at every backup, while the list is chunked like any
//! file, so the parts that did not change share their chunks with the earlier backups'
//! lists and a re-backup adds only the chunks around what changed.
//!
//! The list sits beside the tree's root: `/srv/data.lifeboat-files` for a root
//! `/srv/data`, the last node of the snapshot in restic's order (a name sorts right after
//! its own prefix), so it is stored after every file of the tree has been read and
//! hashed, and a restore of the root (`restic restore --include /srv/data`) does not see
//! it. Being in the tree, it is reachable (no prune removes it) and encrypted like the
//! rest. One JSON entry a line in the tree's order; the file is given its size before it
//! is read, which counts every file, so a file that vanished while read leaves its
//! line's bytes as newlines at the end. A tree rooted at `/` has no place beside it and
//! keeps its list in the description, as every backup before this did.

use std::collections::{HashMap, HashSet};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustic_core::repofile::{Node, SnapshotFile};
use rustic_core::{IndexedFull, Repository};
use sha2::{Digest, Sha256};

use super::tree_write::ReadLog;
use crate::progress::Cancel;
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

/// An entry of the tree as the manifest lists it; `sha256` for files.
fn file_entry(e: &TreeEntry, sha256: Option<String>) -> FileEntry {
    let (kind, link) = match &e.kind {
        TreeEntryKind::Dir => ("dir", None),
        TreeEntryKind::File => ("file", None),
        TreeEntryKind::Symlink(to) => ("symlink", Some(to.clone())),
    };
    FileEntry {
        path: e.rel.clone(),
        kind: kind.into(),
        mode: e.mode,
        size: (e.kind == TreeEntryKind::File).then_some(e.size),
        sha256,
        link,
    }
}

/// One entry as its line of the list.
fn line(e: &FileEntry) -> Vec<u8> {
    let mut text = serde_json::to_vec(e).expect("an entry serializes");
    text.push(b'\n');
    text
}

/// A SHA-256 in hex: every one has the same length, so a line's length is known before
/// its file is hashed.
const NO_SHA_YET: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The list's size for `entries` (the root first, then every entry), every file kept.
pub fn size_of(entries: &[TreeEntry]) -> u64 {
    entries
        .iter()
        .skip(1)
        .map(|e| {
            let sha = (e.kind == TreeEntryKind::File).then(|| NO_SHA_YET.to_string());
            line(&file_entry(e, sha)).len() as u64
        })
        .sum()
}

/// The list as stored for a manifest's entries, padded to `size`: its facts, or why it
/// cannot be (more bytes than `size`).
pub fn facts_of(entries: &[FileEntry], path: &Path, size: u64) -> Result<FileListApart, String> {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    for e in entries {
        let l = line(e);
        bytes += l.len() as u64;
        hasher.update(&l);
    }
    if bytes > size {
        return Err(format!(
            "the file list holds {bytes} bytes, more than the {size} it was given"
        ));
    }
    for _ in bytes..size {
        hasher.update(b"\n");
    }
    Ok(FileListApart {
        path: path.to_string_lossy().into_owned(),
        entries: entries.len() as u64,
        bytes: size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// The hashes a list is written from: of the files read now, and of the parent's files
/// taken unchanged.
pub struct Hashes<'a> {
    pub read: &'a HashMap<String, String>,
    pub parent: &'a HashMap<String, String>,
    pub vanished: &'a HashSet<String>,
}

/// The list's bytes for the tree's `entries` (the root first), written to `out` line by
/// line and padded with newlines to `size`; its facts.
pub fn write(
    entries: &[TreeEntry],
    hashes: &Hashes<'_>,
    path: &Path,
    size: u64,
    out: &mut dyn Write,
) -> io::Result<FileListApart> {
    let mut hasher = Sha256::new();
    let (mut bytes, mut count) = (0u64, 0u64);
    for e in entries.iter().skip(1) {
        let sha = if e.kind != TreeEntryKind::File {
            None
        } else if hashes.vanished.contains(&e.rel) {
            continue;
        } else {
            let found = hashes
                .read
                .get(&e.rel)
                .or_else(|| hashes.parent.get(&e.rel));
            Some(found.cloned().ok_or_else(|| {
                io::Error::other(format!(
                    "{} was neither read nor has a SHA-256 in the parent backup",
                    e.rel
                ))
            })?)
        };
        let l = line(&file_entry(e, sha));
        bytes += l.len() as u64;
        count += 1;
        if bytes > size {
            return Err(io::Error::other(
                "the file list grew past the size it was given",
            ));
        }
        hasher.update(&l);
        out.write_all(&l)?;
    }
    let padding = vec![b'\n'; (size - bytes) as usize];
    hasher.update(&padding);
    out.write_all(&padding)?;
    Ok(FileListApart {
        path: path.to_string_lossy().into_owned(),
        entries: count,
        bytes: size,
        sha256: hex::encode(hasher.finalize()),
    })
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
    let node: Node = repo
        .node_from_path(snap.tree, Path::new(&apart.path))
        .map_err(|e| {
            format!(
                "finding its file list {}: {}",
                apart.path,
                super::one_line(&e)
            )
        })?;
    if node.meta.size != apart.bytes {
        return Err(format!(
            "its file list {} holds {} bytes, not the {} its manifest records",
            apart.path, node.meta.size, apart.bytes
        ));
    }
    let mut lines = Lines::default();
    repo.dump(&node, &mut lines)
        .map_err(|e| format!("reading its file list: {}", super::one_line(&e)))?;
    let entries = lines.finish()?;
    let sha = hex::encode(lines.hasher.finalize());
    if sha != apart.sha256 || entries.len() as u64 != apart.entries || lines.bytes != apart.bytes {
        return Err(format!(
            "its file list {} differs from what its manifest records (SHA-256 mismatch)",
            apart.path
        ));
    }
    if let Some(d) = m.directory.as_mut() {
        d.entries = entries;
    }
    Ok(m)
}

/// The list's bytes as the dump writes them: hashed, and parsed line by line.
#[derive(Default)]
struct Lines {
    hasher: Sha256,
    bytes: u64,
    partial: Vec<u8>,
    entries: Vec<FileEntry>,
    bad: Option<String>,
}

impl Lines {
    fn take(&mut self, line: &[u8]) {
        if self.bad.is_some() || line.iter().all(|b| *b == b' ') {
            return;
        }
        match serde_json::from_slice(line) {
            Ok(e) => self.entries.push(e),
            Err(e) => self.bad = Some(format!("its file list has an unreadable line: {e}")),
        }
    }

    fn finish(&mut self) -> Result<Vec<FileEntry>, String> {
        let rest = std::mem::take(&mut self.partial);
        self.take(&rest);
        match self.bad.take() {
            Some(why) => Err(why),
            None => Ok(std::mem::take(&mut self.entries)),
        }
    }
}

impl Write for Lines {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        let mut rest = data;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let line = if self.partial.is_empty() {
                rest[..end].to_vec()
            } else {
                let mut l = std::mem::take(&mut self.partial);
                l.extend_from_slice(&rest[..end]);
                l
            };
            self.take(&line);
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

/// Where the file list goes and what it will hold.
pub struct ListPlan {
    pub path: PathBuf,
    /// Its size, every file counted (lines of files that vanish become padding).
    pub size: u64,
    /// The files of the tree: the list waits for the archiver to be done with them all.
    pub files: u64,
}

/// The file list, made when the archiver opens it.
pub struct ListOpen {
    pub plan: ListPlan,
    pub entries: SharedEntries,
    pub log: Arc<ReadLog>,
    pub cancel: Cancel,
}

impl ListOpen {
    /// Wait until the archiver is done with every file (they all come before the list,
    /// and are in its other threads or done), then write the list to an unnamed
    /// temporary file for it to read.
    pub fn open(self) -> io::Result<std::fs::File> {
        let made = self.make();
        if let Err(e) = &made {
            let mut log = self.log.state.lock().unwrap();
            log.failed
                .push((self.plan.path.to_string_lossy().into_owned(), e.to_string()));
        }
        made
    }

    fn make(&self) -> io::Result<std::fs::File> {
        let mut state = self.log.state.lock().unwrap();
        while state.settled < self.plan.files {
            self.cancel.check()?;
            // Woken by every file settled; the timeout only lets a cancel through.
            state = self
                .log
                .settled
                .wait_timeout(state, Duration::from_millis(200))
                .unwrap()
                .0;
        }
        let mut spool = std::io::BufWriter::new(tempfile::tempfile()?);
        let hashes = Hashes {
            read: &state.done,
            parent: &state.parent,
            vanished: &state.vanished,
        };
        let facts = write(
            &self.entries,
            &hashes,
            &self.plan.path,
            self.plan.size,
            &mut spool,
        )?;
        state.list = Some(facts);
        let mut file = spool.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        Ok(file)
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

    /// A file that vanished leaves its bytes as newlines: the size given before reading
    /// holds, and the list read back has only what was kept.
    #[test]
    fn a_vanished_file_pads_and_the_list_reads_back_as_the_manifest_lists_it() {
        let entries = vec![
            entry("", TreeEntryKind::Dir, 0),
            entry("a", TreeEntryKind::Dir, 0),
            entry("a/gone.txt", TreeEntryKind::File, 3),
            entry("a/kept.txt", TreeEntryKind::File, 4),
            entry("l", TreeEntryKind::Symlink("a/kept.txt".into()), 0),
        ];
        let size = size_of(&entries);
        let read = HashMap::from([("a/kept.txt".to_string(), "ab".repeat(32))]);
        let vanished = HashSet::from(["a/gone.txt".to_string()]);
        let hashes = Hashes {
            read: &read,
            parent: &HashMap::new(),
            vanished: &vanished,
        };
        let path = Path::new("/srv/data.lifeboat-files");
        let mut out = Vec::new();
        let facts = write(&entries, &hashes, path, size, &mut out).unwrap();
        assert_eq!(out.len() as u64, size);
        assert_eq!(facts.entries, 3);
        let mut lines = Lines::default();
        lines.write_all(&out).unwrap();
        let back = lines.finish().unwrap();
        assert_eq!(
            back.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ["a", "a/kept.txt", "l"]
        );
        assert_eq!(back[1].sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(back[2].link.as_deref(), Some("a/kept.txt"));
        // The manifest's entries give the same bytes, so publishing can compare them.
        assert_eq!(facts_of(&back, path, size).unwrap(), facts);
        // A file with no hash from anywhere fails the list rather than leaving it out.
        let none = HashMap::new();
        let missing = Hashes {
            read: &none,
            parent: &none,
            vanished: &HashSet::new(),
        };
        assert!(write(&entries, &missing, path, size, &mut Vec::new()).is_err());
    }
}
