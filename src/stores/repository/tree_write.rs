//! Writing a tree as a native restic tree: one node per file, directory and symlink under
//! the tree's root path, as `restic backup` makes them. The previous native-tree backup of
//! the same target and root is the parent: a file whose size, mtime, ctime and inode
//! match its node there is not read again (rustic_core 0.13 compares inodes only when
//! `ignore_inode` is set, the reverse of its name, so it is set). Whether the parent was
//! really used is checked on the saved snapshot, and the files read are counted here, not
//! taken on trust.
//!
//! The per-file list goes into the same tree as its last nodes (`file_list`, cut into
//! shards by `list_shards`): the archiver opens a shard only once every file before it
//! has been read or found unchanged (each file's opener reports when it is done with,
//! read or not), so every SHA-256 is known when a shard is made. What was stored of the
//! list is held to what was meant, shard by shard, before the backup counts
//! (`list_check`).
//!
//! The archiver saves the snapshot as soon as the tree is stored, before the manifest
//! exists: that first snapshot carries the `lifeboat-unfinished` tag and no manifest, and
//! publishing saves it again with the manifest and the `lifeboat` tag (the commit), then
//! forgets the first. An unfinished one left by a crash is removed as a leftover.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use rustic_core::repofile::{SnapshotFile, SnapshotId};
use rustic_core::{
    BackupOptions, ErrorKind, IndexedFullStatus, OpenStatus, ParentOptions, ReadSource,
    ReadSourceEntry, ReadSourceOpen, Repository, RusticError, RusticResult,
};
use sha2::{Digest, Sha256};

use super::file_list::{self, ListOpen, SharedEntries};
use super::list_check::{check_stored, restamp_stale};
use super::list_shards::{self, Cut, ListNode, ParentShards, ShardPlan};
use super::node::node_of;
use super::parent::Parent;
use super::snapshots;
use crate::progress::{Cancel, JobContext, Progress};
use crate::stores::StoreError;
use crate::stores::file_hashes::{FileHashes, FileShas};
use crate::stores::manifest::{FileEntry, Manifest, TreeFacts};
use crate::stores::{Tree, TreeEntryKind, TreeWritten};

/// The tag of a snapshot whose tree is stored but whose backup is not published yet.
pub const UNFINISHED_TAG: &str = "lifeboat-unfinished";

/// A tree stored, waiting to be published.
pub struct Stored {
    pub snap: SnapshotFile,
}

/// Store `tree` as the snapshot `snap` (tagged unfinished), taking unchanged files from
/// `parent` (see [`choose_parent`]); what was read and the snapshot saved.
pub fn store(
    describe: &str,
    repo: Repository<IndexedFullStatus>,
    parent: Option<Parent>,
    target: &str,
    mut snap: SnapshotFile,
    tree: Tree,
    ctx: &JobContext,
) -> Result<(Repository<OpenStatus>, Stored, TreeWritten), StoreError> {
    let fail = |doing: &str, e: Box<RusticError>| {
        StoreError::Other(format!("{describe}: {doing}: {}", super::one_line(&e)))
    };
    snap.tags.add(UNFINISHED_TAG.to_string());
    let files = tree
        .entries
        .iter()
        .filter(|e| e.kind == TreeEntryKind::File)
        .count() as u64;
    let symlinks = tree
        .entries
        .iter()
        .filter(|e| matches!(e.kind, TreeEntryKind::Symlink(_)))
        .count() as u64;
    let opts = match &parent {
        Some(p) => BackupOptions::default().parent_opts(
            ParentOptions::default()
                .parents(vec![p.snap.id.to_string()])
                // In rustic_core 0.13 this flag turns the inode comparison on.
                .ignore_inode(true),
        ),
        None => BackupOptions::default().parent_opts(ParentOptions::default().force(true)),
    };
    let log = Arc::new(ReadLog::default());
    let mut parent_shards = ParentShards::default();
    let parent_files: Option<(SnapshotId, String)> = parent.map(|p| {
        log.state.lock().unwrap().parent = p.shas;
        parent_shards = p.shards;
        (p.snap.id, p.id)
    });
    let list = file_list::path_beside(&tree.root).map(|dir| {
        let state = log.state.lock().unwrap();
        let known = |rel: &str| parent_files.is_none() || state.parent.get(rel).is_some();
        let cut = Cut {
            line_len: &file_list::line_len,
            unknown: &|e| e.kind == TreeEntryKind::File && !known(&e.rel),
            // Backups of a target follow one another: their start times differ.
            nonce: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            max_bytes: list_shards::max_shard_bytes(repo.config()),
        };
        let mut plan = ShardPlan::new(dir, &tree.entries, &cut);
        let stale = restamp_stale(
            &mut plan,
            &tree.entries,
            &parent_shards,
            &state.parent,
            cut.nonce,
        );
        tracing::debug!(target, stale, "shards of the parent's list made again");
        Arc::new(plan)
    });
    let shards = list.as_ref().map_or(0, |p| p.shards.len() as u64);
    let entries: SharedEntries = Arc::new(tree.entries);
    let source = TreeSource::new(
        tree.root,
        entries.clone(),
        tree.open,
        list.clone().map(|plan| (plan, files)),
        &log,
        ctx,
    );
    let paths = [source.root.clone()];
    ctx.progress
        .phase("archiving new and changed files: chunking, encrypting, storing");
    let saved = repo.archive(&opts, &source, snap, &paths);
    drop(source);
    // The archiver and the list are done with the entries: handed back, not copied.
    let entries = Arc::try_unwrap(entries).unwrap_or_else(|shared| (*shared).clone());
    let repo = repo.drop_index();
    let list_stored = match (&saved, &list) {
        (Ok(_), Some(plan)) => {
            let state = log.state.lock().unwrap();
            Some(check_stored(plan, &entries, &state, &parent_shards))
        }
        _ => None,
    };
    let saved = saved.map_err(|e| fail("writing the tree", e))?;
    let forget = |why: StoreError| {
        let _ = repo.delete_snapshots(&[saved.id]);
        Err(why)
    };
    if ctx.cancel.is_cancelled() {
        return forget(StoreError::Io {
            store: describe.to_string(),
            action: "writing",
            key: "a tree".into(),
            source: io::Error::other(crate::progress::Cancelled),
        });
    }
    let log = std::mem::take(&mut *log.state.lock().unwrap());
    if let Some((rel, why)) = log.failed.first() {
        return forget(StoreError::Other(format!(
            "{describe}: cannot read {rel}: {why} ({} file(s) could not be read)",
            log.failed.len()
        )));
    }
    let file_list = match list_stored {
        Some(Err(why)) => return forget(StoreError::Other(format!("{describe}: {why}"))),
        Some(Ok(facts)) => Some(facts),
        None => None,
    };
    let vanished = log.vanished.len() as u64;
    let read = log.done.len() as u64;
    let summary = saved.summary.clone().unwrap_or_default();
    let kept = files + symlinks - vanished;
    if summary.total_files_processed != kept + shards {
        return forget(StoreError::Other(format!(
            "{describe}: the tree was stored with {} of its {kept} files and links",
            summary.total_files_processed.saturating_sub(shards)
        )));
    }
    let mut written = TreeWritten {
        entries,
        sha256: FileHashes::default(),
        vanished: log
            .vanished
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        cut_short: log.short,
        facts: TreeFacts {
            parent: None,
            files_read: read,
            files_unchanged: files - vanished - read,
            file_list,
            ..TreeFacts::default()
        },
    };
    if let Some((p, id)) = parent_files {
        if saved.parent == Some(p) {
            written.facts.parent = Some(id);
            written.sha256.parent = log.parent;
        } else {
            // rustic_core falls back to no parent on some errors without saying so.
            tracing::warn!(target, parent = %id, "the previous backup could not be the parent: every file was read");
        }
    }
    if written.facts.files_unchanged > 0 && written.facts.parent.is_none() {
        return forget(StoreError::Other(format!(
            "{describe}: {} files were neither read nor found unchanged in a parent",
            written.facts.files_unchanged
        )));
    }
    // Files read now hash to what was read, whatever the parent's list said.
    written.sha256.read = log.done;
    Ok((repo, Stored { snap: saved }, written))
}

/// Save the stored snapshot again as the published backup; the published snapshot, and
/// the manifest's entries when they were left out of it. A file list stored with the
/// tree must be the manifest's entries, byte for byte; the description then carries the
/// manifest without them.
pub fn publish(
    repo: &Repository<OpenStatus>,
    stored: &Stored,
    mut manifest: Manifest,
) -> RusticResult<(SnapshotFile, Vec<FileEntry>)> {
    let apart = manifest
        .directory
        .as_ref()
        .and_then(|d| d.tree.as_ref())
        .and_then(|t| t.file_list.clone());
    let mut left_out = Vec::new();
    if let (Some(apart), Some(d)) = (apart, manifest.directory.as_mut()) {
        if file_list::facts_of(&d.entries, &apart) != apart {
            return Err(RusticError::new(
                ErrorKind::Internal,
                "the file list stored with the tree differs from the manifest's entries",
            ));
        }
        left_out = std::mem::take(&mut d.entries);
    }
    let mut snap = stored.snap.clone();
    snap.tags
        .remove_all(&[UNFINISHED_TAG.parse().expect("a tag")]);
    snap.tags.add(snapshots::TAG.to_string());
    snap.description = Some(snapshots::description_of(&manifest));
    let id_tag = snapshots::id_tag(&manifest.id);
    // The new snapshot's id is only known from the listing: the ids that were not there.
    let before: std::collections::HashSet<SnapshotId> = repo.list::<SnapshotId>()?.collect();
    repo.save_snapshots(vec![snap])?;
    let new: Vec<String> = repo
        .list::<SnapshotId>()?
        .filter(|id| !before.contains(id))
        .map(|id| id.to_string())
        .collect();
    let published = repo
        .get_snapshots(&new)?
        .into_iter()
        .find(|s| s.tags.contains(&id_tag) && s.tree == stored.snap.tree)
        .ok_or_else(|| {
            RusticError::new(
                ErrorKind::Internal,
                "the published snapshot is not found again",
            )
        })?;
    repo.delete_snapshots(&[stored.snap.id])?;
    Ok((published, left_out))
}

/// What happened to the files the archiver opened.
#[derive(Default)]
pub(super) struct ReadLog {
    pub(super) state: Mutex<LogState>,
    /// Signalled each time the archiver is done with a file, read or not.
    pub(super) settled: Condvar,
}

#[derive(Default)]
pub(super) struct LogState {
    /// SHA-256 of each file read to its end.
    pub(super) done: HashMap<String, String>,
    /// SHA-256 of each file of the parent backup, by path.
    pub(super) parent: FileShas,
    pub(super) vanished: HashSet<String>,
    short: Vec<String>,
    pub(super) failed: Vec<(String, String)>,
    /// The SHA-256 of the bytes handed to the archiver for each shard of the list it
    /// opened (the others it took from the parent).
    pub(super) list_handed: HashMap<usize, [u8; 32]>,
    /// Files the archiver is done with: read, failed, or found unchanged and not opened.
    pub(super) settled: u64,
}

impl ReadLog {
    fn settle(&self) {
        self.state.lock().unwrap().settled += 1;
        self.settled.notify_all();
    }
}

/// The tree as rustic_core's archiver reads it: nodes made one by one as it asks.
struct TreeSource {
    root: PathBuf,
    entries: Mutex<Option<Entries>>,
    size: u64,
}

impl TreeSource {
    fn new(
        root: PathBuf,
        entries: SharedEntries,
        open: crate::stores::backups::OpenFile,
        list: Option<(Arc<ShardPlan>, u64)>,
        log: &Arc<ReadLog>,
        ctx: &JobContext,
    ) -> TreeSource {
        let size = entries.iter().map(|e| e.size).sum();
        TreeSource {
            root: root.clone(),
            entries: Mutex::new(Some(Entries {
                entries,
                next: 0,
                list,
                list_nodes: None,
                root,
                open,
                log: log.clone(),
                progress: ctx.progress.clone(),
                cancel: ctx.cancel.clone(),
            })),
            size,
        }
    }
}

/// The entries of a tree, each made into a node when the archiver takes it, then the
/// file list.
struct Entries {
    entries: SharedEntries,
    next: usize,
    /// The file list's plan and how many files come before it.
    list: Option<(Arc<ShardPlan>, u64)>,
    list_nodes: Option<std::vec::IntoIter<ListNode>>,
    root: PathBuf,
    open: crate::stores::backups::OpenFile,
    log: Arc<ReadLog>,
    progress: Arc<dyn Progress>,
    cancel: Cancel,
}

impl Entries {
    /// The file list's next node: its folders and shards come last in the snapshot.
    fn list_entry(&mut self) -> Option<ReadSourceEntry<Opener>> {
        let (plan, files) = self.list.clone()?;
        let nodes = self
            .list_nodes
            .get_or_insert_with(|| plan.nodes().into_iter());
        let ListNode { path, node, shard } = nodes.next()?;
        Some(ReadSourceEntry {
            node,
            path,
            open: shard.map(|shard| {
                Opener::List(ListOpen {
                    plan,
                    shard,
                    files,
                    entries: self.entries.clone(),
                    log: self.log.clone(),
                    cancel: self.cancel.clone(),
                })
            }),
        })
    }
}

impl Iterator for Entries {
    type Item = RusticResult<ReadSourceEntry<Opener>>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(e) = self.entries.get(self.next) else {
            return self.list_entry().map(Ok);
        };
        self.next += 1;
        let path = if e.rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(&e.rel)
        };
        let name = path.file_name().unwrap_or(OsStr::new("/")).to_os_string();
        let open = (e.kind == TreeEntryKind::File).then(|| {
            Opener::File(OpenLater {
                rel: e.rel.clone(),
                size: e.size,
                open: self.open.clone(),
                log: self.log.clone(),
                progress: self.progress.clone(),
                cancel: self.cancel.clone(),
            })
        });
        Some(Ok(ReadSourceEntry {
            node: node_of(&name, e),
            path,
            open,
        }))
    }
}

impl ReadSource for TreeSource {
    type Open = Opener;
    type Iter = std::iter::Flatten<std::option::IntoIter<Entries>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(Some(self.size))
    }

    fn entries(&self) -> Self::Iter {
        self.entries.lock().unwrap().take().into_iter().flatten()
    }
}

/// What the archiver opens: a file of the tree, or the file list after them.
pub enum Opener {
    File(OpenLater),
    List(ListOpen),
}

impl ReadSourceOpen for Opener {
    type Reader = Box<dyn Read + Send>;

    fn open(self) -> RusticResult<Box<dyn Read + Send>> {
        match self {
            Opener::File(f) => Ok(Box::new(f.open()?)),
            Opener::List(l) => Ok(Box::new(l.open().map_err(|e| {
                RusticError::with_source(ErrorKind::InputOutput, "cannot make the file list", e)
            })?)),
        }
    }
}

/// A file of the tree, opened only if the archiver needs its content.
pub struct OpenLater {
    rel: String,
    size: u64,
    open: crate::stores::backups::OpenFile,
    log: Arc<ReadLog>,
    progress: Arc<dyn Progress>,
    cancel: Cancel,
}

/// Whether opened or not (unchanged since the parent), the archiver is done with a file
/// when its opener is dropped (a reader keeps its opener to its end).
impl Drop for OpenLater {
    fn drop(&mut self) {
        self.log.settle();
    }
}

impl OpenLater {
    fn open(self) -> RusticResult<HashingFile> {
        match (self.open)(&self.rel) {
            Ok(file) => Ok(HashingFile {
                file,
                left: self.size,
                short: false,
                hasher: Sha256::new(),
                later: self,
            }),
            Err(e) => {
                let mut log = self.log.state.lock().unwrap();
                if e.kind() == io::ErrorKind::NotFound {
                    // Deleted between the listing and its reading: not in the backup.
                    log.vanished.insert(self.rel.clone());
                } else {
                    log.failed.push((self.rel.clone(), e.to_string()));
                }
                Err(RusticError::with_source(
                    ErrorKind::InputOutput,
                    "cannot open a file of the tree",
                    e,
                ))
            }
        }
    }
}

/// A file's first `size` bytes (zeros after its end if it ends sooner, as the tar copy
/// does), hashed as read; the hash goes to the log at the end.
pub struct HashingFile {
    file: Box<dyn Read + Send>,
    left: u64,
    short: bool,
    hasher: Sha256,
    later: OpenLater,
}

impl HashingFile {
    fn record_failure(&self, e: &io::Error) {
        let mut log = self.later.log.state.lock().unwrap();
        log.failed.push((self.later.rel.clone(), e.to_string()));
    }
}

impl Read for HashingFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Err(e) = self.later.cancel.check() {
            self.record_failure(&e);
            return Err(e);
        }
        if self.left == 0 {
            let sha = hex::encode(std::mem::take(&mut self.hasher).finalize());
            let mut log = self.later.log.state.lock().unwrap();
            if !log.done.contains_key(&self.later.rel) {
                if self.short {
                    log.short.push(self.later.rel.clone());
                }
                log.done.insert(self.later.rel.clone(), sha);
            }
            return Ok(0);
        }
        let want = out.len().min(self.left.min(usize::MAX as u64) as usize);
        let mut n = if self.short {
            0
        } else {
            match self.file.read(&mut out[..want]) {
                Ok(n) => n,
                Err(e) => {
                    self.record_failure(&e);
                    return Err(e);
                }
            }
        };
        if n == 0 {
            self.short = true;
            n = want;
            out[..n].fill(0);
        }
        self.hasher.update(&out[..n]);
        self.left -= n as u64;
        self.later.progress.advance(n as u64);
        Ok(n)
    }
}
