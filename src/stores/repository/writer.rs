//! Writing one backup as one snapshot. A tree handed over entry by entry is stored as a
//! native tree (`tree_write`) while the source reads it, and published with its manifest.
//! Any other content is spooled to an unnamed temporary
//! file first: a restic tree records every file's size, and a stream's size is known
//! only at its end (restic restores a file recorded as empty as empty); by then the
//! manifest is complete too. At `publish`, rustic_core's archiver reads the spool
//! (chunking, dedup, compression, encryption), writes the packs and index, and saves the
//! snapshot with the manifest last: that one file is the commit. An abandoned writer
//! leaves nothing in the repository; the spool vanishes with its file handle.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::iter::{Once, once};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustic_core::repofile::{Metadata, Node, NodeType, SnapshotFile};
use rustic_core::{
    BackupOptions, IndexedFullStatus, OpenStatus, ParentOptions, ReadSource, ReadSourceEntry,
    Repository, RusticResult,
};

use super::gate::WriterPass;
use super::parent;
use super::snapshots;
use super::tree_write;
use super::unchanged;
use crate::progress::{Cancel, JobContext, Progress};
use crate::stores::StoreError;
use crate::stores::backups::{BackupWriter, NewBackup, Tree, TreeEntry, TreeWriter, TreeWritten};
use crate::stores::manifest::Manifest;

pub struct SnapshotWriter {
    describe: String,
    new: NewBackup,
    /// `None` only while a tree is being stored, or while its index is read (`indexed`).
    repo: Option<Repository<OpenStatus>>,
    /// The repository with its index read to tell which files are unchanged, kept for
    /// storing the tree.
    indexed: Option<Repository<IndexedFullStatus>>,
    /// The parent `unchanged` chose for a tree at this root (`None`: no parent), which
    /// `write_tree` then uses, so what it said is unchanged is what is not read.
    parent: Option<(PathBuf, Option<parent::Parent>)>,
    spool: Option<BufWriter<File>>,
    /// A tree stored natively, its snapshot saved but not published yet.
    stored: Option<tree_write::Stored>,
    /// Keeps prunes of this repository away until the backup is published or dropped.
    _pass: WriterPass,
}

impl SnapshotWriter {
    pub fn start(
        describe: String,
        repo: Repository<OpenStatus>,
        new: &NewBackup,
        pass: WriterPass,
    ) -> Result<SnapshotWriter, StoreError> {
        let spool = tempfile::tempfile().map_err(|source| StoreError::Io {
            store: describe.clone(),
            action: "creating the spool file (in TMPDIR) of",
            key: format!("backup {}", new.id),
            source,
        })?;
        Ok(SnapshotWriter {
            describe,
            new: new.clone(),
            repo: Some(repo),
            indexed: None,
            parent: None,
            spool: Some(BufWriter::with_capacity(1 << 20, spool)),
            stored: None,
            _pass: pass,
        })
    }
}

/// A tree stored but never published (a backup refused or failed after the copy):
/// its snapshot is forgotten again.
impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if let (Some(repo), Some(stored)) = (&self.repo, self.stored.take()) {
            let _ = repo.delete_snapshots(&[stored.snap.id]);
        }
    }
}

impl SnapshotWriter {
    /// The repository with its whole index read (once per backup): the parent's file
    /// list is read with it.
    fn indexed(&mut self) -> Result<Repository<IndexedFullStatus>, StoreError> {
        if let Some(indexed) = self.indexed.take() {
            return Ok(indexed);
        }
        let repo = self.repo.take().ok_or_else(|| {
            StoreError::Other(format!(
                "{}: the repository could not be read earlier in this backup",
                self.describe
            ))
        })?;
        repo.to_indexed().map_err(|e| {
            StoreError::Other(format!(
                "{}: reading the index: {}",
                self.describe,
                super::one_line(&e)
            ))
        })
    }

    /// The parent chosen for a tree at `root` by [`unchanged`](TreeWriter::unchanged),
    /// if it chose one for that root.
    fn chosen_for(&mut self, root: &Path) -> Option<Option<parent::Parent>> {
        match self.parent.take() {
            Some((at, parent)) if at == root => Some(parent),
            _ => None,
        }
    }
}

impl TreeWriter for SnapshotWriter {
    fn unchanged(
        &mut self,
        root: &Path,
        entries: &[TreeEntry],
        _ctx: &JobContext,
    ) -> Result<HashSet<String>, StoreError> {
        let repo = self.indexed()?;
        let target = self.new.target.clone();
        let found = parent::choose_parent(&repo, &target, root).and_then(|parent| {
            let same = match &parent {
                Some(p) => unchanged::unchanged(&repo, p.snap.tree, root, entries)?,
                None => HashSet::new(),
            };
            Ok((parent, same))
        });
        self.indexed = Some(repo);
        // `write_tree` takes its unchanged files from this same parent, or from none.
        let (parent, same) = found.unwrap_or_else(|e| {
            tracing::warn!(
                target = %target,
                "the previous backup or its tree cannot be read, so there is no parent and every file is read: {}",
                super::one_line(&e)
            );
            (None, HashSet::new())
        });
        self.parent = Some((root.to_path_buf(), parent));
        Ok(same)
    }

    fn write_tree(&mut self, tree: Tree, ctx: &JobContext) -> Result<TreeWritten, StoreError> {
        let clock = std::time::Instant::now();
        let repo = self.indexed()?;
        tracing::debug!(
            ms = clock.elapsed().as_millis() as u64,
            "tree: the index is read"
        );
        let parent = match self.chosen_for(&tree.root) {
            Some(parent) => parent,
            None => parent::choose_parent(&repo, &self.new.target, &tree.root).map_err(|e| {
                StoreError::Other(format!(
                    "{}: listing snapshots: {}",
                    self.describe,
                    super::one_line(&e)
                ))
            })?,
        };
        tracing::debug!(
            ms = clock.elapsed().as_millis() as u64,
            "tree: the parent is chosen"
        );
        let snap = snapshot_of(&self.new, None);
        // The tree is the content: no spool.
        self.spool = None;
        // On failure the store forgot whatever it saved; the backup fails with it.
        let (repo, stored, written) = tree_write::store(
            &self.describe,
            repo,
            parent,
            &self.new.target,
            snap,
            tree,
            ctx,
        )?;
        self.repo = Some(repo);
        self.stored = Some(stored);
        tracing::debug!(ms = clock.elapsed().as_millis() as u64, "tree: stored");
        Ok(written)
    }
}

/// The snapshot the archiver saves: tagged as lifeboat's, the manifest as its
/// description (a native tree's is added when it is published). The facts only the
/// save knows (bytes added, when it ended, the id) are read back from the saved snapshot.
fn snapshot_of(new: &NewBackup, manifest: Option<&Manifest>) -> SnapshotFile {
    let mut snap = SnapshotFile {
        hostname: snapshots::hostname(),
        program_version: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        description: manifest.map(snapshots::description_of),
        ..SnapshotFile::default()
    };
    let ours = if manifest.is_some() {
        snapshots::TAG
    } else {
        tree_write::UNFINISHED_TAG
    };
    for tag in [
        ours.to_string(),
        snapshots::target_tag(&new.target),
        snapshots::id_tag(&new.id),
    ] {
        snap.tags.add(tag);
    }
    snap
}

impl Write for SnapshotWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.spool {
            Some(spool) => spool.write(data),
            None => Err(io::Error::other(
                "a tree was stored: no stream goes with it",
            )),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.spool.as_mut().map_or(Ok(()), |s| s.flush())
    }
}

impl BackupWriter for SnapshotWriter {
    fn as_tree(&mut self) -> Option<&mut dyn TreeWriter> {
        Some(self)
    }

    fn publish(
        mut self: Box<Self>,
        manifest: Manifest,
        ctx: &JobContext,
    ) -> Result<Manifest, StoreError> {
        if self.stored.is_some() {
            return self.publish_tree(manifest, ctx);
        }
        let describe = self.describe.clone();
        let new = self.new.clone();
        let repo = self
            .repo
            .take()
            .expect("the repository is there between steps");
        let spool = self.spool.take().expect("a stream was spooled");
        let fail = |doing: &str, why: &dyn std::fmt::Display| {
            StoreError::Other(format!("{describe}: {doing} backup {}: {why}", new.id))
        };
        let mut spool = spool.into_inner().map_err(|e| fail("spooling", &e))?;
        let size = spool
            .stream_position()
            .and_then(|n| spool.rewind().map(|()| n))
            .map_err(|e| fail("spooling", &e))?;
        ctx.progress.phase("chunking, encrypting and storing");
        ctx.progress.total(Some(size));
        let source = SpoolSource {
            name: new.file_name.clone(),
            size,
            reader: Mutex::new(Some(SpoolReader {
                file: spool,
                progress: ctx.progress.clone(),
                cancel: ctx.cancel.clone(),
            })),
        };
        // No parent: the spool is always read in full; chunks already stored are found
        // in the index and not stored again.
        let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
        let paths = [PathBuf::from(&new.file_name)];
        // The index is read now, not at `begin`: chunks other backups stored meanwhile
        // are found and not stored again.
        let repo = repo
            .to_indexed_ids()
            .map_err(|e| fail("reading the index for", &super::one_line(&e)))?;
        let saved = repo
            .archive(&opts, &source, snapshot_of(&new, Some(&manifest)), &paths)
            .map_err(|e| fail("writing", &super::one_line(&e)))?;
        // Saving the snapshot was the commit. Cancelled meanwhile (even after the last
        // byte was read), or a file the archiver could not read (it skips those and saves
        // the rest): forget it again. Were that cut short, the snapshot's summary, which
        // does not match its manifest, keeps it from ever counting as a backup.
        let whole = snapshots::manifest_of(&saved);
        if whole.is_err() || ctx.cancel.is_cancelled() {
            let _ = repo.delete_snapshots(&[saved.id]);
            if ctx.cancel.is_cancelled() {
                return Err(StoreError::Io {
                    store: describe.clone(),
                    action: "writing",
                    key: format!("backup {}", new.id),
                    source: io::Error::other(crate::progress::Cancelled),
                });
            }
        }
        whole.map_err(|why| fail("writing", &why))
    }
}

impl SnapshotWriter {
    /// Publish a stored tree: its snapshot saved again with the manifest (the commit).
    fn publish_tree(
        mut self: Box<Self>,
        mut manifest: Manifest,
        ctx: &JobContext,
    ) -> Result<Manifest, StoreError> {
        let stored = self.stored.take().expect("a tree was stored");
        let repo = self
            .repo
            .take()
            .expect("the repository is there between steps");
        let fail = |doing: &str, why: &dyn std::fmt::Display| {
            StoreError::Other(format!(
                "{}: {doing} backup {}: {why}",
                self.describe, self.new.id
            ))
        };
        let forget = |why: StoreError| {
            let _ = repo.delete_snapshots(&[stored.snap.id]);
            Err(why)
        };
        if ctx.cancel.is_cancelled() {
            return forget(fail("writing", &crate::progress::Cancelled));
        }
        // A tree's content is its files; it is read back as a tar stream made from the
        // tree, checked file by file, so no whole-stream checksum applies.
        manifest.content_bytes = manifest
            .directory
            .iter()
            .flat_map(|d| &d.entries)
            .filter_map(|e| e.size)
            .sum();
        manifest.content_sha256 = String::new();
        if !manifest.is_native_tree() {
            return forget(fail("writing", &"the manifest does not describe a tree"));
        }
        ctx.progress.phase("publishing the snapshot");
        // The published manifest is read back from the snapshot, with the entries its
        // description left out (kept in the tree) moved back in.
        let (saved, left_out) = match tree_write::publish(&repo, &stored, manifest) {
            Ok(s) => s,
            Err(e) => return forget(fail("publishing", &super::one_line(&e))),
        };
        let mut published = snapshots::manifest_of(&saved).map_err(|why| {
            let _ = repo.delete_snapshots(&[saved.id]);
            fail("writing", &why)
        })?;
        if let Some(d) = published
            .directory
            .as_mut()
            .filter(|_| !left_out.is_empty())
        {
            d.entries = left_out;
        }
        Ok(published)
    }
}

/// The archiver's view of the spool: one file of known size, opened once.
struct SpoolSource {
    name: String,
    size: u64,
    reader: Mutex<Option<SpoolReader>>,
}

impl ReadSource for SpoolSource {
    type Open = SpoolReader;
    type Iter = Once<RusticResult<ReadSourceEntry<SpoolReader>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(Some(self.size))
    }

    fn entries(&self) -> Self::Iter {
        let meta = Metadata {
            mode: Some(0o600),
            mtime: Some(rustic_core::jiff::Timestamp::now()),
            size: self.size,
            ..Metadata::default()
        };
        let node = Node::new_node(std::ffi::OsStr::new(&self.name), NodeType::File, meta);
        once(Ok(ReadSourceEntry {
            path: PathBuf::from(&self.name),
            node,
            open: self.reader.lock().unwrap().take(),
        }))
    }
}

/// The spool as the archiver reads it, reporting progress and stopping when cancelled.
pub struct SpoolReader {
    file: File,
    progress: std::sync::Arc<dyn Progress>,
    cancel: Cancel,
}

impl Read for SpoolReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.cancel.check()?;
        let n = self.file.read(out)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
