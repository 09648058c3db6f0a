//! Status of every target: newest backup and its age, when the next one is due, whether
//! it is overdue, the last verify and drill, and any running job.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::app::App;
use crate::config::TargetConfig;
use crate::db::jobs::JobState;
use crate::error::Result;

/// Grace before a scheduled backup counts as missed, when the target sets none.
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub target: String,
    pub kind: String,
    pub store: Option<String>,
    pub last_backup: Option<String>,
    pub last_backup_at: Option<String>,
    pub last_backup_age_seconds: Option<i64>,
    pub last_backup_size_bytes: Option<u64>,
    /// When the newest backup changed while it was read: the paths (it is kept, flagged
    /// `consistent: false`); absent when it is consistent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_backup_changed_while_read: Option<Vec<String>>,
    pub backups: usize,
    /// When `after_*` hooks became owed that a crashed job never ran (the app they resume
    /// may still be stopped); absent when none are owed. `status` never runs them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owed_hooks_since: Option<String>,
    pub next_due: Option<String>,
    pub overdue: bool,
    pub overdue_since: Option<String>,
    pub last_job: Option<String>,
    pub last_verify: Option<String>,
    /// The last drill in words: "passed at … (RTO …, RPO …)" or "FAILED at …: why".
    pub last_drill: Option<String>,
    pub last_drill_at: Option<String>,
    pub last_drill_ok: Option<bool>,
    pub last_drill_rto_seconds: Option<f64>,
    pub last_drill_rpo_seconds: Option<f64>,
    pub rto_objective_seconds: Option<f64>,
    pub rpo_objective_seconds: Option<f64>,
    /// State of the newest backup job: succeeded, failed, cancelled, interrupted, running.
    pub last_backup_state: Option<String>,
    /// Whether the newest verify found the backup sound.
    pub last_verify_ok: Option<bool>,
    pub running: Option<String>,
    /// For the target of lifeboat's own state only: whether its store is off this host
    /// (kind s3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_offsite: Option<bool>,
    /// The running job's id (its live progress is the executor's).
    pub running_job: Option<i64>,
    /// Continuous targets: every transaction committed before this time is in the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicated_to: Option<String>,
    /// Continuous targets: how far `replicated_to` is behind now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Continuous targets whose position could not be read: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_problem: Option<String>,
    /// Continuous targets whose replication had to start over (a new generation) after
    /// the last passing verify: that generation and when and why it started. Its history
    /// is unproven until a verify passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unverified_generation: Option<String>,
    /// Continuous targets replicated on this host: what waits in the spool, not in the
    /// store yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spooled_bytes: Option<u64>,
    /// Continuous targets: `max_lag`, the lag past which replication counts as late.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lag_seconds: Option<f64>,
    /// green, amber or red, and why (see `health`).
    pub health: Health,
    pub health_reasons: Vec<String>,
}

/// How recoverable a target looks at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Green,
    Amber,
    Red,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Green => "green",
            Health::Amber => "amber",
            Health::Red => "red",
        }
    }
}

/// Past this share of an objective, a measurement is amber (close to missing it).
pub const AMBER_SHARE: f64 = 0.8;
/// A target with drill objectives whose last drill is older than this is amber.
pub const DRILL_STALE: std::time::Duration = std::time::Duration::from_secs(45 * 86_400);

pub fn all(app: &App, now: DateTime<Utc>) -> Result<Vec<TargetStatus>> {
    app.config
        .targets
        .iter()
        .map(|(name, cfg)| one(app, name, cfg, now))
        .collect()
}

pub fn one(app: &App, name: &str, cfg: &TargetConfig, now: DateTime<Utc>) -> Result<TargetStatus> {
    // The catalog answers fast (status is asked often, from chat too); the stores stay
    // the truth for `list`, `verify` and `restore`.
    let catalog = app.db.catalog_summary(name)?;
    let newest_at = catalog
        .newest_created_at
        .as_deref()
        .and_then(crate::units::parse_time);
    // Targets without a store (external jobs) are judged by their reports.
    let reported = match cfg.store {
        Some(_) => None,
        None => app
            .db
            .backup_facts(name)?
            .last_ok
            .and_then(|j| crate::units::parse_time(&j.started_at)),
    };
    let last_at = newest_at.or(reported);
    let (next_due, missed_since) = due(cfg, last_at, now);
    let describe_job = |j: crate::db::jobs::JobRecord| {
        format!(
            "{} {} at {}",
            j.kind,
            j.state,
            j.finished_at.unwrap_or(j.started_at)
        )
    };
    let last_backup_job = app.db.job_last(name, "backup", false)?;
    let last_job = last_backup_job.clone().map(|j| {
        format!(
            "{} ({})",
            describe_job(j.clone()),
            j.message.unwrap_or_default()
        )
    });
    let drill = app.db.drill_last(name, false)?;
    let last_verify = app.db.job_last(name, "verify", false)?;
    let verified_at = last_verify
        .as_ref()
        .filter(|j| j.state == JobState::Succeeded)
        .and_then(|j| j.finished_at.as_deref())
        .and_then(crate::units::parse_time);
    let running = app.db.jobs_running(Some(name))?.into_iter().next();
    let objective = |d: Option<crate::config::HumanDuration>| d.map(|d| d.0.as_secs_f64());
    let mut status = TargetStatus {
        target: name.to_string(),
        kind: cfg.kind.as_str().to_string(),
        store: cfg.store.clone(),
        last_backup: catalog.newest_id.clone(),
        last_backup_at: last_at.map(crate::units::time_text),
        last_backup_age_seconds: last_at.map(|t| (now - t).num_seconds()),
        last_backup_size_bytes: catalog.newest_size_bytes,
        last_backup_changed_while_read: catalog.newest_changed_while_read.clone(),
        backups: catalog.count,
        owed_hooks_since: app.db.hooks_owed_since(name)?,
        next_due: next_due.map(crate::units::time_text),
        overdue: missed_since.is_some(),
        overdue_since: missed_since.map(crate::units::time_text),
        last_job,
        last_verify_ok: last_verify.as_ref().map(|j| j.state == JobState::Succeeded),
        last_verify: last_verify.map(describe_job),
        last_drill: drill.as_ref().map(describe_drill),
        last_drill_at: drill.as_ref().map(|d| d.started_at.clone()),
        last_drill_ok: drill.as_ref().map(|d| d.ok),
        last_drill_rto_seconds: drill.as_ref().and_then(|d| d.rto_seconds),
        last_drill_rpo_seconds: drill.as_ref().and_then(|d| d.rpo_seconds),
        rto_objective_seconds: objective(cfg.rto),
        rpo_objective_seconds: objective(cfg.rpo),
        last_backup_state: last_backup_job.map(|j| j.state.to_string()),
        running: running.as_ref().map(|j| {
            format!(
                "job {}: {} by {} since {}",
                j.id, j.kind, j.actor, j.started_at
            )
        }),
        state_offsite: crate::actions::drill_state::is_state_target(app, name).then(|| {
            cfg.store
                .as_ref()
                .and_then(|s| app.config.stores.get(s))
                .is_some_and(|s| s.kind == crate::config::StoreKind::S3)
        }),
        running_job: running.map(|j| j.id),
        replicated_to: None,
        lag_seconds: None,
        replication_problem: None,
        unverified_generation: None,
        spooled_bytes: None,
        max_lag_seconds: None,
        health: Health::Green,
        health_reasons: Vec::new(),
    };
    if cfg.continuous.is_some() {
        let lag = crate::replicate::lag::of(app, name, now);
        status.replicated_to = lag.replicated_to.map(crate::units::time_text);
        status.lag_seconds = lag.lag_seconds;
        status.replication_problem = lag.problem;
        status.spooled_bytes = lag.spooled_bytes;
        status.max_lag_seconds = Some(cfg.max_lag().as_secs_f64());
        status.unverified_generation = unverified_generation(app, name, verified_at);
    }
    (status.health, status.health_reasons) = health(&status, now);
    Ok(status)
}

/// The generation a continuous target's replication had to start over with, when no
/// verify passed after it started: "generation G, started at T: why".
fn unverified_generation(
    app: &App,
    name: &str,
    verified_at: Option<DateTime<Utc>>,
) -> Option<String> {
    let g = crate::replicate::lag::restarted(app, name)?;
    let started = crate::units::parse_time(&g.started_at);
    if verified_at.is_some_and(|v| started.is_some_and(|s| v >= s)) {
        return None;
    }
    Some(format!(
        "generation {}, started at {}: {}",
        g.generation, g.started_at, g.reason
    ))
}

/// The verdict on a status: red when recovery is in doubt (no backup, overdue, the last
/// backup, verify or drill failed, an objective missed), amber when it is close (a
/// measurement past `AMBER_SHARE` of its objective, no drill yet or none for
/// `DRILL_STALE`, a backup job interrupted or cancelled), green otherwise.
pub fn health(s: &TargetStatus, now: DateTime<Utc>) -> (Health, Vec<String>) {
    let mut found: Vec<(Health, String)> = Vec::new();
    let mut add = |h: Health, why: String| found.push((h, why));
    let human = crate::actions::drill_report::human;
    if s.last_backup_at.is_none() {
        add(Health::Red, "no backup yet".into());
    }
    if s.overdue {
        add(Health::Red, "a scheduled backup is overdue".into());
    }
    // A continuous target's recovery point is how far replication reached.
    if let (Some(lag), Some(max)) = (s.lag_seconds, s.max_lag_seconds) {
        let behind = format!(
            "replication is {} behind (max_lag {})",
            human(lag),
            human(max)
        );
        if lag > max {
            add(Health::Red, behind);
        } else if lag > max * AMBER_SHARE {
            add(Health::Amber, behind);
        }
    }
    if let Some(problem) = &s.replication_problem {
        add(Health::Amber, format!("continuous replication: {problem}"));
    }
    match s.last_backup_state.as_deref() {
        Some("failed") => add(Health::Red, "the last backup failed".into()),
        Some(state @ ("cancelled" | "interrupted")) => {
            add(Health::Amber, format!("the last backup was {state}"))
        }
        _ => {}
    }
    if let Some(since) = &s.owed_hooks_since {
        add(
            Health::Amber,
            format!(
                "after_* hooks owed since {since} never ran (the app may still be stopped): \
                 they run at the next action on {} or when serve starts",
                s.target
            ),
        );
    }
    if let (Some(paths), Some(id)) = (&s.last_backup_changed_while_read, &s.last_backup) {
        add(
            Health::Amber,
            format!(
                "the newest backup {id} is inconsistent: {}",
                crate::actions::backup::changed_files(paths)
            ),
        );
    }
    if let Some(generation) = &s.unverified_generation {
        add(
            Health::Amber,
            format!(
                "replication started over ({generation}) and no verify has passed since; \
                 `lifeboat verify {}` proves the new history",
                s.target
            ),
        );
    }
    if s.last_verify_ok == Some(false) {
        add(Health::Red, "the last verify failed".into());
    }
    if s.last_drill_ok == Some(false) {
        add(Health::Red, "the last drill failed".into());
    }
    let mut against = |what: &str, measured: Option<f64>, objective: Option<f64>| {
        if let (Some(m), Some(o)) = (measured, objective) {
            if m > o {
                add(
                    Health::Red,
                    format!("{what} {} is over its objective {}", human(m), human(o)),
                );
            } else if m > o * AMBER_SHARE {
                add(
                    Health::Amber,
                    format!("{what} {} is close to its objective {}", human(m), human(o)),
                );
            }
        }
    };
    let age = s.last_backup_age_seconds.map(|a| a as f64);
    against("current RPO", age, s.rpo_objective_seconds);
    against(
        "drill RTO",
        s.last_drill_rto_seconds,
        s.rto_objective_seconds,
    );
    against(
        "drill RPO",
        s.last_drill_rpo_seconds,
        s.rpo_objective_seconds,
    );
    if s.rto_objective_seconds.is_some() {
        let drilled = s
            .last_drill_at
            .as_deref()
            .and_then(crate::units::parse_time);
        match drilled {
            None => add(Health::Amber, "never drilled".into()),
            Some(t) if (now - t).to_std().unwrap_or_default() > DRILL_STALE => add(
                Health::Amber,
                format!(
                    "last drilled {} ago",
                    crate::units::human_age((now - t).num_seconds())
                ),
            ),
            Some(_) => {}
        }
    }
    let worst = found.iter().map(|(h, _)| *h).max().unwrap_or(Health::Green);
    (worst, found.into_iter().map(|(_, why)| why).collect())
}

fn describe_drill(d: &crate::db::drills::DrillRecord) -> String {
    let human = crate::actions::drill_report::human;
    let measured = |v: Option<f64>| v.map_or("—".to_string(), human);
    let mut text = format!(
        "{} at {} (RTO {}, RPO {})",
        if d.ok { "passed" } else { "FAILED" },
        d.started_at,
        measured(d.rto_seconds),
        measured(d.rpo_seconds)
    );
    if let Some(first) = d.problems.first() {
        text.push_str(&format!(": {first}"));
    }
    text
}

/// The next due time, and the due time that was missed (if the newest backup is older
/// than the latest due time and the grace has passed).
pub fn due(
    cfg: &TargetConfig,
    newest: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let Some(schedule) = &cfg.schedule else {
        return (None, None);
    };
    let grace =
        chrono::Duration::from_std(cfg.grace.map_or(DEFAULT_GRACE, |g| g.0)).unwrap_or_default();
    let (next, prev) = match cfg.timezone {
        Some(tz) => {
            let local = now.with_timezone(&tz.0);
            (
                schedule
                    .0
                    .after(&local)
                    .next()
                    .map(|t| t.with_timezone(&Utc)),
                schedule
                    .0
                    .after(&local)
                    .next_back()
                    .map(|t| t.with_timezone(&Utc)),
            )
        }
        None => (
            schedule.0.after(&now).next(),
            schedule.0.after(&now).next_back(),
        ),
    };
    let missed = prev.filter(|p| now > *p + grace && newest.is_none_or(|n| n < *p));
    (next, missed)
}
