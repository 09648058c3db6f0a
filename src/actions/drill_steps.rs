//! The steps of a drill as it runs: the timeline every kind's drill restore adds to,
//! what that restore leaves for the report, and the durations both put in words. The
//! drill action and each kind's restore half (actions::kind) share these; this module
//! imports neither.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::actions::drill_checks;
use crate::app::App;
use crate::config::TargetConfig;
use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::stores::manifest::Manifest;

/// One step of the drill's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub duration_seconds: f64,
    pub ok: bool,
    pub detail: String,
}

/// A drill as it goes: what it drills, when it started, its timeline and the problems
/// found so far. The restore of each kind (a sandbox directory, or a disk made from a
/// snapshot) adds its steps here.
pub struct Drill<'a> {
    pub app: &'a App,
    pub target: &'a str,
    pub cfg: &'a TargetConfig,
    pub ctx: &'a JobContext,
    pub started: DateTime<Utc>,
    clock: Instant,
    /// The timeline so far; only `step` adds to it.
    pub(crate) steps: Vec<Step>,
    pub problems: Vec<String>,
    /// What the report must say beside the problems (a backup that changed while read).
    pub notes: Vec<String>,
    /// A continuous target restored to a moment rather than a backup alone.
    pub restored_to: Option<RestoredTo>,
}

/// A continuous target's drill restored to a moment: which, and how it got there.
#[derive(Debug, Clone, Serialize)]
pub struct RestoredTo {
    /// The moment restored to.
    pub at: String,
    /// Whether the moment was asked for (`--at`, `at <time>`) rather than the newest one
    /// replicated when the drill started.
    pub asked: bool,
    /// The base copy replayed onto: the newest of its generation at or before the moment.
    pub base_backup: String,
    /// Whether that is the generation's first base copy rather than a later one.
    pub first_base: bool,
    pub generation: String,
    /// Transactions replayed onto the base, from how many segments, up to which.
    pub transactions: u64,
    pub segments: usize,
    pub up_to_txid: u64,
}

impl RestoredTo {
    /// "2026-12-05T20:00:00.000Z (the moment asked for): base copy X (…) and 12
    /// transactions from 3 segments, up to transaction 812 of generation G".
    pub fn describe(&self) -> String {
        format!(
            "{} ({}): base copy {} ({}) and {} from {}, up to transaction {} of generation {}",
            self.at,
            if self.asked {
                "the moment asked for"
            } else {
                "the newest moment replicated when the drill started"
            },
            self.base_backup,
            if self.first_base {
                "the generation's first"
            } else {
                "the newest at or before the moment"
            },
            crate::units::count(self.transactions, "shipped transaction", None),
            crate::units::count(self.segments as u64, "segment", None),
            self.up_to_txid,
            self.generation
        )
    }
}

/// What a kind's restore leaves for the report.
pub struct Sandboxed {
    /// The backup drilled (absent when none could be found).
    pub backup: Option<Manifest>,
    /// Where the copy was restored: a directory, or the drill disk's path.
    pub sandbox: PathBuf,
    /// Whether the sandbox is a cloud disk rather than a directory.
    pub is_disk: bool,
    pub created: bool,
    pub removed: bool,
    /// Drill start → verified restore, when it was reached.
    pub rto_seconds: Option<f64>,
    /// The RPO achieved when the drill restored to a moment (the replication lag then)
    /// rather than a backup, whose age is its RPO.
    pub rpo_seconds: Option<f64>,
}

impl<'a> Drill<'a> {
    /// A drill of `target` starting now.
    pub fn new(app: &'a App, target: &'a str, cfg: &'a TargetConfig, ctx: &'a JobContext) -> Self {
        Drill {
            app,
            target,
            cfg,
            ctx,
            started: Utc::now(),
            clock: Instant::now(),
            steps: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
            restored_to: None,
        }
    }

    /// Run one step; its outcome is `Ok(detail)` or `Err(problems)`, and an error is a
    /// problem too (but a cancel ends the drill). Whether it passed.
    pub fn step(
        &mut self,
        name: impl Into<String>,
        work: impl FnOnce() -> Result<std::result::Result<String, Vec<String>>>,
    ) -> Result<bool> {
        let name = name.into();
        self.ctx.progress.phase(&name);
        let started = Utc::now();
        let clock = Instant::now();
        let outcome = match work() {
            Ok(o) => o,
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => Err(vec![e.to_string()]),
        };
        let (ok, detail) = match &outcome {
            Ok(detail) => (true, detail.clone()),
            Err(problems) => (false, problems.join("; ")),
        };
        self.steps.push(Step {
            name,
            started_at: crate::units::time_text(started),
            duration_seconds: clock.elapsed().as_secs_f64(),
            ok,
            detail,
        });
        if let Err(p) = outcome {
            self.problems.extend(p);
        }
        Ok(ok)
    }

    /// Seconds since the drill started.
    pub fn elapsed(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    /// The target's `checks`, one step each; a command check finds `sandbox` in
    /// `LIFEBOAT_SANDBOX`.
    pub fn run_checks(&mut self, sandbox: &Path) -> Result<()> {
        let cfg = self.cfg;
        for (i, check) in cfg.checks.iter().enumerate() {
            let name = format!("check {}: {}", i + 1, check.describe());
            let failed = format!("{name} failed");
            self.step(name, || {
                Ok(drill_checks::run(check, sandbox)
                    .map_err(|why| vec![format!("{failed}: {why}")]))
            })?;
        }
        Ok(())
    }
}

/// Seconds between the backup and `at`.
pub(crate) fn age(m: &Manifest, at: DateTime<Utc>) -> f64 {
    (at - m.created()).num_milliseconds().max(0) as f64 / 1000.0
}

/// Seconds in words: "850ms", "4.2s", "3m", "1h30m", "2days".
pub fn human(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0}ms", seconds * 1000.0)
    } else if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        crate::units::human_age(seconds as i64)
    }
}
