//! A backup of a database this process replicates continuously (under `serve`) is pinned
//! by its replicator rather than by the backup: with the write lock held the replicator
//! ships every committed transaction, checkpoints the whole log and starts the pinning
//! read, so the copy is the database exactly after the transaction it shipped last. The
//! backup then records that transaction beside the shipped history, and a restore to a
//! later moment can start from it (the same record a standalone replicator's scheduled
//! base copies leave).
//!
//! The replicator opens a [`Door`] for its target while it runs; a backup [`ask`]s
//! through it and streams what it is handed. With no replicator here, or none that
//! answers in time, the backup pins the file itself as usual.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::Pinned;

/// Which transaction of which generation a pinned copy is the database after.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationMark {
    pub generation: String,
    pub txid: u64,
    /// When that state was current (the write lock was held then).
    pub at: String,
}

/// The replicator's answer: the pinned file and its mark, or why it could not pin it.
pub type Answer = std::result::Result<(Pinned, ReplicationMark), String>;

/// A backup's request, answered once through `reply`.
pub struct Ask {
    pub reply: Sender<Answer>,
}

/// The open doors: each target's, with a number telling one opening from the next.
type Doors = Mutex<HashMap<String, (u64, Sender<Ask>)>>;

fn doors() -> &'static Doors {
    static DOORS: OnceLock<Doors> = OnceLock::new();
    DOORS.get_or_init(Default::default)
}

/// How long a backup waits for the replicator: a round in progress, the pin's own tries
/// while another reader holds the log. Past it the backup pins the file itself.
const WAIT: Duration = Duration::from_secs(120);

/// A replicator's door for one target, open until dropped.
pub struct Door {
    target: String,
    asks: Receiver<Ask>,
    opening: u64,
}

impl Door {
    pub fn open(target: &str) -> Door {
        static OPENINGS: AtomicU64 = AtomicU64::new(0);
        let opening = OPENINGS.fetch_add(1, Ordering::Relaxed);
        let (sender, asks) = channel();
        doors()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target.to_string(), (opening, sender));
        Door {
            target: target.to_string(),
            asks,
            opening,
        }
    }

    /// A backup waiting for a pinned copy, if one is.
    pub fn asked(&self) -> Option<Ask> {
        self.asks.try_recv().ok()
    }
}

impl Drop for Door {
    fn drop(&mut self) {
        let mut all = doors().lock().unwrap_or_else(|p| p.into_inner());
        // Only its own: a replicator started again since has its own door.
        if all
            .get(&self.target)
            .is_some_and(|(opening, _)| *opening == self.opening)
        {
            all.remove(&self.target);
        }
    }
}

/// Ask this process's replicator of `target` for a pinned copy; `None` when none runs
/// here or it did not answer (it stopped, or not in time).
pub fn ask(target: &str) -> Option<Answer> {
    let door = doors()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(target)
        .map(|(_, sender)| sender.clone())?;
    let (reply, answer) = channel();
    door.send(Ask { reply }).ok()?;
    match answer.recv_timeout(WAIT) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(
                target = target,
                "the replicator of {target} did not pin the file for the backup ({e}); the backup pins it itself, and records no transaction"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_door_no_answer_and_a_closed_door_is_gone() {
        assert!(ask("nobody-replicates-this").is_none());
        let door = Door::open("t-door");
        let asker = std::thread::spawn(|| ask("t-door").map(|a| a.err()));
        // The replicator side: take the ask and refuse it with why.
        let asked = loop {
            if let Some(a) = door.asked() {
                break a;
            }
            std::thread::yield_now();
        };
        asked.reply.send(Err("the log was reset".into())).unwrap();
        assert_eq!(
            asker.join().unwrap(),
            Some(Some("the log was reset".to_string()))
        );
        drop(door);
        assert!(ask("t-door").is_none());
    }
}
