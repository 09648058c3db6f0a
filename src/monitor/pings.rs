//! A target's `ping_url`: `<url>/start` when a backup starts, `<url>` when it succeeds,
//! `<url>/fail` (body: the error) when it fails — healthchecks.io's conventions. The
//! pings of one backup go out in order from a thread of their own, so a slow or dead
//! monitor never delays the backup or changes how it ends; failures are only logged.

use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::Secret;

/// Tries per ping, and the pause before each retry.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];
/// At most this much of a failure's message is sent (healthchecks.io keeps 100 kB).
const MAX_BODY: usize = 10_000;

/// What the monitor is told.
enum Event {
    Start,
    Success,
    Fail(String),
}

impl Event {
    fn suffix(&self) -> &'static str {
        match self {
            Event::Start => "/start",
            Event::Success => "",
            Event::Fail(_) => "/fail",
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::Success => "success",
            Event::Fail(_) => "failure",
        }
    }
}

/// Ping threads still sending, so a CLI run can let them finish before it exits.
static SENDING: Mutex<usize> = Mutex::new(0);
static SENT: Condvar = Condvar::new();

/// The pings of one backup (nothing at all when the target has no `ping_url`).
pub struct BackupPings {
    events: Option<mpsc::Sender<Event>>,
}

impl BackupPings {
    /// Start the sender for a backup of `target`.
    pub fn new(target: &str, url: Option<&Secret>) -> BackupPings {
        let Some(url) = url else {
            return BackupPings { events: None };
        };
        let (tx, rx) = mpsc::channel::<Event>();
        let name = target.to_string();
        let (target, url) = (target.to_string(), url.clone());
        *SENDING.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let spawned = std::thread::Builder::new()
            .name("ping".into())
            .spawn(move || {
                let _done = Done;
                for event in rx {
                    deliver(&target, url.expose(), &event);
                }
            });
        if let Err(e) = spawned {
            drop(Done);
            tracing::warn!(target = %name, "cannot start the thread that pings the monitor: {e}");
            return BackupPings { events: None };
        }
        BackupPings { events: Some(tx) }
    }

    /// The backup started (its target is locked, its job recorded).
    pub fn started(&self) {
        self.send(Event::Start);
    }

    /// The backup ended: success, or the error to report.
    pub fn finished(self, outcome: Result<(), String>) {
        self.send(match outcome {
            Ok(()) => Event::Success,
            Err(e) => Event::Fail(e),
        });
    }

    fn send(&self, event: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }
}

/// Marks one ping thread as finished when dropped (however it ends).
struct Done;

impl Drop for Done {
    fn drop(&mut self) {
        let mut n = SENDING.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        SENT.notify_all();
    }
}

/// Wait until every ping under way has been sent (or given up), at most `max`: for a
/// process about to exit, whose threads would die with it.
pub fn wait_sent(max: Duration) {
    let deadline = Instant::now() + max;
    let mut n = SENDING.lock().unwrap_or_else(|p| p.into_inner());
    while *n > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!("exiting with {} monitor pings unsent", *n);
            return;
        }
        n = SENT
            .wait_timeout(n, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// Send one ping, retrying a few times; failures are logged without the URL.
fn deliver(target: &str, url: &str, event: &Event) {
    let url = format!("{}{}", url.trim_end_matches('/'), event.suffix());
    let body = match event {
        Event::Fail(message) => truncate(message, MAX_BODY),
        _ => "",
    };
    let mut pauses = RETRY_PAUSES.iter();
    loop {
        match super::send(&url, body, super::TIMEOUT) {
            Ok(()) => return,
            Err(e) => match pauses.next() {
                Some(pause) => std::thread::sleep(*pause),
                None => {
                    tracing::warn!(
                        target = %target,
                        "could not tell the monitor (ping_url) of the backup's {}: {e}",
                        event.name()
                    );
                    return;
                }
            },
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_messages_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("aéb", 2), "a");
        assert_eq!(truncate("aéb", 3), "aé");
    }

    #[test]
    fn a_target_without_a_ping_url_sends_nothing() {
        let pings = BackupPings::new("t", None);
        assert!(pings.events.is_none());
        pings.started();
        pings.finished(Ok(()));
    }
}
