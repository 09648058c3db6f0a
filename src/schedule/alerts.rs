//! The life of one alert, as a pure function: it opens when its problem appears, takes
//! new occurrences (another failed run, another missed due time) into its count, is
//! posted again only every `realert`, and closes only on evidence (a successful backup
//! or report, a passing verify or drill, the long job's end), with one recovery notice.
//! A problem that merely stops being visible (the next due time is not yet late) closes
//! nothing.

use chrono::{DateTime, Utc};

use super::watchdog::{Problem, line};
use crate::db::alerts::{AlertRecord, Facet};
use crate::units::{parse_time, time_text};

/// What the channel should be told about an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Say {
    /// Post it: its opening, or a repeat when `realert` has passed (or a post is owed).
    Post,
    /// Edit the posted message: the count or the details changed.
    Edit,
    /// Post the recovery notice.
    Recovery,
}

/// What changed in the stored alert, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened,
    Updated,
    Closed,
    Unchanged,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub alert: AlertRecord,
    pub change: Change,
    pub say: Option<Say>,
}

/// The problems of one kind a target has now.
pub struct Seen<'a> {
    pub target: &'a str,
    pub kind: &'a str,
    pub problems: Vec<&'a Problem>,
    /// What to do about a missed backup (see `watchdog::line`).
    pub missed_fix: String,
}

/// Move one alert (or its absence) on. `evidence` is what would close it, if anything
/// happened since it opened that proves the target well (None: no such proof yet).
pub fn advance(
    live: Option<AlertRecord>,
    seen: &Seen<'_>,
    evidence: impl FnOnce(&AlertRecord) -> Option<String>,
    now: DateTime<Utc>,
    realert: chrono::Duration,
) -> Option<Step> {
    let Some(mut alert) = live else {
        if seen.problems.is_empty() {
            return None;
        }
        let mut alert = AlertRecord {
            target: seen.target.to_string(),
            kind: seen.kind.to_string(),
            opened_at: time_text(now),
            ..AlertRecord::default()
        };
        take(&mut alert, seen, now);
        return Some(Step {
            alert,
            change: Change::Opened,
            say: Some(Say::Post),
        });
    };
    if alert.closed_at.is_some() {
        // Closed, but its recovery notice never went out (chat down, a restart).
        return Some(Step {
            alert,
            change: Change::Unchanged,
            say: Some(Say::Recovery),
        });
    }
    if seen.problems.is_empty() {
        let proof = evidence(&alert)?;
        alert.closed_at = Some(time_text(now));
        alert.closed_by = Some(proof);
        return Some(Step {
            alert,
            change: Change::Closed,
            say: Some(Say::Recovery),
        });
    }
    let changed = take(&mut alert, seen, now);
    let owed = match alert.posted_at.as_deref().and_then(parse_time) {
        None => true,
        Some(at) => now >= at + realert,
    };
    let say = if owed {
        Some(Say::Post)
    } else if changed {
        Some(Say::Edit)
    } else {
        None
    };
    if !changed && say.is_none() {
        return None;
    }
    Some(Step {
        alert,
        change: if changed {
            Change::Updated
        } else {
            Change::Unchanged
        },
        say,
    })
}

/// Take the problems seen into the alert's facets; true when an occurrence was new.
fn take(alert: &mut AlertRecord, seen: &Seen<'_>, now: DateTime<Utc>) -> bool {
    let mut changed = false;
    for p in &seen.problems {
        let token = p.token();
        let facet = alert.facets.entry(p.facet().to_string()).or_default();
        if facet.token != token {
            *facet = Facet {
                token,
                count: facet.count + 1,
                text: line(seen.target, p, &seen.missed_fix, now),
            };
            changed = true;
        }
    }
    changed
}

/// The text of a post or an edit of an open alert; `repeat` marks a post after the first.
pub fn alert_text(alert: &AlertRecord, now: DateTime<Utc>, repeat: bool) -> String {
    let mut lines: Vec<String> = Vec::new();
    for (name, facet) in &alert.facets {
        let mut text = facet.text.clone();
        if name == "missed" && facet.count > 1 {
            text.push_str(&format!(" ({} due times missed)", facet.count));
        }
        if name == "changed" && facet.count > 1 {
            text.push_str(&format!(" ({} backups in a row)", facet.count));
        }
        lines.push(text);
    }
    let mut text = lines.join("\n");
    if repeat {
        text = format!("(still) {text}");
    }
    text.push_str(&format!(
        "\nalert {} · open since {}{}",
        alert.label(),
        alert.opened_at,
        open_for(alert, now)
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    ));
    text
}

/// The recovery notice of a closed alert.
pub fn recovery_text(alert: &AlertRecord, now: DateTime<Utc>) -> String {
    format!(
        "✅ {}: {} (alert {} was open for {}, since {}; {})",
        recovered(alert),
        alert.closed_by.as_deref().unwrap_or("resolved"),
        alert.label(),
        open_while_closed(alert, now),
        alert.opened_at,
        occurrences(alert).join(", ")
    )
}

/// What a recovery says is well again, in a few words ("db is healthy again").
pub fn recovered(alert: &AlertRecord) -> String {
    match alert.kind.as_str() {
        "verify" => format!("verification of {} passes again", alert.target),
        "drill" => format!("drills of {} pass again", alert.target),
        "too_long" => format!("no job of {} runs past its max_duration now", alert.target),
        "inconsistent" => format!("the newest backup of {} is consistent again", alert.target),
        "replication" => format!("replication of {} caught up", alert.target),
        "generation" => format!("the new replication chain of {} is verified", alert.target),
        _ => format!("{} is healthy again", alert.target),
    }
}

/// How long a closed alert was open ("3h 12m").
pub fn open_while_closed(alert: &AlertRecord, now: DateTime<Utc>) -> String {
    let closed = alert
        .closed_at
        .as_deref()
        .and_then(parse_time)
        .unwrap_or(now);
    parse_time(&alert.opened_at)
        .map(|t| crate::units::human_age((closed - t).num_seconds()))
        .unwrap_or_default()
}

/// The occurrences an alert has taken in, one phrase per facet ("3 failed runs").
pub fn occurrences(alert: &AlertRecord) -> Vec<String> {
    alert
        .facets
        .iter()
        .filter(|(_, f)| f.count > 0)
        .map(|(name, f)| match name.as_str() {
            "missed" => format!("{} due times missed", f.count),
            "failed" => format!("{} failed runs", f.count),
            "stale" => format!("{} drill due times passed", f.count),
            "changed" => format!("{} backups changed while read", f.count),
            _ => format!("{} long jobs", f.count),
        })
        .collect()
}

pub fn open_for(alert: &AlertRecord, now: DateTime<Utc>) -> Option<String> {
    let t = parse_time(&alert.opened_at)?;
    let secs = (now - t).num_seconds();
    (secs >= 60).then(|| crate::units::human_age(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn missed(due: &str) -> Problem {
        Problem::Missed {
            due: t(due),
            last_ok: None,
        }
    }

    fn failed(job: i64) -> Problem {
        Problem::Failed {
            job,
            message: "no such file".into(),
            failures: job as u64,
        }
    }

    fn seen<'a>(problems: &'a [Problem]) -> Seen<'a> {
        Seen {
            target: "db",
            kind: "backup",
            problems: problems.iter().collect(),
            missed_fix: String::new(),
        }
    }

    /// Run `advance` and store its result as the scheduler does (a post is delivered).
    fn run(
        live: &mut Option<AlertRecord>,
        problems: &[Problem],
        evidence: Option<&str>,
        now: &str,
    ) -> Option<Say> {
        let realert = chrono::Duration::hours(4);
        let step = advance(
            live.clone(),
            &seen(problems),
            |_| evidence.map(String::from),
            t(now),
            realert,
        )?;
        let mut a = step.alert;
        if step.change == Change::Opened {
            a.id = 1;
        }
        match step.say {
            Some(Say::Post) => {
                if a.posted_at.is_some() {
                    a.repeats += 1;
                }
                a.posted_at = Some(now.to_string());
            }
            Some(Say::Recovery) => a.recovery_posted_at = Some(now.to_string()),
            _ => {}
        }
        *live = (a.recovery_posted_at.is_none()).then_some(a);
        step.say
    }

    #[test]
    fn a_new_due_time_is_no_recovery_and_only_evidence_closes() {
        let mut live = None;
        let m1 = [missed("2026-11-22T03:00:00Z")];
        assert_eq!(
            run(&mut live, &m1, None, "2026-11-22T04:00:00Z"),
            Some(Say::Post)
        );
        assert_eq!(run(&mut live, &m1, None, "2026-11-22T04:00:01Z"), None);
        // The next due time arrived and its grace runs: nothing is visible, nothing proven.
        assert_eq!(run(&mut live, &[], None, "2026-11-23T03:00:00Z"), None);
        assert!(live.is_some(), "still open");
        // It passed too: the count goes up in place.
        let m2 = [missed("2026-11-23T03:00:00Z")];
        assert_eq!(
            run(&mut live, &m2, None, "2026-11-23T04:00:00Z"),
            Some(Say::Post),
            "realert due"
        );
        let a = live.clone().unwrap();
        assert_eq!(a.facets["missed"].count, 2);
        assert!(alert_text(&a, t("2026-11-23T04:00:00Z"), false).contains("2 due times missed"));
        assert_eq!(
            run(
                &mut live,
                &[],
                Some("a success report at 05:00"),
                "2026-11-23T05:00:00Z"
            ),
            Some(Say::Recovery)
        );
        assert!(live.is_none());
        assert_eq!(
            run(
                &mut live,
                &[],
                Some("a success report"),
                "2026-11-23T05:00:01Z"
            ),
            None,
            "one notice"
        );
    }

    #[test]
    fn failures_while_open_edit_the_alert_instead_of_posting() {
        let mut live = None;
        let both = [missed("2026-11-22T03:00:00Z"), failed(1)];
        assert_eq!(
            run(&mut live, &both, None, "2026-11-22T04:00:00Z"),
            Some(Say::Post)
        );
        let again = [missed("2026-11-22T03:00:00Z"), failed(2)];
        assert_eq!(
            run(&mut live, &again, None, "2026-11-22T04:00:05Z"),
            Some(Say::Edit)
        );
        assert_eq!(run(&mut live, &again, None, "2026-11-22T05:00:00Z"), None);
        assert_eq!(
            run(&mut live, &again, None, "2026-11-22T08:00:00Z"),
            Some(Say::Post)
        );
        let a = live.clone().unwrap();
        assert_eq!((a.facets["failed"].count, a.repeats), (2, 1));
        let text = alert_text(&a, t("2026-11-22T08:00:00Z"), true);
        assert!(
            text.starts_with("(still) ")
                && text.contains("alert A1 · open since 2026-11-22T04:00:00.000Z (4h)"),
            "{text}"
        );
        assert_eq!(
            run(
                &mut live,
                &[],
                Some("a successful backup"),
                "2026-11-22T08:30:00Z"
            ),
            Some(Say::Recovery)
        );
    }

    #[test]
    fn the_recovery_notice_names_how_long_it_was_open() {
        let mut a = AlertRecord {
            id: 7,
            target: "db".into(),
            kind: "backup".into(),
            opened_at: "2026-11-22T04:00:00.000Z".into(),
            closed_at: Some("2026-11-22T07:12:00.000Z".into()),
            closed_by: Some("a successful backup at 07:11".into()),
            ..AlertRecord::default()
        };
        a.facets.insert(
            "failed".into(),
            Facet {
                token: "job 9".into(),
                count: 3,
                text: String::new(),
            },
        );
        let text = recovery_text(&a, t("2026-11-22T08:00:00Z"));
        assert!(
            text.contains("db is healthy again: a successful backup at 07:11"),
            "{text}"
        );
        assert!(
            text.contains("alert A7 was open for 3h 12m")
                || text.contains("alert A7 was open for 3h12m"),
            "{text}"
        );
        assert!(text.contains("3 failed runs"), "{text}");
    }

    #[test]
    fn an_owed_post_is_made_even_without_news() {
        let mut a = AlertRecord {
            id: 3,
            target: "db".into(),
            kind: "backup".into(),
            opened_at: "2026-11-22T04:00:00.000Z".into(),
            ..AlertRecord::default()
        };
        let p = [failed(1)];
        take(&mut a, &seen(&p), t("2026-11-22T04:00:00Z"));
        let step = advance(
            Some(a),
            &seen(&p),
            |_| None,
            t("2026-11-22T04:00:30Z"),
            chrono::Duration::hours(4),
        )
        .unwrap();
        assert_eq!(
            (step.change, step.say),
            (Change::Unchanged, Some(Say::Post))
        );
    }
}
