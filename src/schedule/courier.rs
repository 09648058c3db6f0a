//! Alert delivery off the watchdog's path: one queue per alert channel, each a task that
//! posts and edits in order with its own retries, so a slow, rate-limited or refusing
//! channel delays nothing but itself, and deciding and recording an alert never waits on
//! chat. An alert whose message cannot be edited any more is re-anchored on a fresh one;
//! a channel lifeboat cannot post to is reported once (log, audit, `/healthz`, `status`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::AlertSinks;
use super::alerts::Say;
use super::look::{self, Outgoing};
use crate::app::App;
use crate::notify::{Notifier, NotifyError, with_retries};

/// Posts (openings, repeats, recovery notices) handed to the queues and not yet through
/// all of them, by alert and what is said, with how many queues still have them and
/// whether any took it. A look while one is under way must not post it a second time.
type Pending = Arc<Mutex<HashMap<(i64, Say), Left>>>;

#[derive(Clone, Copy)]
struct Left {
    queues: usize,
    taken: bool,
}

/// Per alert, the `posted_at` its last post was decided from. A look that read the alert
/// before that post was recorded decides the same post again from the same stale view:
/// that is no new repeat, only newer content for the message already there. Forgotten
/// when no channel took the post, so a refused post is tried again.
type Handed = Arc<Mutex<HashMap<i64, Option<String>>>>;

/// One message for one alert channel, as the watchdog decided it at `now`.
struct Job {
    out: Outgoing,
    now: DateTime<Utc>,
}

/// The watchdog's hand-off to the alert channels.
pub struct Courier {
    app: App,
    queues: Vec<mpsc::UnboundedSender<Job>>,
    pending: Pending,
    handed: Handed,
}

impl Courier {
    /// Start one queue per alert channel (call within the runtime).
    pub fn start(app: App, sinks: &AlertSinks) -> Courier {
        let names: Vec<String> = sinks
            .iter()
            .map(|(n, c)| format!("{}:{c}", n.platform()))
            .collect();
        // A channel no longer configured is no longer lifeboat's problem to report.
        if let Err(e) = app.db.chat_channels_keep(&names) {
            tracing::error!("forgetting old alert channels: {e}");
        }
        let known: Vec<String> = app
            .db
            .chat_channels_unusable()
            .unwrap_or_default()
            .iter()
            .map(|c| c.sink())
            .collect();
        let pending = Pending::default();
        let handed = Handed::default();
        let queues = sinks
            .iter()
            .zip(names)
            .map(|((notifier, channel), sink)| {
                let (tx, rx) = mpsc::unbounded_channel();
                let queue = Queue {
                    app: app.clone(),
                    notifier: notifier.clone(),
                    channel: channel.clone(),
                    unusable: known.contains(&sink),
                    sink,
                    pending: pending.clone(),
                    handed: handed.clone(),
                    anchors: HashMap::new(),
                    reported: false,
                };
                tokio::spawn(queue.run(rx));
                tx
            })
            .collect();
        Courier {
            app,
            queues,
            pending,
            handed,
        }
    }

    /// Hand a message to every alert channel's queue; returns at once.
    pub fn send(&self, mut out: Outgoing, now: DateTime<Utc>) {
        if out.say == Say::Post {
            let mut handed = self.handed.lock().unwrap();
            match handed.get(&out.alert.id) {
                Some(view) if *view == out.alert.posted_at => out.say = Say::Edit,
                _ => {
                    handed.insert(out.alert.id, out.alert.posted_at.clone());
                }
            }
        }
        if out.say != Say::Edit {
            let key = (out.alert.id, out.say);
            let mut pending = self.pending.lock().unwrap();
            match pending.entry(key) {
                Entry::Occupied(_) if out.say == Say::Recovery => {
                    return;
                }
                // The post is under way: by the time this comes up in a queue, the queue
                // knows the message it made, so newer content is an edit of it.
                Entry::Occupied(_) => out.say = Say::Edit,
                Entry::Vacant(v) => {
                    v.insert(Left {
                        queues: self.queues.len().max(1),
                        taken: false,
                    });
                }
            }
        }
        if self.queues.is_empty() {
            // No alert channel: the log and the audit trail are the delivery.
            if out.say != Say::Edit {
                let (app, pending) = (self.app.clone(), self.pending.clone());
                let handed = self.handed.clone();
                tokio::task::spawn_blocking(move || {
                    record(look::delivered(&app, &out, None, now));
                    done(&pending, &handed, &out, true);
                });
            }
            return;
        }
        for queue in &self.queues {
            let job = Job {
                out: out.clone(),
                now,
            };
            if queue.send(job).is_err() {
                tracing::error!("an alert channel's queue has stopped");
                done(&self.pending, &self.handed, &out, false);
            }
        }
    }
}

/// One queue has finished with a post: `taken` when its channel took it. When the last
/// queue is through and none took a post, the view it was decided from is forgotten so
/// that the next look posts it again.
fn done(pending: &Pending, handed: &Handed, out: &Outgoing, taken: bool) {
    let key = (out.alert.id, out.say);
    let mut pending = pending.lock().unwrap();
    let Some(left) = pending.get_mut(&key) else {
        return;
    };
    left.queues -= 1;
    left.taken |= taken;
    if left.queues > 0 {
        return;
    }
    let taken = left.taken;
    pending.remove(&key);
    if !taken && out.say == Say::Post {
        let mut handed = handed.lock().unwrap();
        if handed.get(&out.alert.id) == Some(&out.alert.posted_at) {
            handed.remove(&out.alert.id);
        }
    }
}

fn record(r: Result<(), crate::error::Error>) {
    if let Err(e) = r {
        tracing::error!("watchdog: recording a delivered alert: {e}");
    }
}

/// One alert channel's queue.
struct Queue {
    app: App,
    notifier: Arc<dyn Notifier>,
    channel: String,
    /// "platform:channel", as alerts record where their messages are.
    sink: String,
    pending: Pending,
    handed: Handed,
    /// The message each alert has in this channel, and what it last said there.
    anchors: HashMap<i64, (String, String)>,
    /// Recorded as a channel lifeboat cannot post to (this run or the one before).
    unusable: bool,
    /// Said so in the log in this run.
    reported: bool,
}

impl Queue {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = rx.recv().await {
            if job.out.say == Say::Edit {
                self.edit(&job).await;
            } else {
                let taken = self.post(&job).await;
                done(&self.pending, &self.handed, &job.out, taken);
            }
        }
    }

    /// Post the job's message; whether the channel took it.
    async fn post(&mut self, job: &Job) -> bool {
        let msg = job.out.message(job.now);
        let posted = with_retries("posting an alert", || {
            self.notifier.post(&self.channel, &msg)
        })
        .await;
        match posted {
            Ok(message) => {
                self.usable().await;
                let id = job.out.alert.id;
                if job.out.say == Say::Post {
                    self.anchors
                        .insert(id, (message.clone(), job.out.text.clone()));
                } else {
                    // Recovered: nothing edits its message again.
                    self.anchors.remove(&id);
                }
                let (app, out, sink, now) = (
                    self.app.clone(),
                    job.out.clone(),
                    self.sink.clone(),
                    job.now,
                );
                let to = move || look::delivered(&app, &out, Some((&sink, &message)), now);
                record(tokio::task::spawn_blocking(to).await.unwrap_or(Ok(())));
                true
            }
            Err(e) => {
                self.failed("post", &job.out, e).await;
                false
            }
        }
    }

    async fn edit(&mut self, job: &Job) {
        let id = job.out.alert.id;
        let message = match self.anchors.get(&id) {
            Some((_, said)) if *said == job.out.text => return,
            Some((message, _)) => message.clone(),
            None => {
                let mut posted = job.out.alert.messages.iter();
                match posted.rfind(|(s, _)| *s == self.sink) {
                    Some((_, message)) => message.clone(),
                    None => return,
                }
            }
        };
        // An empty reference is a post the outbox still holds for a lost connection:
        // there is no message to edit yet.
        if message.is_empty() {
            return;
        }
        let msg = job.out.message(job.now);
        let edited = with_retries("editing an alert", || {
            self.notifier.update(&self.channel, &message, &msg)
        })
        .await;
        match edited {
            Ok(()) => {
                self.usable().await;
                self.anchors.insert(id, (message, job.out.text.clone()));
            }
            Err(NotifyError::MessageGone(why)) => self.reanchor(job, &why).await,
            Err(e) => self.failed("edit", &job.out, e).await,
        }
    }

    /// The alert's message is gone: post its content afresh, and edit that from now on.
    async fn reanchor(&mut self, job: &Job, why: &str) {
        let msg = job.out.message(job.now);
        let posted = with_retries("re-posting an alert", || {
            self.notifier.post(&self.channel, &msg)
        })
        .await;
        match posted {
            Ok(message) => {
                let said = job.out.text.clone();
                self.anchors
                    .insert(job.out.alert.id, (message.clone(), said));
                let (app, out, sink, why) = (
                    self.app.clone(),
                    job.out.clone(),
                    self.sink.clone(),
                    why.to_string(),
                );
                let to = move || look::reanchored(&app, &out, &sink, &message, &why);
                record(tokio::task::spawn_blocking(to).await.unwrap_or(Ok(())));
            }
            Err(e) => self.failed("re-post", &job.out, e).await,
        }
    }

    /// What a refusal means for the channel: a channel that cannot be posted to is
    /// reported once; anything else was retried already and is only logged (a post stays
    /// owed and is tried again at a later look).
    async fn failed(&mut self, what: &str, out: &Outgoing, e: NotifyError) {
        let label = out.alert.label();
        match e {
            NotifyError::ChannelUnusable(why) => self.unusable(&why).await,
            e => tracing::error!("could not {what} alert {label} in {}: {e}", self.sink),
        }
    }

    async fn unusable(&mut self, why: &str) {
        if !self.reported {
            self.reported = true;
            tracing::error!(
                "alert channel {} cannot be posted to ({why}): alerts do not reach it until \
                 the channel or the config is fixed",
                self.sink
            );
        }
        if self.unusable {
            return;
        }
        self.unusable = true;
        let (app, sink, why) = (self.app.clone(), self.sink.clone(), why.to_string());
        let (platform, channel) = (self.notifier.platform(), self.channel.clone());
        let saved = tokio::task::spawn_blocking(move || {
            if app.db.chat_channel_unusable(platform, &channel, &why)? {
                let detail = format!("{sink}: {why}");
                app.db.audit(
                    "lifeboat",
                    "alert channel unusable",
                    None,
                    "failed",
                    Some(&detail),
                )?;
            }
            Ok::<_, crate::db::DbError>(())
        })
        .await;
        if let Ok(Err(e)) = saved {
            tracing::error!("recording an unusable alert channel: {e}");
        }
    }

    /// A call went through: a channel recorded unusable is usable again.
    async fn usable(&mut self) {
        self.reported = false;
        if !self.unusable {
            return;
        }
        self.unusable = false;
        tracing::info!("alert channel {} takes posts again", self.sink);
        let (app, sink) = (self.app.clone(), self.sink.clone());
        let (platform, channel) = (self.notifier.platform(), self.channel.clone());
        let saved = tokio::task::spawn_blocking(move || {
            if app.db.chat_channel_usable(platform, &channel)? {
                app.db.audit(
                    "lifeboat",
                    "alert channel usable",
                    None,
                    "ok",
                    Some(&format!("{sink} takes posts again")),
                )?;
            }
            Ok::<_, crate::db::DbError>(())
        })
        .await;
        if let Ok(Err(e)) = saved {
            tracing::error!("recording a usable alert channel: {e}");
        }
    }
}

#[cfg(test)]
#[path = "courier_tests.rs"]
mod tests;
