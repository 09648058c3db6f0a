//! A repository backend on an object store, written as restic writes one there: the
//! objects alone, without the directory-marker objects (`data/`, `data/00/` ...) that
//! rustic's OpenDAL backend makes when it creates a repository.
//!
//! An object store has no directories to make: objects are found by key prefix whether or
//! not a marker exists. Markers are worse than useless on servers that map keys to files:
//! rclone's S3 server stores `data/` as an empty file named `data`, then answers every
//! write under `data/` with a 500.

use std::sync::Arc;

use bytes::Bytes;
use rustic_core::{BytesList, FileType, Id, ReadBackend, RusticResult, WriteBackend};

/// Every call but `create` passes through to the backend inside.
#[derive(Debug)]
pub struct WithoutDirectories<B: ?Sized>(pub Arc<B>);

impl<B: WriteBackend + ?Sized> ReadBackend for WithoutDirectories<B> {
    fn location(&self) -> String {
        self.0.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        self.0.list_with_size(tpe)
    }

    fn list(&self, tpe: FileType) -> RusticResult<Vec<Id>> {
        self.0.list(tpe)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.0.read_full(tpe, id)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        self.0.read_partial(tpe, id, cacheable, offset, length)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.0.warmup_path(tpe, id)
    }

    fn needs_warm_up(&self) -> bool {
        self.0.needs_warm_up()
    }

    fn warm_up(&self, tpe: FileType, id: &Id) -> RusticResult<()> {
        self.0.warm_up(tpe, id)
    }
}

impl<B: WriteBackend + ?Sized> WriteBackend for WithoutDirectories<B> {
    /// Nothing to make: the first object written under a prefix is all a reader needs.
    fn create(&self) -> RusticResult<()> {
        Ok(())
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        self.0.write_bytes(tpe, id, cacheable, content)
    }

    fn remove(&self, tpe: FileType, id: &Id, cacheable: bool) -> RusticResult<()> {
        self.0.remove(tpe, id, cacheable)
    }
}
