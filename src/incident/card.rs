//! An incident as chat cards (src/card.rs): `/incident status` (title, state and how long
//! it has been open, who opened it, the people involved as mentions, the latest timeline
//! entries with their times as date codes) and the summary that goes with an export (the
//! whole timeline travels as a file beside it). Red while open, green once closed.

use chrono::{DateTime, Utc};

use super::export::IncidentExport;
use crate::card::{Card, Line, Tone};
use crate::db::incidents::{IncidentRecord, TimelineEvent};
use crate::units::{count, human_duration, parse_time};

/// How many of the newest timeline entries a status card lists.
pub const LATEST: usize = 10;

/// `/incident status`: the incident, the people in it, its newest timeline entries.
pub fn status(incident: &IncidentRecord, timeline: &[TimelineEvent], now: DateTime<Utc>) -> Card {
    let mut card = heading(incident, now)
        .fact(
            "Timeline",
            count(timeline.len() as u64, "entry", Some("entries")),
        )
        .fact(
            "Action items",
            count(
                timeline.iter().filter(|e| e.kind == "action").count() as u64,
                "action item",
                None,
            ),
        );
    card = people_fact(card, &people(timeline));
    let shown = timeline.len().min(LATEST);
    for e in &timeline[timeline.len() - shown..] {
        card = card.step(entry(e));
    }
    let mut fine = Line::new();
    if timeline.len() > shown {
        fine = fine.text(format!(
            "The latest {shown} of {} entries. ",
            timeline.len()
        ));
    }
    card.context(
        fine.code("/incident export")
            .text(" posts the whole timeline and the post-mortem skeleton as a file."),
    )
}

/// The summary posted with an export: what the file holds, in a few facts.
pub fn export_summary(x: &IncidentExport, filename: &str, now: DateTime<Utc>) -> Card {
    let record = IncidentRecord {
        id: x.id,
        title: x.title.clone(),
        channel: x.channel.clone(),
        opened_by: x.opened_by.clone(),
        opened_at: x.opened_at.clone(),
        closed_by: x.closed_by.clone(),
        closed_at: x.closed_at.clone(),
    };
    let mut card = heading(&record, now)
        .fact(
            "Timeline",
            count(x.timeline.len() as u64, "entry", Some("entries")),
        )
        .fact(
            "Action items",
            count(x.actions.len() as u64, "action item", None),
        )
        .fact("Restores", count(x.restores.len() as u64, "restore", None));
    card = people_fact(card, &x.people);
    for r in &x.restores {
        let mut line = Line::new()
            .text("Restore of ")
            .code(&r.target)
            .text(format!(": {}", r.state));
        if let Some(rto) = r.rto_seconds {
            line = line.text(format!(
                ", back {} after the incident opened",
                human_duration(rto as f64)
            ));
        }
        if let Some(rpo) = r.rpo_seconds {
            line = line.text(format!(", {} of data lost", human_duration(rpo as f64)));
        }
        card = card.body(line);
    }
    card.context(
        Line::new()
            .text("The whole timeline, the restores' RTO/RPO and the open questions are in ")
            .code(filename)
            .text(", posted beside this message."),
    )
}

/// An incident just opened, for the channel.
pub fn opened(incident: &IncidentRecord) -> Card {
    Card::new(
        Tone::Bad,
        format!(
            "🚨 Incident #{} opened: {}",
            incident.id,
            one_line(&incident.title)
        ),
    )
    .lead(
        Line::new()
            .text("Opened by ")
            .person(&incident.opened_by)
            .text(" at ")
            .stored_time(&incident.opened_at)
            .text("."),
    )
    .body(
        Line::new()
            .text("Everything lifeboat does from here is on its timeline; add to it with ")
            .code("/incident note <text>")
            .text(" and ")
            .code("/incident action <text>")
            .text("."),
    )
}

/// A note or an action item just added, for the channel: the words, who, when.
pub fn added(incident: &IncidentRecord, e: &TimelineEvent) -> Card {
    let title = match e.kind.as_str() {
        "action" => format!("📌 Action item on incident #{}", incident.id),
        _ => format!("📝 Noted on incident #{}", incident.id),
    };
    let mut card = Card::new(Tone::Neutral, title);
    // Someone's own words: in paragraphs short enough that no platform cuts them.
    for part in crate::notify::split_message(&e.text, 900) {
        for line in part.lines().filter(|l| !l.trim().is_empty()) {
            card = card.lead(line);
        }
    }
    card.context(
        Line::new()
            .text("by ")
            .person(&e.actor)
            .text(" at ")
            .stored_time(&e.at),
    )
}

/// An incident just closed, for the channel.
pub fn closed(incident: &IncidentRecord, now: DateTime<Utc>) -> Card {
    let mut card = heading(incident, now);
    card.title = format!(
        "✅ Incident #{} closed: {}",
        incident.id,
        one_line(&incident.title)
    );
    card.context(
        Line::new()
            .code("/incident export")
            .text(" posts its post-mortem skeleton."),
    )
}

/// Title, state and when and by whom it was opened.
fn heading(incident: &IncidentRecord, now: DateTime<Utc>) -> Card {
    let opened = parse_time(&incident.opened_at);
    let end = incident
        .closed_at
        .as_deref()
        .and_then(parse_time)
        .unwrap_or(now);
    let lasted = opened.map(|o| human_duration((end - o).num_seconds().max(0) as f64));
    let (tone, icon, state) = match &incident.closed_by {
        None => (
            Tone::Bad,
            "🚨",
            Line::from(format!("open for {}", lasted.unwrap_or_default())),
        ),
        Some(by) => (
            Tone::Good,
            "✅",
            Line::new()
                .text(format!("closed after {} by ", lasted.unwrap_or_default()))
                .person(by),
        ),
    };
    Card::new(
        tone,
        format!(
            "{icon} Incident #{}: {}",
            incident.id,
            one_line(&incident.title)
        ),
    )
    .fact("State", state)
    .fact(
        "Opened",
        Line::new()
            .stored_time(&incident.opened_at)
            .text(" by ")
            .person(&incident.opened_by),
    )
}

/// The people on the timeline, as mentions (named, not pinged).
fn people_fact(card: Card, people: &[String]) -> Card {
    if people.is_empty() {
        return card;
    }
    let mut line = Line::new();
    for (i, who) in people.iter().enumerate() {
        if i > 0 {
            line = line.text(", ");
        }
        line = line.person(who);
    }
    card.fact("People", line)
}

/// Everyone who acted on the timeline (lifeboat's own jobs and the scheduler aside).
pub fn people(timeline: &[TimelineEvent]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in timeline {
        let person = ["slack:", "discord:", "cli:"]
            .iter()
            .any(|p| e.actor.starts_with(p));
        if person && !out.contains(&e.actor) {
            out.push(e.actor.clone());
        }
    }
    out
}

/// One timeline entry: its time as a date code, who, what.
fn entry(e: &TimelineEvent) -> Line {
    let line = Line::new().stored_time(&e.at).text(" · ");
    let line = if people(std::slice::from_ref(e)).is_empty() {
        line.text(&e.actor)
    } else {
        line.person(&e.actor)
    };
    line.text(format!(" ({}): {}", e.kind, one_line(&e.text)))
}

/// Text on one line (chat shows a timeline entry per line).
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

#[cfg(test)]
#[path = "card_tests.rs"]
mod tests;

/// Incidents and timelines of any size, for tests here and in the renderers' limit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::db::incidents::{IncidentRecord, TimelineEvent};

    pub fn incident(closed: bool) -> IncidentRecord {
        IncidentRecord {
            id: 3,
            title: "Gitea is down".into(),
            channel: Some("slack:C0OPS".into()),
            opened_by: "slack:U0OPS1".into(),
            opened_at: "2026-12-05T12:46:20.010Z".into(),
            closed_by: closed.then(|| "slack:U0ADMIN1".into()),
            closed_at: closed.then(|| "2026-12-05T13:27:20.010Z".into()),
        }
    }

    /// `n` entries a minute apart: notes, commands, jobs and every tenth an action item,
    /// from three people and lifeboat itself.
    pub fn timeline(n: usize) -> Vec<TimelineEvent> {
        let start = crate::units::parse_time("2026-12-05T12:46:20.010Z").unwrap();
        (0..n)
            .map(|i| {
                let (actor, kind) = match i % 10 {
                    0 => ("slack:U0OPS1", "action"),
                    1 | 2 => ("lifeboat", "job"),
                    3 => ("slack:U0ADMIN1", "approval"),
                    4 => ("schedule", "alert"),
                    _ => ("slack:U0VIEW1", "note"),
                };
                TimelineEvent {
                    at: crate::units::time_text(start + chrono::Duration::seconds(i as i64 * 20)),
                    actor: actor.into(),
                    kind: kind.into(),
                    text: format!(
                        "entry {i}: users see 502s <since 09:50> & the proxy | says {}",
                        "z".repeat(i % 7 * 40)
                    ),
                }
            })
            .collect()
    }
}
