//! The backup catalog: a record of every published backup, kept beside the stores' own
//! manifests (the stores stay the source of truth; this answers `status` and metrics fast).

use rusqlite::params;

use super::{Db, DbError};
use crate::stores::manifest::Manifest;

impl Db {
    /// Record one backup. Its per-file list stays in the store, as `catalog_sync` keeps
    /// it: a tree of many files would otherwise add megabytes to the state at every
    /// backup.
    pub fn catalog_put(&self, m: &Manifest) -> Result<(), DbError> {
        let json = serde_json::to_string(&m.summary()).unwrap_or_default();
        self.lock().execute(
            "INSERT OR REPLACE INTO catalog (target, id, store, kind, created_at, size_bytes, sha256, manifest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![m.target, m.id, m.store, m.kind.as_str(), m.created_at, m.size_bytes as i64, m.sha256, json],
        )?;
        Ok(())
    }

    /// Make the catalog's rows for `target` in `store` exactly the given backups.
    pub fn catalog_sync(
        &self,
        target: &str,
        store: &str,
        backups: &[Manifest],
    ) -> Result<(), DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM catalog WHERE target = ?1 AND store = ?2",
            params![target, store],
        )?;
        for m in backups {
            let json = serde_json::to_string(&m.summary()).unwrap_or_default();
            tx.execute(
                "INSERT INTO catalog (target, id, store, kind, created_at, size_bytes, sha256, manifest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![m.target, m.id, m.store, m.kind.as_str(), m.created_at, m.size_bytes as i64, m.sha256, json],
            )?;
        }
        tx.commit()?;
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

/// What the catalog says of a target: how many backups, and the newest one.
#[derive(Debug, Clone, Default)]
pub struct CatalogSummary {
    pub count: usize,
    pub newest_id: Option<String>,
    pub newest_created_at: Option<String>,
    pub newest_size_bytes: Option<u64>,
    /// What changed while the newest backup was read, when it is flagged inconsistent.
    pub newest_changed_while_read: Option<Vec<String>>,
}

impl Db {
    pub fn catalog_summary(&self, target: &str) -> Result<CatalogSummary, DbError> {
        let conn = self.lock();
        let count: i64 = conn.query_row(
            "SELECT count(*) FROM catalog WHERE target = ?1",
            [target],
            |r| r.get(0),
        )?;
        let newest = conn
            .query_row(
                "SELECT id, created_at, size_bytes,
                        CASE WHEN NOT json_valid(manifest) THEN NULL
                             WHEN json_extract(manifest, '$.consistent') = 0
                             THEN coalesce(json_extract(manifest, '$.changed_while_read'), '[]') END
                 FROM catalog WHERE target = ?1 ORDER BY created_at DESC, id DESC LIMIT 1",
                [target],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .ok();
        Ok(CatalogSummary {
            count: count as usize,
            newest_id: newest.as_ref().map(|n| n.0.clone()),
            newest_created_at: newest.as_ref().map(|n| n.1.clone()),
            newest_size_bytes: newest.as_ref().map(|n| n.2 as u64),
            newest_changed_while_read: newest
                .and_then(|n| n.3)
                .map(|paths| serde_json::from_str(&paths).unwrap_or_default()),
        })
    }
}

impl Db {
    /// Every catalog entry of a target, newest first.
    pub fn catalog_list(&self, target: &str) -> Result<Vec<Manifest>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT manifest FROM catalog WHERE target = ?1 ORDER BY created_at DESC, id DESC",
        )?;
        let rows = stmt.query_map(params![target], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows {
            // A row this version cannot read is skipped rather than failing the listing.
            if let Ok(m) = serde_json::from_str::<Manifest>(&json?) {
                out.push(m);
            }
        }
        Ok(out)
    }
}

/// What making the catalog match one store changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CatalogChanges {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

impl Db {
    /// Make the catalog's rows of `store` exactly `backups`, in one transaction, touching
    /// only rows that differ (so doing it again changes nothing).
    pub fn catalog_replace_store(
        &self,
        store: &str,
        backups: &[Manifest],
    ) -> Result<CatalogChanges, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut existing: std::collections::HashMap<(String, String), String> = {
            let mut stmt =
                tx.prepare("SELECT target, id, manifest FROM catalog WHERE store = ?1")?;
            let rows = stmt.query_map([store], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut changes = CatalogChanges::default();
        for m in backups {
            let json = serde_json::to_string(&m.summary()).unwrap_or_default();
            match existing.remove(&(m.target.clone(), m.id.clone())) {
                Some(old) if old == json => {
                    changes.unchanged += 1;
                    continue;
                }
                Some(_) => changes.updated += 1,
                None => changes.added += 1,
            }
            tx.execute(
                "INSERT OR REPLACE INTO catalog (target, id, store, kind, created_at, size_bytes, sha256, manifest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![m.target, m.id, store, m.kind.as_str(), m.created_at, m.size_bytes as i64, m.sha256, json],
            )?;
        }
        for (target, id) in existing.keys() {
            tx.execute(
                "DELETE FROM catalog WHERE store = ?1 AND target = ?2 AND id = ?3",
                params![store, target, id],
            )?;
            changes.removed += 1;
        }
        tx.commit()?;
        Ok(changes)
    }

    /// How many backups the catalog lists, per target.
    pub fn catalog_counts(&self) -> Result<std::collections::BTreeMap<String, usize>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT target, count(*) FROM catalog GROUP BY target")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Db {
    /// How many backups in the catalog were taken after `at` (RFC 3339).
    pub fn catalog_created_after(&self, at: &str) -> Result<usize, DbError> {
        let n: i64 = self.lock().query_row(
            "SELECT count(*) FROM catalog WHERE created_at > ?1",
            [at],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::manifest::{DirectoryFacts, FileEntry};

    /// A directory backup's row keeps its counts and tree facts, not every file's
    /// entry: the state database would otherwise grow by the whole list at each backup.
    #[test]
    fn a_backup_is_recorded_without_its_per_file_list() {
        let db = Db::in_memory();
        let file = |i: usize| FileEntry {
            path: format!("d/f{i:05}.txt"),
            kind: "file".into(),
            mode: 0o644,
            size: Some(500),
            sha256: Some("ab".repeat(32)),
            link: None,
        };
        let m: Manifest = serde_json::from_value(serde_json::json!({
            "format": 1, "id": "b1", "target": "site", "kind": "directory", "store": "vault",
            "created_at": "2026-03-01T03:00:00.000Z", "finished_at": "2026-03-01T03:00:01.000Z",
            "duration_seconds": 1.0, "status": "complete", "artifact": "snap", "compression": "",
            "size_bytes": 0, "sha256": "", "content_bytes": 5_000_000, "content_sha256": "",
            "lifeboat_version": "test",
        }))
        .unwrap();
        let m = Manifest {
            directory: Some(DirectoryFacts {
                files: 10_000,
                directories: 1,
                entries: (0..10_000).map(file).collect(),
                ..DirectoryFacts::default()
            }),
            ..m
        };
        db.catalog_put(&m).unwrap();
        let listed = db.catalog_list("site").unwrap();
        assert_eq!(listed.len(), 1);
        let d = listed[0].directory.as_ref().unwrap();
        assert!(d.entries.is_empty());
        assert_eq!((d.files, d.directories), (10_000, 1));
        assert_eq!(listed[0], m.summary());
        let stored: i64 = db
            .lock()
            .query_row("SELECT length(manifest) FROM catalog", [], |r| r.get(0))
            .unwrap();
        assert!(stored < 2_000, "{stored} bytes recorded");
    }
}
