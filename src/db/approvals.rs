//! Restore approval requests: the plan they are bound to, who approved and when, and
//! their state. Kept in the database so they survive a restart of the bot.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{Db, DbError};

/// Where a request stands. Stored as its word (`pending`, `approved`, `denied`,
/// `expired`), as every release has stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
        }
    }

    fn parse(word: &str) -> Option<ApprovalStatus> {
        [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Denied,
            ApprovalStatus::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
    }
}

impl std::fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ToSql for ApprovalStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for ApprovalStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let word = value.as_str()?;
        ApprovalStatus::parse(word)
            .ok_or_else(|| FromSqlError::Other(format!("unknown approval status {word:?}").into()))
    }
}

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
    pub status: ApprovalStatus,
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

/// The approvers as stored (and compared): a JSON array.
fn approvers_json(approvers: &[Approver]) -> String {
    serde_json::to_string(approvers).unwrap_or_else(|_| "[]".into())
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
                approvers_json(&a.approvers),
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

    /// Remember where a request's message was posted. Only that column is written: a
    /// click may already have decided the request while its message was being posted,
    /// and that decision must stand.
    pub fn approval_set_message(&self, id: &str, message_ref: &str) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE approvals SET message_ref = ?2 WHERE id = ?1",
            params![id, message_ref],
        )?;
        Ok(())
    }

    /// Save a decision on `read` (status, approvers, who denied, when) only if the stored
    /// request is still as it was read: one statement that compares and sets, so of two
    /// clicks that read the same request only one can write. False when another decision
    /// came first; read the request again.
    pub fn approval_decide(
        &self,
        read: &ApprovalRecord,
        decided: &ApprovalRecord,
    ) -> Result<bool, DbError> {
        let changed = self.lock().execute(
            "UPDATE approvals SET status = ?2, decided_at = ?3, approvers = ?4, denied_by = ?5 \
             WHERE id = ?1 AND status = ?6 AND json(approvers) = json(?7)",
            params![
                decided.id,
                decided.status,
                decided.decided_at,
                approvers_json(&decided.approvers),
                decided.denied_by,
                read.status,
                approvers_json(&read.approvers)
            ],
        )?;
        Ok(changed == 1)
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
