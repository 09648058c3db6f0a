//! The watchdog's persisted state per target: which problems were last alerted and when,
//! so a restart neither repeats an alert nor forgets one.

use rusqlite::{OptionalExtension, params};

use super::{Db, DbError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchRecord {
    /// Problem keys last alerted, sorted and comma-separated ("" = healthy).
    pub conditions: String,
    pub bad_since: Option<String>,
    pub alerted_at: Option<String>,
    /// When the watchdog first looked at the target (None: never).
    pub first_seen: Option<String>,
}

impl Db {
    pub fn watch_get(&self, target: &str) -> Result<WatchRecord, DbError> {
        Ok(self
            .lock()
            .prepare_cached(
                "SELECT conditions, bad_since, alerted_at, first_seen FROM watch WHERE target = ?1",
            )?
            .query_row([target], |r| {
                Ok(WatchRecord {
                    conditions: r.get(0)?,
                    bad_since: r.get(1)?,
                    alerted_at: r.get(2)?,
                    first_seen: r.get(3)?,
                })
            })
            .optional()?
            .unwrap_or_default())
    }

    pub fn watch_put(&self, target: &str, w: &WatchRecord) -> Result<(), DbError> {
        self.lock().execute(
            "INSERT OR REPLACE INTO watch (target, conditions, bad_since, alerted_at, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![target, w.conditions, w.bad_since, w.alerted_at, w.first_seen],
        )?;
        Ok(())
    }

    /// Record a report from an external job as a finished backup job.
    pub fn job_record_report(
        &self,
        target: &str,
        actor: &str,
        ok: bool,
        message: &str,
    ) -> Result<i64, DbError> {
        let job = self.job_insert("backup", target, actor)?;
        self.job_finish(
            job.id,
            if ok {
                super::jobs::JobState::Succeeded
            } else {
                super::jobs::JobState::Failed
            },
            None,
            Some(message),
            None,
        )?;
        Ok(job.id)
    }

    /// The id of the newest job (0: none yet).
    pub fn jobs_newest_id(&self) -> Result<i64, DbError> {
        Ok(self
            .lock()
            .query_row("SELECT coalesce(max(id), 0) FROM jobs", [], |r| r.get(0))?)
    }

    /// Jobs recorded after job `id`: (id, target), oldest first.
    pub fn jobs_since(&self, id: i64) -> Result<Vec<(i64, String)>, DbError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT id, target FROM jobs WHERE id > ?1 ORDER BY id")?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Jobs finished per kind and state, for metrics.
    pub fn job_counts(&self) -> Result<Vec<(String, String, i64)>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest backup job of a target, and the newest successful one.
    pub fn backup_facts(&self, target: &str) -> Result<BackupFacts, DbError> {
        let last = self.job_last(target, "backup", false)?;
        let last_ok = self.job_last(target, "backup", true)?;
        let failures: i64 = self
            .lock()
            .prepare_cached(
                "SELECT count(*) FROM jobs WHERE target = ?1 AND kind = 'backup' AND state IN ('failed', 'interrupted')
                 AND id > coalesce((SELECT max(id) FROM jobs WHERE target = ?1 AND kind = 'backup' AND state = 'succeeded'), 0)",
            )?
            .query_row([target], |r| r.get(0))?;
        Ok(BackupFacts {
            last,
            last_ok,
            consecutive_failures: failures as u64,
        })
    }
}

#[derive(Debug, Clone)]
pub struct BackupFacts {
    pub last: Option<super::jobs::JobRecord>,
    pub last_ok: Option<super::jobs::JobRecord>,
    pub consecutive_failures: u64,
}
