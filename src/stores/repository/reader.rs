//! Reading a backup back: rustic_core dumps the content file on a thread of its own,
//! fetching several chunks at once and decrypting and authenticating each (its MAC), in
//! order, into a bounded channel. A flipped byte in a pack is an `InvalidData` error,
//! never silently wrong content; dropping the reader stops the dump. A native tree is
//! read as a tar stream made from it (`tree_read`).

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rustic_core::repofile::{BlobType, Node, NodeType, SnapshotFile};
use rustic_core::{
    ErrorKind, IndexedFull, IndexedFullStatus, Repository, RusticError, RusticResult,
};

use crate::stores::StoreError;

/// Pieces of content (a chunk each, 1 MiB on average, up to 8 MiB) waiting for the
/// reader. Two keep the dump and the reader both busy; eight held ~20 MiB more at the
/// peak of a whole restore and made it no faster.
pub(super) const PIECES_WAITING: usize = 2;

pub struct SnapshotReader {
    pieces: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl SnapshotReader {
    /// The content as another thread sends it, piece by piece.
    pub(super) fn new(pieces: Receiver<io::Result<Vec<u8>>>) -> SnapshotReader {
        SnapshotReader {
            pieces,
            current: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// Content that fails at its first byte: damage found before any was read, so a
    /// verify reports it and a restore writes nothing.
    pub(super) fn failed(why: io::Error) -> SnapshotReader {
        let (send, pieces) = sync_channel(1);
        let _ = send.send(Err(why));
        SnapshotReader::new(pieces)
    }

    /// The content of `snap`: the one file at the root of its tree.
    pub fn open(
        describe: String,
        repo: Repository<IndexedFullStatus>,
        snap: &SnapshotFile,
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        let tree = repo.get_tree(&snap.tree).map_err(|e| {
            StoreError::Other(format!(
                "{describe}: reading snapshot {}: {}",
                snap.id,
                super::one_line(&e)
            ))
        })?;
        let mut files = tree
            .nodes
            .into_iter()
            .filter(|n| n.node_type == NodeType::File);
        let (Some(file), None) = (files.next(), files.next()) else {
            return Err(StoreError::Other(format!(
                "{describe}: snapshot {} does not hold the one file a lifeboat backup has",
                snap.id
            )));
        };
        let (send, pieces) = sync_channel(PIECES_WAITING);
        std::thread::Builder::new()
            .name("lifeboat-dump".into())
            .spawn(move || {
                let mut out = ChannelWriter(send.clone());
                if let Err(e) = dump_once(&repo, &file, &mut out) {
                    let _ = send.send(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{describe}: {}", super::one_line(&e)),
                    )));
                }
            })
            .map_err(|e| StoreError::Other(format!("starting to read a snapshot: {e}")))?;
        Ok(Box::new(SnapshotReader::new(pieces)))
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.pieces.recv() {
                Ok(Ok(piece)) => {
                    self.current = piece;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                // The dump thread ended and everything it sent has been read.
                Err(_) => self.done = true,
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A file node's content into `out`, past rustic_core's blob cache: its dump keeps every
/// one-chunk file it reads (up to 32 MiB of them), which a backup read once never asks
/// for again. A file of several chunks is dumped as rustic_core does, fetching several
/// at once, uncached.
pub(super) fn dump_once<S: IndexedFull>(
    repo: &Repository<S>,
    node: &Node,
    out: &mut impl Write,
) -> RusticResult<()> {
    let Some([one]) = node.content.as_deref() else {
        return repo.dump(node, out);
    };
    let data = repo.cat_blob(BlobType::Data, one.to_hex().as_str())?;
    out.write_all(&data)
        .map_err(|e| RusticError::with_source(ErrorKind::InputOutput, "writing a chunk out", e))
}

/// The dump's output: each chunk as one piece; fails once the reader is gone.
pub(super) struct ChannelWriter(pub(super) SyncSender<io::Result<Vec<u8>>>);

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0
            .send(Ok(data.to_vec()))
            .map_err(|_| io::Error::other("the reader of this backup is gone"))?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
