//! The heartbeat of `serve` (`[server] heartbeat`): a request to an outside monitor every
//! interval, sent only while the scheduler's loop keeps turning and the state database is
//! usable, so the monitor hears silence when lifeboat is dead, wedged or cannot work —
//! not only when its process is gone.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::Heartbeat;

/// How long the scheduler may go without finishing a turn of its loop before it counts
/// as wedged. A turn takes a second when idle; a slow look at the targets or a slow chat
/// post may stretch one, but not to minutes.
pub const STALE: Duration = Duration::from_secs(120);
/// How old a whole-file check of the state database may be (as for `/healthz`).
const DAMAGE_CHECK_MAX_AGE: Duration = Duration::from_secs(10);

/// When the scheduler's loop last turned: bumped by the scheduler each turn, read by the
/// heartbeat.
#[derive(Clone)]
pub struct Alive(Arc<watch::Sender<Option<Instant>>>);

impl Default for Alive {
    fn default() -> Self {
        Alive(Arc::new(watch::Sender::new(None)))
    }
}

impl Alive {
    /// The scheduler finished a turn.
    pub fn beat(&self) {
        self.0.send_replace(Some(Instant::now()));
    }

    /// How long ago the last turn was (`None` before the first).
    pub fn since_last(&self) -> Option<Duration> {
        self.0.borrow().map(|at| at.elapsed())
    }

    /// Resolves once the scheduler has turned at least once.
    async fn started(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }
}

/// Whether this interval's ping goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ping,
    /// Withheld, and why (for the log).
    Withhold(String),
}

/// Ping only while the scheduler turned within [`STALE`] and the state is not damaged.
pub fn decide(since_last_turn: Option<Duration>, damaged: Option<&str>) -> Decision {
    if let Some(why) = damaged {
        return Decision::Withhold(format!("the state database is damaged ({why})"));
    }
    match since_last_turn {
        None => Decision::Withhold("the scheduler has not started".into()),
        Some(age) if age > STALE => Decision::Withhold(format!(
            "the scheduler has not turned for {}s",
            age.as_secs()
        )),
        Some(_) => Decision::Ping,
    }
}

/// Pings sent since start, for `/metrics`.
static OK: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
/// Unix time of the last ping the monitor accepted (0 = none yet).
static LAST_OK: AtomicU64 = AtomicU64::new(0);

/// (pings the monitor accepted, pings that failed, unix time of the last accepted one).
pub fn counts() -> (u64, u64, Option<u64>) {
    let last = LAST_OK.load(Ordering::Relaxed);
    (
        OK.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
        (last > 0).then_some(last),
    )
}

/// Ping `cfg`'s URL every `cfg.every` while `alive` says the scheduler runs and the state
/// database at `state` is not damaged. Runs until aborted.
pub async fn run(cfg: Heartbeat, state: std::path::PathBuf, alive: Alive) {
    let damaged = move || {
        let state = state.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                crate::db::damage::check(&state, DAMAGE_CHECK_MAX_AGE)
            })
            .await
            .ok()
            .flatten()
        }
    };
    let url = cfg.url;
    let send = move || {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || super::send(url.expose(), "", super::TIMEOUT))
                .await
                .unwrap_or_else(|_| Err("the ping task failed".into()))
        }
    };
    beat_loop(cfg.every.0, alive, damaged, send).await
}

/// The loop of [`run`], with how damage is found and how a ping is sent passed in.
async fn beat_loop<D, DF, S, SF>(every: Duration, alive: Alive, damaged: D, send: S)
where
    D: Fn() -> DF,
    DF: Future<Output = Option<String>>,
    S: Fn() -> SF,
    SF: Future<Output = Result<(), String>>,
{
    // The first ping waits for the scheduler's first turn rather than being withheld
    // for a whole interval.
    alive.started().await;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let damage = damaged().await;
        match decide(alive.since_last(), damage.as_deref()) {
            Decision::Ping => match send().await {
                Ok(()) => {
                    OK.fetch_add(1, Ordering::Relaxed);
                    LAST_OK.store(chrono::Utc::now().timestamp() as u64, Ordering::Relaxed);
                    tracing::debug!("heartbeat sent");
                }
                Err(e) => {
                    FAILED.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("heartbeat failed: {e}");
                }
            },
            Decision::Withhold(why) => tracing::warn!("heartbeat withheld: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn pings_only_while_the_scheduler_turns_and_the_state_is_sound() {
        let recent = Some(Duration::from_secs(1));
        assert_eq!(decide(recent, None), Decision::Ping);
        assert_eq!(decide(Some(STALE), None), Decision::Ping);
        let wedged = decide(Some(STALE + Duration::from_secs(1)), None);
        assert!(
            matches!(&wedged, Decision::Withhold(w) if w.contains("has not turned")),
            "{wedged:?}"
        );
        assert!(matches!(decide(None, None), Decision::Withhold(_)));
        let damaged = decide(recent, Some("malformed"));
        assert!(
            matches!(&damaged, Decision::Withhold(w) if w.contains("damaged")),
            "{damaged:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wedged_scheduler_stops_the_pings() {
        let start = Instant::now();
        let sent: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let alive = Alive::default();
        // The scheduler turns every second for a minute, then wedges.
        let beating = alive.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                beating.beat();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let record = sent.clone();
        let send = move || {
            record.lock().unwrap().push(start.elapsed());
            async { Ok(()) }
        };
        let pinging = beat_loop(Duration::from_secs(10), alive, || async { None }, send);
        let _ = tokio::time::timeout(Duration::from_secs(600), pinging).await;
        let sent = sent.lock().unwrap().clone();
        let last_turn = Duration::from_secs(59);
        assert!(sent.len() >= 15, "pinged while it turned: {sent:?}");
        assert!(
            sent.iter().all(|at| *at <= last_turn + STALE),
            "no ping once the scheduler stopped turning for {STALE:?}: {sent:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_damaged_state_stops_the_pings_and_a_failed_ping_is_counted() {
        let alive = Alive::default();
        alive.beat();
        let damaged = Arc::new(Mutex::new(None::<String>));
        let sent = Arc::new(AtomicU64::new(0));
        let (d, s) = (damaged.clone(), sent.clone());
        let loop_ = beat_loop(
            Duration::from_secs(10),
            alive.clone(),
            move || {
                let now = d.lock().unwrap().clone();
                async move { now }
            },
            move || {
                s.fetch_add(1, Ordering::SeqCst);
                async { Err("the monitor answered HTTP 503".to_string()) }
            },
        );
        let failed_before = FAILED.load(Ordering::Relaxed);
        let task = tokio::spawn(loop_);
        // Keep the scheduler turning throughout.
        let beating = alive.clone();
        tokio::spawn(async move {
            loop {
                beating.beat();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        tokio::time::sleep(Duration::from_secs(35)).await;
        let before = sent.load(Ordering::SeqCst);
        assert!(before >= 3, "{before}");
        assert!(FAILED.load(Ordering::Relaxed) >= failed_before + 3);
        *damaged.lock().unwrap() = Some("database disk image is malformed".into());
        tokio::time::sleep(Duration::from_secs(11)).await;
        let settled = sent.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(
            sent.load(Ordering::SeqCst),
            settled,
            "no pings while damaged"
        );
        assert!(settled <= before + 1);
        task.abort();
    }
}
