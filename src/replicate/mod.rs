//! Continuous replication of SQLite targets (`continuous = "1s"`): every committed
//! transaction shipped into the target's object store within the interval, so a restore
//! reaches any moment (`restore --at`), not only the last backup.
//!
//! `run` is one replicator: the lease ([`lease`]), then the start — resume from the
//! position in the store when the log is still the one it describes, otherwise a new
//! generation with a fresh base copy ([`base`]) — then rounds of [`shipper::Shipper::ship`]
//! every interval, a checkpoint of lifeboat's own now and then, until asked to stop.
//! Each round's segment is made durable in the [`spool`] on this host first and then
//! uploaded in order ([`delivery`]), so an unreachable store loses nothing.
//! [`point`] plans and replays a restore to a moment; [`lag`] reads how far it stands;
//! [`chain`] is what `verify` proves of the shipped history.

pub mod base;
pub mod base_choice;
pub mod chain;
pub mod compact;
pub mod compare;
pub mod delivery;
pub mod history;
pub mod lag;
pub mod lease;
pub mod point;
pub mod record;
pub mod scheduled;
pub mod segment;
pub mod shipper;
pub mod spool;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::app::App;
use crate::error::{Error, Result};
use crate::sources::sqlite::replicator_pin::Door;
use crate::stores::Store;
use delivery::Delivery;
use record::{Ended, Generation, Position, generation_key, position_key, read, write};
use shipper::{Round, Shipper};

/// How often a base copy is tried again while another reader keeps the log from being
/// checkpointed whole, and for how long.
const BASE_TRIES: u32 = 100;

/// The object store a continuous target ships into (for a repository store, its objects
/// sealed with the repository's key beside the snapshots).
pub fn objects_for(app: &App, target: &str) -> Result<Arc<dyn Store>> {
    let t = app.target(target)?;
    let name = t.store.as_deref().unwrap_or_default();
    let cfg = app
        .config
        .stores
        .get(name)
        .ok_or_else(|| Error::Usage(format!("unknown store {name:?}")))?;
    Ok(crate::stores::open_objects(name, cfg)?)
}

/// The continuous targets on this host, which `serve` replicates.
pub fn local_targets(app: &App) -> Vec<String> {
    app.config
        .targets
        .iter()
        .filter(|(_, t)| t.continuous.is_some() && t.host.is_none())
        .map(|(n, _)| n.clone())
        .collect()
}

/// A continuous target whose database is on another host: a replicator there ships it
/// (`lifeboat replicate` with that host's config) and takes its scheduled base copies;
/// here its lag is read from the store and nothing backs it up on schedule.
pub fn replicated_on_its_host(cfg: &crate::config::TargetConfig) -> bool {
    cfg.continuous.is_some() && cfg.host.is_some()
}

/// Replicate `target` until `stop` is set; the lease is given up on the way out.
/// `bases_on_schedule`: take the target's scheduled base copies too (a replicator on its
/// own; under `serve` the scheduler's backups are those copies).
pub fn run(app: &App, target: &str, stop: &AtomicBool, bases_on_schedule: bool) -> Result<()> {
    let cfg = app.target(target)?;
    if let Some(host) = cfg.host.as_ref().filter(|_| cfg.continuous.is_some()) {
        return Err(Error::Usage(format!(
            "{target} is on {host}: run `lifeboat replicate {target}` on that host, with a config holding this target (its local path, no host) and its store; here its lag is read from the store"
        )));
    }
    let every = cfg.continuous_every().ok_or_else(|| {
        Error::Usage(format!(
            "{target} is not replicated continuously; set `continuous = \"1s\"` on it"
        ))
    })?;
    let db = cfg
        .path
        .clone()
        .ok_or_else(|| Error::Usage(format!("{target} has no path")))?;
    let objects = objects_for(app, target)?;
    let ttl = (every * 10).max(Duration::from_secs(30));
    // The database first: one that cannot be replicated leaves no lease behind.
    let spool = spool::Spool::for_target(app, target)?;
    let mut shipper = Shipper::open(target, &db, objects.clone(), spool, lease::this_holder())?;
    let mut lease = lease::Held::take(objects.as_ref(), target, ttl)?;
    // This process's backups of the target are pinned by the shipper from now on.
    let door = Door::open(target);
    let started = start(app, &mut shipper);
    let mut bases = bases_on_schedule.then(|| scheduled::BaseSchedule::of(cfg));
    let outcome = started.and_then(|()| {
        tracing::info!(
            target = target,
            generation = %shipper.generation,
            txid = shipper.txid,
            "replicating {target} every {}",
            humantime::format_duration(every)
        );
        // A database replaced under the replicator (an in-place restore) is replicated
        // from then on as a new generation, never the file moved aside.
        while let Some(why) = rounds(
            app,
            &mut shipper,
            &mut lease,
            every,
            stop,
            bases.as_mut(),
            &door,
        )? {
            tracing::warn!(target = target, "{why}: starting a new generation from it");
            shipper.release();
            let spool = spool::Spool::for_target(app, target)?;
            shipper = Shipper::open(target, &db, objects.clone(), spool, lease::this_holder())?;
            new_generation(app, &mut shipper, &why, false)?;
        }
        Ok(())
    });
    drop(door);
    shipper.release();
    lease.release(objects.as_ref(), target);
    outcome
}

fn rounds(
    app: &App,
    shipper: &mut Shipper,
    lease: &mut lease::Held,
    every: Duration,
    stop: &AtomicBool,
    mut bases: Option<&mut scheduled::BaseSchedule>,
    door: &Door,
) -> Result<Option<String>> {
    let target = shipper.target.clone();
    let objects = shipper.objects.clone();
    let mut tidied = Instant::now();
    let cfg = app.target(&target)?;
    let (span, keep) = (cfg.compact_span(), cfg.continuous_history());
    let tidy_every = span.min(Duration::from_secs(60));
    let mut failing = false;
    let renew_every = every.max(Duration::from_secs(3));
    let mut delivery = Delivery::start(shipper, lease, renew_every);
    // How long the last few rounds took to read the log and spool it, newest last.
    let mut shipping: VecDeque<Duration> = VecDeque::new();
    loop {
        let round_started = Instant::now();
        let last = stop.load(Ordering::SeqCst);
        if let Some(why) = shipper.replaced() {
            return Ok(Some(why));
        }
        // The uploader renews the lease (an unreachable store never holds a round up).
        if let Some(e) = delivery.taken_over() {
            return Err(e);
        }
        let round = if shipper.wants_checkpoint() && delivery::may_checkpoint(shipper) {
            shipper.checkpoint()
        } else {
            shipper.ship()
        };
        delivery::spooled(shipper, round.as_ref().err());
        if shipping.len() == 16 {
            shipping.pop_front();
        }
        shipping.push_back(round_started.elapsed());
        match round {
            Ok(Round::Shipped(n)) => {
                if failing {
                    tracing::info!(target = %target, "shipping works again");
                    failing = false;
                }
                if n > 0 {
                    tracing::debug!(target = %target, txid = shipper.txid, "shipped {n} transactions");
                }
            }
            Ok(Round::Reset(why)) => {
                delivery.stop();
                new_generation(app, shipper, &why, false)?;
                delivery = Delivery::start(shipper, lease, renew_every);
            }
            Err(e @ (Error::Usage(_) | Error::Busy(_))) => return Err(e),
            Err(e) => {
                // The spool's bound or its disk: keep the read transaction (nothing is
                // lost while it is held, nothing unspooled is checkpointed) and try again
                // next round.
                if !failing {
                    tracing::warn!(target = %target, "shipping failed, trying again: {e}");
                }
                failing = true;
            }
        }
        delivery.offer(shipper);
        if last {
            delivery.finish(shipper);
            return Ok(None);
        }
        // Compaction only while no late segment could land in a span already merged.
        if tidied.elapsed() >= tidy_every && delivery.caught_up(shipper, span) {
            tidy(objects.as_ref(), &target, span, keep);
            tidied = Instant::now();
            if base_older_than(shipper, keep / 2) {
                delivery.stop();
                new_generation(
                    app,
                    shipper,
                    "a fresh base copy, so history older than continuous_history can go",
                    true,
                )?;
                delivery = Delivery::start(shipper, lease, renew_every);
            }
        }
        if let Some(b) = bases.as_deref_mut()
            && b.due(app, &target)
        {
            scheduled_base(app, shipper)?;
        }
        let slowest = shipping.iter().max().copied().unwrap_or_default();
        let period = round_period(every, slowest + delivery.recent_delivery());
        loop {
            // A backup waiting for its pin is answered at once, not after the interval.
            if let Some(ask) = door.asked()
                && let Some(why) = scheduled::answer(shipper, ask)?
            {
                delivery.stop();
                new_generation(app, shipper, &why, false)?;
                delivery = Delivery::start(shipper, lease, renew_every);
            }
            if round_started.elapsed() >= period || stop.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(period.min(Duration::from_millis(50)));
        }
    }
}

/// How long after one round starts the next one does: the interval, less what recent
/// rounds took from reading the log to their segment being in the store, so that a
/// transaction committed just after one round read the log is in the store within the
/// interval of its commit. Never under half the interval: a store that slow is the lag
/// alert's business, and rounds closer together would only ship hot pages more often.
fn round_period(every: Duration, round_to_store: Duration) -> Duration {
    every.saturating_sub(round_to_store).max(every / 2)
}

/// A scheduled base copy inside the generation; a log changed behind lifeboat's back
/// starts a new generation instead (its base copy stands for the scheduled one), and a
/// copy that could not be taken is logged and audited, not fatal.
fn scheduled_base(app: &App, shipper: &mut Shipper) -> Result<()> {
    let target = shipper.target.clone();
    match scheduled::take(app, shipper) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(why)) => new_generation(app, shipper, &why, false),
        Err(e @ (Error::Usage(_) | Error::Busy(_))) => Err(e),
        Err(e) => {
            tracing::warn!(target = %target, "scheduled base copy failed: {e}");
            app.db.audit(
                "lifeboat",
                "scheduled base copy",
                Some(&target),
                "failed",
                Some(&e.to_string()),
            )?;
            Ok(())
        }
    }
}

/// Whether the current generation's base copy is older than `age` (a fresh one is then
/// taken: every half `continuous_history`, so history never reaches back much more).
fn base_older_than(shipper: &Shipper, age: Duration) -> bool {
    let g = read::<Generation>(
        shipper.objects.as_ref(),
        &generation_key(&shipper.target, &shipper.generation),
    );
    let base_at = g
        .ok()
        .flatten()
        .and_then(|g| crate::units::parse_time(&g.base_at));
    base_at.is_some_and(|b| {
        Utc::now() - b > chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX)
    })
}

/// Compaction and the end of history past `continuous_history`, between rounds; a
/// failure is logged and tried again next time (nothing is removed before what replaces
/// it is written).
fn tidy(objects: &dyn Store, target: &str, span: Duration, keep: Duration) {
    let now = Utc::now();
    if let Err(e) = compact::compact(objects, target, span, now) {
        tracing::warn!(target = %target, "compacting shipped history failed, trying again later: {e}");
    }
    if let Err(e) = history::expire(objects, target, keep, now, None) {
        tracing::warn!(target = %target, "removing history past continuous_history failed: {e}");
    }
}

/// Resume from the stored position when the log is still the one it describes; else
/// start a new generation.
fn start(app: &App, shipper: &mut Shipper) -> Result<()> {
    let target = shipper.target.clone();
    let objects = shipper.objects.clone();
    delivery::upload_leftovers(shipper)?;
    let position: Option<Position> = read(objects.as_ref(), &position_key(&target))?;
    let Some(position) = position else {
        return new_generation(
            app,
            shipper,
            "the first replication of this database",
            false,
        );
    };
    let known = read::<Generation>(
        objects.as_ref(),
        &generation_key(&target, &position.generation),
    )?
    .is_some();
    shipper.lock_writers()?;
    let resumable = match &position.wal {
        Some(at) if known => shipper.still_at(at)?,
        _ => false,
    };
    if !resumable {
        shipper.unlock();
        return new_generation(
            app,
            shipper,
            "the WAL is no longer the one the last replicator left off in (reset, truncated or rewritten while no replicator held it)",
            false,
        );
    }
    shipper.generation = position.generation.clone();
    shipper.txid = position.txid;
    shipper.cursor = position.wal;
    // The log is the same and no one can write: ship what came since, then hold it.
    let shipped = shipper.ship();
    // Checkpointed only once spooled: a round that could not spool leaves the log as it is.
    let held = match &shipped {
        Ok(Round::Shipped(_)) => shipper.checkpoint_and_hold().map(|_| ()),
        _ => Ok(()),
    };
    shipper.unlock();
    match shipped? {
        Round::Shipped(n) => tracing::info!(
            target = %target,
            "resumed generation {} at transaction {} with no gap ({n} shipped since)",
            position.generation,
            position.txid
        ),
        Round::Reset(why) => return new_generation(app, shipper, &why, false),
    }
    held?;
    Ok(())
}

/// Start a generation: with the write lock held, the log's end is where shipping starts
/// and a complete checkpoint pins the file as exactly that state; the base copy is taken
/// from the pinned file once writers are let go. The previous generation is ended at
/// what it reached; the audit log says why.
///
/// `continuing`: the current generation is whole and goes on into the new one (a fresh
/// base copy so older history can go): what is committed is shipped into it under the
/// same write lock, so it reaches the new base's moment with nothing between them.
fn new_generation(app: &App, shipper: &mut Shipper, why: &str, continuing: bool) -> Result<()> {
    let target = shipper.target.clone();
    let objects = shipper.objects.clone();
    let mut tries = 0;
    let mut joined = false;
    let (pinned, cursor, at) = loop {
        shipper.lock_writers()?;
        let prepared = (|| {
            if continuing {
                joined = matches!(shipper.ship()?, Round::Shipped(_));
            }
            let cursor = shipper.committed_end()?;
            let complete = shipper.checkpoint_and_hold()?;
            let pinned = if complete {
                crate::sources::sqlite::Pinned::begin(shipper.another_connection()?, &shipper.db)?
            } else {
                None
            };
            Ok::<_, Error>((pinned, cursor))
        })();
        let at = Utc::now();
        shipper.unlock();
        match prepared? {
            (Some(pinned), cursor) => break (pinned, cursor, at),
            _ if tries >= BASE_TRIES => {
                return Err(Error::Failed(format!(
                    "{target}: another reader keeps the WAL from being checkpointed, so no base copy can be taken for a new generation; lifeboat will try again"
                )));
            }
            _ => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    // The old generation's segments into the store first, then its end is recorded.
    shipper.spool.upload(objects.as_ref())?;
    let previous: Option<Position> = read(objects.as_ref(), &position_key(&target))?;
    let generation = record::new_generation_id(at);
    shipper.generation = generation.clone();
    shipper.txid = 0;
    shipper.cursor = cursor;
    let page_size = cursor.map_or(0, |c| c.header.page_size);
    let base = base::publish(app, &target, pinned, &shipper.db)?;
    let g = Generation {
        generation: generation.clone(),
        started_at: crate::units::time_text(at),
        reason: why.to_string(),
        page_size: base
            .sqlite
            .as_ref()
            .map_or(page_size, |f| f.page_size as u32),
        base_backup: base.id.clone(),
        base_txid: 0,
        base_at: crate::units::time_text(at),
        // Only a generation that had to start over names the one before it (and so
        // raises the watchdog's alert); a routine fresh base continues the history.
        previous: previous
            .as_ref()
            .filter(|_| !joined)
            .map(|p| p.generation.clone())
            .filter(|p| *p != generation),
        ended: None,
    };
    write(objects.as_ref(), &generation_key(&target, &generation), &g)?;
    if let Some(prev) = previous.filter(|p| p.generation != generation)
        && let Some(mut old) =
            read::<Generation>(objects.as_ref(), &generation_key(&target, &prev.generation))?
    {
        old.ended = Some(Ended {
            replicated_to: if joined {
                crate::units::time_text(at)
            } else {
                prev.replicated_to.clone()
            },
            reason: why.to_string(),
        });
        write(
            objects.as_ref(),
            &generation_key(&target, &prev.generation),
            &old,
        )?;
    }
    shipper.replicated_to = at;
    shipper.save_position()?;
    let detail = format!("generation {generation}, base copy {}: {why}", base.id);
    if g.previous.is_none() {
        // Routine (the history goes on unbroken into it) or the very first: no break.
        tracing::info!(target = %target, "new replication generation: {detail}");
    } else {
        tracing::warn!(target = %target, "new replication generation: {detail}");
    }
    app.db.audit(
        "lifeboat",
        "replication generation",
        Some(&target),
        "started",
        Some(&detail),
    )?;
    Ok(())
}

/// The replicators `serve` runs, one thread per continuous target on this host.
pub struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How long a replicator that stopped on an error waits before it starts again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Start a replicator for every continuous target on this host; each one that stops on
/// an error (the lease held elsewhere, the database missing) starts again after a pause.
pub fn start_all(app: &App) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = local_targets(app)
        .into_iter()
        .map(|target| {
            let (app, stop) = (app.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("replicate {target}"))
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match run(&app, &target, &stop, false) {
                            Ok(()) => break,
                            Err(e) => tracing::error!(target = %target, "replication stopped: {e}"),
                        }
                        let paused = Instant::now();
                        while paused.elapsed() < RETRY_AFTER && !stop.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                })
                .expect("a replicator thread")
        })
        .collect();
    Running { stop, threads }
}

impl Running {
    /// Ship what is committed one last time, give the leases up, and wait for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::round_period;
    use std::time::Duration;

    #[test]
    fn rounds_start_early_enough_to_land_within_the_interval() {
        let ms = Duration::from_millis;
        // Nothing measured yet: the interval itself.
        assert_eq!(round_period(ms(1000), ms(0)), ms(1000));
        // A round that takes 120 ms to reach the store starts 120 ms sooner.
        assert_eq!(round_period(ms(1000), ms(120)), ms(880));
        // A store slower than half the interval does not make rounds run back to back.
        assert_eq!(round_period(ms(1000), ms(700)), ms(500));
        assert_eq!(round_period(ms(1000), ms(5000)), ms(500));
    }
}
