//! What continuous replication keeps in the store beside a target's backups, under
//! `<target>.wal/` (a target name has no `.`, so no other target's listing reaches it):
//! the position (how far shipping stands), one record per generation (why it started,
//! its base copy, where it ended) and the segments of each generation.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sources::sqlite::wal::Cursor;
use crate::stores::{Store, StoreError};

/// Where everything of a target's replication lives in its store.
pub fn prefix(target: &str) -> String {
    format!("{target}.wal/")
}

pub fn position_key(target: &str) -> String {
    format!("{}position.json", prefix(target))
}

pub fn generation_key(target: &str, generation: &str) -> String {
    format!("{}{generation}/generation.json", prefix(target))
}

/// How far shipping stands: every transaction committed before `replicated_to` is in
/// the store, the last of them numbered `txid` in `generation`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Position {
    pub generation: String,
    pub txid: u64,
    /// The live WAL as far as it was shipped (`None`: the database had no log then).
    pub wal: Option<Cursor>,
    pub replicated_to: String,
    /// The replicator that wrote it (`host pid N`).
    pub holder: String,
    /// Why that replicator cannot go on past it (its spool is full, its disk is full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<String>,
}

/// One generation: an unbroken chain of transactions from its base copy on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Generation {
    pub generation: String,
    pub started_at: String,
    /// Why it started (the first, a reset log, a gap after a crash).
    pub reason: String,
    pub page_size: u32,
    /// The backup that is the database exactly after transaction `base_txid`.
    pub base_backup: String,
    pub base_txid: u64,
    /// When the base copy's state was current (the write lock was held then).
    pub base_at: String,
    /// The generation this one took over from: set when history had to start again
    /// (a reset log, a gap), absent for the first and for a routine fresh base copy
    /// that continues the history with no gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Set when a later generation took over: how far this one reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ended>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ended {
    pub replicated_to: String,
    pub reason: String,
}

/// A JSON record, or `None` when it does not exist.
pub fn read<T: serde::de::DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<T>> {
    match store.get_bytes(key) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Failed(format!(
                "{}: {key} is not a replication record lifeboat can read: {e}",
                store.describe()
            ))
        }),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn write<T: Serialize>(store: &dyn Store, key: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("records serialize");
    store.put_bytes(key, &bytes)?;
    Ok(())
}

/// Every generation of a target, oldest first.
pub fn generations(store: &dyn Store, target: &str) -> Result<Vec<Generation>> {
    let mut out = Vec::new();
    for o in store.list(&prefix(target))? {
        if o.key.ends_with("/generation.json")
            && let Some(g) = read::<Generation>(store, &o.key)?
        {
            out.push(g);
        }
    }
    out.sort_by(|a, b| a.generation.cmp(&b.generation));
    Ok(out)
}

/// A new generation's id: its start time, sortable, and a random tail.
pub fn new_generation_id(now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}-{:04x}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        (now.timestamp_subsec_nanos() ^ std::process::id().rotate_left(7)) & 0xffff
    )
}
