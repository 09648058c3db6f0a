//! A drill of a continuously replicated target restores to a moment, not only a backup:
//! by default the newest one replication reached when the drill started, or the one
//! asked for (`drill <target> --at TIME`, chat `/drill <target> at <time>`); a backup id
//! still drills that backup alone. The base copy (the newest of its generation at or
//! before the moment) is restored as any backup is,
//! the shipped transactions replayed onto it, and the copy checked whole with
//! `integrity_check` (its row counts are no longer the base's). The achieved RPO is the
//! replication lag at that moment, not the base copy's age.

use chrono::{DateTime, Utc};

use crate::actions::catalog::Selector;
use crate::actions::drill_steps::{Drill, RestoredTo};
use crate::error::{Error, Result};
use crate::replicate::point::{PointInTime, plan, replay};
use crate::stores::manifest::Manifest;

/// Where a drill of a continuous target restores to.
pub struct DrillPoint {
    pub point: PointInTime,
    /// The base copy the point starts from.
    pub base: Selector,
    /// The lag at the moment restored to (see [`lag_at`]).
    pub rpo_seconds: f64,
    /// Whether the moment was asked for rather than the newest replicated.
    pub asked: bool,
}

impl DrillPoint {
    /// What the drill restored to, for its report.
    pub fn restored_to(&self) -> RestoredTo {
        let p = &self.point;
        RestoredTo {
            at: p.at.clone(),
            asked: self.asked,
            base_backup: p.base_backup.clone(),
            first_base: p.first_base,
            generation: p.generation.clone(),
            transactions: p.up_to_txid - p.base_txid,
            segments: p.segments.len(),
            up_to_txid: p.up_to_txid,
        }
    }
}

/// The moment a drill restores to, when the target is continuous and no backup id was
/// asked for; the lag is read from the store, so the replicator may be elsewhere.
pub fn of(d: &Drill, selector: &Selector) -> Result<Option<DrillPoint>> {
    if d.cfg.continuous.is_none() {
        return Ok(None);
    }
    let objects = crate::replicate::objects_for(d.app, d.target)?;
    let at: DateTime<Utc> = match selector {
        Selector::At(t) => *t,
        Selector::Latest => {
            let lag = crate::replicate::lag::of(d.app, d.target, d.started);
            lag.replicated_to.ok_or_else(|| {
                Error::Failed(format!(
                    "{} is continuous but its replication position cannot be read: {}",
                    d.target,
                    lag.problem.unwrap_or_default()
                ))
            })?
        }
        _ => return Ok(None),
    };
    let usable = crate::replicate::base_choice::usable_in_store(d.app, d.target)?;
    let (base, point) = plan(objects.as_ref(), d.target, at, &usable)?;
    let asked = matches!(selector, Selector::At(_));
    Ok(Some(DrillPoint {
        rpo_seconds: lag_at(&point, asked, d.started),
        point,
        base: Selector::Id(base),
        asked,
    }))
}

/// The replication lag at the moment restored to, in seconds. For the newest moment, the
/// lag when the drill started: its start minus `replicated_to`. For a moment asked for,
/// the moment minus when the last transaction replayed was seen committed (the base
/// copy's time when none is): what a loss at that moment would have cost at most. It
/// is an upper bound, since a quiet database ships nothing to say it was current.
fn lag_at(point: &PointInTime, asked: bool, started: DateTime<Utc>) -> f64 {
    let seconds = |later: DateTime<Utc>, earlier: DateTime<Utc>| {
        ((later - earlier).num_milliseconds() as f64 / 1000.0).max(0.0)
    };
    let at = crate::units::parse_time(&point.at).unwrap_or(started);
    let last_shipped = point
        .up_to_committed_by
        .as_deref()
        .unwrap_or(&point.base_at);
    match crate::units::parse_time(last_shipped) {
        Some(current) if asked => seconds(at, current),
        // Not known when the data was current: the moment's age at the drill's start
        // is larger than any lag it could have had.
        _ => seconds(started, at),
    }
}

/// Refuse a drill to a moment nothing restores to, before it starts: past
/// `replicated_to` or the kept history of a continuous target (named as `restore --at`
/// names them), before the first backup of another. What the drill will restore, in
/// words (chat says it when it takes the drill).
pub fn reachable(
    app: &crate::app::App,
    target: &str,
    cfg: &crate::config::TargetConfig,
    at: DateTime<Utc>,
) -> Result<String> {
    let moment = crate::units::time_text(at);
    if cfg.continuous.is_none() {
        let m = crate::actions::drill::find_backup(app, target, &Selector::At(at))?;
        return Ok(format!(
            "{target} is not replicated continuously, so the drill restores its newest backup at or before {moment}: {} (taken {})",
            m.id, m.created_at
        ));
    }
    let objects = crate::replicate::objects_for(app, target)?;
    let usable = crate::replicate::base_choice::usable_in_store(app, target)?;
    let (base, p) = plan(objects.as_ref(), target, at, &usable)?;
    Ok(format!(
        "the drill restores {target} as of {moment}: base copy {base} and {} from {} (to transaction {} of generation {}; replicated to {})",
        crate::units::count(p.up_to_txid - p.base_txid, "shipped transaction", None),
        crate::units::count(p.segments.len() as u64, "segment", None),
        p.up_to_txid,
        p.generation,
        p.replicated_to
    ))
}

/// Replay the point's transactions onto the restored base copy, then `integrity_check`.
pub fn replay_and_check(
    d: &mut Drill,
    m: &Manifest,
    point: &PointInTime,
    copy: &std::path::Path,
) -> Result<()> {
    let app = d.app;
    let replayed = d.step(
        format!("replay shipped transactions to {}", point.at),
        || {
            let page_size =
                m.sqlite.as_ref().map(|f| f.page_size).ok_or_else(|| {
                    Error::Failed(format!("backup {} has no database facts", m.id))
                })?;
            let objects = crate::replicate::objects_for(app, &m.target)?;
            Ok(match replay(objects.as_ref(), point, copy, page_size) {
                Ok(done) => Ok(format!("{done} onto base copy {}", m.id)),
                Err(e) => Err(vec![format!("replaying to {}: {e}", point.at)]),
            })
        },
    )?;
    if !replayed {
        return Ok(());
    }
    d.step("integrity_check of the replayed copy", || {
        let conn = rusqlite::Connection::open(copy)
            .map_err(|e| Error::sqlite("opening the replayed copy", e))?;
        let check = crate::sources::sqlite::pragma_check(&conn, "integrity_check")?;
        Ok(if check == "ok" {
            Ok("integrity_check ok".to_string())
        } else {
            Err(vec![format!(
                "the replayed copy failed integrity_check: {}",
                check.lines().take(5).collect::<Vec<_>>().join("; ")
            )])
        })
    })?;
    Ok(())
}
