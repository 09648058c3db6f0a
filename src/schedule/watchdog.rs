//! What is wrong with a target now, as a pure function of facts: missed, failed, verify
//! failed, drill failed or stale, running too long, the newest backup changed while it
//! was read; each problem names the alert it
//! belongs to (missed and failed share the backup alert), the occurrence it is (a due
//! time, a job) and its line of text. `alerts` decides what that means for the channel.

use chrono::{DateTime, Utc};

/// One problem a target can have. The key is what is persisted and compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No successful backup since the due time, and the grace has passed.
    Missed {
        due: DateTime<Utc>,
        last_ok: Option<DateTime<Utc>>,
    },
    /// The last attempt (job `job`) failed.
    Failed {
        job: i64,
        message: String,
        failures: u64,
    },
    /// The last verification (job `job`) of the newest backup found problems.
    VerifyFailed { job: i64, message: String },
    /// The last drill (drill record `drill`) failed or missed an objective.
    DrillFailed { drill: i64, message: String },
    /// No passing drill since the drill schedule's due time, and the grace has passed.
    DrillStale {
        due: DateTime<Utc>,
        last_ok: Option<DateTime<Utc>>,
    },
    /// The newest backup is kept but changed while it was read (`on_change = "warn"`).
    Inconsistent { backup: String, paths: Vec<String> },
    /// A job has run longer than `max_duration` (it keeps running).
    TooLong {
        job: i64,
        kind: String,
        started: DateTime<Utc>,
        max: std::time::Duration,
    },
    /// Continuous replication had to start a new generation: the shipped history broke
    /// there, so no moment between the old one's end and the new base restores.
    Restarted {
        generation: String,
        previous: String,
        started: DateTime<Utc>,
        reason: String,
    },
    /// Continuous replication is further behind than `max_lag`, or its replicator is
    /// stuck: it cannot spool (`stuck`: its spool at its bound, its disk full).
    Behind {
        replicated_to: DateTime<Utc>,
        max: std::time::Duration,
        stuck: Option<String>,
    },
}

impl Problem {
    /// The alert this problem belongs to: one per target and kind.
    pub fn alert_kind(&self) -> &'static str {
        match self {
            Problem::Missed { .. } | Problem::Failed { .. } => "backup",
            Problem::VerifyFailed { .. } => "verify",
            Problem::DrillFailed { .. } | Problem::DrillStale { .. } => "drill",
            Problem::TooLong { .. } => "too_long",
            Problem::Inconsistent { .. } => "inconsistent",
            Problem::Behind { .. } => "replication",
            Problem::Restarted { .. } => "generation",
        }
    }

    /// Which side of its alert it is.
    pub fn facet(&self) -> &'static str {
        match self {
            Problem::Missed { .. } => "missed",
            Problem::Failed { .. } | Problem::VerifyFailed { .. } | Problem::DrillFailed { .. } => {
                "failed"
            }
            Problem::DrillStale { .. } => "stale",
            Problem::TooLong { .. } => "running",
            Problem::Inconsistent { .. } => "changed",
            Problem::Behind { .. } => "behind",
            Problem::Restarted { .. } => "restarted",
        }
    }

    /// What makes this occurrence a new one: the due time missed, the job that failed.
    pub fn token(&self) -> String {
        match self {
            Problem::Missed { due, .. } | Problem::DrillStale { due, .. } => {
                format!("due {}", crate::units::time_text(*due))
            }
            Problem::Failed { job, .. } | Problem::VerifyFailed { job, .. } => format!("job {job}"),
            Problem::DrillFailed { drill, .. } => format!("drill {drill}"),
            Problem::TooLong { job, .. } => format!("job {job}"),
            // Each flagged backup is one more occurrence of the same alert, not a new one.
            Problem::Inconsistent { backup, .. } => format!("backup {backup}"),
            // One episode of falling behind is one occurrence, however long it lasts.
            Problem::Behind { .. } => "behind".into(),
            // Each new generation is an occurrence of its own.
            Problem::Restarted { generation, .. } => format!("generation {generation}"),
        }
    }
}

/// What the watchdog knows about a target at one moment.
#[derive(Debug, Clone)]
pub struct Facts {
    pub now: DateTime<Utc>,
    /// The latest due time at or before now.
    pub due: Option<DateTime<Utc>>,
    pub grace: chrono::Duration,
    pub last_ok: Option<DateTime<Utc>>,
    /// The last attempt's job and failure message, if the last attempt failed.
    pub last_failure: Option<(i64, String)>,
    pub consecutive_failures: u64,
    /// The last verify's job and problems, if it failed.
    pub verify_failure: Option<(i64, String)>,
    /// A running job: (id, kind, started).
    pub running: Option<(i64, String, DateTime<Utc>)>,
    pub max_duration: Option<std::time::Duration>,
    /// The last drill's record id and problems, if it failed or missed an objective.
    pub drill_failure: Option<(i64, String)>,
    /// The drill schedule's latest due time at or before now.
    pub drill_due: Option<DateTime<Utc>>,
    /// When the last passing drill started.
    pub last_drill_ok: Option<DateTime<Utc>>,
    /// The newest backup's id and what changed while it was read, if it is flagged.
    pub inconsistent: Option<(String, Vec<String>)>,
    /// A continuous target: how far replication reached, and its `max_lag`.
    pub replicated: Option<(DateTime<Utc>, std::time::Duration)>,
    /// A continuous target whose replicator cannot go on: why (its spool is full).
    pub replication_stuck: Option<String>,
    /// A continuous target whose current generation had to start over, with no passing
    /// verify (which proves the new chain) since it started.
    pub restarted: Option<crate::replicate::record::Generation>,
}

pub fn problems(f: &Facts) -> Vec<Problem> {
    let mut out = Vec::new();
    // Due, past its grace, and nothing good since: a missed backup or a stale drill.
    let overdue = |due: Option<DateTime<Utc>>, last_ok: Option<DateTime<Utc>>| {
        due.filter(|due| f.now >= *due + f.grace && last_ok.is_none_or(|ok| ok < *due))
    };
    if let Some(due) = overdue(f.due, f.last_ok) {
        out.push(Problem::Missed {
            due,
            last_ok: f.last_ok,
        });
    }
    if let Some((job, message)) = &f.last_failure {
        out.push(Problem::Failed {
            job: *job,
            message: message.clone(),
            failures: f.consecutive_failures,
        });
    }
    if let Some((job, message)) = &f.verify_failure {
        out.push(Problem::VerifyFailed {
            job: *job,
            message: message.clone(),
        });
    }
    if let Some((drill, message)) = &f.drill_failure {
        out.push(Problem::DrillFailed {
            drill: *drill,
            message: message.clone(),
        });
    }
    if let Some(due) = overdue(f.drill_due, f.last_drill_ok) {
        out.push(Problem::DrillStale {
            due,
            last_ok: f.last_drill_ok,
        });
    }
    if let Some((backup, paths)) = &f.inconsistent {
        out.push(Problem::Inconsistent {
            backup: backup.clone(),
            paths: paths.clone(),
        });
    }
    if let Some((replicated_to, max)) = f.replicated
        && (f.replication_stuck.is_some()
            || f.now - replicated_to > chrono::Duration::from_std(max).unwrap_or_default())
    {
        out.push(Problem::Behind {
            replicated_to,
            max,
            stuck: f.replication_stuck.clone(),
        });
    }
    if let Some(g) = &f.restarted {
        out.push(Problem::Restarted {
            generation: g.generation.clone(),
            previous: g.previous.clone().unwrap_or_default(),
            started: crate::units::parse_time(&g.started_at).unwrap_or(f.now),
            reason: g.reason.clone(),
        });
    }
    if let (Some((job, kind, started)), Some(max)) = (&f.running, f.max_duration)
        && f.now - *started > chrono::Duration::from_std(max).unwrap_or_default()
    {
        out.push(Problem::TooLong {
            job: *job,
            kind: kind.clone(),
            started: *started,
            max,
        });
    }
    out
}

/// What to do about a missed backup of `target`: take one from chat; or, when a job
/// elsewhere reports its backups (`external`), check that job; or, when a replicator on
/// the database's host takes its base copies, check that replicator.
pub fn missed_fix(target: &str, replicator_host: Option<&str>, external: bool) -> String {
    match replicator_host {
        Some(host) => format!(
            "check that `lifeboat replicate {target}` runs on {host}: it takes this target's base copies there"
        ),
        None if external => "check the job that should report to /hooks/ping".into(),
        None => format!("take one now: `/backup now {target}`"),
    }
}

/// The line of an alert that says what is wrong and what to do; `missed_fix` is what to
/// do about a missed backup, which depends on who takes the target's backups.
pub fn line(target: &str, p: &Problem, missed_fix: &str, now: DateTime<Utc>) -> String {
    let age = |t: DateTime<Utc>| crate::units::human_age((now - t).num_seconds());
    let at = |t: DateTime<Utc>| crate::units::time_text(t);
    match p {
        Problem::Missed { due, last_ok } => {
            let last = match last_ok {
                Some(t) => format!("last good backup {} ago ({})", age(*t), at(*t)),
                None => "no good backup on record".into(),
            };
            format!(
                "⚠️ missed backup: {target} has had no successful backup since it was due at {} ({} overdue); {last}; {missed_fix}",
                at(*due),
                age(*due)
            )
        }
        Problem::Failed {
            message, failures, ..
        } => format!("❌ backup of {target} failed ({failures} in a row): {message}"),
        Problem::VerifyFailed { message, .. } => format!(
            "❌ verification of {target} failed: {message}; `/verify {target}` again after fixing, or take a new backup"
        ),
        Problem::DrillFailed { message, .. } => format!(
            "❌ the last drill of {target} failed: {message}; see its report, fix, then `/drill {target}` again"
        ),
        Problem::DrillStale { due, last_ok } => {
            let last = match last_ok {
                Some(t) => format!("last passing drill {} ago ({})", age(*t), at(*t)),
                None => "no passing drill on record".into(),
            };
            format!(
                "⚠️ stale drill: {target} has had no passing drill since one was due at {} ({} overdue); {last}; run `/drill {target}`",
                at(*due),
                age(*due)
            )
        }
        Problem::TooLong {
            job,
            kind,
            started,
            max,
        } => format!(
            "⏱ {kind} of {target} (job {job}) has run for {}, longer than its max_duration of {}; it keeps running",
            age(*started),
            humantime::format_duration(*max)
        ),
        Problem::Behind {
            replicated_to,
            max,
            stuck: None,
        } => format!(
            "⚠️ replication of {target} is {} behind, past its max_lag of {}: transactions committed since {} are not in the store yet; check `lifeboat replicate {target}` (or serve's log) and the store",
            age(*replicated_to),
            humantime::format_duration(*max),
            at(*replicated_to)
        ),
        Problem::Behind {
            replicated_to,
            stuck: Some(why),
            ..
        } => format!(
            "⚠️ replication of {target} is stuck, {} behind: {why}. Transactions committed since {} are not in the store yet; nothing is lost while the WAL keeps them; make room in the spool or bring the store back",
            age(*replicated_to),
            at(*replicated_to)
        ),
        Problem::Restarted {
            generation,
            previous,
            started,
            reason,
        } => format!(
            "⚠️ replication of {target} had to start a new generation at {} ({generation}, after {previous}): {reason}. Moments between the old generation's end and the new base copy cannot be restored; `/verify {target}` proves the new chain",
            at(*started)
        ),
        Problem::Inconsistent { backup, paths } => format!(
            "⚠️ the newest backup of {target}, {backup}, is inconsistent: {}; it is kept, but a restore of it may not open. {}",
            crate::actions::backup::changed_files(paths),
            first_upper(crate::actions::backup::WAYS_OUT)
        ),
    }
}

fn first_upper(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missed_fix(target: &str) -> String {
        super::missed_fix(target, None, false)
    }

    fn t(s: &str) -> DateTime<Utc> {
        crate::units::parse_time(s).unwrap()
    }

    fn facts(now: &str) -> Facts {
        Facts {
            now: t(now),
            due: Some(t("2026-11-22T03:00:00Z")),
            grace: chrono::Duration::hours(1),
            last_ok: Some(t("2026-11-21T03:00:05Z")),
            last_failure: None,
            consecutive_failures: 0,
            verify_failure: None,
            running: None,
            max_duration: None,
            drill_failure: None,
            drill_due: None,
            last_drill_ok: None,
            inconsistent: None,
            replicated: None,
            replication_stuck: None,
            restarted: None,
        }
    }

    #[test]
    fn each_new_generation_is_its_own_occurrence_naming_why() {
        let mut f = facts("2026-11-22T03:30:00Z");
        f.last_ok = Some(t("2026-11-22T03:00:01Z"));
        let g = |id: &str| crate::replicate::record::Generation {
            generation: id.into(),
            started_at: "2026-11-22T03:29:00Z".into(),
            reason: "the WAL was reset".into(),
            page_size: 4096,
            base_backup: "b".into(),
            base_txid: 0,
            base_at: "2026-11-22T03:29:00Z".into(),
            previous: Some("g0".into()),
            ended: None,
        };
        f.restarted = Some(g("g1"));
        let p = problems(&f);
        assert_eq!(
            (p[0].alert_kind(), p[0].facet()),
            ("generation", "restarted")
        );
        let text = line("db", &p[0], &missed_fix("db"), f.now);
        assert!(
            text.contains("g1") && text.contains("after g0") && text.contains("the WAL was reset"),
            "{text}"
        );
        f.restarted = Some(g("g2"));
        assert_ne!(problems(&f)[0].token(), p[0].token(), "a new occurrence");
    }

    #[test]
    fn replication_behind_max_lag_is_one_alert_until_it_catches_up() {
        let mut f = facts("2026-11-22T03:30:00Z");
        f.last_ok = Some(t("2026-11-22T03:00:01Z"));
        let max = std::time::Duration::from_secs(60);
        f.replicated = Some((t("2026-11-22T03:29:30Z"), max));
        assert!(problems(&f).is_empty(), "30 s behind, within a minute");
        f.replicated = Some((t("2026-11-22T03:25:00Z"), max));
        let p = problems(&f);
        assert_eq!((p[0].alert_kind(), p[0].facet()), ("replication", "behind"));
        let text = line("db", &p[0], &missed_fix("db"), f.now);
        assert!(
            text.contains("5m behind") && text.contains("max_lag of 1m"),
            "{text}"
        );
        f.replicated = Some((t("2026-11-22T03:20:00Z"), max));
        assert_eq!(
            problems(&f)[0].token(),
            p[0].token(),
            "still the same episode"
        );
        // A stuck replicator is the same alert before max_lag passes, saying why.
        f.replicated = Some((t("2026-11-22T03:29:50Z"), max));
        f.replication_stuck = Some("the spool /s holds 1.0 MiB, its bound".into());
        let p = problems(&f);
        assert_eq!(
            (p[0].alert_kind(), p[0].token()),
            ("replication", "behind".into())
        );
        let text = line("db", &p[0], &missed_fix("db"), f.now);
        assert!(
            text.contains("is stuck") && text.contains("the spool /s"),
            "{text}"
        );
    }

    #[test]
    fn every_flagged_backup_is_one_more_occurrence_of_one_alert() {
        let mut f = facts("2026-11-22T03:30:00Z");
        f.last_ok = Some(t("2026-11-22T03:00:01Z"));
        let paths = vec!["state/system.duckdb".to_string()];
        f.inconsistent = Some(("20261122T030000Z".into(), paths.clone()));
        let first = problems(&f);
        assert_eq!(
            (first[0].alert_kind(), first[0].facet()),
            ("inconsistent", "changed")
        );
        let text = line("volume", &first[0], &missed_fix("volume"), f.now);
        for needle in [
            "20261122T030000Z",
            "state/system.duckdb",
            "before_backup",
            "exclude",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        f.inconsistent = Some(("20261123T030000Z".into(), paths));
        let second = problems(&f);
        assert_eq!(second[0].alert_kind(), first[0].alert_kind());
        assert_ne!(second[0].token(), first[0].token());
        f.inconsistent = None;
        assert!(problems(&f).is_empty());
    }

    #[test]
    fn drills_fail_and_go_stale_after_the_grace() {
        let mut f = facts("2026-11-22T03:30:00Z");
        f.last_ok = Some(t("2026-11-22T03:00:01Z"));
        f.drill_due = Some(t("2026-11-22T03:00:00Z"));
        assert!(problems(&f).is_empty(), "within the grace");
        f.now = t("2026-11-22T04:00:00Z");
        assert_eq!(problems(&f)[0].facet(), "stale");
        assert_eq!(problems(&f)[0].alert_kind(), "drill");
        f.last_drill_ok = Some(t("2026-11-22T03:10:00Z"));
        assert!(
            problems(&f).is_empty(),
            "a passing drill since the due time"
        );
        f.drill_failure = Some((4, "RTO missed by 3m".into()));
        let p = problems(&f);
        assert_eq!((p[0].alert_kind(), p[0].facet()), ("drill", "failed"));
        assert_eq!(p[0].token(), "drill 4");
        let text = line("db", &p[0], &missed_fix("db"), f.now);
        assert!(
            text.contains("RTO missed by 3m") && text.contains("/drill db"),
            "{text}"
        );
    }

    #[test]
    fn missed_only_after_the_grace() {
        assert!(problems(&facts("2026-11-22T03:59:59Z")).is_empty());
        let missed = problems(&facts("2026-11-22T04:00:00Z"));
        assert_eq!(
            (missed[0].alert_kind(), missed[0].facet()),
            ("backup", "missed")
        );
        assert_eq!(missed[0].token(), "due 2026-11-22T03:00:00.000Z");
        let mut f = facts("2026-11-22T05:00:00Z");
        f.last_ok = Some(t("2026-11-22T03:00:02Z"));
        assert!(problems(&f).is_empty());
    }

    #[test]
    fn too_long_while_running() {
        let mut f = facts("2026-11-22T03:40:00Z");
        f.last_ok = Some(t("2026-11-22T03:00:00Z"));
        f.running = Some((7, "backup".into(), t("2026-11-22T03:05:00Z")));
        f.max_duration = Some(std::time::Duration::from_secs(30 * 60));
        assert_eq!(problems(&f)[0].alert_kind(), "too_long");
        assert_eq!(problems(&f)[0].token(), "job 7");
    }

    #[test]
    fn missed_and_failed_belong_to_one_backup_alert() {
        let mut f = facts("2026-11-22T04:10:00Z");
        f.last_failure = Some((12, "disk full".into()));
        f.consecutive_failures = 2;
        let p = problems(&f);
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|p| p.alert_kind() == "backup"));
        assert_eq!(p[1].token(), "job 12");
        assert!(
            line("db", &p[1], &missed_fix("db"), f.now).contains("failed (2 in a row): disk full")
        );
    }

    #[test]
    fn the_alert_says_what_to_do() {
        let p = problems(&facts("2026-11-23T05:00:00Z"));
        let text = line(
            "data-volume",
            &p[0],
            &missed_fix("data-volume"),
            t("2026-11-23T05:00:00Z"),
        );
        assert!(
            text.contains("missed backup") && text.contains("/backup now data-volume"),
            "{text}"
        );
        assert!(text.contains("last good backup 2days"), "{text}");
    }
}
