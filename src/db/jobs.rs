//! Job records: one row per backup, verify, restore, drill or prune, from start to end.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Row, ToSql, params};
use serde::{Deserialize, Serialize};

use super::{Db, DbError};
use crate::units::now_text;

/// Where a job is: stored, shown and serialised by the same lowercase words as ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The process running it stopped (a crash, a restart) before it finished.
    Interrupted,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl ToSql for JobState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for JobState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        JobState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| FromSqlError::Other(format!("unknown job state {text:?}").into()))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub target: String,
    pub actor: String,
    pub state: JobState,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub backup_id: Option<String>,
    pub message: Option<String>,
    pub pid: i64,
}

const COLUMNS: &str =
    "id, kind, target, actor, state, started_at, finished_at, backup_id, message, pid";

fn from_row(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        target: r.get(2)?,
        actor: r.get(3)?,
        state: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        backup_id: r.get(7)?,
        message: r.get(8)?,
        pid: r.get(9)?,
    })
}

impl Db {
    pub fn job_insert(&self, kind: &str, target: &str, actor: &str) -> Result<JobRecord, DbError> {
        let conn = self.lock();
        let started = now_text();
        conn.execute(
            "INSERT INTO jobs (kind, target, actor, state, started_at, pid) VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
            params![kind, target, actor, started, std::process::id()],
        )?;
        let id = conn.last_insert_rowid();
        Ok(JobRecord {
            id,
            kind: kind.into(),
            target: target.into(),
            actor: actor.into(),
            state: JobState::Running,
            started_at: started,
            finished_at: None,
            backup_id: None,
            message: None,
            pid: std::process::id() as i64,
        })
    }

    pub fn job_finish(
        &self,
        id: i64,
        state: JobState,
        backup_id: Option<&str>,
        message: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE jobs SET state = ?2, finished_at = ?3, backup_id = coalesce(?4, backup_id), message = ?5, detail = ?6 WHERE id = ?1",
            params![id, state, now_text(), backup_id, message, detail],
        )?;
        Ok(())
    }

    pub fn job_get(&self, id: i64) -> Result<Option<JobRecord>, DbError> {
        let conn = self.lock();
        Ok(conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// Jobs recorded as running, for a target or all.
    pub fn jobs_running(&self, target: Option<&str>) -> Result<Vec<JobRecord>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE state = 'running' AND (?1 IS NULL OR target = ?1) ORDER BY id"
        ))?;
        let rows = stmt.query_map([target], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest finished job of a kind for a target, optionally only successful ones.
    pub fn job_last(
        &self,
        target: &str,
        kind: &str,
        only_ok: bool,
    ) -> Result<Option<JobRecord>, DbError> {
        // The watchdog asks this of every target it looks at: the statement is cached.
        let conn = self.lock();
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE target = ?1 AND kind = ?2 AND state != 'running'
                 AND (?3 = 0 OR state = 'succeeded') ORDER BY id DESC LIMIT 1"
            ))?
            .query_row(params![target, kind, only_ok], from_row)
            .optional()?)
    }

    /// Jobs marked interrupted that nobody has been told about yet; marks them told.
    pub fn jobs_take_unreported_interrupted(&self) -> Result<Vec<JobRecord>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "UPDATE jobs SET detail = 'reported' WHERE state = 'interrupted' AND detail IS NULL RETURNING {COLUMNS}"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Db {
    /// Jobs of a kind started between two times (inclusive), oldest first.
    pub fn jobs_started_between(
        &self,
        kind: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<JobRecord>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE kind = ?1 AND started_at >= ?2 AND started_at <= ?3 ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![kind, from, to], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows as releases before the enum wrote them (plain words in `state`) read back.
    #[test]
    fn job_rows_written_with_words_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        for state in ["running", "succeeded", "failed", "cancelled", "interrupted"] {
            db.lock()
                .execute(
                    "INSERT INTO jobs (kind, target, actor, state, started_at, pid) VALUES ('backup', 't', 'cli:root', ?1, '2026-01-01T00:00:00.000Z', 1)",
                    [state],
                )
                .unwrap();
            let id = db.lock().last_insert_rowid();
            let job = db.job_get(id).unwrap().unwrap();
            assert_eq!(job.state.as_str(), state);
            assert_eq!(
                serde_json::to_value(&job).unwrap()["state"],
                serde_json::json!(state)
            );
        }
        let job = db.job_insert("verify", "t", "cli:root").unwrap();
        db.job_finish(job.id, JobState::Failed, None, Some("no"), None)
            .unwrap();
        let text: String = db
            .lock()
            .query_row("SELECT state FROM jobs WHERE id = ?1", [job.id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(text, "failed");
    }
}
