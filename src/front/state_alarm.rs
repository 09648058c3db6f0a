//! Telling the alert channels once that lifeboat's own state database is damaged. Chat
//! needs no state, so this still reaches people while every backup and `status` fails;
//! the message names the way out.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::notify::{ChatMessage, Notifier};

/// How often the flag is looked at (the checks themselves run elsewhere).
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// Wait until damage has been seen, then post one alert to every channel.
pub async fn watch(app: App, sinks: Vec<(Arc<dyn Notifier>, String)>) {
    let why = loop {
        if let Some(why) = crate::db::damage::seen() {
            break why;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    };
    let text = format!(
        "🚨 *lifeboat's state database is damaged* ({why}). Backups, restores \
         and `status` fail until it is recovered; /healthz answers 503.\nTo recover, {}.",
        crate::db::damage::advice(&app.config.server.state, app.config.state_backup_store())
    );
    let msg = ChatMessage::text(text);
    for (notifier, channel) in &sinks {
        let posted = crate::notify::with_retries("posting the state damage alert", || {
            notifier.post(channel, &msg)
        })
        .await;
        if let Err(e) = posted {
            tracing::error!("could not post the state damage alert to {channel}: {e}");
        }
    }
}
