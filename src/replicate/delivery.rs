//! The uploader: a thread beside the rounds that takes the spool's segments to the store
//! in order, each followed by the position it reaches, and the newest position once the
//! spool is empty ([`spool`](super::spool)). What the store has is what `replicated_to`
//! says, so the lag stays honest while the store is unreachable; and because uploads run
//! on their own thread, a store that takes seconds to fail (the S3 client retries) never
//! holds the rounds up: they go on spooling every interval. The uploader renews the
//! lease too, for the same reason (a lease taken over stops the replicator). Failures are
//! logged once and tried again every second; `state.json` in the spool says what waits
//! there and why.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::lease;
use super::record::{Position, position_key, write};
use super::shipper::Shipper;
use super::spool::{Spool, SpoolState};
use crate::error::{Error, Result};
use crate::stores::Store;

/// How long the uploader waits before it tries a store that failed again.
const RETRY: Duration = Duration::from_secs(1);
/// How many recent deliveries the time a round takes to reach the store is judged by.
const RECENT: usize = 16;

#[derive(Default)]
struct Inner {
    /// The newest position, for the store once the spool is empty.
    latest: Option<Position>,
    /// What was last written as the position (not written twice).
    written: Option<Position>,
    /// Why uploads fail, and since when.
    failing: Option<(String, DateTime<Utc>)>,
    /// Everything committed before this is in the store, as this replicator wrote it.
    stored_to: Option<DateTime<Utc>>,
    offered: bool,
    /// When the newest offer not yet taken by a pass was made.
    offered_at: Option<Instant>,
    /// How long the last few offers took to be in the store, newest last.
    delivered: VecDeque<Duration>,
    stop: bool,
    /// The lease was taken over by another replicator: why (this one stops).
    taken_over: Option<String>,
    /// The state last written to the spool (`Some(None)`: none there; `None`: not yet
    /// looked at, so a state a killed replicator left is replaced or removed).
    noted: Option<Option<SpoolState>>,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: Condvar,
}

/// The uploader of one replicator's rounds, and what it tells of them.
pub struct Delivery {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Delivery {
    /// Start uploading `shipper`'s spool, renewing `lease` every `renew_every`.
    pub fn start(shipper: &Shipper, lease: &lease::Held, renew_every: Duration) -> Delivery {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                stored_to: None,
                ..Inner::default()
            }),
            wake: Condvar::new(),
        });
        let (spool, objects, target) = (
            shipper.spool.clone(),
            shipper.objects.clone(),
            shipper.target.clone(),
        );
        let uploader = shared.clone();
        let lease = lease.clone();
        let thread = std::thread::Builder::new()
            .name(format!("upload {target}"))
            .spawn(move || {
                let mut renewal = Renewal {
                    lease,
                    every: renew_every,
                    last: Instant::now(),
                };
                uploads(&uploader, &spool, objects.as_ref(), &target, &mut renewal)
            })
            .expect("an uploader thread");
        Delivery {
            shared,
            thread: Some(thread),
        }
    }

    /// After a round: the newest position, for the store once what is spooled is in it.
    pub fn offer(&mut self, shipper: &Shipper) {
        {
            let mut inner = self.shared.inner.lock().expect("uploader state");
            inner.latest = Some(shipper.position());
            inner.offered = true;
            inner.offered_at.get_or_insert_with(Instant::now);
            note(&mut inner, &shipper.spool);
        }
        self.shared.wake.notify_all();
    }

    /// The longest a recent round's segment took from its offer to the store (zero
    /// before any): what a round must leave room for to land within the interval.
    pub fn recent_delivery(&self) -> Duration {
        let inner = self.shared.inner.lock().expect("uploader state");
        inner.delivered.iter().max().copied().unwrap_or_default()
    }

    /// Whether uploads are failing now (the store is unreachable).
    pub fn failing(&self) -> bool {
        self.shared
            .inner
            .lock()
            .expect("uploader state")
            .failing
            .is_some()
    }

    /// The lease was taken over by another replicator: the error to stop with.
    pub fn taken_over(&self) -> Option<Error> {
        let inner = self.shared.inner.lock().expect("uploader state");
        inner.taken_over.clone().map(Error::Busy)
    }

    /// Whether compaction may run: uploads work and nothing waits in the spool from
    /// before the last `span` (compaction merges only spans older than that, so a
    /// segment still on its way never lands in a span already merged).
    pub fn caught_up(&self, shipper: &Shipper, span: Duration) -> bool {
        let since = Utc::now().timestamp_millis() - span.as_millis() as i64;
        !self.failing()
            && shipper
                .spool
                .pending()
                .is_ok_and(|p| p.iter().all(|s| s.seen_ms().is_some_and(|ms| ms >= since)))
    }

    /// Stop the uploader and wait for it (before a new generation, which uploads what
    /// is left itself, and on the way out).
    pub fn stop(&mut self) {
        self.shared.inner.lock().expect("uploader state").stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// On the way out: one last upload of the last round; say what stays in the spool.
    pub fn finish(mut self, shipper: &Shipper) {
        self.stop();
        let objects = shipper.objects.clone();
        let done = pass(&self.shared, &shipper.spool, objects.as_ref());
        let left = shipper.spool.pending().map_or(0, |p| p.len());
        if let Err(e) = done
            && left > 0
        {
            tracing::warn!(
                target = %shipper.target,
                "{left} segments stay in the spool {}, not in the store yet ({e}); the next start of the replicator uploads them first",
                shipper.spool.dir.display()
            );
        }
        note(
            &mut self.shared.inner.lock().expect("uploader state"),
            &shipper.spool,
        );
    }
}

/// Write the spool's state when there is something to say, remove it when not: after
/// each round and each pass of the uploader, under the uploader state's lock.
fn note(inner: &mut Inner, spool: &Spool) {
    let Some(latest) = &inner.latest else {
        return;
    };
    let failing = inner.failing.clone();
    let state =
        (spool.bytes() > 0 || failing.is_some() || latest.stuck.is_some()).then(|| SpoolState {
            holder: latest.holder.clone(),
            at: crate::units::time_text(Utc::now()),
            segments: spool.pending().map_or(0, |p| p.len()),
            bytes: spool.bytes(),
            max_bytes: spool.max(),
            stored_to: inner.stored_to.map(crate::units::time_text),
            spooled_to: latest.replicated_to.clone(),
            upload_failing: failing.as_ref().map(|f| f.0.clone()),
            upload_failing_since: failing.as_ref().map(|f| crate::units::time_text(f.1)),
            stuck: latest.stuck.clone(),
        });
    if state.is_none() && inner.noted == Some(None) {
        return;
    }
    spool.note(state.as_ref());
    inner.noted = Some(state);
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The lease as the uploader renews it.
struct Renewal {
    lease: lease::Held,
    every: Duration,
    last: Instant,
}

/// The uploader thread: a pass whenever a round offers something, or a second after a
/// failure, until stopped; the lease renewed before a pass when it is due.
fn uploads(
    shared: &Shared,
    spool: &Spool,
    objects: &dyn Store,
    target: &str,
    renewal: &mut Renewal,
) {
    let mut next_try = Instant::now();
    loop {
        {
            let mut inner = shared.inner.lock().expect("uploader state");
            loop {
                if inner.stop {
                    return;
                }
                let now = Instant::now();
                let due = now >= next_try;
                // A round offered something, or a failed pass is due again.
                if due && (inner.offered || inner.failing.is_some()) {
                    break;
                }
                let wait = if due { RETRY } else { next_try - now };
                inner = shared
                    .wake
                    .wait_timeout(inner, wait)
                    .expect("uploader state")
                    .0;
            }
            inner.offered = false;
        }
        let served = shared
            .inner
            .lock()
            .expect("uploader state")
            .offered_at
            .take();
        let renewed = if renewal.last.elapsed() >= renewal.every {
            match renewal.lease.renew(objects, target) {
                Ok(()) => {
                    renewal.last = Instant::now();
                    Ok(())
                }
                Err(Error::Busy(why)) => {
                    tracing::error!(target = %target, "{why}");
                    shared.inner.lock().expect("uploader state").taken_over = Some(why);
                    return;
                }
                Err(e) => Err(e),
            }
        } else {
            Ok(())
        };
        match renewed.and_then(|()| pass(shared, spool, objects)) {
            Ok(()) => {
                let was = {
                    let mut inner = shared.inner.lock().expect("uploader state");
                    let was = inner.failing.take();
                    // Only a pass that worked the first time says how long delivery takes
                    // (one after an outage measures the outage, which the lag alert covers).
                    if let Some(offered) = served.filter(|_| was.is_none()) {
                        if inner.delivered.len() == RECENT {
                            inner.delivered.pop_front();
                        }
                        inner.delivered.push_back(offered.elapsed());
                    }
                    note(&mut inner, spool);
                    was
                };
                if let Some((_, since)) = was {
                    tracing::info!(
                        target = %target,
                        "the store takes uploads again (they failed since {}): everything spooled is in it, in order",
                        crate::units::time_text(since)
                    );
                }
            }
            Err(e) => {
                let mut inner = shared.inner.lock().expect("uploader state");
                if inner.failing.is_none() {
                    tracing::warn!(
                        target = %target,
                        "cannot upload to the store, so rounds go on into the spool {} (bound {}) until it takes them again: {e}",
                        spool.dir.display(),
                        crate::units::human_bytes(spool.max())
                    );
                }
                let since = inner.failing.as_ref().map_or_else(Utc::now, |f| f.1);
                inner.failing = Some((e.to_string(), since));
                note(&mut inner, spool);
                next_try = Instant::now() + RETRY;
            }
        }
    }
}

/// Upload what the spool holds in order, then the newest position when nothing is left.
fn pass(shared: &Shared, spool: &Spool, objects: &dyn Store) -> Result<()> {
    if let Some(p) = spool.upload(objects)? {
        let mut inner = shared.inner.lock().expect("uploader state");
        inner.stored_to = crate::units::parse_time(&p.replicated_to);
        inner.written = Some(p);
    }
    // Checked and taken together: a round adds its segment to the spool before it
    // offers the position after it, so an offered position never runs ahead of the store.
    let latest = {
        let inner = shared.inner.lock().expect("uploader state");
        (spool.bytes() == 0)
            .then(|| inner.latest.clone())
            .flatten()
            .filter(|p| inner.written.as_ref() != Some(p))
    };
    if let Some(p) = latest {
        write(objects, &position_key(spool.target()), &p)?;
        let mut inner = shared.inner.lock().expect("uploader state");
        inner.stored_to = crate::units::parse_time(&p.replicated_to);
        inner.written = Some(p);
    }
    Ok(())
}

/// How the round's spooling went: a failure is why the replicator is stuck (no
/// checkpoint then: the frames it could not spool stay in the WAL).
pub fn spooled(shipper: &mut Shipper, failure: Option<&Error>) {
    shipper.stuck = failure.map(|e| e.to_string());
}

/// Whether lifeboat may checkpoint this round: only when the last round's segment could
/// be spooled (a checkpoint spools the rest first, under the write lock).
pub fn may_checkpoint(shipper: &Shipper) -> bool {
    shipper.stuck.is_none()
}

/// At start and before a new generation (no uploader running): upload what is in the
/// spool — a previous replicator's, killed or stopped while the store was unreachable,
/// or the old generation's last segments — before anything is read from the store.
pub fn upload_leftovers(shipper: &mut Shipper) -> Result<()> {
    let left = shipper.spool.pending()?.len();
    if left == 0 {
        return Ok(());
    }
    let objects = shipper.objects.clone();
    shipper.spool.upload(objects.as_ref())?;
    tracing::info!(
        target = %shipper.target,
        "uploaded {left} segments waiting in the spool {} (a replicator before this one was stopped or killed while the store was unreachable), in order",
        shipper.spool.dir.display()
    );
    Ok(())
}
