//! Incidents: open one for a channel, add notes and action items, close it, and export its
//! timeline as a post-mortem skeleton (Markdown) or as data (JSON). The timeline itself is
//! filled by the audit log (see `db::audit`), so this module only reads it.

pub mod card; // status and an export's summary as chat cards
pub mod export;

use crate::db::Db;
use crate::db::incidents::{IncidentRecord, TimelineEvent};

use crate::error::{Error, Result};

pub use export::IncidentExport;

/// Where an incident command comes from: a chat channel, or the CLI (no channel).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub channel: Option<&'a str>,
}

impl Scope<'_> {
    fn start_hint(&self) -> &'static str {
        if self.channel.is_some() {
            "/incident start <title>"
        } else {
            "lifeboat incident start <title>"
        }
    }
}

/// Open an incident. One open incident per channel (and one from the CLI) at a time.
pub fn start(db: &Db, scope: Scope<'_>, actor: &str, title: &str) -> Result<IncidentRecord> {
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::Usage("give the incident a title".into()));
    }
    let open = match scope.channel {
        Some(c) => db.incident_open_in(Some(c))?,
        None => db
            .incidents()?
            .into_iter()
            .find(|i| i.closed_at.is_none() && i.channel.is_none()),
    };
    if let Some(i) = open {
        return Err(Error::Usage(format!(
            "incident #{} \"{}\" is already open here (since {}); close it first or add notes to it",
            i.id, i.title, i.opened_at
        )));
    }
    Ok(db.incident_open(title, scope.channel, actor)?)
}

/// The open incident a command in this scope acts on.
pub fn current(db: &Db, scope: Scope<'_>) -> Result<IncidentRecord> {
    db.incident_open_in(scope.channel)?.ok_or_else(|| {
        Error::Usage(format!(
            "no incident is open here; open one with `{}`",
            scope.start_hint()
        ))
    })
}

/// Add a note or an action item to the open incident.
pub fn add(
    db: &Db,
    scope: Scope<'_>,
    actor: &str,
    kind: &str,
    text: &str,
) -> Result<(IncidentRecord, TimelineEvent)> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Usage(format!("the {kind} is empty")));
    }
    let incident = current(db, scope)?;
    let event = db.incident_add(incident.id, actor, kind, text)?;
    Ok((incident, event))
}

pub fn close(db: &Db, scope: Scope<'_>, actor: &str) -> Result<IncidentRecord> {
    let incident = current(db, scope)?;
    db.incident_close(incident.id, actor)?;
    Ok(db.incident_get(incident.id)?.unwrap_or(incident))
}

/// The open incident's status as a card: state, people, the latest timeline entries.
pub fn status_card(db: &Db, scope: Scope<'_>) -> Result<crate::card::Card> {
    let incident = current(db, scope)?;
    let timeline = db.incident_timeline(incident.id)?;
    Ok(card::status(&incident, &timeline, chrono::Utc::now()))
}

/// The status as text for the terminal: the same card, identities and UTC times as
/// lifeboat writes them.
pub fn status_text(db: &Db, scope: Scope<'_>) -> Result<String> {
    Ok(status_card(db, scope)?.plain())
}

/// The incident to export: by id, else this scope's newest (open or closed).
pub fn export(db: &Db, scope: Scope<'_>, id: Option<i64>) -> Result<IncidentExport> {
    let incident = match id {
        Some(id) => db
            .incident_get(id)?
            .ok_or_else(|| Error::Usage(format!("there is no incident #{id}")))?,
        None => db.incident_newest(scope.channel)?.ok_or_else(|| {
            Error::Usage(format!(
                "there is no incident to export; open one with `{}`",
                scope.start_hint()
            ))
        })?,
    };
    export::build(db, incident, chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAN: Scope<'static> = Scope {
        channel: Some("slack:C1"),
    };

    #[test]
    fn one_open_incident_per_channel_and_events_are_scoped() {
        let db = Db::in_memory();
        let a = start(&db, CHAN, "slack:U1", "VPS down").unwrap();
        assert!(matches!(
            start(&db, CHAN, "slack:U1", "again"),
            Err(Error::Usage(m)) if m.contains(&format!("#{}", a.id))
        ));
        let other = Scope {
            channel: Some("slack:C2"),
        };
        let b = start(&db, other, "slack:U2", "disk full").unwrap();
        // A command from C2 lands on C2's incident only; a job (no channel) on both.
        db.audit_event(&crate::db::audit::AuditEvent {
            actor: "slack:U2",
            action: "command",
            outcome: "accepted",
            detail: Some("/backup now db in slack:C2"),
            channel: Some("slack:C2"),
            ..Default::default()
        })
        .unwrap();
        db.audit("lifeboat", "backup finished", Some("db"), "succeeded", None)
            .unwrap();
        let ta = db.incident_timeline(a.id).unwrap();
        let tb = db.incident_timeline(b.id).unwrap();
        assert_eq!(ta.len(), 2, "{ta:?}");
        assert_eq!(tb.len(), 3, "{tb:?}");
        assert_eq!(tb[1].kind, "command");
        assert_eq!(ta[1].kind, "job");
        // Closed incidents take nothing more.
        close(&db, CHAN, "slack:U1").unwrap();
        db.audit("lifeboat", "alert", Some("db"), "alert", Some("missed"))
            .unwrap();
        assert_eq!(db.incident_timeline(a.id).unwrap().len(), 3); // + closed
        assert!(
            matches!(current(&db, CHAN), Err(Error::Usage(m)) if m.contains("/incident start"))
        );
    }

    #[test]
    fn notes_need_an_open_incident_and_text() {
        let db = Db::in_memory();
        assert!(add(&db, CHAN, "slack:U1", "note", "hello").is_err());
        start(&db, CHAN, "slack:U1", "x").unwrap();
        assert!(add(&db, CHAN, "slack:U1", "note", "  ").is_err());
        let (_, e) = add(&db, CHAN, "slack:U1", "note", "DNS TTL is 1h").unwrap();
        assert_eq!(e.kind, "note");
        let s = status_text(&db, CHAN).unwrap();
        assert!(s.contains("DNS TTL is 1h"), "{s}");
    }
}
