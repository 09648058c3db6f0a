//! The courier's decisions when looks and deliveries interleave: a look that read an
//! alert before its post was recorded, and a post no channel took.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::db::alerts::AlertRecord;
use crate::notify::ChatMessage;

/// A channel that records what it was asked to do, and refuses posts while `refuse` is set.
#[derive(Default)]
struct Channel {
    posts: Mutex<Vec<String>>,
    edits: Mutex<Vec<String>>,
    refuse: AtomicBool,
}

#[async_trait]
impl Notifier for Channel {
    fn platform(&self) -> &'static str {
        "slack"
    }
    async fn post(&self, _: &str, msg: &ChatMessage) -> Result<String, NotifyError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(NotifyError::ChannelUnusable("channel_not_found".into()));
        }
        let mut posts = self.posts.lock().unwrap();
        posts.push(msg.text.clone());
        Ok(format!("m{}", posts.len()))
    }
    async fn update(&self, _: &str, _: &str, msg: &ChatMessage) -> Result<(), NotifyError> {
        self.edits.lock().unwrap().push(msg.text.clone());
        Ok(())
    }
    async fn ephemeral(&self, _: &str, _: &str, _: &str) -> Result<(), NotifyError> {
        Ok(())
    }
}

fn app(dir: &std::path::Path) -> App {
    let text = "[targets.a]\nkind = \"external\"\nschedule = \"0 0 3 * * *\"\ntoken = \"${T}\"\n";
    let config =
        crate::config::Config::parse(text, "t.toml", std::path::Path::new("/etc"), &|_| {
            Some("0123456789abcdef".into())
        })
        .unwrap();
    App::for_tests(config, Default::default(), dir.to_path_buf())
}

fn open_alert(app: &App) -> AlertRecord {
    let mut alert = AlertRecord {
        target: "a".into(),
        kind: "backup".into(),
        opened_at: "2026-01-01T00:00:00.000Z".into(),
        ..Default::default()
    };
    app.db.alert_insert(&mut alert).unwrap();
    alert
}

fn post(alert: &AlertRecord, text: &str) -> Outgoing {
    Outgoing {
        alert: alert.clone(),
        say: Say::Post,
        text: text.into(),
        last_ok: None,
    }
}

/// Wait until every queue is through with every post handed to it (an event the courier
/// itself records, not a guess at how long delivery takes).
async fn settled(courier: &Courier) {
    for _ in 0..10_000 {
        if courier.pending.lock().unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the courier never finished its posts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_decided_from_a_view_already_posted_becomes_an_edit_of_that_message() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let stale = open_alert(&app);
    let channel = Arc::new(Channel::default());
    let courier = Courier::start(
        app.clone(),
        &vec![(channel.clone() as Arc<dyn Notifier>, "C1".into())],
    );
    let now = Utc::now();

    courier.send(post(&stale, "backup missed"), now);
    settled(&courier).await;
    let recorded = app.db.alert_get(stale.id).unwrap().unwrap();
    assert!(recorded.posted_at.is_some(), "the post is recorded");
    assert_eq!(recorded.repeats, 0);

    // A look that read the alert before that post was recorded decides the post again.
    courier.send(post(&stale, "backup missed (still)"), now);
    settled(&courier).await;
    tokio::task::yield_now().await;
    for _ in 0..10_000 {
        if !channel.edits.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        channel.posts.lock().unwrap().len(),
        1,
        "one message in the channel"
    );
    let edits = channel.edits.lock().unwrap().clone();
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert!(edits[0].contains("(still)"), "{edits:?}");
    let recorded = app.db.alert_get(stale.id).unwrap().unwrap();
    assert_eq!(recorded.repeats, 0, "no repeat was counted");

    // The next look reads the recorded post: its repeat, when due, is a post again.
    courier.send(post(&recorded, "backup missed (repeat)"), now);
    settled(&courier).await;
    assert_eq!(channel.posts.lock().unwrap().len(), 2);
    assert_eq!(app.db.alert_get(stale.id).unwrap().unwrap().repeats, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_no_channel_took_is_posted_again_at_the_next_look() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let alert = open_alert(&app);
    let channel = Arc::new(Channel::default());
    channel.refuse.store(true, Ordering::SeqCst);
    let courier = Courier::start(
        app.clone(),
        &vec![(channel.clone() as Arc<dyn Notifier>, "C1".into())],
    );
    let now = Utc::now();

    courier.send(post(&alert, "backup missed"), now);
    settled(&courier).await;
    assert!(channel.posts.lock().unwrap().is_empty());
    assert_eq!(app.db.alert_get(alert.id).unwrap().unwrap().posted_at, None);

    channel.refuse.store(false, Ordering::SeqCst);
    courier.send(post(&alert, "backup missed"), now);
    settled(&courier).await;
    assert_eq!(
        channel.posts.lock().unwrap().len(),
        1,
        "the owed post went out"
    );
    assert!(channel.edits.lock().unwrap().is_empty());
}
