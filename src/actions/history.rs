//! A target's recent history for charts: its backups (size, duration), the RPO it had at
//! every moment (time since the newest backup), and its drills against the objectives.

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::error::Result;

/// How far back the charts look.
pub const CHART_DAYS: i64 = 90;

#[derive(Debug, Clone, PartialEq)]
pub struct BackupPoint {
    pub at: DateTime<Utc>,
    pub size_bytes: Option<u64>,
    pub duration_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DrillPoint {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub target: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub backups: Vec<BackupPoint>,
    pub drills: Vec<DrillPoint>,
    pub rpo_objective_seconds: Option<f64>,
    pub rto_objective_seconds: Option<f64>,
}

/// The last `days` of `target` up to `now`.
pub fn history(app: &App, target: &str, now: DateTime<Utc>, days: i64) -> Result<History> {
    let cfg = app.target(target)?;
    let from = now - chrono::Duration::days(days);
    let since = crate::units::time_text(from);
    let backups = app
        .db
        .backup_history(target, &since, cfg.keeps_backups())?
        .into_iter()
        .filter_map(|r| {
            Some(BackupPoint {
                at: crate::units::parse_time(&r.created_at)?,
                size_bytes: r.size_bytes,
                duration_seconds: r.duration_seconds,
            })
        })
        .collect();
    let drills = app
        .db
        .drill_history(target, &since)?
        .into_iter()
        .filter_map(|d| {
            Some(DrillPoint {
                at: crate::units::parse_time(&d.started_at)?,
                ok: d.ok,
                rto_seconds: d.rto_seconds,
                rpo_seconds: d.rpo_seconds,
            })
        })
        .collect();
    Ok(History {
        target: target.to_string(),
        from,
        to: now,
        backups,
        drills,
        rpo_objective_seconds: cfg.rpo.map(|d| d.0.as_secs_f64()),
        rto_objective_seconds: cfg.rto.map(|d| d.0.as_secs_f64()),
    })
}

impl History {
    /// The RPO at every moment from the first backup on: the age of the newest backup,
    /// rising until the next backup resets it to zero (a sawtooth), up to `to`.
    pub fn rpo_series(&self) -> Vec<(DateTime<Utc>, f64)> {
        let mut out = Vec::with_capacity(self.backups.len() * 2 + 1);
        let mut last: Option<DateTime<Utc>> = None;
        for b in &self.backups {
            if let Some(prev) = last {
                out.push((b.at, seconds(b.at - prev)));
            }
            out.push((b.at, 0.0));
            last = Some(b.at);
        }
        if let Some(prev) = last {
            out.push((self.to, seconds(self.to - prev)));
        }
        out
    }
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + h * 3600, 0).unwrap()
    }

    #[test]
    fn rpo_rises_between_backups_and_drops_at_each() {
        let backup = |h| BackupPoint {
            at: at(h),
            size_bytes: Some(1),
            duration_seconds: None,
        };
        let h = History {
            target: "t".into(),
            from: at(0),
            to: at(40),
            backups: vec![backup(1), backup(25), backup(30)],
            drills: vec![],
            rpo_objective_seconds: None,
            rto_objective_seconds: None,
        };
        let hours: Vec<(i64, f64)> = h
            .rpo_series()
            .into_iter()
            .map(|(t, s)| ((t - at(0)).num_hours(), s / 3600.0))
            .collect();
        assert_eq!(
            hours,
            vec![
                (1, 0.0),
                (25, 24.0),
                (25, 0.0),
                (30, 5.0),
                (30, 0.0),
                (40, 10.0)
            ]
        );
        let empty = History {
            backups: vec![],
            ..h
        };
        assert!(empty.rpo_series().is_empty());
    }
}
