//! Base copies on the target's `schedule`, taken by a replicator that runs on its own
//! (`lifeboat replicate`, on the database's host): the current generation goes on, and
//! the copy is the database exactly after the transaction shipped last, so it records
//! that transaction (`<target>.wal/<generation>/base-<txid>.json`) and `verify` can
//! compare the replayed history with it ([`super::chain`]).
//!
//! Under `serve` the scheduler's backups are the scheduled copies instead, so a target is
//! never copied twice on one schedule: the backup asks the replicator to pin the file
//! ([`answer`], through `sources::sqlite::replicator_pin`) and is recorded the same way
//! once published ([`record_backup`]), so a restore to a moment finds both kinds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::record::{prefix, read, write};
use super::shipper::{Round, Shipper};
use crate::app::App;
use crate::error::{Error, Result};
use crate::sources::sqlite::Pinned;
use crate::sources::sqlite::replicator_pin::{Ask, ReplicationMark};
use crate::stores::Store;
use crate::stores::manifest::Manifest;

/// A base copy taken inside a generation: the backup that is the database exactly after
/// transaction `txid` of `generation`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LaterBase {
    pub backup: String,
    pub generation: String,
    pub txid: u64,
    /// When its state was current (the write lock was held then).
    pub at: String,
}

pub fn later_base_key(target: &str, generation: &str, txid: u64) -> String {
    format!("{}{generation}/base-{txid:016x}.json", prefix(target))
}

/// The base copies recorded inside `generation`, in transaction order; a record that
/// cannot be read is an error.
pub fn later_bases(store: &dyn Store, target: &str, generation: &str) -> Result<Vec<LaterBase>> {
    let (found, unreadable) = readable_later_bases(store, target, generation)?;
    match unreadable.into_iter().next() {
        Some(why) => Err(Error::Failed(why)),
        None => Ok(found),
    }
}

/// The base copies recorded inside `generation` that can be read, in transaction order,
/// and a sentence for each record that cannot (a restore passes those over).
pub fn readable_later_bases(
    store: &dyn Store,
    target: &str,
    generation: &str,
) -> Result<(Vec<LaterBase>, Vec<String>)> {
    let under = format!("{}{generation}/", prefix(target));
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for o in store.list(&under)? {
        let name = o.key.rsplit('/').next().unwrap_or_default();
        if !(name.starts_with("base-") && name.ends_with(".json")) {
            continue;
        }
        match read::<LaterBase>(store, &o.key) {
            Ok(Some(b)) => found.push(b),
            Ok(None) => {} // removed since the listing
            Err(e @ Error::Failed(_)) => unreadable.push(format!(
                "the base copy record {} cannot be read: {e}",
                o.key
            )),
            Err(e) => return Err(e),
        }
    }
    found.sort_by_key(|b| b.txid);
    Ok((found, unreadable))
}

/// Record that backup `backup` of `target` is the database exactly after transaction
/// `txid` of `generation`, as it was at `at`.
pub fn record(store: &dyn Store, target: &str, base: &LaterBase) -> Result<()> {
    write(
        store,
        &later_base_key(target, &base.generation, base.txid),
        base,
    )
}

/// When the next scheduled base copy is due (`None`: the target has no schedule).
pub struct BaseSchedule {
    next: Option<DateTime<Utc>>,
}

impl BaseSchedule {
    pub fn of(cfg: &crate::config::TargetConfig) -> BaseSchedule {
        BaseSchedule {
            next: crate::schedule::next_due(cfg, Utc::now()),
        }
    }

    /// Whether a copy is due now; the next one is then planned from now, so a replicator
    /// that was stopped over several due times takes one copy, not one per time missed.
    pub fn due(&mut self, app: &App, target: &str) -> bool {
        let now = Utc::now();
        if self.next.is_none_or(|n| n > now) {
            return false;
        }
        self.next = app
            .target(target)
            .ok()
            .and_then(|cfg| crate::schedule::next_due(cfg, now));
        true
    }
}

/// The newest backup of `target` in its store (a base copy a replicator elsewhere took):
/// when it was taken and when it finished; `None` when there is none or the store cannot
/// be listed.
pub fn newest_base(app: &App, target: &str) -> Option<(DateTime<Utc>, String)> {
    let all = crate::actions::catalog::backups(app, target).ok()?;
    all.first().map(|m| (m.created(), m.finished_at.clone()))
}

/// How many times a copy is tried while another reader keeps the log from being
/// checkpointed whole (0.1 s apart).
const TRIES: u32 = 100;

/// Take a scheduled base copy of the shipper's database inside its generation. With the
/// write lock held, what is committed is shipped and the whole log checkpointed, and the
/// file is pinned at exactly that transaction; the copy is read once writers are let go.
/// A log changed behind lifeboat's back is handed back (`Err(why)`) for a new generation,
/// whose own base copy then stands for this one.
pub fn take(app: &App, shipper: &mut Shipper) -> Result<std::result::Result<LaterBase, String>> {
    let target = shipper.target.clone();
    let (pinned, at) = match pin_shipped(shipper)? {
        Ok(pinned) => pinned,
        Err(why) => return Ok(Err(why)),
    };
    let manifest = super::base::publish(app, &target, pinned, &shipper.db)?;
    let base = LaterBase {
        backup: manifest.id.clone(),
        generation: shipper.generation.clone(),
        txid: shipper.txid,
        at: crate::units::time_text(at),
    };
    record(shipper.objects.as_ref(), &target, &base)?;
    tracing::info!(
        target = %target,
        "scheduled base copy {} of generation {} at transaction {}",
        base.backup,
        base.generation,
        base.txid
    );
    Ok(Ok(base))
}

/// Answer a backup of this process asking the replicator to pin the file (under `serve`
/// the scheduler's backups are the base copies): pinned exactly after the transaction
/// shipped last. A log changed behind lifeboat's back is refused to the backup and handed
/// back (`Some(why)`) for a new generation.
pub fn answer(shipper: &mut Shipper, ask: Ask) -> Result<Option<String>> {
    let (answer, reset) = match pin_shipped(shipper) {
        Ok(Ok((pinned, at))) => {
            let mark = ReplicationMark {
                generation: shipper.generation.clone(),
                txid: shipper.txid,
                at: crate::units::time_text(at),
            };
            (Ok((pinned, mark)), None)
        }
        Ok(Err(why)) => (Err(why.clone()), Some(why)),
        Err(e @ (Error::Usage(_) | Error::Busy(_))) => {
            let _ = ask.reply.send(Err(e.to_string()));
            return Err(e);
        }
        Err(e) => (Err(e.to_string()), None),
    };
    // A backup that gave up waiting drops the pin with the answer.
    let _ = ask.reply.send(answer);
    Ok(reset)
}

/// Record a published backup pinned by this process's replicator as a base copy of the
/// generation it was pinned in. A record that cannot be written leaves the backup as it
/// is (a restore then starts from an older base copy), logged and audited.
pub fn record_backup(app: &App, manifest: &Manifest, mark: ReplicationMark) {
    let base = LaterBase {
        backup: manifest.id.clone(),
        generation: mark.generation,
        txid: mark.txid,
        at: mark.at,
    };
    let written = super::objects_for(app, &manifest.target)
        .and_then(|objects| record(objects.as_ref(), &manifest.target, &base));
    match written {
        Ok(()) => tracing::info!(
            target = %manifest.target,
            "backup {} is a base copy of generation {} at transaction {}",
            base.backup,
            base.generation,
            base.txid
        ),
        Err(e) => {
            tracing::warn!(
                target = %manifest.target,
                "backup {} could not be recorded as a base copy of generation {} at transaction {}: {e}",
                base.backup,
                base.generation,
                base.txid
            );
            let _ = app.db.audit(
                "lifeboat",
                "base copy record",
                Some(&manifest.target),
                "failed",
                Some(&format!("backup {}: {e}", base.backup)),
            );
        }
    }
}

/// With the write lock held: ship what is committed, checkpoint the whole log, and pin
/// the file at exactly that transaction (tried again while another reader keeps the log
/// from being checkpointed whole); the pin and when its state was current.
fn pin_shipped(
    shipper: &mut Shipper,
) -> Result<std::result::Result<(Pinned, DateTime<Utc>), String>> {
    let target = shipper.target.clone();
    let mut tries = 0;
    let (pinned, at) = loop {
        shipper.lock_writers()?;
        let prepared = (|| {
            if let Round::Reset(why) = shipper.ship()? {
                return Ok(Err(why));
            }
            let pinned = if shipper.checkpoint_and_hold()? {
                crate::sources::sqlite::Pinned::begin(shipper.another_connection()?, &shipper.db)?
            } else {
                None
            };
            Ok::<_, Error>(Ok(pinned))
        })();
        let at = Utc::now();
        shipper.unlock();
        match prepared? {
            Err(why) => return Ok(Err(why)),
            Ok(Some(pinned)) => break (pinned, at),
            Ok(None) if tries >= TRIES => {
                return Err(Error::Failed(format!(
                    "{target}: another reader keeps the WAL from being checkpointed, so the scheduled base copy could not be taken; lifeboat takes one at the next scheduled time"
                )));
            }
            Ok(None) => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    };
    Ok(Ok((pinned, at)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::memory::MemoryStore;

    #[test]
    fn later_bases_are_listed_in_transaction_order_beside_the_segments() {
        let store = MemoryStore::new();
        for txid in [300u64, 20, 1000] {
            let b = LaterBase {
                backup: format!("b{txid}"),
                generation: "g1".into(),
                txid,
                at: "2026-12-05T20:00:00.000Z".into(),
            };
            write(&store, &later_base_key("db", "g1", txid), &b).unwrap();
        }
        store
            .put_bytes(
                "db.wal/g1/0000000000000001-0000000000000002-1.seg.zst",
                b"x",
            )
            .unwrap();
        let found: Vec<u64> = later_bases(&store, "db", "g1")
            .unwrap()
            .iter()
            .map(|b| b.txid)
            .collect();
        assert_eq!(found, [20, 300, 1000]);
        assert!(later_bases(&store, "db", "g2").unwrap().is_empty());
        // A segment name never parses as a base record, nor the other way round.
        assert!(
            super::super::segment::SegmentName::parse(&later_base_key("db", "g1", 20)).is_none()
        );
    }
}
