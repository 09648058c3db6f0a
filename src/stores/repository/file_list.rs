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

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustic_core::repofile::{Node, SnapshotFile};
use rustic_core::{IndexedFull, Repository};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tree_write::ReadLog;
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

/// The list's size for `entries` (the root first, then every entry), every file kept.
pub fn size_of(entries: &[TreeEntry]) -> u64 {
    let mut buf = Vec::with_capacity(256);
    entries
        .iter()
        .skip(1)
        .map(|e| {
            let sha = (e.kind == TreeEntryKind::File).then_some(NO_SHA_YET);
            LineOut::of_tree(e, sha).write_to(&mut buf);
            buf.len() as u64
        })
        .sum()
}

/// The list as stored for a manifest's entries, padded to `size`: its facts, or why it
/// cannot be (more bytes than `size`).
pub fn facts_of(entries: &[FileEntry], path: &Path, size: u64) -> Result<FileListApart, String> {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = Vec::with_capacity(256);
    for e in entries {
        LineOut::of_manifest(e).write_to(&mut buf);
        bytes += buf.len() as u64;
        hasher.update(&buf);
    }
    if bytes > size {
        return Err(format!(
            "the file list holds {bytes} bytes, more than the {size} it was given"
        ));
    }
    pad(&mut hasher, size - bytes);
    Ok(FileListApart {
        path: path.to_string_lossy().into_owned(),
        entries: entries.len() as u64,
        bytes: size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// `n` newlines hashed, a block at a time.
fn pad(hasher: &mut Sha256, n: u64) {
    let block = [b'\n'; 4096];
    let mut left = n;
    while left > 0 {
        let now = left.min(block.len() as u64) as usize;
        hasher.update(&block[..now]);
        left -= now as u64;
    }
}

/// The hashes a list is written from: of the files read now, and of the parent's files
/// taken unchanged.
pub struct Hashes<'a> {
    pub read: &'a HashMap<String, String>,
    pub parent: &'a FileShas,
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
    let mut buf = Vec::with_capacity(256);
    let mut parent_hex = [0u8; 64];
    for e in entries.iter().skip(1) {
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
        bytes += buf.len() as u64;
        count += 1;
        if bytes > size {
            return Err(io::Error::other(
                "the file list grew past the size it was given",
            ));
        }
        hasher.update(&buf);
        out.write_all(&buf)?;
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
    let Sink::Entries(entries) = read_checked(repo, snap, &apart, Sink::Entries(Vec::new()))?
    else {
        unreachable!("the sink read into is the one given");
    };
    if let Some(d) = m.directory.as_mut() {
        d.entries = entries;
    }
    Ok(m)
}

/// The SHA-256 of every file in the list `apart` of the tree of `snap`, checked as
/// [`read_into`] checks the whole list; only paths and hashes are kept.
pub fn read_shas<S: IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    apart: &FileListApart,
) -> Result<FileShas, String> {
    let Sink::Shas(mut shas) = read_checked(repo, snap, apart, Sink::Shas(FileShas::default()))?
    else {
        unreachable!("the sink read into is the one given");
    };
    shas.seal();
    Ok(shas)
}

/// The list `apart` read from the tree of `snap` into `sink`, checked against the size,
/// count and SHA-256 its manifest recorded.
fn read_checked<S: IndexedFull>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
    apart: &FileListApart,
    sink: Sink,
) -> Result<Sink, String> {
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
    let mut lines = Lines::new(sink);
    repo.dump(&node, &mut lines)
        .map_err(|e| format!("reading its file list: {}", super::one_line(&e)))?;
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
        self.hasher.update(data);
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
        let clock = std::time::Instant::now();
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
        tracing::debug!(
            ms = clock.elapsed().as_millis() as u64,
            "file list: every file settled"
        );
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
        tracing::debug!(
            ms = clock.elapsed().as_millis() as u64,
            "file list: written"
        );
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
        let path = Path::new("/srv/data.lifeboat-files");
        let mut out = Vec::new();
        let facts = write(&entries, &hashes, path, size, &mut out).unwrap();
        assert_eq!(out.len() as u64, size);
        assert_eq!(facts.entries, 3);
        let mut lines = Lines::new(Sink::Entries(Vec::new()));
        lines.write_all(&out).unwrap();
        lines.finish().unwrap();
        assert_eq!(lines.count, 3);
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
        // The manifest's entries give the same bytes, so publishing can compare them.
        assert_eq!(facts_of(&back, path, size).unwrap(), facts);
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
        // A file with no hash from anywhere fails the list rather than leaving it out.
        let none = HashMap::new();
        let missing = Hashes {
            read: &none,
            parent: &FileShas::default(),
            vanished: &HashSet::new(),
        };
        assert!(write(&entries, &missing, path, size, &mut Vec::new()).is_err());
    }
}
