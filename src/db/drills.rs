//! Drill records: one row per recovery drill with its measured RTO/RPO, the objectives
//! it was held to, the problems found and the Markdown report.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{Db, DbError};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DrillRecord {
    pub id: i64,
    pub target: String,
    pub backup_id: Option<String>,
    pub actor: String,
    pub started_at: String,
    pub finished_at: String,
    pub ok: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub rto_objective_seconds: Option<f64>,
    pub rpo_objective_seconds: Option<f64>,
    pub problems: Vec<String>,
    pub report: String,
}

pub(super) const COLUMNS: &str = "id, target, backup_id, actor, started_at, finished_at, ok, rto_seconds, \
     rpo_seconds, rto_objective_seconds, rpo_objective_seconds, problems, report";

pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<DrillRecord> {
    let problems: String = r.get(11)?;
    Ok(DrillRecord {
        id: r.get(0)?,
        target: r.get(1)?,
        backup_id: r.get(2)?,
        actor: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        ok: r.get(6)?,
        rto_seconds: r.get(7)?,
        rpo_seconds: r.get(8)?,
        rto_objective_seconds: r.get(9)?,
        rpo_objective_seconds: r.get(10)?,
        problems: serde_json::from_str(&problems).unwrap_or_default(),
        report: r.get(12)?,
    })
}

impl Db {
    /// Store a finished drill; returns its id (the `id` of `d` is ignored).
    pub fn drill_insert(&self, d: &DrillRecord) -> Result<i64, DbError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO drills (target, backup_id, actor, started_at, finished_at, ok, rto_seconds,
             rpo_seconds, rto_objective_seconds, rpo_objective_seconds, problems, report)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                d.target,
                d.backup_id,
                d.actor,
                d.started_at,
                d.finished_at,
                d.ok,
                d.rto_seconds,
                d.rpo_seconds,
                d.rto_objective_seconds,
                d.rpo_objective_seconds,
                serde_json::to_string(&d.problems).unwrap_or_else(|_| "[]".into()),
                d.report,
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The newest drill of a target, optionally only a passing one.
    pub fn drill_last(&self, target: &str, only_ok: bool) -> Result<Option<DrillRecord>, DbError> {
        Ok(self
            .lock()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM drills WHERE target = ?1 AND (?2 = 0 OR ok = 1)
                     ORDER BY started_at DESC, id DESC LIMIT 1"
                ),
                params![target, only_ok],
                from_row,
            )
            .optional()?)
    }

    /// The newest passing drill of a target.
    pub fn drill_last_passing(&self, target: &str) -> Result<Option<DrillRecord>, DbError> {
        self.drill_last(target, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(started: &str, ok: bool) -> DrillRecord {
        DrillRecord {
            id: 0,
            target: "db".into(),
            backup_id: Some("b1".into()),
            actor: "cli:alice".into(),
            started_at: started.into(),
            finished_at: started.into(),
            ok,
            rto_seconds: Some(2.5),
            rpo_seconds: Some(60.0),
            rto_objective_seconds: Some(1800.0),
            rpo_objective_seconds: None,
            problems: if ok { vec![] } else { vec!["bad".into()] },
            report: "# report".into(),
        }
    }

    #[test]
    fn last_and_last_passing() {
        let db = Db::in_memory();
        assert_eq!(db.drill_last("db", false).unwrap(), None);
        db.drill_insert(&record("2026-11-01T04:00:00.000Z", true))
            .unwrap();
        let id = db
            .drill_insert(&record("2026-12-01T04:00:00.000Z", false))
            .unwrap();
        let last = db.drill_last("db", false).unwrap().unwrap();
        assert_eq!((last.id, last.ok), (id, false));
        assert_eq!(last.problems, vec!["bad".to_string()]);
        assert_eq!(last.rpo_objective_seconds, None);
        let passing = db.drill_last_passing("db").unwrap().unwrap();
        assert_eq!(passing.started_at, "2026-11-01T04:00:00.000Z");
        assert!(db.drill_last("other", false).unwrap().is_none());
    }
}
