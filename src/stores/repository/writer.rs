//! Writing one backup as one snapshot: the content streams through a bounded channel
//! into rustic_core's archiver (chunking, dedup, compression, encryption) on a thread of
//! its own. The snapshot it saves is tagged pending; `publish` saves the final snapshot
//! with the manifest and forgets the pending one, so a backup is listed only when whole.

use std::io::{self, Read, Write};
use std::iter::{Once, once};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rustic_core::repofile::{Metadata, Node, NodeType, SnapshotFile};
use rustic_core::{
    BackupOptions, IndexedIdsStatus, ParentOptions, ReadSource, ReadSourceEntry, Repository,
    RusticResult,
};

use super::gate::WriterPass;
use super::snapshots::{self, PENDING};
use crate::stores::backups::{BackupWriter, NewBackup};
use crate::stores::manifest::Manifest;
use crate::stores::StoreError;

/// Bytes handed to the archiver at a time, and how many such pieces may wait: memory on
/// the way in stays at a few MiB whatever the size of the backup.
const PIECE: usize = 1 << 20;
const PIECES_WAITING: usize = 4;

enum Piece {
    Data(Vec<u8>),
    /// The content is complete. A channel closed without it means the backup was
    /// abandoned, and the archiver must not save what it got as if it were whole.
    End,
}

type Archived = (Repository<IndexedIdsStatus>, RusticResult<SnapshotFile>);

pub struct SnapshotWriter {
    describe: String,
    new: NewBackup,
    buf: Vec<u8>,
    send: Option<SyncSender<Piece>>,
    archiver: Option<JoinHandle<Archived>>,
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
        let (send, recv) = sync_channel(PIECES_WAITING);
        let source = ChannelSource {
            name: new.file_name.clone(),
            reader: Mutex::new(Some(ChannelReader {
                recv,
                current: Vec::new(),
                pos: 0,
                ended: false,
            })),
        };
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
        // No parent: the content is a stream, so it is always read and chunked in full;
        // unchanged chunks are still found in the index and not stored again.
        let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
        let paths = vec![PathBuf::from(&new.file_name)];
        let archiver = std::thread::Builder::new()
            .name("lifeboat-archive".into())
            .spawn(move || {
                let saved = repo.archive(&opts, &source, snap, &paths);
                (repo, saved)
            })
            .map_err(|e| StoreError::Other(format!("{describe}: starting the archiver: {e}")))?;
        Ok(SnapshotWriter {
            describe,
            new: new.clone(),
            buf: Vec::with_capacity(PIECE),
            send: Some(send),
            archiver: Some(archiver),
            _pass: pass,
        })
    }

    fn send(&mut self, piece: Piece) -> io::Result<()> {
        let gone = match &self.send {
            Some(send) => send.send(piece).is_err(),
            None => true,
        };
        if gone {
            // The archiver stopped taking content: it failed; say why.
            let why = match self.finish_archiver() {
                Ok((_, Err(e))) => e.to_string(),
                Ok((_, Ok(_))) => "the archiver stopped early".to_string(),
                Err(e) => e.to_string(),
            };
            return Err(io::Error::other(format!(
                "{}: writing backup {}: {why}",
                self.describe, self.new.id
            )));
        }
        Ok(())
    }

    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.send(Piece::Data(piece))
    }

    fn finish_archiver(&mut self) -> Result<Archived, StoreError> {
        self.send = None;
        let handle = self
            .archiver
            .take()
            .ok_or_else(|| StoreError::Other(format!("{}: archiver already finished", self.describe)))?;
        handle
            .join()
            .map_err(|_| StoreError::Other(format!("{}: the archiver panicked", self.describe)))
    }
}

impl Write for SnapshotWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = PIECE - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.send_buffered()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffered()
    }
}

impl BackupWriter for SnapshotWriter {
    fn publish(mut self: Box<Self>, mut manifest: Manifest) -> Result<Manifest, StoreError> {
        let io_err = |describe: &str, id: &str, e: io::Error| StoreError::Io {
            store: describe.to_string(),
            action: "writing",
            key: format!("backup {id}"),
            source: e,
        };
        self.send_buffered()
            .map_err(|e| io_err(&self.describe, &self.new.id, e))?;
        self.send(Piece::End)
            .map_err(|e| io_err(&self.describe, &self.new.id, e))?;
        let (repo, saved) = self.finish_archiver()?;
        let pending = saved.map_err(|e| {
            StoreError::Other(format!(
                "{}: writing backup {}: {e}",
                self.describe, self.new.id
            ))
        })?;
        let summary = pending.summary.clone().unwrap_or_default();
        if summary.total_files_processed != 1 {
            // The archiver skips a file it could not read and saves the rest: here that
            // would be an empty snapshot. Never publish it.
            let _ = repo.delete_snapshots(&[pending.id]);
            return Err(StoreError::Other(format!(
                "{}: backup {}: the archiver did not store the content",
                self.describe, self.new.id
            )));
        }
        manifest.size_bytes = summary.data_added_packed;
        let mut published = pending.clone();
        published.tags = rustic_core::StringList::default();
        for tag in pending.tags.iter().filter(|t| t.as_str() != PENDING) {
            published.tags.add(tag.clone());
        }
        published.description = Some(snapshots::description_of(&manifest));
        let fail = |e: Box<rustic_core::RusticError>| {
            StoreError::Other(format!(
                "{}: publishing backup {}: {e}",
                self.describe, self.new.id
            ))
        };
        repo.save_snapshots(vec![published]).map_err(fail)?;
        // The pending snapshot goes only once the final one is saved; if this step is cut
        // short, the next backup of the target forgets it (`clean_leftovers`).
        repo.delete_snapshots(&[pending.id]).map_err(fail)?;
        let saved = repo
            .get_all_snapshots()
            .map_err(fail)?
            .into_iter()
            .filter(|s| snapshots::is_ours(s) && !snapshots::is_pending(s))
            .find(|s| s.tags.contains(&snapshots::id_tag(&self.new.id))
                && snapshots::target_of(s).as_deref() == Some(self.new.target.as_str()))
            .ok_or_else(|| {
                StoreError::Other(format!(
                    "{}: backup {} was saved but is not listed",
                    self.describe, self.new.id
                ))
            })?;
        snapshots::manifest_of(&saved).map_err(|why| {
            StoreError::Other(format!("{}: backup {}: {why}", self.describe, self.new.id))
        })
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        // Abandoned (cancelled, failed): close the channel without `End`, so the
        // archiver's read fails; wait for it, and forget whatever it saved.
        if self.archiver.is_some()
            && let Ok((repo, Ok(snap))) = self.finish_archiver()
            && snap.id != Default::default()
        {
            let _ = repo.delete_snapshots(&[snap.id]);
        }
    }
}

/// The archiver's view of the stream: one file, opened once.
struct ChannelSource {
    name: String,
    reader: Mutex<Option<ChannelReader>>,
}

impl ReadSource for ChannelSource {
    type Open = ChannelReader;
    type Iter = Once<RusticResult<ReadSourceEntry<ChannelReader>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        let meta = Metadata {
            mode: Some(0o600),
            mtime: Some(rustic_core::jiff::Timestamp::now()),
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

pub struct ChannelReader {
    recv: Receiver<Piece>,
    current: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.recv.recv() {
                Ok(Piece::Data(d)) => {
                    self.current = d;
                    self.pos = 0;
                }
                Ok(Piece::End) => self.ended = true,
                Err(_) => {
                    // Not `Interrupted`: readers retry those.
                    return Err(io::Error::other("the backup was abandoned before its end"));
                }
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
