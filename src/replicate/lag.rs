//! How far a continuous target's replication stands, read from its store (the replicator
//! may be another process, on another host): `replicated_to` and the lag behind now.
//! Only what is in the store counts; a replicator on this host may also have said what
//! waits in its spool ([`SpoolState`]), which status shows, and which stands in for the
//! store's position when the store cannot be read at all.

use chrono::{DateTime, Utc};

use super::record::{Generation, Position, generation_key, position_key, read};
use super::spool::SpoolState;
use crate::app::App;

/// What status shows of a continuous target.
#[derive(Debug, Clone)]
pub struct Lag {
    pub replicated_to: Option<DateTime<Utc>>,
    pub lag_seconds: Option<f64>,
    /// Why it could not be read, or what waits in the spool, in words.
    pub problem: Option<String>,
    /// Why the replicator cannot go on (its spool at its bound, its disk full).
    pub stuck: Option<String>,
    /// What the spool on this host holds, not in the store yet.
    pub spooled_bytes: Option<u64>,
}

fn seconds_behind(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> Option<f64> {
    at.map(|t| ((now - t).num_milliseconds() as f64 / 1000.0).max(0.0))
}

pub fn of(app: &App, target: &str, now: DateTime<Utc>) -> Lag {
    let read_position = || -> crate::error::Result<Option<Position>> {
        let objects = super::objects_for(app, target)?;
        read(objects.as_ref(), &position_key(target))
    };
    // Only a replicator on this host can have left its spool's state here.
    let local = app.target(target).is_ok_and(|t| t.host.is_none());
    let spool = local
        .then(|| SpoolState::read(&app.config.spool_dir(target)))
        .flatten();
    let spooled_bytes = spool.as_ref().map(|s| s.bytes);
    let spool_stuck = spool.as_ref().and_then(|s| s.stuck.clone());
    match read_position() {
        Ok(Some(p)) => {
            let at = crate::units::parse_time(&p.replicated_to);
            let stuck = p.stuck.or(spool_stuck);
            let troubled = spool.as_ref().filter(|s| s.troubled(now));
            let problem = troubled.map(SpoolState::summary).or_else(|| {
                stuck
                    .as_ref()
                    .map(|why| format!("the replicator cannot go on: {why}"))
            });
            Lag {
                replicated_to: at,
                lag_seconds: seconds_behind(now, at),
                problem,
                stuck,
                spooled_bytes,
            }
        }
        Ok(None) => Lag {
            replicated_to: None,
            lag_seconds: None,
            problem: Some("not replicated yet".into()),
            stuck: spool_stuck,
            spooled_bytes,
        },
        Err(e) => {
            // The store is out of reach: how far it was known to have everything, as the
            // replicator here last wrote it, is still a true `replicated_to`.
            let at = spool
                .as_ref()
                .and_then(|s| s.stored_to.as_deref())
                .and_then(crate::units::parse_time);
            let problem = match &spool {
                Some(s) => format!("the store cannot be read ({e}); {}", s.summary()),
                None => format!("replication position unreadable: {e}"),
            };
            Lag {
                replicated_to: at,
                lag_seconds: seconds_behind(now, at),
                problem: Some(problem),
                stuck: spool_stuck,
                spooled_bytes,
            }
        }
    }
}

/// The current generation when it had to start over from an earlier one (the log was
/// reset or rewritten behind lifeboat's back): what the watchdog alerts on. `None` for
/// the first generation, or when the store cannot be read (status names that).
pub fn restarted(app: &App, target: &str) -> Option<Generation> {
    let objects = super::objects_for(app, target).ok()?;
    let position: Position = read(objects.as_ref(), &position_key(target)).ok()??;
    let g: Generation = read(
        objects.as_ref(),
        &generation_key(target, &position.generation),
    )
    .ok()??;
    g.previous.is_some().then_some(g)
}
