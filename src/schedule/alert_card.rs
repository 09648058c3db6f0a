//! An alert or a recovery notice as a card (src/card.rs): a header naming the problem,
//! facts (target, last good backup and its age, open since when, how many times), the
//! watchdog's own words below, red while open and green once recovered. The plain text
//! that goes with it is the alert text of src/schedule/alerts.rs, word for word.

use chrono::{DateTime, Utc};

use super::alerts::{self, Say};
use crate::card::{Card, Line, Tone};
use crate::db::alerts::AlertRecord;
use crate::notify::ChatMessage;
use crate::units::parse_time;

/// The chat message of an outgoing alert post, edit or recovery: the card, with `text`
/// (what notifications, logs and the tests read) as the watchdog wrote it.
pub fn message(
    alert: &AlertRecord,
    say: Say,
    text: &str,
    last_ok: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> ChatMessage {
    let card = match say {
        Say::Recovery => recovery_card(alert, last_ok, now),
        Say::Post | Say::Edit => alert_card(alert, text.starts_with("(still) "), last_ok, now),
    };
    ChatMessage {
        text: text.to_string(),
        buttons: Vec::new(),
        card: Some(card),
    }
}

/// The header of an open alert: what is wrong, in a few words.
fn problem(alert: &AlertRecord) -> String {
    let has = |facet: &str| alert.facets.contains_key(facet);
    let target = &alert.target;
    match alert.kind.as_str() {
        "verify" => format!("Verification of {target} failed"),
        "drill" if has("failed") => format!("The last drill of {target} failed"),
        "drill" => format!("The drill of {target} is overdue"),
        "too_long" => format!("A job of {target} is running too long"),
        "inconsistent" => format!("The newest backup of {target} is inconsistent"),
        "replication" => format!("Replication of {target} is behind"),
        "generation" => format!("Replication of {target} had to start over"),
        _ if has("missed") && has("failed") => format!("Backups of {target} missed and failing"),
        _ if has("failed") => format!("The backup of {target} failed"),
        _ => format!("The backup of {target} was missed"),
    }
}

/// The facts every alert card starts with.
fn common_facts(alert: &AlertRecord, last_ok: Option<DateTime<Utc>>) -> Card {
    let last = match last_ok {
        Some(at) => Line::new().time_relative(at),
        None => Line::from("none on record"),
    };
    Card::default()
        .fact("Target", Line::new().code(&alert.target))
        .fact("Last good backup", last)
        .fact("Open since", Line::new().stored_time(&alert.opened_at))
}

/// An open alert: red, the watchdog's lines as the body, the alert's id as fine print.
pub fn alert_card(
    alert: &AlertRecord,
    repeat: bool,
    last_ok: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Card {
    let mut card = common_facts(alert, last_ok);
    card.tone = Tone::Bad;
    card.title = format!(
        "🔴 {}{}",
        if repeat { "(still) " } else { "" },
        problem(alert)
    );
    let times = alerts::occurrences(alert);
    if !times.is_empty() {
        card = card.fact("How many times", times.join(", "));
    }
    for facet in alert.facets.values() {
        card = card.body(facet.text.as_str());
    }
    let open_for = alerts::open_for(alert, now)
        .map(|d| format!(", open for {d}"))
        .unwrap_or_default();
    card.context(format!("alert {}{open_for}", alert.label()))
}

/// A recovery notice: green, what proved the target well, how long the alert was open.
pub fn recovery_card(
    alert: &AlertRecord,
    last_ok: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Card {
    let mut card = common_facts(alert, last_ok);
    card.tone = Tone::Good;
    card.title = format!("✅ {}", alerts::recovered(alert));
    let proof = alert.closed_by.as_deref().unwrap_or("resolved");
    card = card.fact("Recovered by", proof);
    if let Some(closed) = alert.closed_at.as_deref().and_then(parse_time) {
        card = card.fact("Closed", Line::new().time(closed));
    }
    card = card.fact("Open for", alerts::open_while_closed(alert, now));
    let times = alerts::occurrences(alert);
    if !times.is_empty() {
        card = card.fact("How many times", times.join(", "));
    }
    card.context(format!("alert {} is closed", alert.label()))
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! One of every alert and recovery the watchdog can post, for the renderers' tests.
    use super::*;
    use crate::db::alerts::Facet;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    /// Every alert kind with each of its facets, open; then the same closed.
    pub fn all_messages(target: &str) -> Vec<ChatMessage> {
        let now = t("2026-12-05T12:00:00Z");
        let last_ok = Some(t("2026-12-03T03:00:00Z"));
        let long = "x".repeat(5000);
        let kinds: [(&str, &[&str]); 7] = [
            ("backup", &["missed"]),
            ("backup", &["missed", "failed"]),
            ("verify", &["failed"]),
            ("drill", &["failed", "stale"]),
            ("too_long", &["running"]),
            ("inconsistent", &["changed"]),
            ("replication", &["behind"]),
        ];
        let mut out = Vec::new();
        for (i, (kind, facets)) in kinds.into_iter().enumerate() {
            let mut alert = AlertRecord {
                id: i as i64 + 1,
                target: target.to_string(),
                kind: kind.to_string(),
                opened_at: "2026-12-04T04:00:00.000Z".into(),
                posted_at: Some("2026-12-04T04:00:00.000Z".into()),
                ..AlertRecord::default()
            };
            for facet in facets {
                alert.facets.insert(
                    facet.to_string(),
                    Facet {
                        token: "t".into(),
                        count: 3,
                        text: format!("⚠️ {facet} of {target} at 2026-12-04T03:00:00Z: {long}"),
                    },
                );
            }
            let text = alerts::alert_text(&alert, now, true);
            out.push(message(&alert, Say::Post, &text, last_ok, now));
            alert.closed_at = Some("2026-12-05T11:00:00.000Z".into());
            alert.closed_by = Some(format!("a successful backup at {long}"));
            let text = alerts::recovery_text(&alert, now);
            out.push(message(&alert, Say::Recovery, &text, None, now));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_red_recoveries_green_and_the_text_is_the_watchdogs() {
        let messages = fixtures::all_messages("db");
        assert_eq!(messages.len(), 14);
        for (i, msg) in messages.iter().enumerate() {
            let card = msg.card.as_ref().unwrap();
            let recovery = i % 2 == 1;
            assert_eq!(card.tone, if recovery { Tone::Good } else { Tone::Bad });
            assert_eq!(card.facts[0].value, Line::new().code("db"));
            if recovery {
                assert!(msg.text.starts_with("✅ "), "{}", msg.text);
            } else {
                assert!(msg.text.starts_with("(still) "), "{}", msg.text);
                assert!(card.title.contains("(still)"), "{}", card.title);
                assert!(card.plain().contains("3 due times missed") || i > 3);
            }
        }
        let missed = messages[0].card.as_ref().unwrap();
        assert_eq!(missed.title, "🔴 (still) The backup of db was missed");
        assert!(matches!(
            missed.facts[1].value.0[..],
            [crate::card::Piece::Time { relative: true, .. }]
        ));
    }
}
