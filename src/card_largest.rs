//! The largest realistic message of every kind the cards cover, for the renderers' limit
//! tests (src/front/slack/render_tests.rs, src/front/discord/render_tests.rs): a drill
//! with 120 checks, a 200-entry incident timeline with a 2,000-character note, an export
//! summary, that note posted to the channel, 50 targets' status, a 60-step runbook run
//! and a manual step with 2,000 characters of instructions.

use chrono::Utc;

use crate::card::{Card, Piece};
use crate::notify::{Button, ChatMessage};
use crate::runbook::run::{RunState, StepResult, StepState};

/// A 2,000-character note, as someone might paste a log excerpt into `/incident note`.
pub fn long_note() -> String {
    let line = "proxy: upstream gitea:3000 timed out <after 30s> & retried | ";
    line.repeat(2000 / line.len() + 1)
        .chars()
        .take(2000)
        .collect()
}

/// Every kind, named, with people as `platform` identities.
pub fn all(platform: &str) -> Vec<(&'static str, ChatMessage)> {
    let now = crate::units::parse_time("2026-12-05T14:00:00.000Z").unwrap();
    let mut timeline = crate::incident::card::fixtures::timeline(200);
    timeline[199].text = long_note();
    timeline[195].text = long_note();
    let incident = crate::incident::card::fixtures::incident(false);
    let export = crate::incident::IncidentExport {
        id: 3,
        title: long_note(),
        channel: incident.channel.clone(),
        opened_by: incident.opened_by.clone(),
        opened_at: incident.opened_at.clone(),
        closed_by: None,
        closed_at: None,
        duration_seconds: 4420,
        people: (0..60).map(|i| format!("slack:U0PERSON{i:02}")).collect(),
        timeline: timeline.clone(),
        actions: vec![long_note(); 20],
        restores: (0..40)
            .map(|i| crate::incident::export::RestoreFacts {
                target: format!("target-{i}-{}", "x".repeat(80)),
                backup_id: Some("20261205T124620Z".into()),
                backup_created_at: Some("2026-12-05T12:46:20.010Z".into()),
                started_at: "2026-12-05T13:00:00.000Z".into(),
                finished_at: Some("2026-12-05T13:02:00.000Z".into()),
                state: "succeeded".into(),
                rto_seconds: Some(1200),
                rpo_seconds: Some(820),
            })
            .collect(),
        open_questions: Vec::new(),
    };
    let (status, _) =
        crate::actions::status_card::card(&crate::actions::status_card::fixtures::targets(50));
    let run = largest_run();
    let buttons = vec![
        Button {
            action: "step_done".into(),
            label: "Done".into(),
            value: "7:3".into(),
            ..Button::default()
        },
        Button {
            action: "step_failed".into(),
            label: "Failed".into(),
            value: "7:3".into(),
            danger: true,
            confirm: None,
        },
    ];
    let manual = crate::runbook::report::manual_card(&run, 3, &long_note(), &long_note(), None);
    let answered = crate::runbook::report::manual_card(
        &run,
        3,
        "Stop the app",
        &long_note(),
        Some((false, "slack:U0OPS1", "2026-12-05T13:27:00.000Z")),
    );
    let drill = crate::actions::drill_card::fixtures::largest();
    let cards = vec![
        (
            "drill",
            ChatMessage::card(crate::actions::drill_card::card(
                &drill,
                Some("slack:U0OPS1"),
            )),
        ),
        (
            "scheduled drill",
            ChatMessage::card(crate::actions::drill_card::card(&drill, None)),
        ),
        (
            "incident status",
            ChatMessage::card(crate::incident::card::status(&incident, &timeline, now)),
        ),
        (
            "export summary",
            ChatMessage::card(crate::incident::card::export_summary(
                &export,
                "incident-3.md",
                Utc::now(),
            )),
        ),
        (
            "incident note",
            ChatMessage::card(crate::incident::card::added(&incident, &timeline[199])),
        ),
        ("status of 50 targets", ChatMessage::card(status)),
        (
            "runbook run",
            ChatMessage::card(crate::runbook::report::card(&run)),
        ),
        (
            "manual step",
            ChatMessage::card(manual).with_buttons(buttons),
        ),
        ("manual step answered", ChatMessage::card(answered)),
    ];
    cards
        .into_iter()
        .map(|(name, mut msg)| {
            if let Some(card) = msg.card.take() {
                let card = as_platform(card, platform);
                msg = ChatMessage::card(card).with_buttons(msg.buttons);
            }
            (name, msg)
        })
        .collect()
}

/// A finished run of 60 steps, each with a long detail, the last failed.
pub fn largest_run() -> RunState {
    let steps = (1..=60)
        .map(|i| StepResult {
            index: i,
            title: format!(
                "Step {i}: restore volume {} from the newest backup",
                "v".repeat(i)
            ),
            kind: "restore".into(),
            estimate_seconds: 600,
            started_at: Some("2026-12-05T13:00:00.000Z".into()),
            finished_at: Some("2026-12-05T13:02:00.000Z".into()),
            actual_seconds: Some(123.4),
            state: if i == 60 {
                StepState::Failed
            } else {
                StepState::Done
            },
            detail: Some(format!("restored backup 20261205T124620Z; {}", long_note())),
        })
        .collect();
    RunState {
        run_id: 7,
        runbook: "app-recovery".into(),
        title: long_note(),
        actor: "slack:U0OPS1".into(),
        started_at: "2026-12-05T13:00:00.000Z".into(),
        finished_at: Some("2026-12-05T15:00:00.000Z".into()),
        state: "failed".into(),
        steps,
        next: Some(long_note()),
    }
}

/// The card with its people as identities of `platform` (Discord ids are numbers).
fn as_platform(mut card: Card, platform: &str) -> Card {
    if platform != "discord" {
        return card;
    }
    let lines = card
        .lead
        .iter_mut()
        .chain(card.facts.iter_mut().map(|f| &mut f.value))
        .chain(card.steps.iter_mut())
        .chain(card.body.iter_mut())
        .chain(card.context.iter_mut());
    for line in lines {
        for piece in &mut line.0 {
            if let Piece::Person { identity, .. } = piece {
                let n: u64 = identity.bytes().map(u64::from).sum();
                *identity = format!("discord:{}", 100_000_000_000_000_000 + n);
            }
        }
    }
    card
}
