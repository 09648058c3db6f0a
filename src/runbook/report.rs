//! A run's report: one row per step with its estimate and actual time, and the total.

use super::run::{RunState, StepState};
use crate::incident::export::{clock, one_line};
use crate::units::human_age;

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

/// The run as a chat message: one line per step, the total, and what to do next.
pub fn chat_text(run: &RunState) -> String {
    let headline = match run.state.as_str() {
        "succeeded" => "✅ Runbook",
        "failed" => "❌ Runbook",
        _ => "⏳ Runbook",
    };
    let mut text = format!(
        "{headline} *{}* — {} (run {}, by {})",
        run.runbook, run.title, run.run_id, run.actor
    );
    for s in &run.steps {
        let time = match s.actual_seconds {
            Some(a) => format!("{} of est. {}", secs(a), estimate_text(s.estimate_seconds)),
            None => format!("est. {}", estimate_text(s.estimate_seconds)),
        };
        text.push_str(&format!(
            "\n{} {}. {} ({time})",
            mark(s.state),
            s.index,
            s.title
        ));
        if let Some(d) = s.detail.as_deref().filter(|d| !d.is_empty()) {
            text.push_str(&format!(": {}", one_line(d)));
        }
    }
    if run.state != "running" {
        text.push_str(&format!("\n{}", total_line(run)));
    }
    if let Some(next) = &run.next {
        text.push_str(&format!("\nNext: {next}"));
    }
    text
}
