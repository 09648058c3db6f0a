//! Watchdog alerts: one row per target and kind of problem from the moment it opens to
//! its recovery notice, with what was posted where, so a restart neither repeats an
//! alert nor loses one.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{Db, DbError};

/// One side of an alert (e.g. "missed" or "failed" of a backup alert): what identifies
/// its latest occurrence, how many occurrences the open alert has seen, and its line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facet {
    pub token: String,
    pub count: u64,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertRecord {
    pub id: i64,
    pub target: String,
    /// backup | verify | drill | too_long
    pub kind: String,
    pub opened_at: String,
    /// When it was last posted (opening or repeat); None: a post is owed.
    pub posted_at: Option<String>,
    pub repeats: u64,
    pub facets: BTreeMap<String, Facet>,
    /// The messages of the latest post: (sink, message reference).
    pub messages: Vec<(String, String)>,
    pub closed_at: Option<String>,
    /// The evidence that closed it.
    pub closed_by: Option<String>,
    pub recovery_posted_at: Option<String>,
}

impl AlertRecord {
    /// The stable id shown in chat, the audit log and `/metrics`.
    pub fn label(&self) -> String {
        format!("A{}", self.id)
    }
}

const COLUMNS: &str = "id, target, kind, opened_at, posted_at, repeats, facets, messages, \
     closed_at, closed_by, recovery_posted_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AlertRecord> {
    let facets: String = r.get(6)?;
    let messages: String = r.get(7)?;
    Ok(AlertRecord {
        id: r.get(0)?,
        target: r.get(1)?,
        kind: r.get(2)?,
        opened_at: r.get(3)?,
        posted_at: r.get(4)?,
        repeats: r.get::<_, i64>(5)? as u64,
        facets: serde_json::from_str(&facets).unwrap_or_default(),
        messages: serde_json::from_str(&messages).unwrap_or_default(),
        closed_at: r.get(8)?,
        closed_by: r.get(9)?,
        recovery_posted_at: r.get(10)?,
    })
}

impl Db {
    /// A target's open alerts, and its closed ones whose recovery notice is still owed.
    pub fn alerts_live(&self, target: &str) -> Result<Vec<AlertRecord>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM alerts WHERE target = ?1
             AND (closed_at IS NULL OR recovery_posted_at IS NULL) ORDER BY id"
        ))?;
        let rows = stmt.query_map([target], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every open alert, oldest first (for `/metrics`).
    pub fn alerts_open(&self) -> Result<Vec<AlertRecord>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM alerts WHERE closed_at IS NULL ORDER BY id"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn alert_get(&self, id: i64) -> Result<Option<AlertRecord>, DbError> {
        Ok(self
            .lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// Alerts opened per kind since the database was made, closed or not (for `/metrics`).
    pub fn alert_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT kind, count(*) FROM alerts GROUP BY kind ORDER BY kind")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Open a new alert (its id is filled in). Fails if one of that kind is already open
    /// for the target.
    pub fn alert_insert(&self, a: &mut AlertRecord) -> Result<(), DbError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO alerts (target, kind, opened_at, posted_at, repeats, facets, messages)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                a.target,
                a.kind,
                a.opened_at,
                a.posted_at,
                a.repeats as i64,
                json(&a.facets),
                json(&a.messages)
            ],
        )?;
        a.id = conn.last_insert_rowid();
        Ok(())
    }

    /// Store the watchdog's judgement of an alert: its occurrences and its closing.
    /// What was delivered where is the alert channels' to write (`alert_delivered`), so
    /// a look and a delivery recorded at the same moment never undo each other.
    pub fn alert_save(&self, a: &AlertRecord) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE alerts SET facets = ?2, closed_at = ?3, closed_by = ?4 WHERE id = ?1",
            params![a.id, json(&a.facets), a.closed_at, a.closed_by],
        )?;
        Ok(())
    }

    /// Record a delivery: `change` edits the alert's delivery (when it was posted, its
    /// repeats, its messages, its recovery notice) and says whether to keep the edit.
    /// Read and written under one lock, as every alert channel records on its own.
    /// Returns the alert as stored, if it exists.
    pub fn alert_delivered(
        &self,
        id: i64,
        change: impl FnOnce(&mut AlertRecord) -> bool,
    ) -> Result<Option<AlertRecord>, DbError> {
        let conn = self.lock();
        let sql = format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1");
        let Some(mut a) = conn.query_row(&sql, [id], from_row).optional()? else {
            return Ok(None);
        };
        if change(&mut a) {
            conn.execute(
                "UPDATE alerts SET posted_at = ?2, repeats = ?3, messages = ?4,
                 recovery_posted_at = ?5 WHERE id = ?1",
                params![
                    a.id,
                    a.posted_at,
                    a.repeats as i64,
                    json(&a.messages),
                    a.recovery_posted_at
                ],
            )?;
        }
        Ok(Some(a))
    }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_open_alert_per_target_and_kind() {
        let db = Db::in_memory();
        let mut a = AlertRecord {
            target: "db".into(),
            kind: "backup".into(),
            opened_at: "2026-11-22T04:00:00.000Z".into(),
            ..Default::default()
        };
        a.facets.insert(
            "failed".into(),
            Facet {
                token: "job 3".into(),
                count: 1,
                text: "failed".into(),
            },
        );
        db.alert_insert(&mut a).unwrap();
        assert_eq!(a.label(), format!("A{}", a.id));
        let mut twin = a.clone();
        assert!(
            db.alert_insert(&mut twin).is_err(),
            "a second open backup alert"
        );
        let mut stale = a.clone();
        db.alert_delivered(a.id, |d| {
            d.messages.push(("slack:C1".into(), "1.2".into()));
            true
        })
        .unwrap();
        a.messages.push(("slack:C1".into(), "1.2".into()));
        // A look that read the alert before the delivery was recorded closes it without
        // undoing the delivery.
        stale.closed_at = Some("2026-11-22T05:00:00.000Z".into());
        db.alert_save(&stale).unwrap();
        a.closed_at = stale.closed_at.clone();
        assert_eq!(db.alert_get(a.id).unwrap().unwrap(), a);
        assert_eq!(
            db.alerts_live("db").unwrap(),
            vec![a.clone()],
            "recovery owed"
        );
        assert!(db.alerts_open().unwrap().is_empty());
        let mut again = a.clone();
        again.closed_at = None;
        db.alert_insert(&mut again).unwrap();
        assert_ne!(again.id, a.id, "a new outage is a new alert");
    }
}
