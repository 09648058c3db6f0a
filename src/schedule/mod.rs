//! Schedules and the watchdog in `serve`: runs each target's cron backups through the
//! executor (skipping a run whose previous one still runs), applies retention afterwards,
//! and checks every target once a second against its deadlines, alerting on change of
//! state, repeating every `realert`, and sending one recovery notice.

pub mod open_alerts;
pub mod watchdog;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::config::{CronSchedule, TargetConfig, TargetKind};
use crate::notify::{ChatMessage, Notifier, with_retries};
use crate::progress::JobContext;
use watchdog::{Facts, Verdict};

/// How often an alert still open is repeated when the target sets no `realert`.
pub const DEFAULT_REALERT: Duration = Duration::from_secs(4 * 3600);
/// How often the watchdog looks at every target.
pub const TICK: Duration = Duration::from_secs(1);

/// Where alerts go besides the log and the audit trail: (notifier, channel id).
pub type AlertSinks = Vec<(Arc<dyn Notifier>, String)>;

pub struct Scheduler {
    app: App,
    sinks: AlertSinks,
    /// Next scheduled run per target that lifeboat backs up itself.
    next_run: HashMap<String, DateTime<Utc>>,
    /// Next scheduled drill per target with a `drill_schedule`.
    next_drill: HashMap<String, DateTime<Utc>>,
    /// Next scheduled verify of the newest backup (see [`next_verify_due`]).
    next_verify: HashMap<String, DateTime<Utc>>,
    /// When each target must be looked at again.
    next_check: HashMap<String, DateTime<Utc>>,
    wake: Arc<tokio::sync::Notify>,
}

impl Scheduler {
    pub fn new(app: App, sinks: AlertSinks) -> Scheduler {
        Scheduler {
            app,
            sinks,
            next_run: HashMap::new(),
            next_drill: HashMap::new(),
            next_verify: HashMap::new(),
            next_check: HashMap::new(),
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// A handle that makes the scheduler look at every target at once (e.g. after a ping).
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// Run until the task is dropped or aborted.
    pub async fn run(mut self) {
        let now = Utc::now();
        for (name, cfg) in self.app.config.targets.iter() {
            if cfg.kind != TargetKind::External
                && let Some(next) = next_due(cfg, now)
            {
                self.next_run.insert(name.clone(), next);
            }
            if let Some(next) = next_drill_due(cfg, now) {
                self.next_drill.insert(name.clone(), next);
            }
            if let Some(next) = next_verify_due(cfg, now) {
                self.next_verify.insert(name.clone(), next);
            }
            // At start every target is looked at: what became overdue while the bot was
            // down is reported now, and nothing already reported is repeated.
            self.next_check.insert(name.clone(), now);
        }
        loop {
            let now = Utc::now();
            self.start_due_backups(now);
            self.start_due_drills(now);
            self.start_due_verifies(now);
            self.check(now).await;
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = self.wake.notified() => {
                    for t in self.next_check.values_mut() { *t = Utc::now(); }
                }
            }
        }
    }

    fn start_due_backups(&mut self, now: DateTime<Utc>) {
        let targets = &self.app.config.targets;
        for name in take_due(&mut self.next_run, now, |n| next_due(&targets[n], now)) {
            let app = self.app.clone();
            let wake = self.wake.clone();
            tokio::spawn(async move {
                scheduled_backup(app, name).await;
                wake.notify_one();
            });
        }
    }

    fn start_due_drills(&mut self, now: DateTime<Utc>) {
        let targets = &self.app.config.targets;
        for name in take_due(&mut self.next_drill, now, |n| {
            next_drill_due(&targets[n], now)
        }) {
            let app = self.app.clone();
            let wake = self.wake.clone();
            let sinks = self.sinks.clone();
            tokio::spawn(async move {
                scheduled_drill(app, name, sinks).await;
                wake.notify_one();
            });
        }
    }

    fn start_due_verifies(&mut self, now: DateTime<Utc>) {
        let targets = &self.app.config.targets;
        for name in take_due(&mut self.next_verify, now, |n| {
            next_verify_due(&targets[n], now)
        }) {
            let app = self.app.clone();
            let wake = self.wake.clone();
            tokio::spawn(async move {
                scheduled_verify(app, name).await;
                wake.notify_one(); // a failed verify is alerted at once
            });
        }
    }

    async fn check(&mut self, now: DateTime<Utc>) {
        // Running jobs are few; looking at them every tick catches too-long jobs however
        // they were started (chat, CLI, schedule).
        let app = self.app.clone();
        let running = tokio::task::spawn_blocking(move || app.db.jobs_running(None))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let busy: Vec<String> = running.iter().map(|j| j.target.clone()).collect();
        let due: Vec<String> = self
            .next_check
            .iter()
            .filter(|(n, t)| **t <= now || busy.contains(n))
            .map(|(n, _)| n.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let app = self.app.clone();
        let results = tokio::task::spawn_blocking(move || {
            due.into_iter()
                .map(|name| (name.clone(), evaluate(&app, &name, now)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (name, result) in results {
            match result {
                Ok((alert, next)) => {
                    self.next_check.insert(name, next);
                    if let Some(text) = alert {
                        self.deliver(&text).await;
                    }
                }
                Err(e) => {
                    tracing::error!(target = %name, "watchdog: {e}");
                    self.next_check
                        .insert(name, now + chrono::Duration::seconds(30));
                }
            }
        }
    }

    async fn deliver(&self, text: &str) {
        let msg = ChatMessage::text(text);
        for (notifier, channel) in &self.sinks {
            if let Err(e) = with_retries("posting an alert", || notifier.post(channel, &msg)).await
            {
                tracing::error!(
                    "could not post an alert to {} {channel}: {e}",
                    notifier.platform()
                );
            }
        }
    }
}

/// The next scheduled backup after `now`, in the target's time zone.
pub fn next_due(cfg: &TargetConfig, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron_next(cfg.schedule.as_ref()?, cfg, now)
}

/// The next scheduled drill after `now`, in the target's time zone.
pub fn next_drill_due(cfg: &TargetConfig, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron_next(cfg.drill_schedule.as_ref()?, cfg, now)
}

/// The targets whose time in `plan` has come, each rescheduled at `next` (or dropped
/// from the plan when it has no next time).
fn take_due(
    plan: &mut HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
    next: impl Fn(&str) -> Option<DateTime<Utc>>,
) -> Vec<String> {
    let due: Vec<String> = plan
        .iter()
        .filter(|(_, t)| **t <= now)
        .map(|(n, _)| n.clone())
        .collect();
    for name in &due {
        match next(name) {
            Some(at) => plan.insert(name.clone(), at),
            None => plan.remove(name),
        };
    }
    due
}

/// How often the newest snapshot of a gcp-disk target without a `verify_schedule` is
/// checked: a snapshot deleted in the console is noticed within this, at the cost of one
/// API read.
pub const SNAPSHOT_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// The next scheduled verify after `now`: the target's `verify_schedule`, else, for a
/// gcp-disk target, an hour from now.
pub fn next_verify_due(cfg: &TargetConfig, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match &cfg.verify_schedule {
        Some(schedule) => cron_next(schedule, cfg, now),
        None if cfg.kind == TargetKind::GcpDisk => {
            Some(now + chrono::Duration::from_std(SNAPSHOT_CHECK_INTERVAL).ok()?)
        }
        None => None,
    }
}

fn cron_next(
    schedule: &CronSchedule,
    cfg: &TargetConfig,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match cfg.timezone {
        Some(tz) => schedule
            .0
            .after(&now.with_timezone(&tz.0))
            .next()
            .map(|t| t.with_timezone(&Utc)),
        None => schedule.0.after(&now).next(),
    }
}

/// Look at one target: alert text to send (if any) and when to look again.
fn evaluate(
    app: &App,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(Option<String>, DateTime<Utc>), crate::error::Error> {
    let cfg = app.target(name)?;
    let backups = app.db.backup_facts(name)?;
    let running = app.db.jobs_running(Some(name))?.into_iter().next();
    let grace = chrono::Duration::from_std(
        cfg.grace
            .map_or(crate::actions::status::DEFAULT_GRACE, |g| g.0),
    )
    .unwrap_or_default();
    let last_failure = backups
        .last
        .as_ref()
        .filter(|j| j.state == "failed" || j.state == "interrupted")
        .map(|j| j.message.clone().unwrap_or_else(|| j.state.clone()));
    let verify_failure = app
        .db
        .job_last(name, "verify", false)?
        .filter(|j| j.state == "failed")
        .map(|j| j.message.unwrap_or_else(|| "verification failed".into()));
    let last_drill = app.db.drill_last(name, false)?;
    let mut prev = app.db.watch_get(name)?;
    if prev.first_seen.is_none() {
        // A target is judged from when lifeboat first watched it: a due time before that
        // (a new config, a fresh install) is not a missed backup.
        prev.first_seen = Some(crate::db::time_text(now));
        app.db.watch_put(name, &prev)?;
    }
    let watched_since = prev
        .first_seen
        .as_deref()
        .and_then(crate::db::parse_time)
        .unwrap_or(now);
    let facts = Facts {
        now,
        due: prev_due(cfg.schedule.as_ref(), cfg, now).filter(|due| *due >= watched_since),
        grace,
        last_ok: backups
            .last_ok
            .as_ref()
            .and_then(|j| crate::db::parse_time(&j.started_at)),
        last_failure,
        consecutive_failures: backups.consecutive_failures,
        verify_failure,
        running: running
            .as_ref()
            .and_then(|j| crate::db::parse_time(&j.started_at).map(|t| (j.id, j.kind.clone(), t))),
        max_duration: cfg.max_duration.map(|d| d.0),
        drill_failure: last_drill.filter(|d| !d.ok).map(|d| d.problems.join("; ")),
        drill_due: prev_due(cfg.drill_schedule.as_ref(), cfg, now)
            .filter(|due| *due >= watched_since),
        last_drill_ok: app
            .db
            .drill_last_passing(name)?
            .and_then(|d| crate::db::parse_time(&d.started_at)),
    };
    let problems = watchdog::problems(&facts);
    let realert = chrono::Duration::from_std(cfg.realert.map_or(DEFAULT_REALERT, |d| d.0))
        .unwrap_or_default();
    let (verdict, state) = watchdog::decide(&prev, &problems, now, realert);
    let external = cfg.kind == TargetKind::External;
    let text = match verdict {
        Verdict::Quiet => None,
        Verdict::Alert => Some(watchdog::alert_text(name, &problems, external, now, false)),
        Verdict::Realert => Some(watchdog::alert_text(name, &problems, external, now, true)),
        Verdict::Recovered => Some(format!(
            "✅ {name} is healthy again{}",
            facts
                .last_ok
                .map(|t| format!(": last good backup at {}", crate::db::time_text(t)))
                .unwrap_or_default()
        )),
    };
    if verdict != Verdict::Quiet {
        app.db.watch_put(name, &state)?;
        let kind = if verdict == Verdict::Recovered {
            "recovery"
        } else {
            "alert"
        };
        let line = text.as_deref().unwrap_or_default();
        tracing::warn!(target = %name, kind, problems = %state.conditions, "{line}");
        app.db.audit(
            "lifeboat",
            kind,
            Some(name),
            &format!("{verdict:?}").to_lowercase(),
            Some(line),
        )?;
    }
    // Look again at the next deadline, the next repeat, or when a running job outgrows
    // its limit, whichever comes first. Jobs and pings wake the watchdog themselves; the
    // ten-minute ceiling only bounds how late a recovery by an outside hand is noticed.
    let mut next = now + chrono::Duration::minutes(10);
    // A deadline still ahead counts too: a wake-up between a due time and the end of its
    // grace (a job that just ended) must not push the look past that deadline.
    let deadlines = [
        next_due(cfg, now),
        next_drill_due(cfg, now),
        prev_due(cfg.schedule.as_ref(), cfg, now),
        prev_due(cfg.drill_schedule.as_ref(), cfg, now),
    ];
    for deadline in deadlines.into_iter().flatten().map(|due| due + grace) {
        if deadline > now {
            next = next.min(deadline);
        }
    }
    if !state.conditions.is_empty()
        && let Some(at) = state.alerted_at.as_deref().and_then(crate::db::parse_time)
    {
        next = next.min(at + realert);
    }
    if let (Some((_, _, started)), Some(max)) = (&facts.running, facts.max_duration) {
        next = next.min(*started + chrono::Duration::from_std(max).unwrap_or_default());
    }
    Ok((text, next.max(now)))
}

/// The latest scheduled time of `schedule` at or before `now`.
fn prev_due(
    schedule: Option<&CronSchedule>,
    cfg: &TargetConfig,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let schedule = &schedule?.0;
    let just_after = now + chrono::Duration::milliseconds(1);
    match cfg.timezone {
        Some(tz) => schedule
            .after(&just_after.with_timezone(&tz.0))
            .next_back()
            .map(|t| t.with_timezone(&Utc)),
        None => schedule.after(&just_after).next_back(),
    }
}

/// A scheduled backup: quiet unless it fails (the watchdog alerts), then retention.
async fn scheduled_backup(app: App, name: String) {
    let Ok(permit) = app.slots.clone().acquire_owned().await else {
        return;
    };
    let actor = "schedule".to_string();
    let task_app = app.clone();
    let outcome = crate::executor::on_job_thread(move || {
        let ctx = JobContext::silent();
        match crate::actions::backup::run(&task_app, &name, &actor, &ctx) {
            Err(crate::error::Error::Busy(msg)) => {
                tracing::info!(target = %name, "scheduled backup skipped: {msg}");
                let _ = task_app.db.audit(
                    &actor,
                    "scheduled backup skipped",
                    Some(&name),
                    "skipped",
                    Some(&msg),
                );
            }
            Err(e) => tracing::warn!(target = %name, "scheduled backup failed: {e}"),
            Ok(m) => {
                tracing::info!(target = %name, backup = %m.id, "scheduled backup complete");
                match crate::actions::prune::run(&task_app, &name, &actor, &ctx) {
                    Ok(plan) if !plan.remove.is_empty() => {
                        let ids: Vec<&str> = plan.remove.iter().map(|m| m.id.as_str()).collect();
                        tracing::info!(target = %name, "retention removed {}", ids.join(", "));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(target = %name, "retention after the backup failed: {e}")
                    }
                }
            }
        }
    })
    .await;
    drop(permit);
    if let Err(e) = outcome {
        tracing::error!("scheduled backup task: {e}");
    }
}

/// A scheduled verify of the newest backup; its result is a job like any other, so a
/// failure becomes the watchdog's `verify_failed` alert. No backup yet, or a busy target,
/// skips the run.
async fn scheduled_verify(app: App, name: String) {
    let Ok(permit) = app.slots.clone().acquire_owned().await else {
        return;
    };
    let task_app = app.clone();
    let outcome = crate::executor::on_job_thread(move || {
        let ctx = JobContext::silent();
        let selector = crate::actions::catalog::Selector::Latest;
        match crate::actions::verify::run(&task_app, &name, &selector, "schedule", &ctx) {
            Ok(r) if r.ok => tracing::info!(target = %name, "scheduled verify passed"),
            Ok(r) => {
                tracing::warn!(target = %name, "scheduled verify failed: {}", r.problems.join("; "))
            }
            Err(e) => tracing::info!(target = %name, "scheduled verify did not run: {e}"),
        }
    })
    .await;
    drop(permit);
    if let Err(e) = outcome {
        tracing::error!("scheduled verify task: {e}");
    }
}

/// A scheduled drill: its summary and report go to the alert channels, whatever the
/// outcome; a busy target skips the run (recorded in the audit log).
async fn scheduled_drill(app: App, name: String, sinks: AlertSinks) {
    let Ok(permit) = app.slots.clone().acquire_owned().await else {
        return;
    };
    let actor = "schedule".to_string();
    let task_app = app.clone();
    let task_name = name.clone();
    let outcome = crate::executor::on_job_thread(move || {
        let ctx = JobContext::silent();
        let selector = crate::actions::catalog::Selector::Latest;
        crate::actions::drill::run(&task_app, &task_name, &selector, &actor, &ctx)
    })
    .await;
    drop(permit);
    let (text, doc) = match outcome {
        Ok(Ok(r)) => {
            tracing::info!(target = %name, ok = r.ok, "scheduled drill: {}", r.headline());
            (r.chat_summary(), Some(crate::notify::Document::drill(&r)))
        }
        Ok(Err(crate::error::Error::Busy(msg))) => {
            tracing::info!(target = %name, "scheduled drill skipped: {msg}");
            let _ = app.db.audit(
                "schedule",
                "scheduled drill skipped",
                Some(&name),
                "skipped",
                Some(&msg),
            );
            return;
        }
        Ok(Err(e)) => (
            format!("❌ scheduled drill of {name} could not run: {e}"),
            None,
        ),
        Err(e) => (
            format!("❌ scheduled drill of {name}: internal error ({e})"),
            None,
        ),
    };
    let msg = ChatMessage::text(text);
    for (notifier, channel) in &sinks {
        if let Err(e) =
            with_retries("posting a drill result", || notifier.post(channel, &msg)).await
        {
            tracing::error!("could not post a drill result to {channel}: {e}");
        }
        if let Some(doc) = &doc {
            crate::notify::post_document(notifier.as_ref(), channel, doc).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn gcp_snapshots_are_looked_up_hourly_unless_a_verify_schedule_says_otherwise() {
        let text = "[stores.l]\nkind = \"local\"\npath = \"/tmp\"\n\
            [targets.disk]\nkind = \"gcp-disk\"\nproject = \"p\"\nzone = \"z\"\ndisk = \"d\"\n\
            [targets.db]\nkind = \"sqlite\"\npath = \"/tmp/a.db\"\nstore = \"l\"\n\
            [targets.checked]\nkind = \"sqlite\"\npath = \"/tmp/b.db\"\nstore = \"l\"\nverify_schedule = \"0 30 3 * * *\"\n";
        let config = Config::parse(text, "t.toml", Path::new("/etc"), &|_| None).unwrap();
        let now: DateTime<Utc> = "2026-11-22T10:00:00Z".parse().unwrap();
        let due = |name: &str| next_verify_due(&config.targets[name], now);
        assert_eq!(due("disk"), Some("2026-11-22T11:00:00Z".parse().unwrap()));
        assert_eq!(due("db"), None);
        assert_eq!(
            due("checked"),
            Some("2026-11-23T03:30:00Z".parse().unwrap())
        );
    }
}
