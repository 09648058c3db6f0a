//! A run's report: one row per step with its estimate and actual time, and the total;
//! the run's chat card and a manual step's card.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::run::{RunState, StepState};
use crate::card::{Card, Line, Tone};
use crate::incident::export::{clock, one_line};
use crate::units::{human_age, human_duration};

/// An estimate exactly as written: "13m30s".
pub fn estimate_text(seconds: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds))
        .to_string()
        .replace(' ', "")
}

fn secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        human_age(s.round() as i64)
    }
}

fn mark(state: StepState) -> &'static str {
    match state {
        StepState::Pending => "⏸ pending",
        StepState::Running => "⏳ running",
        StepState::Waiting => "✋ waiting",
        StepState::Done => "✅ done",
        StepState::Failed => "❌ failed",
        StepState::Skipped => "⏭ not run",
    }
}

/// "3 of 4 steps done in 12.3s (estimate 25m)".
pub fn total_line(run: &RunState) -> String {
    let done = run
        .steps
        .iter()
        .filter(|s| s.state == StepState::Done)
        .count();
    let actual: f64 = run.steps.iter().filter_map(|s| s.actual_seconds).sum();
    let estimate: u64 = run.steps.iter().map(|s| s.estimate_seconds).sum();
    format!(
        "{done} of {} steps done in {} (estimate {})",
        run.steps.len(),
        secs(actual),
        estimate_text(estimate)
    )
}

/// The run as Markdown: headline, per-step table with estimates vs actuals, the total,
/// and after a failure what to do next.
pub fn markdown(run: &RunState) -> String {
    let headline = match run.state.as_str() {
        "succeeded" => "✅ succeeded",
        "failed" => "❌ FAILED",
        _ => "⏳ running",
    };
    let mut md = format!(
        "Runbook *{}* — {} (run {}, started {} UTC by {}): {headline}\n",
        run.runbook,
        run.title,
        run.run_id,
        clock(&run.started_at),
        run.actor
    );
    md.push_str("| # | step | kind | estimate | actual | result | detail |\n|---|---|---|---|---|---|---|\n");
    for s in &run.steps {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            s.index,
            one_line(&s.title),
            s.kind,
            estimate_text(s.estimate_seconds),
            s.actual_seconds.map_or("—".into(), secs),
            mark(s.state),
            one_line(s.detail.as_deref().unwrap_or(""))
        ));
    }
    let actual: f64 = run.steps.iter().filter_map(|s| s.actual_seconds).sum();
    let estimate: u64 = run.steps.iter().map(|s| s.estimate_seconds).sum();
    md.push_str(&format!(
        "| | **total** | | {} | {} | | |\n",
        estimate_text(estimate),
        secs(actual)
    ));
    if let Some(next) = &run.next {
        md.push_str(&format!("\nNext: {next}\n"));
    }
    md
}

/// The run as its chat card: the steps as a list with their state and times, the total
/// once it has ended, and after a failure what to do next. Amber while it runs, green or
/// red at the end; the person who started it is named, and notified of the end.
pub fn card(run: &RunState) -> Card {
    let (tone, icon) = match run.state.as_str() {
        "succeeded" => (Tone::Good, "✅"),
        "failed" => (Tone::Bad, "❌"),
        _ => (Tone::Warning, "⏳"),
    };
    let who = Line::new().text(format!("Run {}, requested by ", run.run_id));
    let who = if run.state == "running" {
        who.person(&run.actor)
    } else {
        who.notify(&run.actor)
    };
    let mut card = Card::new(
        tone,
        format!("{icon} Runbook {}: {}", run.runbook, run.title),
    )
    .lead(who.text(", started ").stored_time(&run.started_at));
    for s in &run.steps {
        let time = match s.actual_seconds {
            Some(a) => format!(
                "{} of est. {}",
                human_duration(a),
                estimate_text(s.estimate_seconds)
            ),
            None => format!("est. {}", estimate_text(s.estimate_seconds)),
        };
        let mut line = Line::new()
            .text(format!("{} ", mark(s.state)))
            .strong(&s.title)
            .text(format!(" ({time})"));
        if let Some(d) = s.detail.as_deref().filter(|d| !d.is_empty()) {
            line = line.text(": ");
            line.0.extend(detail_line(&one_line(d)).0);
        }
        card = card.step(line);
    }
    if run.state != "running" {
        card = card.body(total_line(run));
    }
    if let Some(next) = &run.next {
        card = card.body(Line::new().strong("Next:").text(format!(" {next}")));
    }
    card
}

/// A manual step's card: its instructions, and once answered who marked it and when.
pub fn manual_card(
    run: &RunState,
    n: usize,
    title: &str,
    instructions: &str,
    answer: Option<(bool, &str, &str)>,
) -> Card {
    let (tone, icon) = match answer {
        None => (Tone::Warning, "✋"),
        Some((true, ..)) => (Tone::Good, "✅"),
        Some((false, ..)) => (Tone::Bad, "❌"),
    };
    let mut card = Card::new(
        tone,
        format!("{icon} Step {n} of runbook {}: {title}", run.runbook),
    );
    // In paragraphs short enough that no platform cuts them: the instructions are
    // what the person has to do, so none of them may be lost.
    for part in crate::notify::split_message(instructions, 900) {
        for line in part.lines().filter(|l| !l.trim().is_empty()) {
            card = card.lead(line);
        }
    }
    match answer {
        None => card.context("Mark it with Done or Failed when it is done."),
        Some((ok, who, at)) => card.context(
            Line::new()
                .text(format!("marked {} by ", if ok { "done" } else { "failed" }))
                .person(who)
                .text(" at ")
                .stored_time(at),
        ),
    }
}

/// The kinds of identity lifeboat writes into a step's detail.
const IDENTITY_KINDS: [&str; 3] = ["slack:", "discord:", "cli:"];

/// A step's detail for the card: the people named after "by" ("approved by slack:U1,
/// slack:U2", "marked done by discord:5551 at 2026-12-05 12:46:20 UTC") become people, so
/// each platform shows them as mentions, and the time after them a time. The detail is
/// stored as those words (the CLI, the report and the audit show identities as they
/// are), which is also how runs recorded before cards read.
fn detail_line(detail: &str) -> Line {
    let mut line = Line::new();
    let mut text = String::new();
    let mut rest = detail;
    while let Some(at) = rest.find("by ") {
        let whole_word = !rest[..at].ends_with(|c: char| c.is_alphanumeric());
        text.push_str(&rest[..at + 3]);
        rest = &rest[at + 3..];
        if !whole_word {
            continue;
        }
        // The people, separated by ", ", then perhaps " at <time> UTC".
        while let Some(len) = identity_len(rest) {
            line = line.text(std::mem::take(&mut text)).person(&rest[..len]);
            rest = &rest[len..];
            match rest.strip_prefix(", ") {
                Some(next) if identity_len(next).is_some() => {
                    text.push_str(", ");
                    rest = next;
                }
                _ => break,
            }
        }
        if let Some((time, len)) = written_time(rest) {
            line = line.text(std::mem::take(&mut text) + " at ").time(time);
            rest = &rest[len..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        line = line.text(text);
    }
    line
}

/// The length of the identity `text` starts with (`slack:U0ADMIN1`), if it starts with one.
fn identity_len(text: &str) -> Option<usize> {
    let kind = IDENTITY_KINDS.iter().find(|k| text.starts_with(**k))?;
    let name = &text[kind.len()..];
    let len = name
        .find(|c: char| !(c.is_alphanumeric() || "_-.".contains(c)))
        .unwrap_or(name.len());
    // A full stop after a name ends the sentence, not the name.
    let len = name[..len].trim_end_matches('.').len();
    (len > 0).then_some(kind.len() + len)
}

/// " at 2026-12-05 12:46:20 UTC" (`export::clock` and " UTC") at the start of `text`:
/// the time and how much of `text` it took.
fn written_time(text: &str) -> Option<(DateTime<Utc>, usize)> {
    let stamp = text.strip_prefix(" at ")?.get(..19)?;
    let at = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S").ok()?;
    let len = " at ".len() + stamp.len();
    let len = if text[len..].starts_with(" UTC") {
        len + " UTC".len()
    } else {
        len
    };
    Some((at.and_utc(), len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::Piece;
    use crate::runbook::run::{StepResult, StepState};

    fn person(identity: &str) -> Piece {
        Piece::Person {
            identity: identity.into(),
            notify: false,
        }
    }
    fn text(t: &str) -> Piece {
        Piece::Text(t.into())
    }

    #[test]
    fn the_people_in_a_steps_detail_are_people_and_its_time_a_time() {
        let line = detail_line("approved by slack:U0ADMIN1, slack:U0ADMIN2");
        assert_eq!(
            line.0,
            vec![
                text("approved by "),
                person("slack:U0ADMIN1"),
                text(", "),
                person("slack:U0ADMIN2")
            ]
        );
        let restored = "restored backup 20261205T124620Z to /srv/app.db (approved by \
                        discord:5552); previous data kept at /srv/app.db.before";
        let line = detail_line(restored);
        assert_eq!(line.0[1], person("discord:5552"), "{line:?}");
        assert_eq!(
            line.plain(),
            restored,
            "the words are kept around the person"
        );
        let line = detail_line("marked done by slack:U0OPS1 at 2026-12-05 12:46:20 UTC");
        let at = crate::units::parse_time("2026-12-05T12:46:20Z").unwrap();
        assert_eq!(
            line.0,
            vec![
                text("marked done by "),
                person("slack:U0OPS1"),
                text(" at "),
                Piece::Time {
                    at,
                    relative: false
                }
            ]
        );
        assert_eq!(
            detail_line("denied by cli:root.").0,
            vec![text("denied by "), person("cli:root"), text(".")]
        );
    }

    #[test]
    fn a_detail_without_people_stays_as_written() {
        for detail in [
            "no approval required by the config",
            "denied by an admin",
            "standby 200 (all ok)",
            "stood by slack:",
            "nearby slack:U1",
        ] {
            assert_eq!(detail_line(detail).0, vec![text(detail)], "{detail}");
        }
    }

    #[test]
    fn the_run_card_names_approvers_as_people_and_the_report_keeps_identities() {
        let step = StepResult {
            index: 3,
            title: "Restore".into(),
            kind: "restore".into(),
            estimate_seconds: 600,
            started_at: None,
            finished_at: None,
            actual_seconds: Some(12.0),
            state: StepState::Done,
            // As stored, by this version and by those before cards.
            detail: Some("restored backup b1 to /srv/app.db (approved by slack:U0ADMIN1)".into()),
        };
        let run = RunState {
            run_id: 1,
            runbook: "app-recovery".into(),
            title: "Recover the app".into(),
            actor: "slack:U0OPS1".into(),
            started_at: "2026-12-05T12:40:00Z".into(),
            finished_at: None,
            state: "succeeded".into(),
            steps: vec![step],
            next: None,
        };
        let card = card(&run);
        let pieces = &card.steps[0].0;
        assert!(pieces.contains(&person("slack:U0ADMIN1")), "{card:?}");
        assert!(
            !pieces
                .iter()
                .any(|p| matches!(p, Piece::Text(t) if t.contains("slack:"))),
            "no identity left in the words: {card:?}"
        );
        assert!(
            markdown(&run).contains("(approved by slack:U0ADMIN1)"),
            "the report keeps the identity"
        );
    }
}
