//! Talking back to chat without knowing which chat: the `Notifier` trait (post, update,
//! ephemeral), a platform-neutral message with buttons, retries that honour rate limits,
//! and a per-message updater that coalesces progress to at most one edit a second and
//! sends a job's final state as soon as it ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::card::Card;

mod progress; // a job's progress in its message: a bar with percent, rate and time left
pub use progress::{ChatProgress, progress_line};

/// A message as lifeboat means it; each platform renders it its own way. With a `card`,
/// the platform shows the card (and `text`, its plain form, only where it cannot).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatMessage {
    pub text: String,
    pub buttons: Vec<Button>,
    pub card: Option<Card>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Button {
    /// What the click means: "approve" or "deny".
    pub action: String,
    pub label: String,
    /// The request the click is about (an approval id).
    pub value: String,
    pub danger: bool,
    /// Ask "are you sure?" before the click counts (Approve on a restore that replaces data).
    pub confirm: Option<Confirm>,
}

/// The question a button asks before it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub title: String,
    /// What the click will do, in plain words (what is replaced, what is moved aside).
    pub text: String,
    pub yes: String,
    pub no: String,
}

impl ChatMessage {
    pub fn text(text: impl Into<String>) -> ChatMessage {
        ChatMessage {
            text: text.into(),
            ..ChatMessage::default()
        }
    }

    /// A structured message; its plain text is the card's.
    pub fn card(card: Card) -> ChatMessage {
        ChatMessage {
            text: card.plain(),
            buttons: Vec::new(),
            card: Some(card),
        }
    }

    pub fn with_buttons(mut self, buttons: Vec<Button>) -> ChatMessage {
        self.buttons = buttons;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The platform said slow down; retry after this long (if it said).
    #[error("rate limited")]
    RateLimited(Option<Duration>),
    /// Anything that may pass: a network error, a 5xx, an answer not understood.
    #[error("{0}")]
    Failed(String),
    /// The message to edit is gone or can no longer be edited (deleted by someone, too
    /// old): retrying cannot help; a fresh message can.
    #[error("the message cannot be edited: {0}")]
    MessageGone(String),
    /// Lifeboat cannot post to the channel at all (unknown, archived, not a member, no
    /// access): retrying cannot help until someone fixes the channel or the config.
    #[error("the channel cannot be posted to: {0}")]
    ChannelUnusable(String),
}

impl NotifyError {
    /// Whether trying the same call again could succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            NotifyError::MessageGone(_) | NotifyError::ChannelUnusable(_)
        )
    }
}

/// One chat platform's messaging API. Channel and message references are the platform's
/// own ids (Slack channel id and `ts`; Discord channel id and message id).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// "slack" or "discord".
    fn platform(&self) -> &'static str;
    /// Post a new message; returns its reference for later updates.
    async fn post(&self, channel: &str, msg: &ChatMessage) -> Result<String, NotifyError>;
    /// Replace a posted message's content.
    async fn update(
        &self,
        channel: &str,
        message: &str,
        msg: &ChatMessage,
    ) -> Result<(), NotifyError>;
    /// A message only `user` sees (where the platform has such a thing).
    async fn ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), NotifyError>;
    /// A card only `user` sees; platforms that cannot show one privately say its text.
    async fn ephemeral_message(
        &self,
        channel: &str,
        user: &str,
        msg: &ChatMessage,
    ) -> Result<(), NotifyError> {
        self.ephemeral(channel, user, &msg.text).await
    }
    /// The late answer to one request that was first answered "working on it", shown only
    /// to the person who asked: `request` is the platform's handle of that request
    /// (Discord: `<application id>/<interaction token>`, usable for 15 minutes). Platforms
    /// without such a handle answer with `ephemeral_message` instead.
    async fn answer_request(&self, request: &str, msg: &ChatMessage) -> Result<(), NotifyError> {
        let _ = msg;
        Err(NotifyError::Failed(format!(
            "{} cannot answer request {request} late",
            self.platform()
        )))
    }
    /// The longest text one message may carry on this platform.
    fn message_limit(&self) -> usize {
        2000
    }
    /// Share a text document (e.g. a drill report) in a channel. Platforms that can take
    /// files upload it; this default posts it as messages, split to the platform's limit.
    async fn post_file(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        content: &str,
    ) -> Result<(), NotifyError> {
        let head = format!("📄 {title} ({filename})");
        self.post(channel, &ChatMessage::text(head)).await?;
        for part in split_message(content, self.message_limit()) {
            self.post(channel, &ChatMessage::text(part)).await?;
        }
        Ok(())
    }
    /// Share a PNG picture (a target's history charts). Platforms that can take files
    /// upload it; this default says where the charts are instead.
    async fn post_image(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        _png: &[u8],
    ) -> Result<(), NotifyError> {
        let text = format!(
            "📈 {title} ({filename}): this chat gets no pictures; the charts are on the status page"
        );
        self.post(channel, &ChatMessage::text(text))
            .await
            .map(|_| ())
    }
}

/// Split `text` into parts of at most `limit` characters, at line ends where possible.
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        let mut rest: Vec<char> = line.chars().collect();
        while !rest.is_empty() {
            let room = limit - current.chars().count();
            if rest.len() <= room {
                current.extend(rest.drain(..));
            } else if !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            } else {
                current.extend(rest.drain(..limit));
                parts.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

/// A document a job leaves to be shared after its message (the drill report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub filename: String,
    pub title: String,
    pub content: Body,
}

/// What a shared document holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Markdown or JSON text.
    Text(String),
    /// A PNG picture (charts).
    Png(Vec<u8>),
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::Text(text)
    }
}

/// Share a document in a channel, logging (not failing) when the platform refuses.
pub async fn post_document(notifier: &dyn Notifier, channel: &str, doc: &Document) {
    let r = with_retries("posting a report", || async {
        match &doc.content {
            Body::Text(text) => {
                notifier
                    .post_file(channel, &doc.filename, &doc.title, text)
                    .await
            }
            Body::Png(png) => {
                notifier
                    .post_image(channel, &doc.filename, &doc.title, png)
                    .await
            }
        }
    })
    .await;
    if let Err(e) = r {
        tracing::error!("could not post {} to {channel}: {e}", doc.filename);
    }
}

/// How many times a failed call is tried before it is logged and dropped.
const ATTEMPTS: u32 = 5;

/// Run `call` until it succeeds, waiting out rate limits (the platform's Retry-After, or
/// a growing pause when it gives none) and transient failures. A permanent error
/// (message gone, channel unusable) is returned at once: waiting cannot fix it. Never
/// panics: the last error is returned for the caller to log.
pub async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> Result<T, NotifyError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, NotifyError>>,
{
    let mut pause = Duration::from_millis(250);
    let mut last = NotifyError::Failed("not tried".into());
    for attempt in 1..=ATTEMPTS {
        match call().await {
            Ok(v) => return Ok(v),
            Err(NotifyError::RateLimited(after)) => {
                let wait = after.unwrap_or(pause).min(Duration::from_secs(60));
                tracing::info!("{what}: rate limited, retrying in {wait:?} (attempt {attempt})");
                tokio::time::sleep(wait).await;
                last = NotifyError::RateLimited(after);
            }
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => {
                tracing::warn!("{what}: {e} (attempt {attempt})");
                tokio::time::sleep(pause).await;
                last = e;
            }
        }
        pause = (pause * 2).min(Duration::from_secs(8));
    }
    Err(last)
}

/// Keeps one posted message up to date: progress goes in as often as it comes, the
/// message is edited at most once a second, and the final content goes out as soon as
/// the job ends: it waits for nothing but a rate limit the platform announced.
///
/// A rate-limited edit is not retried as it was: the newest content is sent once the
/// platform's Retry-After has passed, so a backlog never builds up behind stale progress.
pub struct Updater {
    latest: Arc<Mutex<(Option<ChatMessage>, bool)>>,
    wake: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// The shortest time between two progress edits of one message.
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(1);

impl Updater {
    pub fn spawn(notifier: Arc<dyn Notifier>, channel: String, message: String) -> Updater {
        let latest: Arc<Mutex<(Option<ChatMessage>, bool)>> = Arc::new(Mutex::new((None, false)));
        let wake = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(edit_loop(
            notifier,
            channel,
            message,
            latest.clone(),
            wake.clone(),
        ));
        Updater { latest, wake, task }
    }

    /// Replace what the message should say; sent within a second (or coalesced).
    pub fn set(&self, msg: ChatMessage) {
        self.latest.lock().unwrap().0 = Some(msg);
        self.wake.notify_one();
    }

    /// Send the final content and wait until it is delivered (or given up on).
    pub async fn finish(self, msg: ChatMessage) {
        {
            let mut l = self.latest.lock().unwrap();
            l.0 = Some(msg);
            l.1 = true;
        }
        self.wake.notify_one();
        let _ = self.task.await;
    }
}

/// The updater's task: edit when there is news and the interval (or the platform's
/// Retry-After) allows; the final content skips the interval.
async fn edit_loop(
    notifier: Arc<dyn Notifier>,
    channel: String,
    message: String,
    latest: Arc<Mutex<(Option<ChatMessage>, bool)>>,
    wake: Arc<tokio::sync::Notify>,
) {
    use tokio::time::{Instant, sleep_until};
    let mut sent: Option<ChatMessage> = None;
    let mut next_edit = Instant::now();
    let mut blocked_until = Instant::now();
    let mut pause = Duration::from_millis(250);
    let mut failures = 0;
    loop {
        let done = latest.lock().unwrap().1;
        let not_before = if done {
            blocked_until
        } else {
            next_edit.max(blocked_until)
        };
        if Instant::now() < not_before {
            if done {
                sleep_until(not_before).await;
            } else {
                // The job may end meanwhile: then only a rate limit is waited for.
                tokio::select! {
                    _ = sleep_until(not_before) => {}
                    _ = wake.notified() => continue,
                }
            }
        }
        let (next, done) = {
            let mut l = latest.lock().unwrap();
            (l.0.take(), l.1)
        };
        let Some(msg) = next.filter(|m| sent.as_ref() != Some(m)) else {
            if done {
                return;
            }
            wake.notified().await;
            continue;
        };
        match notifier.update(&channel, &message, &msg).await {
            Ok(()) => {
                sent = Some(msg);
                failures = 0;
                pause = Duration::from_millis(250);
                next_edit = Instant::now() + UPDATE_INTERVAL;
                if done {
                    return;
                }
                continue;
            }
            Err(NotifyError::RateLimited(after)) => {
                let wait = after
                    .unwrap_or(UPDATE_INTERVAL)
                    .min(Duration::from_secs(60));
                tracing::info!("updating message {message}: rate limited for {wait:?}");
                blocked_until = Instant::now() + wait;
            }
            Err(e) if e.is_permanent() => {
                // Nothing later can land either: stop editing rather than retry in vain.
                tracing::warn!("no longer updating message {message} in {channel}: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!("updating message {message} in {channel}: {e}");
                blocked_until = Instant::now() + pause;
                pause = (pause * 2).min(Duration::from_secs(8));
            }
        }
        failures += 1;
        if failures >= ATTEMPTS {
            tracing::error!("giving up on updating message {message} in {channel}");
            failures = 0;
            if done {
                return;
            }
            continue;
        }
        // Not sent: unless something newer came meanwhile, this is still the news.
        let mut l = latest.lock().unwrap();
        if l.0.is_none() {
            l.0 = Some(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Default)]
    struct Recorder {
        updates: Mutex<Vec<String>>,
        fail_first: AtomicU32,
    }

    #[async_trait]
    impl Notifier for Recorder {
        fn platform(&self) -> &'static str {
            "test"
        }
        async fn post(&self, _: &str, _: &ChatMessage) -> Result<String, NotifyError> {
            Ok("m1".into())
        }
        async fn update(&self, _: &str, _: &str, msg: &ChatMessage) -> Result<(), NotifyError> {
            if self.fail_first.load(Ordering::SeqCst) > 0 {
                self.fail_first.fetch_sub(1, Ordering::SeqCst);
                return Err(NotifyError::RateLimited(Some(Duration::from_millis(10))));
            }
            self.updates.lock().unwrap().push(msg.text.clone());
            Ok(())
        }
        async fn ephemeral(&self, _: &str, _: &str, _: &str) -> Result<(), NotifyError> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn updates_are_coalesced_to_one_a_second_and_the_last_always_lands() {
        let rec = Arc::new(Recorder::default());
        let updater = Updater::spawn(rec.clone(), "c".into(), "m1".into());
        for i in 0..1000 {
            updater.set(ChatMessage::text(format!("progress {i}")));
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        updater.finish(ChatMessage::text("done")).await;
        let updates = rec.updates.lock().unwrap().clone();
        // 10 × 250 ms of progress: about 3 edits, never one per set().
        assert!(updates.len() <= 5, "{updates:?}");
        assert_eq!(updates.last().unwrap(), "done");
    }

    #[test]
    fn long_documents_split_at_lines_within_the_limit() {
        let text = format!("{}\n{}\n", "a".repeat(15), "b".repeat(25));
        let parts = split_message(&text, 20);
        assert!(parts.iter().all(|p| p.chars().count() <= 20), "{parts:?}");
        assert_eq!(parts.concat(), text);
        assert_eq!(parts[0], format!("{}\n", "a".repeat(15)));
        assert_eq!(split_message("", 20), Vec::<String>::new());
    }

    #[tokio::test]
    async fn the_default_upload_posts_the_document_in_parts() {
        #[derive(Default)]
        struct Posts(Mutex<Vec<String>>);
        #[async_trait]
        impl Notifier for Posts {
            fn platform(&self) -> &'static str {
                "test"
            }
            async fn post(&self, _: &str, msg: &ChatMessage) -> Result<String, NotifyError> {
                self.0.lock().unwrap().push(msg.text.clone());
                Ok("m".into())
            }
            async fn update(&self, _: &str, _: &str, _: &ChatMessage) -> Result<(), NotifyError> {
                Ok(())
            }
            async fn ephemeral(&self, _: &str, _: &str, _: &str) -> Result<(), NotifyError> {
                Ok(())
            }
        }
        let p = Posts::default();
        let doc = "line\n".repeat(1000);
        p.post_file("c", "r.md", "Report", &doc).await.unwrap();
        let posts = p.0.lock().unwrap().clone();
        assert!(posts[0].contains("Report") && posts[0].contains("r.md"));
        assert!(posts.len() >= 4 && posts.iter().all(|m| m.chars().count() <= 2000));
        assert_eq!(posts[1..].concat(), doc);
    }

    /// Records when each edit landed.
    #[derive(Default)]
    struct Timed {
        edits: Mutex<Vec<(tokio::time::Instant, String)>>,
        /// Retry-After seconds answered to the next calls.
        limits: Mutex<Vec<u64>>,
    }

    #[async_trait]
    impl Notifier for Timed {
        fn platform(&self) -> &'static str {
            "test"
        }
        async fn post(&self, _: &str, _: &ChatMessage) -> Result<String, NotifyError> {
            Ok("m1".into())
        }
        async fn update(&self, _: &str, _: &str, msg: &ChatMessage) -> Result<(), NotifyError> {
            if let Some(secs) = self.limits.lock().unwrap().pop() {
                return Err(NotifyError::RateLimited(Some(Duration::from_secs(secs))));
            }
            let now = tokio::time::Instant::now();
            self.edits.lock().unwrap().push((now, msg.text.clone()));
            Ok(())
        }
        async fn ephemeral(&self, _: &str, _: &str, _: &str) -> Result<(), NotifyError> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_final_state_skips_the_throttle_and_progress_keeps_one_edit_a_second() {
        let rec = Arc::new(Timed::default());
        let updater = Updater::spawn(rec.clone(), "c".into(), "m1".into());
        let start = tokio::time::Instant::now();
        for i in 0..50 {
            updater.set(ChatMessage::text(format!("progress {i}")));
            tokio::time::sleep(Duration::from_millis(90)).await;
        }
        // The job ends 4.5 s in, just after a progress edit: the result goes out now.
        let ended = tokio::time::Instant::now();
        updater.finish(ChatMessage::text("done")).await;
        let edits = rec.edits.lock().unwrap().clone();
        let (last_at, last) = edits.last().unwrap();
        assert_eq!(last, "done");
        assert!(
            *last_at - ended < Duration::from_millis(100),
            "{:?}",
            *last_at - ended
        );
        let progress: Vec<_> = edits[..edits.len() - 1]
            .iter()
            .map(|(t, _)| *t - start)
            .collect();
        assert!(
            progress.windows(2).all(|w| w[1] - w[0] >= UPDATE_INTERVAL),
            "{progress:?}"
        );
        assert!(progress.len() >= 4, "{progress:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_progress_edit_does_not_hold_the_result_back() {
        let rec = Arc::new(Timed::default());
        rec.limits.lock().unwrap().push(1);
        let updater = Updater::spawn(rec.clone(), "c".into(), "m1".into());
        updater.set(ChatMessage::text("reading the database"));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let ended = tokio::time::Instant::now();
        updater.finish(ChatMessage::text("complete")).await;
        let edits = rec.edits.lock().unwrap().clone();
        // The stale progress is never retried: the result replaces it once the platform's
        // Retry-After (1 s from the refused edit) has passed.
        assert_eq!(edits.len(), 1, "{edits:?}");
        assert_eq!(edits[0].1, "complete");
        assert!(
            edits[0].0 - ended <= Duration::from_secs(1),
            "{:?}",
            edits[0].0 - ended
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_are_waited_out() {
        let rec = Arc::new(Recorder::default());
        rec.fail_first.store(2, Ordering::SeqCst);
        let updater = Updater::spawn(rec.clone(), "c".into(), "m1".into());
        updater.finish(ChatMessage::text("done")).await;
        assert_eq!(
            rec.updates.lock().unwrap().clone(),
            vec!["done".to_string()]
        );
    }
}
