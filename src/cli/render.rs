//! How the command line shows results: a job run in this terminal and its report printed
//! (as text or `--json`), with a job context whose progress is drawn on the terminal
//! (phase, bytes, rate, ETA) and which Ctrl-C cancels.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use serde::Serialize;

use crate::app::App;
use crate::error::Error;
use crate::executor::JobOutput;
use crate::executor::job::{Job, JobReport};
use crate::progress::{Cancel, JobContext, Progress, Silent};
use crate::units::human_bytes;

pub fn print_json<T: Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
}

/// Run `job` here with terminal progress and Ctrl-C, and print its report; the exit code.
pub fn run_job(app: &App, actor: &str, job: &Job, json: bool) -> Result<i32, Error> {
    let ctx = job_context(json);
    let report = job.run(app, actor, &ctx)?;
    finish_progress(&ctx);
    Ok(print_report(job, &report, json))
}

/// Print a job's report as text or JSON; the exit code (1: a failed verify or drill).
pub fn print_report(job: &Job, report: &JobReport, json: bool) -> i32 {
    let target = job.target();
    match report {
        JobReport::Backup(m) if json => print_json(&m.summary()),
        JobReport::Backup(m) => {
            println!(
                "backup {} of {} complete: {} stored ({} before compression) in {:.1}s",
                m.id,
                m.target,
                human_bytes(m.size_bytes),
                human_bytes(m.content_bytes),
                m.duration_seconds
            );
            if let Some(warning) = crate::actions::backup::inconsistency_warning(m) {
                println!("{warning}");
            }
        }
        JobReport::Verify(r) if json => print_json(r),
        // Says so when the copy checks out but changed while it was read.
        JobReport::Verify(r) if r.ok => println!("{}", r.summary()),
        JobReport::Verify(r) => {
            println!("backup {} of {target} FAILED verification:", r.backup.id);
            for p in &r.problems {
                println!("  - {p}");
            }
        }
        JobReport::Drill(r) if json => print_json(r),
        JobReport::Drill(r) => {
            eprintln!("{}", r.headline());
            print!("{}", r.report);
        }
        JobReport::PlannedRestore(done) if json => println!("{}", done.to_json()),
        JobReport::PlannedRestore(done) => print!("{}", done.report()),
        JobReport::Restore(o) if json => print_json(o),
        JobReport::Restore(o) => {
            let plan = &o.plan;
            println!(
                "restored backup {} of {target} to {} in {:.1}s",
                plan.backup.id,
                plan.destination.display(),
                o.duration_seconds
            );
            for m in &plan.move_aside {
                println!("previous data kept at {}", m.to.display());
            }
        }
        JobReport::Prune(plan) if json => print_json(plan),
        JobReport::Prune(plan) => print!("{}", plan.describe()),
    }
    if report.ok() { 0 } else { 1 }
}

/// A job context for the CLI: progress on a terminal only, and Ctrl-C cancels cleanly
/// (a second Ctrl-C exits at once).
pub fn job_context(json: bool) -> JobContext {
    let cancel = Cancel::new();
    let flag = cancel.flag();
    let _ = signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        flag.clone(),
    );
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone());
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, flag);
    let progress: Arc<dyn Progress> = if !json && std::io::stdout().is_terminal() {
        Arc::new(TerminalProgress::default())
    } else {
        Arc::new(Silent)
    };
    JobContext {
        progress: Arc::new(NotesOnStderr(progress)),
        cancel,
    }
}

/// Notes (a hook's outcome and output tail) go to stderr whatever else is shown, so
/// `--json` on stdout stays clean and a log of the run keeps them.
struct NotesOnStderr(Arc<dyn Progress>);

impl Progress for NotesOnStderr {
    fn phase(&self, name: &str) {
        // With LIFEBOAT_LOG=lifeboat=debug, the log's timestamps give each phase's time.
        tracing::debug!(phase = name, "phase");
        self.0.phase(name)
    }
    fn total(&self, bytes: Option<u64>) {
        self.0.total(bytes)
    }
    fn advance(&self, bytes: u64) {
        self.0.advance(bytes)
    }
    fn note(&self, text: &str) {
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{text}");
    }
}

pub fn finish_progress(_ctx: &JobContext) {
    if std::io::stdout().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

/// Phase, bytes, rate and ETA on one line of stderr, redrawn at most ten times a second.
#[derive(Default)]
struct TerminalProgress {
    state: std::sync::Mutex<TermState>,
}

#[derive(Default)]
struct TermState {
    phase: String,
    total: Option<u64>,
    done: u64,
    started: Option<std::time::Instant>,
    drawn: Option<std::time::Instant>,
}

impl Progress for TerminalProgress {
    fn phase(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        *s = TermState {
            phase: name.to_string(),
            started: Some(std::time::Instant::now()),
            ..TermState::default()
        };
        draw(&mut s, true);
    }
    fn total(&self, bytes: Option<u64>) {
        self.state.lock().unwrap().total = bytes;
    }
    fn advance(&self, bytes: u64) {
        let mut s = self.state.lock().unwrap();
        s.done += bytes;
        draw(&mut s, false);
    }
}

fn draw(s: &mut TermState, force: bool) {
    let now = std::time::Instant::now();
    if !force
        && s.drawn
            .is_some_and(|d| now - d < std::time::Duration::from_millis(100))
    {
        return;
    }
    s.drawn = Some(now);
    let secs = s
        .started
        .map_or(0.0, |t| (now - t).as_secs_f64())
        .max(0.001);
    let rate = s.done as f64 / secs;
    let mut line = format!("{}: {}", s.phase, human_bytes(s.done));
    if let Some(total) = s.total.filter(|t| *t > 0) {
        let pct = (s.done as f64 / total as f64 * 100.0).min(100.0);
        line.push_str(&format!(" of {} ({pct:.0}%)", human_bytes(total)));
        if rate > 0.0 && s.done < total {
            line.push_str(&format!(", ETA {:.0}s", (total - s.done) as f64 / rate));
        }
    }
    line.push_str(&format!(", {}/s", human_bytes(rate as u64)));
    eprint!("\r\x1b[2K{line}");
}
