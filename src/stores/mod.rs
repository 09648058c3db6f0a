//! Where backups are kept: a narrow object-store trait, one implementation per file, and
//! the chooser that builds a store from its config section.
//!
//! Writes are write-then-publish: `create` hands out a writer whose bytes are invisible
//! until `commit`; dropping it without committing discards them.

pub mod backups;
pub mod discover;
pub mod file_hashes;
pub mod local;
pub mod manifest;
pub mod memory;
pub mod objects;
pub mod repository;
pub mod s3;

use std::io::{Read, Write};
use std::sync::Arc;

pub use backups::{
    BackupStore, BackupWriter, NewBackup, Tree, TreeEntry, TreeEntryKind, TreeWriter, TreeWritten,
};

use crate::config::{StoreConfig, StoreKind};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{store}: no object {key}")]
    NotFound { store: String, key: String },
    #[error("{store}: {action} {key}: {source}")]
    Io {
        store: String,
        action: &'static str,
        key: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// Why a stored backup does not count as one (it is skipped and named, never fatal):
/// a manifest that cannot be read, or one that does not match what the store holds.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("{what}: {source}")]
    Unreadable {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Mismatch(String),
}

impl From<String> for Rejected {
    fn from(why: String) -> Self {
        Rejected::Mismatch(why)
    }
}

impl From<&str> for Rejected {
    fn from(why: &str) -> Self {
        Rejected::Mismatch(why.to_string())
    }
}

impl StoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

/// One stored object as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// A pending object: write the bytes, then `commit` to publish them under the key.
pub trait ObjectWriter: Write + Send {
    /// Make the object durable and visible under its key, atomically.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

pub trait Store: Send + Sync {
    /// A short description for messages, e.g. `local store "local" (/var/backups)`.
    fn describe(&self) -> String;
    /// Start writing an object; nothing is visible under `key` until commit.
    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError>;
    /// Read a published object.
    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError>;
    /// Published objects whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
    /// Remove a published object; removing a missing one is not an error.
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Remove what interrupted writes left under `prefix`; returns how many were removed.
    /// Call it only while no write under that prefix can be running.
    fn sweep_incomplete(&self, prefix: &str) -> Result<usize, StoreError>;

    /// Every complete backup this store holds, found from the store alone, for
    /// rebuilding the catalog: its manifests here; a store that keeps snapshots of its
    /// own lists those instead.
    fn discover(&self) -> Result<discover::Discovered, StoreError> {
        discover::discover(self)
    }

    /// Write a small object in one go.
    fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let mut w = self.create(key)?;
        w.write_all(bytes).map_err(|source| StoreError::Io {
            store: self.describe(),
            action: "writing",
            key: key.into(),
            source,
        })?;
        w.commit()
    }

    /// Read a small object whole.
    fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        self.open(key)?
            .read_to_end(&mut out)
            .map_err(|source| StoreError::Io {
                store: self.describe(),
                action: "reading",
                key: key.into(),
                source,
            })?;
        Ok(out)
    }
}

/// Build the store a config section describes: the one place that looks at its kind.
pub fn open_store(name: &str, cfg: &StoreConfig) -> Result<Arc<dyn BackupStore>, StoreError> {
    match cfg.kind {
        StoreKind::Local | StoreKind::S3 => {
            let level = cfg
                .compression_level
                .unwrap_or(crate::pipe::DEFAULT_COMPRESSION_LEVEL);
            let objects = open_objects(name, cfg)?;
            Ok(Arc::new(objects::ObjectBackups::new(objects, level)))
        }
        StoreKind::Repository => {
            let (location, password) = repository_access(cfg);
            // Its compression is the repository's own, fixed when it is created.
            Ok(Arc::new(repository::RepositoryStore::new(
                name,
                location,
                password,
                cfg.compression_level,
            )?))
        }
    }
}

/// The object store of a store section for what keeps objects of its own beside the
/// backups (continuous replication's segments): a `local` or `s3` store itself, and for
/// a repository its objects sealed with the repository's key beside the snapshots
/// (`repository::sealed`).
pub fn open_objects(name: &str, cfg: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match cfg.kind {
        StoreKind::Local => {
            let path = cfg
                .path
                .clone()
                .ok_or_else(|| StoreError::Other(format!("stores.{name}: no path")))?;
            Arc::new(local::LocalStore::new(name, path))
        }
        StoreKind::S3 => Arc::new(s3::S3Store::new(name, cfg)?),
        StoreKind::Repository => {
            let (location, password) = repository_access(cfg);
            Arc::new(repository::sealed::SealedStore::new(
                name,
                location,
                password,
                cfg.compression_level,
            )?)
        }
    })
}

/// A repository store section's location and password (empty when unset: the
/// repository refuses them with its own message).
fn repository_access(cfg: &StoreConfig) -> (&str, &str) {
    let location = cfg.location.as_deref().unwrap_or_default();
    let password = cfg
        .password
        .as_ref()
        .map(|p| p.expose())
        .unwrap_or_default();
    (location, password)
}

/// Keys are built from validated names; refuse anything that could leave the store.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\\')
        || key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        Err(StoreError::Other(format!("invalid object key {key:?}")))
    } else {
        Ok(())
    }
}
