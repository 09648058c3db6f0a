//! How far back shipped history is kept (`continuous_history`, 7d by default), a whole
//! generation at a time: a generation's segments are only of use from its base copy on,
//! so one goes when it ended (or was cut short while it started) more than
//! `continuous_history` ago, or when its base copy is no longer in the store. The
//! current generation always stays, and `prune` keeps the base copy of every generation
//! that stays. Before anything goes, `<target>.wal/history.json` records from when on
//! history is kept and why, so a restore to a moment before that says so plainly.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::record::{Generation, Position, generations, position_key, prefix, read, write};
use crate::error::Result;
use crate::stores::Store;
use crate::units::{parse_time, time_text};

/// From when on a target's history is kept, and why what came before went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Floor {
    pub kept_from: String,
    pub reason: String,
}

pub fn floor_key(target: &str) -> String {
    format!("{}history.json", prefix(target))
}

/// The recorded floor of `target`'s history, if any was removed.
pub fn floor(store: &dyn Store, target: &str) -> Result<Option<Floor>> {
    read(store, &floor_key(target))
}

/// Why a generation goes, or `None` when it stays.
fn expired(
    g: &Generation,
    position: Option<&Position>,
    cutoff: DateTime<Utc>,
    bases: Option<&HashSet<String>>,
) -> Option<String> {
    if position.is_some_and(|p| p.generation == g.generation) {
        return None;
    }
    // One neither ended nor current was cut short while it started (or is starting now,
    // in another process): it counts from its start.
    let reached = g
        .ended
        .as_ref()
        .map_or(g.started_at.as_str(), |e| e.replicated_to.as_str());
    if parse_time(reached).is_some_and(|t| t < cutoff) {
        return Some(format!(
            "generation {} reached {reached}, more than continuous_history ago",
            g.generation
        ));
    }
    if bases.is_some_and(|b| !b.contains(&g.base_backup)) {
        return Some(format!(
            "generation {}'s base copy {} is no longer in the store",
            g.generation, g.base_backup
        ));
    }
    None
}

/// The base copies the generations that stay still need: (backup id, generation).
pub fn needed_bases(
    store: &dyn Store,
    target: &str,
    keep: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>> {
    let position: Option<Position> = read(store, &position_key(target))?;
    let cutoff = now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    Ok(generations(store, target)?
        .into_iter()
        .filter(|g| expired(g, position.as_ref(), cutoff, None).is_none())
        .map(|g| (g.base_backup, g.generation))
        .collect())
}

/// Remove the generations that go (see the module); one line per generation removed.
/// `bases`: the backups in the store, when known (else only age counts).
pub fn expire(
    store: &dyn Store,
    target: &str,
    keep: Duration,
    now: DateTime<Utc>,
    bases: Option<&HashSet<String>>,
) -> Result<Vec<String>> {
    let position: Option<Position> = read(store, &position_key(target))?;
    let cutoff = now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let all = generations(store, target)?;
    let going: Vec<(&Generation, String)> = all
        .iter()
        .filter_map(|g| expired(g, position.as_ref(), cutoff, bases).map(|why| (g, why)))
        .collect();
    if going.is_empty() {
        return Ok(Vec::new());
    }
    // The floor first: a restore to a moment in what is going says it is past the kept
    // history even while the removal runs.
    let kept_from = all
        .iter()
        .filter(|g| !going.iter().any(|(o, _)| o.generation == g.generation))
        .map(|g| g.base_at.clone())
        .min()
        .unwrap_or_else(|| time_text(cutoff));
    let reason = going
        .iter()
        .map(|(_, why)| why.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let previous = floor(store, target)?;
    let kept_from = previous
        .as_ref()
        .map_or(kept_from.clone(), |p| p.kept_from.clone().max(kept_from));
    write(
        store,
        &floor_key(target),
        &Floor {
            kept_from: kept_from.clone(),
            reason: reason.clone(),
        },
    )?;
    let mut lines = Vec::new();
    for (g, why) in going {
        let under = format!("{}{}/", prefix(target), g.generation);
        let objects = store.list(&under)?;
        // Segments first, the generation's record last: an interrupted removal leaves a
        // record the next pass finds and finishes.
        let record = super::record::generation_key(target, &g.generation);
        for o in objects.iter().filter(|o| o.key != record) {
            store.delete(&o.key)?;
        }
        store.delete(&record)?;
        tracing::info!(target = target, "replication history removed: {why}");
        lines.push(format!(
            "removed shipped history of generation {} ({} objects): {why}",
            g.generation,
            objects.len()
        ));
    }
    Ok(lines)
}
