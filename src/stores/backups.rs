//! The one shape every action talks to: where a target's backups are kept. Object stores
//! (local, s3) get it from `objects::ObjectBackups` (a zstd artifact and a manifest per
//! backup); the restic-format repository implements it with one snapshot per backup.
//! Actions never ask which kind of store they hold.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::StoreError;
use super::discover::Discovered;
use super::manifest::Manifest;
use crate::progress::JobContext;

/// What a new backup is, before any byte of it is written.
#[derive(Debug, Clone)]
pub struct NewBackup {
    pub target: String,
    pub id: String,
    /// The target kind, as in the manifest: `sqlite` or `directory`.
    pub kind: crate::config::TargetKind,
    /// What an artifact of the content is called after its id (before `.zst`): `sqlite`
    /// for a database, `tar` for a tree.
    pub artifact_ext: &'static str,
    /// The name the content has inside the backup: the database's file name for sqlite
    /// (`gitea.db`), `<target>.tar` for a directory.
    pub file_name: String,
}

/// A backup being written: the content goes in uncompressed (the database file, the tar
/// of a directory). Nothing is listed until `publish` returns; dropping the writer
/// without publishing leaves at most leftovers that `clean_leftovers` removes.
pub trait BackupWriter: Write + Send {
    /// Make the backup durable and listed. `manifest` carries everything but the stored
    /// facts (`artifact`, `compression`, `size_bytes`, `sha256`), which the store fills
    /// in; the published manifest is returned. Stores that do their heavy work here
    /// (the repository chunks and encrypts at publish) report it to `ctx` and stop when
    /// it is cancelled.
    fn publish(
        self: Box<Self>,
        manifest: Manifest,
        ctx: &JobContext,
    ) -> Result<Manifest, StoreError>;

    /// A store that keeps a tree as native nodes takes it entry by entry here instead of
    /// as one stream; `None` for stores that keep streams.
    fn as_tree(&mut self) -> Option<&mut dyn TreeWriter> {
        None
    }
}

/// Taking a tree entry by entry (a repository store's native trees).
pub trait TreeWriter {
    /// The files among `entries` (a tree rooted at `root`, as [`Tree`] has them) that
    /// [`write_tree`](TreeWriter::write_tree) will take unchanged from the store's
    /// previous tree of the same target without reading them: a source that has to fetch
    /// what it hands over (a tree on another host) fetches only the rest. Empty when
    /// there is no previous tree.
    fn unchanged(
        &mut self,
        root: &std::path::Path,
        entries: &[TreeEntry],
        ctx: &JobContext,
    ) -> Result<std::collections::HashSet<String>, StoreError>;

    /// Store `tree`, reading the content of the files that are new or changed since the
    /// store's previous tree of the same target; the rest are not read. Stopped by `ctx`'s
    /// cancel. Nothing is listed until the writer is published.
    fn write_tree(&mut self, tree: Tree, ctx: &JobContext) -> Result<TreeWritten, StoreError>;
}

/// A tree as a source hands it over: its entries, parents before children and siblings
/// sorted by name (byte order), with how to read a file's content.
pub struct Tree {
    /// The tree's root as it is named in the backup (the target's path).
    pub root: PathBuf,
    /// The root directory itself first (`rel` empty), then every entry.
    pub entries: Vec<TreeEntry>,
    /// Open the file at a relative path for reading.
    pub open: OpenFile,
}

/// Opens a tree's file (by its relative path) for reading, from any thread.
pub type OpenFile = Arc<dyn Fn(&str) -> std::io::Result<Box<dyn Read + Send>> + Send + Sync>;

/// One entry of a [`Tree`], as stat-ed before it is read.
#[derive(Debug, Clone)]
pub struct TreeEntry {
    /// Relative to the root, `/`-separated; empty for the root itself.
    pub rel: String,
    pub kind: TreeEntryKind,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Seconds and nanoseconds since the epoch.
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub inode: u64,
    pub device: u64,
    pub links: u64,
}

impl TreeEntry {
    /// The entry as the manifest lists it (its path moved, not copied); `sha256` for
    /// files.
    pub fn into_listed(self, sha256: Option<String>) -> super::manifest::FileEntry {
        let (kind, link) = match self.kind {
            TreeEntryKind::Dir => ("dir", None),
            TreeEntryKind::File => ("file", None),
            TreeEntryKind::Symlink(to) => ("symlink", Some(to)),
        };
        super::manifest::FileEntry {
            size: (kind == "file").then_some(self.size),
            path: self.rel,
            kind: kind.into(),
            mode: self.mode,
            sha256,
            link,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TreeEntryKind {
    Dir,
    File,
    Symlink(String),
}

/// What storing a tree did.
#[derive(Debug, Default)]
pub struct TreeWritten {
    /// The tree's entries, handed back (the root first): the manifest's list is made
    /// from them once the tree is stored, so no second list is held while it is.
    pub entries: Vec<TreeEntry>,
    /// The SHA-256 of every file, by relative path: of the bytes read for files read,
    /// from the parent backup's list for files taken unchanged.
    pub sha256: super::file_hashes::FileHashes,
    /// Files that were gone when they were to be read (not in the backup).
    pub vanished: Vec<String>,
    /// Files that ended before their stat-ed size while read (padded with zeros).
    pub cut_short: Vec<String>,
    /// The parent backup's id, the files read, the files taken unchanged.
    pub facts: crate::stores::manifest::TreeFacts,
}

pub trait BackupStore: Send + Sync {
    /// A short description for messages, e.g. `local store "local" (/var/backups)`.
    fn describe(&self) -> String;

    /// Start writing a backup.
    fn begin(&self, new: &NewBackup) -> Result<Box<dyn BackupWriter>, StoreError>;

    /// Every complete backup of `target`, newest first, and a line for each entry that
    /// looked like a backup but could not be read (named, never hidden).
    fn backups(&self, target: &str) -> Result<(Vec<Manifest>, Vec<String>), StoreError>;

    /// A backup's content exactly as it was written. Reading it to the end also checks
    /// what the store can check by itself (stored checksums, the repository's MACs); a
    /// mismatch is an `InvalidData` I/O error. A missing backup is `StoreError::NotFound`.
    fn read(&self, m: &Manifest) -> Result<Box<dyn Read + Send>, StoreError>;

    /// Like [`read`](BackupStore::read), for a partial restore: only the entries at or
    /// under `wanted` (relative paths) and the directories above them need be in it.
    /// Stores that cannot narrow a read return the whole content.
    fn read_paths(
        &self,
        m: &Manifest,
        _wanted: &[String],
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        self.read(m)
    }

    /// `m` with its per-file list read into `entries` when the store keeps the list
    /// apart from the manifests it lists (a repository store keeps it in the backup's
    /// tree); checked against what the manifest records of it.
    fn with_file_list(&self, m: Manifest) -> Result<Manifest, StoreError> {
        match m.file_list_apart() {
            None => Ok(m),
            Some(_) => Err(StoreError::Other(format!(
                "{}: backup {} keeps its file list apart, which this store cannot read",
                self.describe(),
                m.id
            ))),
        }
    }

    /// Forget one backup: it is no longer listed. Space may only come back at `reclaim`.
    fn remove(&self, m: &Manifest) -> Result<(), StoreError>;

    /// Bytes that removing `doomed` (and reclaiming) would free, for a prune plan.
    fn bytes_freed(&self, doomed: &[Manifest]) -> Result<u64, StoreError> {
        Ok(doomed.iter().map(|m| m.size_bytes).sum())
    }

    /// After removals: give back the space no listed backup needs any more. Returns the
    /// bytes freed. Object stores free space at `remove` and return 0 here.
    fn reclaim(&self, _ctx: &JobContext) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Remove what interrupted backups of `target` left behind; returns how many pieces.
    /// Call it only under the target's lock.
    fn clean_leftovers(&self, target: &str) -> Result<usize, StoreError>;

    /// Every complete backup the store holds, found from the store alone (catalog rebuild).
    fn discover(&self) -> Result<Discovered, StoreError>;

    /// How many backups the store seems to hold, as cheaply as the store can tell (for the
    /// empty-catalog notice at start; nothing needs to be read or checked).
    fn count(&self) -> Result<usize, StoreError> {
        Ok(self.discover()?.backups.len())
    }

    /// The store's own consistency check beyond single backups, as a list of problems;
    /// `read_data` reads every stored byte. Object stores have none of their own.
    fn check(&self, _read_data: bool, _ctx: &JobContext) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    /// Create the store's structure if it has one (a repository's keys and config).
    /// Returns false when it already existed. Object stores need nothing.
    fn init(&self) -> Result<bool, StoreError> {
        Ok(false)
    }
}
