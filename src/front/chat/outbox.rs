//! Alerts held back while a platform is out of reach: with Socket Mode or the Gateway,
//! an alert whose post fails while the connection is down (the network to the platform is
//! gone, not just the socket) is kept in memory and posted, in order, once the
//! connection is back. Posting itself never needs the socket: while the Web API answers,
//! alerts go out at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{DiscordMode, SlackMode};
use crate::db::Db;
use crate::front::chat::links::Backoff;
use crate::notify::{ChatMessage, Notifier, NotifyError};

/// How often held alerts check whether the connection is back.
const RECHECK: Duration = Duration::from_millis(250);
/// At most this many alerts are held; older ones are dropped (and logged) first.
const MAX_HELD: usize = 100;

/// A notifier for alert channels that holds failed alerts until the platform's
/// connection (as `chat_links` records it) is up again.
pub struct Outbox {
    inner: Arc<dyn Notifier>,
    db: Db,
    held: Arc<Mutex<VecDeque<(String, ChatMessage)>>>,
    flushing: Arc<Mutex<bool>>,
}

/// The alert channel's notifier: held back while disconnected where the platform uses
/// Socket Mode or the Gateway, as it is in HTTP mode (there is no connection to wait for).
pub fn for_alerts(app: &crate::app::App, notifier: Arc<dyn Notifier>) -> Arc<dyn Notifier> {
    let connected = match notifier.platform() {
        "slack" => app
            .config
            .slack
            .as_ref()
            .is_some_and(|s| s.mode == SlackMode::Socket),
        "discord" => app
            .config
            .discord
            .as_ref()
            .is_some_and(|d| d.mode == DiscordMode::Gateway),
        _ => false,
    };
    if connected {
        Outbox::wrap(notifier, app.db.clone())
    } else {
        notifier
    }
}

impl Outbox {
    pub fn wrap(inner: Arc<dyn Notifier>, db: Db) -> Arc<dyn Notifier> {
        Arc::new(Outbox {
            inner,
            db,
            held: Arc::default(),
            flushing: Arc::default(),
        })
    }

    async fn connected(db: &Db, platform: &'static str) -> bool {
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.chat_links())
            .await
            .ok()
            .and_then(Result::ok)
            .is_some_and(|links| {
                links
                    .iter()
                    .any(|l| l.platform == platform && l.connected())
            })
    }

    fn hold(&self, channel: &str, msg: &ChatMessage) {
        let mut held = self.held.lock().unwrap();
        if held.len() >= MAX_HELD
            && let Some((_, dropped)) = held.pop_front()
        {
            tracing::error!("dropped a held alert (too many waiting): {}", dropped.text);
        }
        held.push_back((channel.to_string(), msg.clone()));
        drop(held);
        let mut flushing = self.flushing.lock().unwrap();
        if !*flushing {
            *flushing = true;
            tokio::spawn(flush(
                self.inner.clone(),
                self.db.clone(),
                self.held.clone(),
                self.flushing.clone(),
            ));
        }
    }
}

/// Post what is held, oldest first: at once when the connection comes back, and in any
/// case after a growing pause (the Web API may answer before the socket does).
async fn flush(
    inner: Arc<dyn Notifier>,
    db: Db,
    held: Arc<Mutex<VecDeque<(String, ChatMessage)>>>,
    flushing: Arc<Mutex<bool>>,
) {
    let mut backoff = Backoff::default();
    loop {
        let until = tokio::time::Instant::now() + backoff.pause();
        while tokio::time::Instant::now() < until && !Outbox::connected(&db, inner.platform()).await
        {
            tokio::time::sleep(RECHECK).await;
        }
        loop {
            let next = held.lock().unwrap().front().cloned();
            let Some((channel, msg)) = next else { break };
            match inner.post(&channel, &msg).await {
                Ok(_) => {
                    tracing::info!(
                        "posted an alert held while {} was out of reach",
                        inner.platform()
                    );
                    held.lock().unwrap().pop_front();
                    backoff.reset();
                }
                Err(e) => {
                    tracing::warn!("a held alert still cannot be posted: {e}");
                    break;
                }
            }
        }
        let mut f = flushing.lock().unwrap();
        if held.lock().unwrap().is_empty() {
            *f = false;
            return;
        }
    }
}

#[async_trait]
impl Notifier for Outbox {
    fn platform(&self) -> &'static str {
        self.inner.platform()
    }
    /// Post now; when that fails while the connection is down, hold the alert for later
    /// and report it posted (alerts are never updated, so the reference is not used).
    async fn post(&self, channel: &str, msg: &ChatMessage) -> Result<String, NotifyError> {
        match self.inner.post(channel, msg).await {
            Ok(r) => Ok(r),
            // The platform answered, and said no: holding the alert would not change that.
            Err(e) if e.is_permanent() => Err(e),
            Err(e) if !Outbox::connected(&self.db, self.platform()).await => {
                tracing::warn!(
                    "{} is out of reach ({e}); the alert is posted once the connection is back",
                    self.platform()
                );
                self.hold(channel, msg);
                Ok(String::new())
            }
            Err(e) => Err(e),
        }
    }
    async fn update(
        &self,
        channel: &str,
        message: &str,
        msg: &ChatMessage,
    ) -> Result<(), NotifyError> {
        self.inner.update(channel, message, msg).await
    }
    async fn ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), NotifyError> {
        self.inner.ephemeral(channel, user, text).await
    }
    async fn ephemeral_message(
        &self,
        channel: &str,
        user: &str,
        msg: &ChatMessage,
    ) -> Result<(), NotifyError> {
        self.inner.ephemeral_message(channel, user, msg).await
    }
    async fn answer_request(&self, request: &str, msg: &ChatMessage) -> Result<(), NotifyError> {
        self.inner.answer_request(request, msg).await
    }
    fn message_limit(&self) -> usize {
        self.inner.message_limit()
    }
    async fn post_image(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        png: &[u8],
    ) -> Result<(), NotifyError> {
        self.inner.post_image(channel, filename, title, png).await
    }
    async fn post_file(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        content: &str,
    ) -> Result<(), NotifyError> {
        self.inner
            .post_file(channel, filename, title, content)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every post until `up` is set.
    #[derive(Default)]
    struct Flaky {
        up: std::sync::atomic::AtomicBool,
        posted: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Notifier for Flaky {
        fn platform(&self) -> &'static str {
            "slack"
        }
        async fn post(&self, _: &str, msg: &ChatMessage) -> Result<String, NotifyError> {
            if !self.up.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(NotifyError::Failed("connection refused".into()));
            }
            self.posted.lock().unwrap().push(msg.text.clone());
            Ok("1".into())
        }
        async fn update(&self, _: &str, _: &str, _: &ChatMessage) -> Result<(), NotifyError> {
            Ok(())
        }
        async fn ephemeral(&self, _: &str, _: &str, _: &str) -> Result<(), NotifyError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn alerts_failing_while_disconnected_are_posted_in_order_once_connected() {
        let db = Db::in_memory();
        db.chat_link_set("slack", "socket", "disconnected", "")
            .unwrap();
        let flaky = Arc::new(Flaky::default());
        let outbox = Outbox::wrap(flaky.clone(), db.clone());
        outbox
            .post("C0", &ChatMessage::text("first"))
            .await
            .unwrap();
        outbox
            .post("C0", &ChatMessage::text("second"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            flaky.posted.lock().unwrap().is_empty(),
            "still out of reach"
        );
        flaky.up.store(true, std::sync::atomic::Ordering::SeqCst);
        db.chat_link_set("slack", "socket", "connected", "")
            .unwrap();
        tokio::time::sleep(RECHECK * 3).await;
        assert_eq!(*flaky.posted.lock().unwrap(), vec!["first", "second"]);
    }

    #[tokio::test]
    async fn held_alerts_go_out_when_the_web_api_answers_before_the_socket() {
        let db = Db::in_memory();
        db.chat_link_set("slack", "socket", "disconnected", "")
            .unwrap();
        let flaky = Arc::new(Flaky::default());
        let outbox = Outbox::wrap(flaky.clone(), db);
        outbox
            .post("C0", &ChatMessage::text("alert"))
            .await
            .unwrap();
        flaky.up.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(*flaky.posted.lock().unwrap(), vec!["alert"]);
    }

    #[tokio::test]
    async fn while_connected_a_failure_is_the_callers_to_retry() {
        let db = Db::in_memory();
        db.chat_link_set("slack", "socket", "connected", "")
            .unwrap();
        let outbox = Outbox::wrap(Arc::new(Flaky::default()), db);
        assert!(outbox.post("C0", &ChatMessage::text("x")).await.is_err());
    }
}
