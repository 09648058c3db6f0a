//! Reading a backup back: the content file's chunks are fetched in order, each one
//! decrypted and authenticated (its MAC) by rustic_core, so a
//! flipped byte in a pack is an `InvalidData` error, never silently wrong content.

use std::io::{self, Read};

use bytes::Bytes;
use rustic_core::repofile::{NodeType, SnapshotFile};
use rustic_core::{BlobId, DataId, IndexedFullStatus, Repository};

use crate::pipe::ReadAhead;
use crate::stores::StoreError;

pub struct SnapshotReader {
    describe: String,
    repo: Repository<IndexedFullStatus>,
    chunks: Vec<DataId>,
    next: usize,
    current: Bytes,
}

impl SnapshotReader {
    /// The content of `snap`: the one file at the root of its tree. Reading runs a few
    /// chunks ahead on a thread of its own.
    pub fn open(
        describe: String,
        repo: Repository<IndexedFullStatus>,
        snap: &SnapshotFile,
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        let tree = repo.get_tree(&snap.tree).map_err(|e| {
            StoreError::Other(format!("{describe}: reading snapshot {}: {e}", snap.id))
        })?;
        let files: Vec<_> = tree
            .nodes
            .iter()
            .filter(|n| n.node_type == NodeType::File)
            .collect();
        let [file] = files.as_slice() else {
            return Err(StoreError::Other(format!(
                "{describe}: snapshot {} holds {} files, not the one a lifeboat backup has",
                snap.id,
                files.len()
            )));
        };
        let chunks = file.content.clone().unwrap_or_default();
        Ok(Box::new(ReadAhead::new(SnapshotReader {
            describe,
            repo,
            chunks,
            next: 0,
            current: Bytes::new(),
        })))
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            let Some(id) = self.chunks.get(self.next) else {
                return Ok(0);
            };
            self.current = self
                .repo
                .get_blob_cached(&BlobId::from(**id), rustic_core::repofile::BlobType::Data)
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: chunk {} of {} cannot be read back: {}",
                            self.describe,
                            self.next + 1,
                            self.chunks.len(),
                            super::one_line(&e)
                        ),
                    )
                })?;
            self.next += 1;
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}
