//! Schedules and the watchdog in `serve`: runs each target's cron backups through the
//! executor (skipping a run whose previous one still runs), applies retention afterwards,
//! and looks at every target when its deadlines, repeats or jobs need it (at most once a
//! second), posting each alert once, repeating it every `realert`, editing it as its
//! count grows, and posting one recovery notice when evidence closes it. What it says
//! goes through the alert channels' queues (`courier`), never awaited.

pub mod alert_card; // an alert or recovery notice as a card for the chat renderers
pub mod alerts;
mod courier;
pub mod look;
mod on_start;
pub mod open_alerts;
mod plan;
pub mod startup;
pub mod watchdog;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::config::{CronSchedule, TargetConfig};
use crate::executor::job::{self, Job, JobReport};
use crate::notify::{ChatMessage, Notifier, with_retries};
use crate::progress::JobContext;
use plan::Plan;
pub use plan::TargetWake;

/// Where the watchdog reads the time: the system clock in `serve`; a simulated one in
/// tests and benchmarks that run weeks in seconds (with tokio's paused time).
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that starts at `start` and runs with tokio's clock (paused or not).
pub struct TokioClock {
    start: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start: DateTime<Utc>) -> TokioClock {
        TokioClock {
            start,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::from_std(self.origin.elapsed()).unwrap_or_default()
    }
}

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
    next_check: Plan,
    /// Look at every target now.
    wake: Arc<tokio::sync::Notify>,
    /// Look at these targets now.
    wake_target: TargetWake,
    clock: Arc<dyn Clock>,
    /// How often running jobs are looked for (see [`Scheduler::with_poll`]).
    poll: Duration,
    /// Targets with a running job at the last look, and the newest job id seen then.
    busy: Vec<String>,
    last_job: i64,
    /// Bumped at each turn of the loop, for the heartbeat.
    alive: crate::monitor::heartbeat::Alive,
}

impl Scheduler {
    pub fn new(app: App, sinks: AlertSinks) -> Scheduler {
        Scheduler {
            app,
            sinks,
            next_run: HashMap::new(),
            next_drill: HashMap::new(),
            next_verify: HashMap::new(),
            next_check: Plan::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
            wake_target: TargetWake::default(),
            clock: Arc::new(SystemClock),
            poll: TICK,
            busy: Vec::new(),
            last_job: i64::MAX,
            alive: Default::default(),
        }
    }

    /// Look for running jobs (which the scheduler is not told about when they start in
    /// another process) every `poll` instead of every tick, and sleep between planned
    /// times instead of ticking: for simulations of weeks on a paused clock.
    pub fn with_poll(mut self, poll: Duration) -> Scheduler {
        self.poll = poll;
        self
    }

    /// Read the time from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Scheduler {
        self.clock = clock;
        self
    }

    /// A handle that makes the scheduler look at every target at once.
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// A handle that makes the scheduler look at one target at once (e.g. after a ping).
    pub fn target_waker(&self) -> TargetWake {
        self.wake_target.clone()
    }

    /// When the loop last turned: the heartbeat pings only while it keeps turning.
    pub fn alive(&self) -> crate::monitor::heartbeat::Alive {
        self.alive.clone()
    }

    /// Run until the task is dropped or aborted.
    pub async fn run(mut self) {
        tokio::spawn(startup::offer_rebuild(self.app.clone(), self.sinks.clone()));
        tokio::spawn(startup::settle_owed_hooks(
            self.app.clone(),
            self.sinks.clone(),
        ));
        let now = self.clock.now();
        // Every target is looked at now; only jobs after this one are news.
        let app = self.app.clone();
        self.last_job = tokio::task::spawn_blocking(move || app.db.jobs_newest_id())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        let courier = courier::Courier::start(self.app.clone(), &self.sinks);
        for (name, cfg) in self.app.config.targets.iter() {
            if backed_up_on_schedule_here(name, cfg)
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
            self.next_check.set(name, now);
        }
        on_start::backup_the_never_backed_up(&self.app, &self.wake_target).await;
        loop {
            self.alive.beat();
            let now = self.clock.now();
            self.start_due_backups(now);
            self.start_due_drills(now);
            self.start_due_verifies(now);
            self.check(now, &courier).await;
            startup::post_owed_hook_runs(&self.app, &self.sinks).await;
            let pause = self.pause(now);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.wake.notified() => self.next_check.all_at(self.clock.now()),
                _ = self.wake_target.notify.notified() => {
                    let now = self.clock.now();
                    for name in self.wake_target.take() {
                        if self.next_check.contains(&name) {
                            self.next_check.set(&name, now);
                        }
                    }
                }
            }
        }
    }

    /// How long to sleep: a tick, or with a longer `poll`, until the soonest planned
    /// time (at least a tick, at most `poll`).
    fn pause(&self, now: DateTime<Utc>) -> Duration {
        if self.poll <= TICK {
            return TICK;
        }
        let soonest = [
            self.next_check.first(),
            self.next_run.values().min().copied(),
            self.next_drill.values().min().copied(),
            self.next_verify.values().min().copied(),
        ]
        .into_iter()
        .flatten()
        .min();
        let poll = chrono::Duration::from_std(self.poll).unwrap_or_default();
        let until = soonest.map_or(now + poll, |t| t.min(now + poll));
        (until - now)
            .to_std()
            .unwrap_or_default()
            .clamp(TICK, self.poll)
    }

    fn start_due_backups(&mut self, now: DateTime<Utc>) {
        let targets = &self.app.config.targets;
        for name in take_due(&mut self.next_run, now, |n| next_due(&targets[n], now)) {
            let app = self.app.clone();
            let wake = self.wake_target.clone();
            tokio::spawn(async move {
                scheduled_backup(app, name.clone()).await;
                wake.wake(&name);
            });
        }
    }

    fn start_due_drills(&mut self, now: DateTime<Utc>) {
        let targets = &self.app.config.targets;
        for name in take_due(&mut self.next_drill, now, |n| {
            next_drill_due(&targets[n], now)
        }) {
            let app = self.app.clone();
            let wake = self.wake_target.clone();
            let sinks = self.sinks.clone();
            tokio::spawn(async move {
                scheduled_drill(app, name.clone(), sinks).await;
                wake.wake(&name);
            });
        }
    }

    fn start_due_verifies(&mut self, now: DateTime<Utc>) {
        let targets = &self.app.config.targets;
        for name in take_due(&mut self.next_verify, now, |n| {
            next_verify_due(&targets[n], now)
        }) {
            let app = self.app.clone();
            let wake = self.wake_target.clone();
            tokio::spawn(async move {
                scheduled_verify(app, name.clone()).await;
                wake.wake(&name); // a failed verify is alerted at once
            });
        }
    }

    async fn check(&mut self, now: DateTime<Utc>, courier: &courier::Courier) {
        // Running jobs are few; looking at them every tick catches too-long jobs however
        // they were started (chat, CLI, schedule). Jobs that started since the last look
        // (finished already or not) and jobs that ended since then are how work done by
        // another process (a CLI backup, verify or drill) reaches the watchdog at once.
        let app = self.app.clone();
        let since = self.last_job;
        let polled = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::db::DbError>((app.db.jobs_running(None)?, app.db.jobs_since(since)?))
        })
        .await
        .ok()
        .and_then(Result::ok);
        let mut touched: Vec<String> = Vec::new();
        if let Some((running, new_jobs)) = polled {
            let busy: Vec<String> = running.iter().map(|j| j.target.clone()).collect();
            let ended = self.busy.iter().filter(|t| !busy.contains(t)).cloned();
            touched.extend(ended.collect::<Vec<_>>());
            for (id, target) in new_jobs {
                self.last_job = self.last_job.max(id);
                touched.push(target);
            }
            touched.extend(busy.iter().cloned());
            self.busy = busy;
        }
        let mut due = self.next_check.due(now);
        for name in touched {
            if !due.contains(&name) && self.next_check.contains(&name) {
                due.push(name);
            }
        }
        if due.is_empty() {
            return;
        }
        let app = self.app.clone();
        let results = tokio::task::spawn_blocking(move || {
            due.into_iter()
                .map(|name| (name.clone(), look::look(&app, &name, now)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (name, result) in results {
            match result {
                Ok((outgoing, next)) => {
                    self.next_check.set(&name, next);
                    for out in outgoing {
                        courier.send(out, now);
                    }
                }
                Err(e) => {
                    tracing::error!(target = %name, "watchdog: {e}");
                    self.next_check
                        .set(&name, now + chrono::Duration::seconds(30));
                }
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

/// Whether lifeboat backs the target up itself (an external target only reports).
pub(crate) fn takes_backups(name: &str, cfg: &TargetConfig) -> bool {
    crate::sources::choose(name, cfg).is_ok_and(|s| s.takes_backups())
}

/// Whether this lifeboat's scheduler takes the target's scheduled backups: not for an
/// external target (it only reports) nor for a continuous target on another host (the
/// replicator there takes its base copies on the same schedule).
pub(crate) fn backed_up_on_schedule_here(name: &str, cfg: &TargetConfig) -> bool {
    takes_backups(name, cfg) && !crate::replicate::replicated_on_its_host(cfg)
}

/// The next scheduled verify after `now`: the target's `verify_schedule`, else what its
/// kind does unscheduled (a gcp-disk target: an hour from now).
pub fn next_verify_due(cfg: &TargetConfig, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match &cfg.verify_schedule {
        Some(schedule) => cron_next(schedule, cfg, now),
        None => {
            let source = crate::sources::choose("", cfg).ok()?;
            let every = source.unscheduled_verify_every()?;
            Some(now + chrono::Duration::from_std(every).ok()?)
        }
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

/// The latest scheduled time of `schedule` at or before `now`.
pub(crate) fn prev_due(
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

/// A scheduled backup: quiet unless it fails (the watchdog alerts), then retention in the
/// same job slot.
async fn scheduled_backup(app: App, name: String) {
    let actor = "schedule";
    let task_app = app.clone();
    let outcome = job::in_slot(
        &app,
        || {},
        move || {
            let ctx = JobContext::silent();
            let backup = Job::Backup {
                target: name.clone(),
            };
            match backup.run(&task_app, actor, &ctx) {
                Err(crate::error::Error::Busy(msg)) => {
                    tracing::info!(target = %name, "scheduled backup skipped: {msg}");
                    let _ = task_app.db.audit(
                        actor,
                        "scheduled backup skipped",
                        Some(&name),
                        "skipped",
                        Some(&msg),
                    );
                }
                Err(e) => tracing::warn!(target = %name, "scheduled backup failed: {e}"),
                Ok(done) => {
                    let id = done.backup_id().unwrap_or_default();
                    tracing::info!(target = %name, backup = %id, "scheduled backup complete");
                    let prune = Job::Prune {
                        target: name.clone(),
                    };
                    match prune.run(&task_app, actor, &ctx) {
                        Ok(JobReport::Prune(plan)) if !plan.remove.is_empty() => {
                            let ids: Vec<&str> =
                                plan.remove.iter().map(|m| m.id.as_str()).collect();
                            tracing::info!(target = %name, "retention removed {}", ids.join(", "));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(target = %name, "retention after the backup failed: {e}")
                        }
                    }
                }
            }
        },
    )
    .await;
    if let Err(e) = outcome {
        tracing::error!("scheduled backup task: {e}");
    }
}

/// A scheduled verify of the newest backup; its result is a job like any other, so a
/// failure becomes the watchdog's `verify_failed` alert. No backup yet, or a busy target,
/// skips the run.
async fn scheduled_verify(app: App, name: String) {
    let verify = Job::Verify {
        target: name.clone(),
        selector: crate::actions::catalog::Selector::Latest,
        read_data: false,
    };
    let outcome = verify
        .run_in_slot(&app, "schedule", JobContext::silent(), || {})
        .await;
    match outcome {
        Ok(Ok(JobReport::Verify(r))) if !r.ok => {
            tracing::warn!(target = %name, "scheduled verify failed: {}", r.problems.join("; "))
        }
        Ok(Ok(_)) => tracing::info!(target = %name, "scheduled verify passed"),
        Ok(Err(e)) => tracing::info!(target = %name, "scheduled verify did not run: {e}"),
        Err(e) => tracing::error!("scheduled verify task: {e}"),
    }
}

/// A scheduled drill: its summary and report go to the alert channels, whatever the
/// outcome; a busy target skips the run (recorded in the audit log).
async fn scheduled_drill(app: App, name: String, sinks: AlertSinks) {
    let drill = Job::Drill {
        target: name.clone(),
        selector: crate::actions::catalog::Selector::Latest,
    };
    let outcome = drill
        .run_in_slot(&app, "schedule", JobContext::silent(), || {})
        .await;
    let (msg, doc) = match outcome {
        Ok(Ok(JobReport::Drill(r))) => {
            tracing::info!(target = %name, ok = r.ok, "scheduled drill: {}", r.headline());
            (
                ChatMessage::card(crate::actions::drill_card::card(&r, None)),
                Some(crate::actions::drill_report::document(&r)),
            )
        }
        Ok(Ok(_)) => return,
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
            ChatMessage::text(format!("❌ scheduled drill of {name} could not run: {e}")),
            None,
        ),
        Err(e) => (
            ChatMessage::text(format!(
                "❌ scheduled drill of {name}: internal error ({e})"
            )),
            None,
        ),
    };
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
