//! Read-only history for charts: a target's backups (size, how long the job took) and
//! drills since a point in time, oldest first.

use rusqlite::params;

use super::drills::DrillRecord;
use super::{Db, DbError};

/// One backup as the charts see it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupRow {
    /// RFC 3339 UTC.
    pub created_at: String,
    /// None for backups made elsewhere (reported by an external job).
    pub size_bytes: Option<u64>,
    /// How long making it took, from its manifest (None for reported backups).
    pub duration_seconds: Option<f64>,
}

impl Db {
    /// Backups of `target` created at or after `since` (RFC 3339), oldest first: the
    /// catalog's entries, or, for a target without a store, the successful backup jobs
    /// it reported.
    pub fn backup_history(
        &self,
        target: &str,
        since: &str,
        from_catalog: bool,
    ) -> Result<Vec<BackupRow>, DbError> {
        let conn = self.lock();
        let sql = if from_catalog {
            "SELECT created_at, size_bytes, json_extract(manifest, '$.duration_seconds')
             FROM catalog WHERE target = ?1 AND created_at >= ?2
             ORDER BY created_at, id"
        } else {
            "SELECT coalesce(finished_at, started_at), NULL, NULL
             FROM jobs
             WHERE target = ?1 AND kind = 'backup' AND state = 'succeeded' AND started_at >= ?2
             ORDER BY started_at, id"
        };
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![target, since], |r| {
            Ok(BackupRow {
                created_at: r.get(0)?,
                size_bytes: r.get::<_, Option<i64>>(1)?.map(|s| s as u64),
                duration_seconds: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Drills of `target` started at or after `since`, oldest first.
    pub fn drill_history(&self, target: &str, since: &str) -> Result<Vec<DrillRecord>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM drills WHERE target = ?1 AND started_at >= ?2 ORDER BY started_at, id",
            super::drills::COLUMNS
        ))?;
        let rows = stmt.query_map(params![target, since], super::drills::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::manifest::Manifest;

    fn manifest(id: &str, at: &str, size: u64, secs: f64) -> Manifest {
        Manifest {
            format: 1,
            id: id.into(),
            target: "t1".into(),
            kind: crate::config::TargetKind::Sqlite,
            store: "local".into(),
            created_at: at.into(),
            finished_at: at.into(),
            duration_seconds: secs,
            status: "complete".into(),
            artifact: format!("t1/{id}.db.zst"),
            compression: "zstd".into(),
            size_bytes: size,
            sha256: "00".into(),
            content_bytes: size,
            content_sha256: "00".into(),
            lifeboat_version: "test".into(),
            sqlite: None,
            directory: None,
            gcp: None,
            consistent: None,
            changed_while_read: None,
        }
    }

    #[test]
    fn backups_come_oldest_first_within_the_window_with_their_durations() {
        let db = Db::in_memory();
        db.catalog_put(&manifest("b2", "2026-03-02T03:00:00.000Z", 200, 12.5))
            .unwrap();
        db.catalog_put(&manifest("b1", "2026-03-01T03:00:00.000Z", 100, 10.0))
            .unwrap();
        db.catalog_put(&manifest("b0", "2026-01-01T03:00:00.000Z", 50, 1.0))
            .unwrap();
        let rows = db
            .backup_history("t1", "2026-02-01T00:00:00.000Z", true)
            .unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.size_bytes, r.duration_seconds))
            .collect();
        assert_eq!(got, vec![(Some(100), Some(10.0)), (Some(200), Some(12.5))]);
        assert!(db.backup_history("t2", "", true).unwrap().is_empty());
    }

    #[test]
    fn external_targets_are_charted_from_their_reports() {
        let db = Db::in_memory();
        db.job_record_report("ext", "hook", true, "fine").unwrap();
        db.job_record_report("ext", "hook", false, "broken")
            .unwrap();
        let rows = db.backup_history("ext", "", false).unwrap();
        assert_eq!(rows.len(), 1, "only successful reports are backups");
        assert_eq!(rows[0].size_bytes, None);
    }

    #[test]
    fn drills_within_the_window() {
        let db = Db::in_memory();
        for at in ["2026-01-01T04:00:00.000Z", "2026-03-01T04:00:00.000Z"] {
            db.drill_insert(&DrillRecord {
                id: 0,
                target: "t1".into(),
                backup_id: None,
                actor: "cli:alice".into(),
                started_at: at.into(),
                finished_at: at.into(),
                ok: true,
                rto_seconds: Some(60.0),
                rpo_seconds: Some(3600.0),
                rto_objective_seconds: Some(1800.0),
                rpo_objective_seconds: None,
                problems: vec![],
                report: String::new(),
            })
            .unwrap();
        }
        let rows = db.drill_history("t1", "2026-02-01T00:00:00.000Z").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].started_at, "2026-03-01T04:00:00.000Z");
    }
}
