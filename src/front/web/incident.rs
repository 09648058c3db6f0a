//! `GET /incidents/<id>`: an incident with its whole timeline, oldest first.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::layout::{page, relative, short};
use crate::app::App;
use crate::db::incidents::{IncidentRecord, TimelineEvent};
use crate::error::Result;

pub struct IncidentPage {
    pub now: DateTime<Utc>,
    pub incident: IncidentRecord,
    pub timeline: Vec<TimelineEvent>,
}

/// None when there is no such incident.
pub fn gather(app: &App, id: i64, now: DateTime<Utc>) -> Result<Option<IncidentPage>> {
    let Some(incident) = app.db.incident_get(id)? else {
        return Ok(None);
    };
    let timeline = app.db.incident_timeline(id)?;
    Ok(Some(IncidentPage {
        now,
        incident,
        timeline,
    }))
}

pub fn render(p: &IncidentPage) -> Markup {
    let i = &p.incident;
    page(
        &format!("Incident #{}", i.id),
        p.now,
        i.closed_at.is_none(),
        html! {
            h1 #title { "Incident #" (i.id) ": " (i.title) }
            dl {
                dt { "Opened" } dd { (short(&i.opened_at)) " (" (relative(&i.opened_at, p.now)) ") by " (i.opened_by) }
                dt { "Closed" } dd {
                    @match (&i.closed_at, &i.closed_by) {
                        (Some(at), by) => { (short(at)) @if let Some(b) = by { " by " (b) } }
                        _ => { span.flag { "still open" } }
                    }
                }
                dt { "Entries" } dd { (p.timeline.len()) }
            }
            h2 { "Timeline" }
            (timeline_table(&p.timeline))
        },
    )
}

/// Timeline entries as a table (also used by the overview for open incidents).
pub fn timeline_table(events: &[TimelineEvent]) -> Markup {
    html! {
        @if events.is_empty() {
            p.muted { "No entries yet." }
        } @else {
            table.timeline {
                thead { tr { th { "At (UTC)" } th { "Who" } th { "Kind" } th { "What" } } }
                tbody { @for e in events {
                    tr data-kind=(e.kind) {
                        td { (short(&e.at)) } td { (e.actor) } td { (e.kind) } td { (e.text) }
                    }
                } }
            }
        }
    }
}
