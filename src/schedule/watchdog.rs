//! The watchdog's decisions, as pure functions of facts and the previous state: which
//! problems a target has now (missed, failed, running too long), and whether that means
//! an alert, a repeat of it, a recovery notice, or nothing.

use chrono::{DateTime, Utc};

use crate::db::watch::WatchRecord;

/// One problem a target can have. The key is what is persisted and compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No successful backup since the due time, and the grace has passed.
    Missed {
        due: DateTime<Utc>,
        last_ok: Option<DateTime<Utc>>,
    },
    /// The last attempt failed.
    Failed { message: String, failures: u64 },
    /// The last verification of the newest backup found problems.
    VerifyFailed { message: String },
    /// The last drill failed or missed an objective.
    DrillFailed { message: String },
    /// No passing drill since the drill schedule's due time, and the grace has passed.
    DrillStale {
        due: DateTime<Utc>,
        last_ok: Option<DateTime<Utc>>,
    },
    /// A job has run longer than `max_duration` (it keeps running).
    TooLong {
        job: i64,
        kind: String,
        started: DateTime<Utc>,
        max: std::time::Duration,
    },
}

impl Problem {
    pub fn key(&self) -> &'static str {
        match self {
            Problem::Missed { .. } => "missed",
            Problem::Failed { .. } => "failed",
            Problem::VerifyFailed { .. } => "verify_failed",
            Problem::DrillFailed { .. } => "drill_failed",
            Problem::DrillStale { .. } => "drill_stale",
            Problem::TooLong { .. } => "too_long",
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
    /// The last attempt's failure message, if the last attempt failed.
    pub last_failure: Option<String>,
    pub consecutive_failures: u64,
    /// The last verify's problems, if it failed.
    pub verify_failure: Option<String>,
    /// A running job: (id, kind, started).
    pub running: Option<(i64, String, DateTime<Utc>)>,
    pub max_duration: Option<std::time::Duration>,
    /// The last drill's problems, if it failed or missed an objective.
    pub drill_failure: Option<String>,
    /// The drill schedule's latest due time at or before now.
    pub drill_due: Option<DateTime<Utc>>,
    /// When the last passing drill started.
    pub last_drill_ok: Option<DateTime<Utc>>,
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
    if let Some(message) = &f.last_failure {
        out.push(Problem::Failed {
            message: message.clone(),
            failures: f.consecutive_failures,
        });
    }
    if let Some(message) = &f.verify_failure {
        out.push(Problem::VerifyFailed {
            message: message.clone(),
        });
    }
    if let Some(message) = &f.drill_failure {
        out.push(Problem::DrillFailed {
            message: message.clone(),
        });
    }
    if let Some(due) = overdue(f.drill_due, f.last_drill_ok) {
        out.push(Problem::DrillStale {
            due,
            last_ok: f.last_drill_ok,
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

/// What to tell the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Quiet,
    /// New or changed problems.
    Alert,
    /// The same problems, still there after `realert`.
    Realert,
    Recovered,
}

/// Compare the problems now with what was last said, and give the new persisted state.
pub fn decide(
    prev: &WatchRecord,
    now_problems: &[Problem],
    now: DateTime<Utc>,
    realert: chrono::Duration,
) -> (Verdict, WatchRecord) {
    let mut keys: Vec<&str> = now_problems.iter().map(Problem::key).collect();
    keys.sort();
    keys.dedup();
    let key = keys.join(",");
    let stamp = crate::db::time_text(now);
    if key.is_empty() {
        if prev.conditions.is_empty() {
            return (Verdict::Quiet, prev.clone());
        }
        return (
            Verdict::Recovered,
            WatchRecord {
                first_seen: prev.first_seen.clone(),
                ..WatchRecord::default()
            },
        );
    }
    if key != prev.conditions {
        let bad_since = if prev.conditions.is_empty() {
            Some(stamp.clone())
        } else {
            prev.bad_since.clone()
        };
        return (
            Verdict::Alert,
            WatchRecord {
                conditions: key,
                bad_since,
                alerted_at: Some(stamp),
                first_seen: prev.first_seen.clone(),
            },
        );
    }
    let last = prev.alerted_at.as_deref().and_then(crate::db::parse_time);
    if last.is_none_or(|t| now >= t + realert) {
        return (
            Verdict::Realert,
            WatchRecord {
                alerted_at: Some(stamp),
                ..prev.clone()
            },
        );
    }
    (Verdict::Quiet, prev.clone())
}

/// The alert text for a target's problems.
pub fn alert_text(
    target: &str,
    problems: &[Problem],
    external: bool,
    now: DateTime<Utc>,
    repeat: bool,
) -> String {
    let age = |t: DateTime<Utc>| crate::actions::restore::human_age((now - t).num_seconds());
    let mut lines = Vec::new();
    for p in problems {
        lines.push(match p {
            Problem::Missed { due, last_ok } => {
                let last = match last_ok {
                    Some(t) => format!("last good backup {} ago ({})", age(*t), crate::db::time_text(*t)),
                    None => "no good backup on record".into(),
                };
                let fix = if external {
                    "check the job that should report to /hooks/ping".to_string()
                } else {
                    format!("take one now: `/backup now {target}`")
                };
                format!("⚠️ missed backup: {target} has had no successful backup since it was due at {} ({} overdue); {last}; {fix}", crate::db::time_text(*due), age(*due))
            }
            Problem::Failed { message, failures } => {
                format!("❌ backup of {target} failed ({failures} in a row): {message}")
            }
            Problem::VerifyFailed { message } => {
                format!("❌ verification of {target} failed: {message}; `/verify {target}` again after fixing, or take a new backup")
            }
            Problem::DrillFailed { message } => {
                format!("❌ the last drill of {target} failed: {message}; see its report, fix, then `/drill {target}` again")
            }
            Problem::DrillStale { due, last_ok } => {
                let last = match last_ok {
                    Some(t) => format!("last passing drill {} ago ({})", age(*t), crate::db::time_text(*t)),
                    None => "no passing drill on record".into(),
                };
                format!("⚠️ stale drill: {target} has had no passing drill since one was due at {} ({} overdue); {last}; run `/drill {target}`", crate::db::time_text(*due), age(*due))
            }
            Problem::TooLong { job, kind, started, max } => format!(
                "⏱ {kind} of {target} (job {job}) has run for {}, longer than its max_duration of {}; it keeps running",
                age(*started),
                humantime::format_duration(*max)
            ),
        });
    }
    let mut text = lines.join("\n");
    if repeat {
        text = format!("(still) {text}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::db::parse_time(s).unwrap()
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
        }
    }

    #[test]
    fn drills_fail_and_go_stale_after_the_grace() {
        let mut f = facts("2026-11-22T03:30:00Z");
        f.last_ok = Some(t("2026-11-22T03:00:01Z"));
        f.drill_due = Some(t("2026-11-22T03:00:00Z"));
        assert!(problems(&f).is_empty(), "within the grace");
        f.now = t("2026-11-22T04:00:00Z");
        assert_eq!(problems(&f)[0].key(), "drill_stale");
        f.last_drill_ok = Some(t("2026-11-22T03:10:00Z"));
        assert!(
            problems(&f).is_empty(),
            "a passing drill since the due time"
        );
        f.drill_failure = Some("RTO missed by 3m".into());
        let p = problems(&f);
        assert_eq!(p[0].key(), "drill_failed");
        let text = alert_text("db", &p, false, f.now, false);
        assert!(
            text.contains("RTO missed by 3m") && text.contains("/drill db"),
            "{text}"
        );
    }

    #[test]
    fn missed_only_after_the_grace() {
        assert!(problems(&facts("2026-11-22T03:59:59Z")).is_empty());
        assert_eq!(problems(&facts("2026-11-22T04:00:00Z"))[0].key(), "missed");
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
        assert_eq!(problems(&f)[0].key(), "too_long");
    }

    #[test]
    fn one_alert_then_realert_then_recovery() {
        let realert = chrono::Duration::hours(4);
        let bad = problems(&facts("2026-11-22T04:00:00Z"));
        let (v, s1) = decide(
            &WatchRecord::default(),
            &bad,
            t("2026-11-22T04:00:00Z"),
            realert,
        );
        assert_eq!(v, Verdict::Alert);
        let (v, s2) = decide(&s1, &bad, t("2026-11-22T05:00:00Z"), realert);
        assert_eq!(v, Verdict::Quiet, "no flood");
        assert_eq!(s2, s1);
        let (v, s3) = decide(&s2, &bad, t("2026-11-22T08:00:00Z"), realert);
        assert_eq!(v, Verdict::Realert);
        let (v, s4) = decide(&s3, &[], t("2026-11-22T08:30:00Z"), realert);
        assert_eq!(v, Verdict::Recovered);
        let (v, _) = decide(&s4, &[], t("2026-11-22T09:00:00Z"), realert);
        assert_eq!(v, Verdict::Quiet, "one recovery notice");
    }

    #[test]
    fn a_new_problem_alerts_at_once() {
        let realert = chrono::Duration::hours(4);
        let missed = problems(&facts("2026-11-22T04:00:00Z"));
        let (_, s1) = decide(
            &WatchRecord::default(),
            &missed,
            t("2026-11-22T04:00:00Z"),
            realert,
        );
        let mut f = facts("2026-11-22T04:10:00Z");
        f.last_failure = Some("disk full".into());
        let both = problems(&f);
        let (v, s2) = decide(&s1, &both, t("2026-11-22T04:10:00Z"), realert);
        assert_eq!(v, Verdict::Alert);
        assert_eq!(s2.conditions, "failed,missed");
        assert_eq!(s2.bad_since, s1.bad_since);
    }

    #[test]
    fn the_alert_says_what_to_do() {
        let p = problems(&facts("2026-11-23T05:00:00Z"));
        let text = alert_text("data-volume", &p, false, t("2026-11-23T05:00:00Z"), false);
        assert!(
            text.contains("missed backup") && text.contains("/backup now data-volume"),
            "{text}"
        );
        assert!(text.contains("last good backup 2days"), "{text}");
    }
}
