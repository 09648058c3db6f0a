//! Restore approval requests: the plan they are bound to, who approved and when, and
//! their state. Kept in the database so they survive a restart of the bot.

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{Db, DbError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Approver {
    pub actor: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRecord {
    pub id: String,
    pub target: String,
    pub platform: String,
    pub channel: String,
    pub message_ref: Option<String>,
    pub requester: String,
    pub required: u32,
    /// The restore plan as JSON: exactly what will run once approved.
    pub plan: String,
    /// pending | approved | denied | expired
    pub status: String,
    pub created_at: String,
    pub expires_at: String,
    pub decided_at: Option<String>,
    pub approvers: Vec<Approver>,
    pub denied_by: Option<String>,
    /// The runbook run waiting on this request; it carries out the restore itself.
    pub runbook_run: Option<i64>,
}

const COLUMNS: &str = "id, target, platform, channel, message_ref, requester, required, plan, status, created_at, expires_at, decided_at, approvers, denied_by, runbook_run";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ApprovalRecord> {
    let approvers: String = r.get(12)?;
    Ok(ApprovalRecord {
        id: r.get(0)?,
        target: r.get(1)?,
        platform: r.get(2)?,
        channel: r.get(3)?,
        message_ref: r.get(4)?,
        requester: r.get(5)?,
        required: r.get::<_, i64>(6)? as u32,
        plan: r.get(7)?,
        status: r.get(8)?,
        created_at: r.get(9)?,
        expires_at: r.get(10)?,
        decided_at: r.get(11)?,
        approvers: serde_json::from_str(&approvers).unwrap_or_default(),
        denied_by: r.get(13)?,
        runbook_run: r.get(14)?,
    })
}

impl Db {
    pub fn approval_insert(&self, a: &ApprovalRecord) -> Result<(), DbError> {
        self.lock().execute(
            &format!("INSERT INTO approvals ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
            params![
                a.id,
                a.target,
                a.platform,
                a.channel,
                a.message_ref,
                a.requester,
                a.required as i64,
                a.plan,
                a.status,
                a.created_at,
                a.expires_at,
                a.decided_at,
                serde_json::to_string(&a.approvers).unwrap_or_else(|_| "[]".into()),
                a.denied_by,
                a.runbook_run
            ],
        )?;
        Ok(())
    }

    pub fn approval_get(&self, id: &str) -> Result<Option<ApprovalRecord>, DbError> {
        Ok(self
            .lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// Save the mutable parts of a request: message, status, approvers, decision.
    pub fn approval_update(&self, a: &ApprovalRecord) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE approvals SET message_ref = ?2, status = ?3, decided_at = ?4, approvers = ?5, denied_by = ?6 WHERE id = ?1",
            params![
                a.id,
                a.message_ref,
                a.status,
                a.decided_at,
                serde_json::to_string(&a.approvers).unwrap_or_else(|_| "[]".into()),
                a.denied_by
            ],
        )?;
        Ok(())
    }

    /// Pending requests whose time ran out before `now` (RFC 3339).
    pub fn approvals_expired(&self, now: &str) -> Result<Vec<ApprovalRecord>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at <= ?1"
        ))?;
        let rows = stmt.query_map([now], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record a chat event id; false if it was already handled (a platform retry).
    pub fn chat_event_first_seen(&self, event_id: &str) -> Result<bool, DbError> {
        let n = self.lock().execute(
            "INSERT OR IGNORE INTO chat_events (event_id, received_at) VALUES (?1, ?2)",
            params![event_id, crate::units::now_text()],
        )?;
        Ok(n == 1)
    }
}
