//! How far a continuous target's replication stands, read from its store (the replicator
//! may be another process, on another host): `replicated_to` and the lag behind now.

use chrono::{DateTime, Utc};

use super::record::{Generation, Position, generation_key, position_key, read};
use crate::app::App;

/// What status shows of a continuous target.
#[derive(Debug, Clone)]
pub struct Lag {
    pub replicated_to: Option<DateTime<Utc>>,
    pub lag_seconds: Option<f64>,
    /// Why it could not be read, in words.
    pub problem: Option<String>,
}

pub fn of(app: &App, target: &str, now: DateTime<Utc>) -> Lag {
    let read_position = || -> crate::error::Result<Option<Position>> {
        let objects = super::objects_for(app, target)?;
        read(objects.as_ref(), &position_key(target))
    };
    match read_position() {
        Ok(Some(p)) => {
            let at = crate::units::parse_time(&p.replicated_to);
            Lag {
                replicated_to: at,
                lag_seconds: at.map(|t| ((now - t).num_milliseconds() as f64 / 1000.0).max(0.0)),
                problem: None,
            }
        }
        Ok(None) => Lag {
            replicated_to: None,
            lag_seconds: None,
            problem: Some("not replicated yet".into()),
        },
        Err(e) => Lag {
            replicated_to: None,
            lag_seconds: None,
            problem: Some(format!("replication position unreadable: {e}")),
        },
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
