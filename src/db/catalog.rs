//! The backup catalog: a record of every published backup, kept beside the stores' own
//! manifests (the stores stay the source of truth; this answers `status` and metrics fast).

use rusqlite::params;

use super::{Db, DbError};
use crate::stores::manifest::Manifest;

impl Db {
    pub fn catalog_put(&self, m: &Manifest) -> Result<(), DbError> {
        let json = serde_json::to_string(m).unwrap_or_default();
        self.lock().execute(
            "INSERT OR REPLACE INTO catalog (target, id, store, kind, created_at, size_bytes, sha256, manifest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![m.target, m.id, m.store, m.kind, m.created_at, m.size_bytes as i64, m.sha256, json],
        )?;
        Ok(())
    }

    pub fn catalog_remove(&self, target: &str, id: &str) -> Result<(), DbError> {
        self.lock().execute(
            "DELETE FROM catalog WHERE target = ?1 AND id = ?2",
            params![target, id],
        )?;
        Ok(())
    }
}
