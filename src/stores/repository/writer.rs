//! Writing one backup as one snapshot. The content is spooled to an unnamed temporary
//! file first: a restic tree records every file's size, and a stream's size is known
//! only at its end (restic restores a file recorded as empty as empty). At `publish`,
//! rustic_core's archiver reads the spool (chunking, dedup, compression, encryption) into
//! a snapshot tagged pending; then the final snapshot, with the manifest, is saved and
//! the pending one forgotten, so a backup is listed only when whole. An abandoned writer
//! leaves nothing in the repository; the spool vanishes with its file handle.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::iter::{Once, once};
use std::path::PathBuf;
use std::sync::Mutex;

use rustic_core::repofile::{Metadata, Node, NodeType, SnapshotFile};
use rustic_core::{
    BackupOptions, IndexedIdsStatus, ParentOptions, ReadSource, ReadSourceEntry, Repository,
    RusticResult,
};

use super::gate::WriterPass;
use super::snapshots::{self, PENDING};
use crate::progress::{Cancel, JobContext, Progress};
use crate::stores::StoreError;
use crate::stores::backups::{BackupWriter, NewBackup};
use crate::stores::manifest::Manifest;

pub struct SnapshotWriter {
    describe: String,
    new: NewBackup,
    repo: Repository<IndexedIdsStatus>,
    spool: BufWriter<File>,
    /// Keeps prunes of this repository away until the backup is published or dropped.
    _pass: WriterPass,
}

impl SnapshotWriter {
    pub fn start(
        describe: String,
        repo: Repository<IndexedIdsStatus>,
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
            repo,
            spool: BufWriter::with_capacity(1 << 20, spool),
            _pass: pass,
        })
    }
}

/// The snapshot the archiver saves: tagged as lifeboat's, and pending.
fn pending_snapshot(new: &NewBackup) -> SnapshotFile {
    let mut snap = SnapshotFile {
        hostname: snapshots::hostname(),
        program_version: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        ..SnapshotFile::default()
    };
    for tag in [
        snapshots::TAG.to_string(),
        PENDING.to_string(),
        snapshots::target_tag(&new.target),
        snapshots::id_tag(&new.id),
    ] {
        snap.tags.add(tag);
    }
    snap
}

impl Write for SnapshotWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.spool.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.spool.flush()
    }
}

impl BackupWriter for SnapshotWriter {
    fn publish(
        self: Box<Self>,
        mut manifest: Manifest,
        ctx: &JobContext,
    ) -> Result<Manifest, StoreError> {
        let SnapshotWriter {
            describe,
            new,
            repo,
            spool,
            _pass,
        } = *self;
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
        let pending = repo
            .archive(&opts, &source, pending_snapshot(&new), &paths)
            .map_err(|e| fail("writing", &super::one_line(&e)))?;
        let summary = pending.summary.clone().unwrap_or_default();
        // Cancelled up to here (even after the last byte was read), or a file the archiver
        // could not read (it skips those and saves the rest, an empty snapshot): never
        // publish that.
        if summary.total_files_processed != 1 || ctx.cancel.is_cancelled() {
            let _ = repo.delete_snapshots(&[pending.id]);
            if ctx.cancel.is_cancelled() {
                return Err(StoreError::Io {
                    store: describe.clone(),
                    action: "writing",
                    key: format!("backup {}", new.id),
                    source: io::Error::other(crate::progress::Cancelled),
                });
            }
            return Err(fail("writing", &"the archiver did not store the content"));
        }
        manifest.size_bytes = summary.data_added_packed;
        // Chunking, encrypting and storing are most of a repository backup's time.
        let finished = chrono::Utc::now();
        manifest.duration_seconds = (finished - manifest.created()).as_seconds_f64().max(0.0);
        manifest.finished_at = crate::db::time_text(finished);
        let mut published = pending.clone();
        published.tags = rustic_core::StringList::default();
        for tag in pending.tags.iter().filter(|t| t.as_str() != PENDING) {
            published.tags.add(tag.clone());
        }
        published.description = Some(snapshots::description_of(&manifest));
        let failed = |e: Box<rustic_core::RusticError>| fail("publishing", &super::one_line(&e));
        repo.save_snapshots(vec![published]).map_err(failed)?;
        // The pending snapshot goes only once the final one is saved; if this step is cut
        // short, the next backup of the target forgets it (`clean_leftovers`).
        repo.delete_snapshots(&[pending.id]).map_err(failed)?;
        let id_tag = snapshots::id_tag(&new.id);
        let saved = repo
            .get_all_snapshots()
            .map_err(failed)?
            .into_iter()
            .filter(|s| snapshots::is_ours(s) && !snapshots::is_pending(s))
            .find(|s| {
                s.tags.contains(&id_tag)
                    && snapshots::target_of(s).as_deref() == Some(new.target.as_str())
            })
            .ok_or_else(|| fail("publishing", &"it was saved but is not listed"))?;
        snapshots::manifest_of(&saved).map_err(|why| fail("publishing", &why))
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
