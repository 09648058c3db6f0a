//! The audit log: who did what, when, and how it ended. Append-only. Every entry is also
//! stamped on the timelines of the open incidents it belongs to.

use rusqlite::params;
use serde::Serialize;

use super::incidents::{TimelineEvent, insert_event, open_for_event};
use super::{Db, DbError};
use crate::units::now_text;

#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// One event to audit, with where it happened when that is known.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
    /// The platform-qualified channel it came from, if any.
    pub channel: Option<&'a str>,
    /// When it happened, if not now (e.g. an alert's own start time), RFC 3339 UTC.
    pub at: Option<String>,
    /// False for events whose own handler writes the timeline entry (incident commands).
    pub skip_timeline: bool,
}

impl AuditEvent<'_> {
    /// The timeline's kind for this audit action.
    fn timeline_kind(&self) -> &'static str {
        let a = self.action;
        if a == "command" {
            "command"
        } else if a.starts_with("restore request")
            || a.starts_with("approval")
            || a == "restore approved"
            || a == "restore denied"
        {
            "approval"
        } else if a.starts_with("alert") || a.starts_with("recover") {
            "alert"
        } else if a.starts_with("runbook") {
            "runbook"
        } else {
            "job"
        }
    }

    fn timeline_text(&self) -> String {
        let mut text = self.action.to_string();
        if let Some(t) = self.target {
            text.push_str(&format!(" {t}"));
        }
        text.push_str(&format!(" ({})", self.outcome));
        if let Some(d) = self.detail.filter(|d| !d.is_empty()) {
            text.push_str(&format!(": {d}"));
        }
        text
    }
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
        self.audit_event(&AuditEvent {
            actor,
            action,
            target,
            outcome,
            detail,
            ..Default::default()
        })
        .map(|_| ())
    }

    /// Audit one event and stamp it on the open incidents it belongs to; returns their ids.
    pub fn audit_event(&self, e: &AuditEvent<'_>) -> Result<Vec<i64>, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let at = e.at.clone().unwrap_or_else(now_text);
        tx.prepare_cached(
            "INSERT INTO audit (at, actor, action, target, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![at, e.actor, e.action, e.target, e.outcome, e.detail])?;
        let incidents = if e.skip_timeline {
            Vec::new()
        } else {
            open_for_event(&tx, e.channel)?
        };
        if !incidents.is_empty() {
            let event = TimelineEvent {
                at,
                actor: e.actor.into(),
                kind: e.timeline_kind().into(),
                text: e.timeline_text(),
            };
            for id in &incidents {
                insert_event(&tx, *id, &event)?;
            }
        }
        tx.commit()?;
        Ok(incidents)
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
