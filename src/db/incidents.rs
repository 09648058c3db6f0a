//! Incidents and their timelines. While an incident is open, every audited event that
//! belongs to it is copied onto its timeline with the event's own time (see
//! `Db::audit_event`), so the timeline is as complete as the audit log.

use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::Serialize;

use super::{Db, DbError};
use crate::units::now_text;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IncidentRecord {
    pub id: i64,
    pub title: String,
    /// The platform-qualified channel it was opened in (`slack:C…`); None from the CLI.
    pub channel: Option<String>,
    pub opened_by: String,
    pub opened_at: String,
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TimelineEvent {
    pub at: String,
    pub actor: String,
    /// opened | closed | note | action | status | command | approval | job | alert | runbook | …
    pub kind: String,
    pub text: String,
}

const COLUMNS: &str = "id, title, channel, opened_by, opened_at, closed_by, closed_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<IncidentRecord> {
    Ok(IncidentRecord {
        id: r.get(0)?,
        title: r.get(1)?,
        channel: r.get(2)?,
        opened_by: r.get(3)?,
        opened_at: r.get(4)?,
        closed_by: r.get(5)?,
        closed_at: r.get(6)?,
    })
}

/// Open incidents an event from `channel` belongs to: an event from a channel goes to that
/// channel's incident and to incidents opened from the CLI (which cover everything); an
/// event from no channel (CLI, scheduler, jobs, alerts) goes to every open incident.
pub(super) fn open_for_event(
    tx: &Transaction<'_>,
    channel: Option<&str>,
) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id FROM incidents WHERE closed_at IS NULL
           AND (?1 IS NULL OR channel IS NULL OR channel = ?1) ORDER BY id",
    )?;
    let ids = stmt.query_map([channel], |r| r.get(0))?;
    ids.collect()
}

pub(super) fn insert_event(
    tx: &Transaction<'_>,
    incident: i64,
    event: &TimelineEvent,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO incident_events (incident_id, at, actor, kind, text) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![incident, event.at, event.actor, event.kind, event.text])?;
    Ok(())
}

impl Db {
    /// Open an incident; its first timeline entry says who opened it.
    pub fn incident_open(
        &self,
        title: &str,
        channel: Option<&str>,
        actor: &str,
    ) -> Result<IncidentRecord, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let at = now_text();
        tx.execute(
            "INSERT INTO incidents (title, channel, opened_by, opened_at) VALUES (?1, ?2, ?3, ?4)",
            params![title, channel, actor, at],
        )?;
        let id = tx.last_insert_rowid();
        let text = format!("incident opened: {title}");
        let event = TimelineEvent {
            at: at.clone(),
            actor: actor.into(),
            kind: "opened".into(),
            text,
        };
        insert_event(&tx, id, &event)?;
        tx.commit()?;
        Ok(IncidentRecord {
            id,
            title: title.into(),
            channel: channel.map(str::to_string),
            opened_by: actor.into(),
            opened_at: at,
            closed_by: None,
            closed_at: None,
        })
    }

    pub fn incident_close(&self, id: i64, actor: &str) -> Result<String, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let at = now_text();
        insert_event(
            &tx,
            id,
            &TimelineEvent {
                at: at.clone(),
                actor: actor.into(),
                kind: "closed".into(),
                text: "incident closed".into(),
            },
        )?;
        tx.execute(
            "UPDATE incidents SET closed_at = ?2, closed_by = ?3 WHERE id = ?1 AND closed_at IS NULL",
            params![id, at, actor],
        )?;
        tx.commit()?;
        Ok(at)
    }

    /// Add one entry to an incident's timeline, now.
    pub fn incident_add(
        &self,
        id: i64,
        actor: &str,
        kind: &str,
        text: &str,
    ) -> Result<TimelineEvent, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let event = TimelineEvent {
            at: now_text(),
            actor: actor.into(),
            kind: kind.into(),
            text: text.into(),
        };
        insert_event(&tx, id, &event)?;
        tx.commit()?;
        Ok(event)
    }

    pub fn incident_get(&self, id: i64) -> Result<Option<IncidentRecord>, DbError> {
        Ok(self
            .lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// The open incident of a channel; with no channel (the CLI), the newest open one.
    pub fn incident_open_in(
        &self,
        channel: Option<&str>,
    ) -> Result<Option<IncidentRecord>, DbError> {
        self.incident_newest_where(channel, true)
    }

    /// The newest incident of a channel (open or not); with no channel, the newest of all.
    pub fn incident_newest(
        &self,
        channel: Option<&str>,
    ) -> Result<Option<IncidentRecord>, DbError> {
        self.incident_newest_where(channel, false)
    }

    fn incident_newest_where(
        &self,
        channel: Option<&str>,
        only_open: bool,
    ) -> Result<Option<IncidentRecord>, DbError> {
        Ok(self
            .lock()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM incidents WHERE (?1 IS NULL OR channel = ?1)
                       AND (?2 = 0 OR closed_at IS NULL) ORDER BY id DESC LIMIT 1"
                ),
                rusqlite::params![channel, only_open],
                from_row,
            )
            .optional()?)
    }

    /// The open incidents an event from `channel` goes onto (see `open_for_event`).
    pub fn incidents_open_for(&self, channel: Option<&str>) -> Result<Vec<i64>, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let ids = open_for_event(&tx, channel)?;
        tx.commit()?;
        Ok(ids)
    }

    /// Every incident, newest first.
    pub fn incidents(&self) -> Result<Vec<IncidentRecord>, DbError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare(&format!("SELECT {COLUMNS} FROM incidents ORDER BY id DESC"))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// An incident's timeline, ordered by time (ties in the order they were recorded).
    pub fn incident_timeline(&self, id: i64) -> Result<Vec<TimelineEvent>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT at, actor, kind, text FROM incident_events WHERE incident_id = ?1 ORDER BY at, id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(TimelineEvent {
                at: r.get(0)?,
                actor: r.get(1)?,
                kind: r.get(2)?,
                text: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
