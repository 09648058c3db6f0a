//! What a recovery on a new host does to a restored state database: jobs it recorded as
//! running are over, and what was left open (incidents, restore requests) is listed.

use rusqlite::params;

use super::jobs::JobRecord;
use super::{Db, DbError};
use crate::units::now_text;

impl Db {
    /// Mark every job recorded as running as interrupted, whatever its lock says: on a
    /// new host no process of the old one can still be running it. Audited; returned.
    pub fn jobs_interrupt_all(&self, why: &str) -> Result<Vec<JobRecord>, DbError> {
        let running = self.jobs_running(None)?;
        for job in &running {
            self.job_finish(
                job.id,
                super::jobs::JobState::Interrupted,
                None,
                Some(why),
                None,
            )?;
            self.audit(
                "lifeboat",
                &format!("{} interrupted", job.kind),
                Some(&job.target),
                "interrupted",
                Some(&format!(
                    "job {} started {} by {}: {why}",
                    job.id, job.started_at, job.actor
                )),
            )?;
        }
        Ok(running)
    }

    /// Record a job as having succeeded at `finished_at` with `backup_id`: the backup of
    /// the state itself, recorded as running inside the very copy it produced.
    pub fn job_mark_succeeded(
        &self,
        id: i64,
        finished_at: &str,
        backup_id: &str,
        message: &str,
    ) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE jobs SET state = 'succeeded', finished_at = ?2, backup_id = ?3, message = ?4 WHERE id = ?1 AND state = 'running'",
            params![id, finished_at, backup_id, message],
        )?;
        Ok(())
    }

    /// Restore requests in a status, oldest first: (id, target, requester, expires_at).
    pub fn approvals_in(&self, status: &str) -> Result<Vec<ApprovalBrief>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, target, requester, created_at, expires_at FROM approvals WHERE status = ?1 ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([status], |r| {
            Ok(ApprovalBrief {
                id: r.get(0)?,
                target: r.get(1)?,
                requester: r.get(2)?,
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Pending requests whose time ran out: marked expired (they never come back).
    pub fn approvals_expire_due(&self) -> Result<usize, DbError> {
        let now = now_text();
        let n = self.lock().execute(
            "UPDATE approvals SET status = 'expired', decided_at = ?1 WHERE status = 'pending' AND expires_at <= ?1",
            [&now],
        )?;
        Ok(n)
    }
}

/// A restore request in a few words.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct ApprovalBrief {
    pub id: String,
    pub target: String,
    pub requester: String,
    pub created_at: String,
    pub expires_at: String,
}
