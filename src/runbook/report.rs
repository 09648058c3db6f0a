//! A run's report: one row per step with its estimate and actual time, and the total;
//! the run's chat card and a manual step's card.

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
            line = line.text(format!(": {}", one_line(d)));
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
