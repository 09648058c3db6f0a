//! The audit log: who did what, when, and how it ended. Append-only.

use rusqlite::params;
use serde::Serialize;

use super::{Db, DbError, now_text};

#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

impl Db {
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<(), DbError> {
        self.lock().execute(
            "INSERT INTO audit (at, actor, action, target, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now_text(), actor, action, target, outcome, detail],
        )?;
        Ok(())
    }

    /// The newest `limit` audit records, newest first.
    pub fn audit_tail(&self, limit: usize) -> Result<Vec<AuditRecord>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT at, actor, action, target, outcome, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(AuditRecord {
                at: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                target: r.get(3)?,
                outcome: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
