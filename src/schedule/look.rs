//! One look at one target: the facts from the state database, each of its alerts moved
//! on (stored and audited with its id), what to post, and when to look again.

use chrono::{DateTime, Utc};

use super::alerts::{self, Change, Say, Seen};
use super::watchdog::{self, Facts};
use super::{DEFAULT_REALERT, next_drill_due, next_due, prev_due};
use crate::app::App;
use crate::db::alerts::AlertRecord;
use crate::db::jobs::JobState;

/// The kinds of alert a target can have open, one each at most.
pub const KINDS: [&str; 7] = [
    "backup",
    "verify",
    "drill",
    "too_long",
    "inconsistent",
    "replication",
    "generation",
];

/// The longest a target goes without being looked at.
pub const CEILING: chrono::Duration = chrono::Duration::hours(6);

/// How soon a post that could not be delivered is tried again.
pub const RETRY_POST: chrono::Duration = chrono::Duration::seconds(30);

/// A message the channel is owed.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub alert: AlertRecord,
    pub say: Say,
    pub text: String,
    /// When the target's last good backup started, for the card's facts.
    pub last_ok: Option<DateTime<Utc>>,
}

impl Outgoing {
    /// The chat message: a card, with `text` as its plain form.
    pub fn message(&self, now: DateTime<Utc>) -> crate::notify::ChatMessage {
        super::alert_card::message(&self.alert, self.say, &self.text, self.last_ok, now)
    }
}

/// Look at `name` at `now`: what to post, and when it must be looked at again.
pub fn look(
    app: &App,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<Outgoing>, DateTime<Utc>), crate::error::Error> {
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
        .filter(|j| matches!(j.state, JobState::Failed | JobState::Interrupted))
        .map(|j| {
            (
                j.id,
                j.message.clone().unwrap_or_else(|| j.state.to_string()),
            )
        });
    let last_verify = app.db.job_last(name, "verify", false)?;
    let last_drill = app.db.drill_last(name, false)?;
    let newest = app.db.catalog_summary(name)?;
    let mut watch = app.db.watch_get(name)?;
    if watch.first_seen.is_none() {
        // A target is judged from when lifeboat first watched it: a due time before that
        // (a new config, a fresh install) is not a missed backup.
        watch.first_seen = Some(crate::units::time_text(now));
        app.db.watch_put(name, &watch)?;
    }
    let watched_since = watch
        .first_seen
        .as_deref()
        .and_then(crate::units::parse_time)
        .unwrap_or(now);
    // A continuous target's replication, as far as its store says (none when unreadable:
    // status names that).
    let max_lag = cfg.max_lag();
    let lag = cfg
        .continuous
        .map(|_| crate::replicate::lag::of(app, name, now));
    let replicated = lag.as_ref().and_then(|l| l.replicated_to);
    let replication_stuck = lag.and_then(|l| l.stuck);
    // A generation that had to start over stays a problem until a verify passes after
    // it started (verify proves the new chain).
    let passing_verify_since = |started: &str| {
        last_verify.as_ref().is_some_and(|j| {
            j.state == JobState::Succeeded && j.finished_at.as_deref().is_some_and(|f| f >= started)
        })
    };
    let restarted = cfg
        .continuous
        .and_then(|_| crate::replicate::lag::restarted(app, name))
        .filter(|g| !passing_verify_since(&g.started_at));
    // A continuous target on another host is copied on schedule by its replicator there:
    // its base copies, read from the store, are its scheduled backups.
    let host_base = (crate::replicate::replicated_on_its_host(cfg) && cfg.schedule.is_some())
        .then(|| crate::replicate::scheduled::newest_base(app, name))
        .flatten();
    let facts = Facts {
        now,
        due: prev_due(cfg.schedule.as_ref(), cfg, now).filter(|due| *due >= watched_since),
        grace,
        last_ok: backups
            .last_ok
            .as_ref()
            .and_then(|j| crate::units::parse_time(&j.started_at))
            .max(host_base.as_ref().map(|(created, _)| *created)),
        last_failure,
        consecutive_failures: backups.consecutive_failures,
        verify_failure: last_verify
            .as_ref()
            .filter(|j| j.state == JobState::Failed)
            .map(|j| {
                let why = j.message.clone();
                (j.id, why.unwrap_or_else(|| "verification failed".into()))
            }),
        running: running.as_ref().and_then(|j| {
            crate::units::parse_time(&j.started_at).map(|t| (j.id, j.kind.clone(), t))
        }),
        max_duration: cfg.max_duration.map(|d| d.0),
        drill_failure: last_drill
            .as_ref()
            .filter(|d| !d.ok)
            .map(|d| (d.id, d.problems.join("; "))),
        drill_due: prev_due(cfg.drill_schedule.as_ref(), cfg, now)
            .filter(|due| *due >= watched_since),
        last_drill_ok: app
            .db
            .drill_last_passing(name)?
            .and_then(|d| crate::units::parse_time(&d.started_at)),
        inconsistent: newest
            .newest_id
            .clone()
            .zip(newest.newest_changed_while_read.clone()),
        replicated: replicated.map(|t| (t, max_lag)),
        replication_stuck,
        restarted,
    };
    let problems = watchdog::problems(&facts);
    let realert = chrono::Duration::from_std(cfg.realert.map_or(DEFAULT_REALERT, |d| d.0))
        .unwrap_or_default();
    let external = !super::takes_backups(name, cfg);

    // What proves a target well again, finished after the alert opened.
    let after = |finished: Option<&str>, a: &AlertRecord| {
        finished
            .filter(|f| *f >= a.opened_at.as_str())
            .map(String::from)
    };
    let evidence = |a: &AlertRecord| -> Option<String> {
        match a.kind.as_str() {
            "backup" if let Some((_, finished)) = &host_base => {
                let at = after(Some(finished), a)?;
                Some(format!("a base copy taken by the replicator at {at}"))
            }
            "backup" => {
                let last = backups
                    .last
                    .as_ref()
                    .filter(|j| j.state == JobState::Succeeded)?;
                let at = after(last.finished_at.as_deref(), a)?;
                Some(if external {
                    format!("a success report at {at}")
                } else {
                    format!("a successful backup at {at}")
                })
            }
            "verify" => {
                let last = last_verify
                    .as_ref()
                    .filter(|j| j.state == JobState::Succeeded)?;
                let at = after(last.finished_at.as_deref(), a)?;
                Some(format!("a passing verify at {at}"))
            }
            "drill" => {
                let last = last_drill.as_ref().filter(|d| d.ok)?;
                let at = after(Some(&last.finished_at), a)?;
                Some(format!("a passing drill at {at}"))
            }
            // Seen only when the lag is back within max_lag.
            "replication" => replicated.map(|t| {
                format!(
                    "replication caught up (replicated to {})",
                    crate::units::time_text(t)
                )
            }),
            // Seen only once a verify passed after the new generation started.
            "generation" => {
                let last = last_verify
                    .as_ref()
                    .filter(|j| j.state == JobState::Succeeded)?;
                let at = after(last.finished_at.as_deref(), a)?;
                Some(format!("a passing verify of the new chain at {at}"))
            }
            // Seen only when the newest backup is no longer flagged.
            "inconsistent" => newest
                .newest_id
                .as_ref()
                .map(|id| format!("a consistent backup, {id}")),
            _ => Some(match a.facets.get("running") {
                Some(f) => format!("{} has ended", f.token),
                None => "the job has ended".into(),
            }),
        }
    };

    let mut live = app.db.alerts_live(name)?;
    let mut out = Vec::new();
    // Recovery notices still owed go out first (a new alert of that kind may follow).
    live.retain(|a| {
        if a.closed_at.is_some() {
            out.push(Outgoing {
                alert: a.clone(),
                say: Say::Recovery,
                text: alerts::recovery_text(a, now),
                last_ok: facts.last_ok,
            });
            return false;
        }
        true
    });
    let mut next = now + CEILING;
    for kind in KINDS {
        let open = live.iter().find(|a| a.kind == kind).cloned();
        let seen = Seen {
            target: name,
            kind,
            problems: problems.iter().filter(|p| p.alert_kind() == kind).collect(),
            missed_fix: watchdog::missed_fix(
                name,
                cfg.host
                    .as_deref()
                    .filter(|_| crate::replicate::replicated_on_its_host(cfg)),
                external,
            ),
        };
        let Some(step) = alerts::advance(open.clone(), &seen, evidence, now, realert) else {
            if let Some(a) = &open {
                next = next.min(repost_at(a, realert, now));
            }
            continue;
        };
        let mut alert = step.alert;
        match step.change {
            Change::Opened => app.db.alert_insert(&mut alert)?,
            Change::Updated | Change::Closed => app.db.alert_save(&alert)?,
            Change::Unchanged => {}
        }
        if step.change != Change::Unchanged {
            audit_change(app, &alert, step.change, now)?;
        }
        if alert.closed_at.is_none() {
            next = next.min(repost_at(&alert, realert, now));
        }
        if let Some(say) = step.say {
            let text = match say {
                Say::Post => alerts::alert_text(&alert, now, alert.posted_at.is_some()),
                Say::Edit => alerts::alert_text(&alert, now, alert.repeats > 0),
                Say::Recovery => alerts::recovery_text(&alert, now),
            };
            out.push(Outgoing {
                alert,
                say,
                text,
                last_ok: facts.last_ok,
            });
        }
    }
    // Look again at the next deadline, the next repeat, or when a running job outgrows
    // its limit, whichever comes first. Jobs (from any process) and pings make the
    // watchdog look at once; the six-hour ceiling only bounds how late anything else is
    // noticed (a state database changed by hand).
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
    // Replication falls behind without any job or ping to wake the watchdog: look as often
    // as half of max_lag.
    if cfg.continuous.is_some() {
        let half = chrono::Duration::from_std(max_lag / 2).unwrap_or_default();
        next = next.min(now + half.max(chrono::Duration::seconds(1)));
    }
    if let (Some((_, _, started)), Some(max)) = (&facts.running, facts.max_duration) {
        next = next.min(*started + chrono::Duration::from_std(max).unwrap_or_default());
    }
    Ok((out, next.max(now)))
}

/// When an open alert is due to be posted again (soon, when a post is owed).
fn repost_at(a: &AlertRecord, realert: chrono::Duration, now: DateTime<Utc>) -> DateTime<Utc> {
    match a.posted_at.as_deref().and_then(crate::units::parse_time) {
        Some(at) => at + realert,
        None => now + RETRY_POST,
    }
}

fn audit_change(
    app: &App,
    alert: &AlertRecord,
    change: Change,
    now: DateTime<Utc>,
) -> Result<(), crate::error::Error> {
    let (action, outcome, detail) = match change {
        Change::Closed => ("recovery", "closed", alerts::recovery_text(alert, now)),
        Change::Opened => ("alert", "opened", alerts::alert_text(alert, now, false)),
        _ => ("alert", "updated", alerts::alert_text(alert, now, false)),
    };
    let detail = format!("{} {}: {detail}", alert.label(), alert.kind);
    tracing::warn!(target = %alert.target, alert = %alert.label(), kind = %alert.kind, "{outcome}: {detail}");
    app.db.audit(
        "lifeboat",
        action,
        Some(&alert.target),
        outcome,
        Some(&detail),
    )?;
    Ok(())
}

/// Store that an outgoing message was delivered: `to` is the alert channel that took it
/// and the message it made there (None when no alert channel is configured: the log and
/// the audit trail are then the delivery). The first channel to take a post marks the
/// alert posted (a repeat is counted and audited once); each channel's message is kept
/// for later edits. A channel that refused records nothing: when every one refused,
/// the post is still owed and tried again.
pub fn delivered(
    app: &App,
    out: &Outgoing,
    to: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> Result<(), crate::error::Error> {
    let at = crate::units::time_text(now);
    let mut repeated = false;
    let stored = app
        .db
        .alert_delivered(out.alert.id, |alert| match out.say {
            Say::Post => {
                // Another channel took this same post first: only its message is new.
                if alert.posted_at == out.alert.posted_at {
                    repeated = alert.posted_at.is_some();
                    alert.repeats += u64::from(repeated);
                    alert.posted_at = Some(at);
                }
                if let Some((sink, message)) = to {
                    anchor(alert, sink, message);
                }
                true
            }
            Say::Recovery if alert.recovery_posted_at.is_none() => {
                alert.recovery_posted_at = Some(at);
                true
            }
            Say::Recovery | Say::Edit => false,
        })?;
    if let Some(alert) = stored.filter(|_| repeated) {
        let detail = format!("{} {}: {}", alert.label(), alert.kind, out.text);
        app.db.audit(
            "lifeboat",
            "alert",
            Some(&alert.target),
            "repeated",
            Some(&detail),
        )?;
    }
    Ok(())
}

/// Store that an alert's message in `sink` could not be edited (`why`) and the alert now
/// lives in a fresh `message` there: later edits go to it, and the audit trail (and the
/// timeline of any open incident) says so.
pub fn reanchored(
    app: &App,
    out: &Outgoing,
    sink: &str,
    message: &str,
    why: &str,
) -> Result<(), crate::error::Error> {
    let stored = app.db.alert_delivered(out.alert.id, |alert| {
        anchor(alert, sink, message);
        true
    })?;
    let Some(alert) = stored else {
        return Ok(());
    };
    let detail = format!(
        "{} {}: its message in {sink} could not be edited ({why}); posted afresh",
        alert.label(),
        alert.kind
    );
    tracing::warn!(target = %alert.target, alert = %alert.label(), "{detail}");
    app.db.audit(
        "lifeboat",
        "alert",
        Some(&alert.target),
        "re-anchored",
        Some(&detail),
    )?;
    Ok(())
}

/// Make `message` the alert's message in `sink`, replacing the one before.
fn anchor(alert: &mut AlertRecord, sink: &str, message: &str) {
    alert.messages.retain(|(s, _)| s != sink);
    alert.messages.push((sink.to_string(), message.to_string()));
}
