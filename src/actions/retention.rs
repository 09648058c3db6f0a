//! Retention rules with the semantics of restic's `forget --keep-*`: `last` keeps the n
//! newest; `hourly`/`daily`/`weekly`/`monthly`/`yearly` keep the newest backup of each of
//! the n most recent periods that have a backup. A backup kept by any rule stays.

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};

use crate::config::Retention;

/// For each backup (newest first), the rules that keep it; empty = remove.
/// `times` must be sorted newest first. No rules at all keeps everything.
pub fn apply<Tz: TimeZone>(
    rules: &Retention,
    times: &[DateTime<Utc>],
    tz: &Tz,
) -> Vec<Vec<&'static str>> {
    let mut reasons = vec![Vec::new(); times.len()];
    if rules.is_empty() {
        for r in reasons.iter_mut() {
            r.push("no retention rules");
        }
        return reasons;
    }
    if let Some(n) = rules.last {
        for r in reasons.iter_mut().take(n as usize) {
            r.push("last");
        }
    }
    type Bucket = fn(&chrono::NaiveDateTime) -> (i32, u32, u32, u32);
    let periods: [(&'static str, Option<u32>, Bucket); 5] = [
        ("hourly", rules.hourly, |t| {
            (t.year(), t.ordinal(), t.hour(), 0)
        }),
        ("daily", rules.daily, |t| (t.year(), t.ordinal(), 0, 0)),
        ("weekly", rules.weekly, |t| {
            let w = t.iso_week();
            (w.year(), w.week(), 0, 0)
        }),
        ("monthly", rules.monthly, |t| (t.year(), t.month(), 0, 0)),
        ("yearly", rules.yearly, |t| (t.year(), 0, 0, 0)),
    ];
    for (name, count, bucket) in periods {
        let Some(mut left) = count else { continue };
        let mut last_bucket = None;
        for (i, t) in times.iter().enumerate() {
            if left == 0 {
                break;
            }
            let b = bucket(&t.with_timezone(tz).naive_local());
            if last_bucket != Some(b) {
                reasons[i].push(name);
                last_bucket = Some(b);
                left -= 1;
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn kept<'a>(rules: Retention, times: &[&'a str]) -> Vec<&'a str> {
        let parsed: Vec<_> = times.iter().map(|s| t(s)).collect();
        let reasons = apply(&rules, &parsed, &Utc);
        times
            .iter()
            .zip(reasons)
            .filter(|(_, r)| !r.is_empty())
            .map(|(s, _)| *s)
            .collect()
    }

    #[test]
    fn last_keeps_the_newest_n() {
        let times = [
            "2026-11-05T00:00:00Z",
            "2026-11-04T00:00:00Z",
            "2026-11-03T00:00:00Z",
        ];
        let r = Retention {
            last: Some(2),
            ..Default::default()
        };
        assert_eq!(
            kept(r, &times),
            vec!["2026-11-05T00:00:00Z", "2026-11-04T00:00:00Z"]
        );
    }

    #[test]
    fn daily_keeps_newest_per_day_for_n_days_with_backups() {
        // Two a day on the 5th and 4th, none on the 3rd, one on the 2nd and the 1st.
        let times = [
            "2026-11-05T18:00:00Z",
            "2026-11-05T06:00:00Z",
            "2026-11-04T18:00:00Z",
            "2026-11-04T06:00:00Z",
            "2026-11-02T12:00:00Z",
            "2026-11-01T12:00:00Z",
        ];
        let r = Retention {
            daily: Some(3),
            ..Default::default()
        };
        // Days with backups, not calendar days: the 2nd counts as the third day.
        assert_eq!(
            kept(r, &times),
            vec![
                "2026-11-05T18:00:00Z",
                "2026-11-04T18:00:00Z",
                "2026-11-02T12:00:00Z"
            ]
        );
    }

    #[test]
    fn weekly_uses_iso_weeks() {
        // 2026-11-01 is a Sunday (ISO week 44); 2026-11-02 a Monday (week 45).
        let times = [
            "2026-11-03T00:00:00Z",
            "2026-11-02T00:00:00Z",
            "2026-11-01T00:00:00Z",
            "2026-10-31T00:00:00Z",
        ];
        let r = Retention {
            weekly: Some(2),
            ..Default::default()
        };
        assert_eq!(
            kept(r, &times),
            vec!["2026-11-03T00:00:00Z", "2026-11-01T00:00:00Z"]
        );
    }

    #[test]
    fn rules_combine_as_a_union() {
        let times = [
            "2026-11-22T10:00:00Z",
            "2026-11-22T09:00:00Z",
            "2026-11-21T09:00:00Z",
            "2026-10-15T09:00:00Z",
            "2026-09-15T09:00:00Z",
            "2025-12-31T09:00:00Z",
        ];
        let r = Retention {
            last: Some(1),
            daily: Some(2),
            monthly: Some(2),
            yearly: Some(2),
            ..Default::default()
        };
        assert_eq!(
            kept(r, &times),
            vec![
                "2026-11-22T10:00:00Z", // last, daily, monthly, yearly
                "2026-11-21T09:00:00Z", // daily
                "2026-10-15T09:00:00Z", // monthly
                "2025-12-31T09:00:00Z", // yearly
            ]
        );
    }

    #[test]
    fn hourly_and_monthly_in_a_time_zone() {
        // 23:30 UTC on Oct 31 is already November in Prague (UTC+1).
        let times = [
            "2026-11-01T10:00:00Z",
            "2026-10-31T23:30:00Z",
            "2026-10-30T10:00:00Z",
        ];
        let parsed: Vec<_> = times.iter().map(|s| t(s)).collect();
        let r = Retention {
            monthly: Some(2),
            ..Default::default()
        };
        let reasons = apply(&r, &parsed, &chrono_tz::Europe::Prague);
        assert_eq!(reasons[0], vec!["monthly"]);
        assert!(reasons[1].is_empty());
        assert_eq!(reasons[2], vec!["monthly"]);
    }

    #[test]
    fn no_rules_keep_everything() {
        let times = ["2026-11-05T00:00:00Z", "2026-11-04T00:00:00Z"];
        assert_eq!(kept(Retention::default(), &times).len(), 2);
    }
}
