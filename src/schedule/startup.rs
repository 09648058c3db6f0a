//! What `serve` says once at start: an empty catalog while the stores hold backups is
//! offered a rebuild, in the log and in the alert channels.

use crate::app::App;
use crate::notify::{ChatMessage, with_retries};

use super::AlertSinks;

/// Look at the catalog and the stores (listing keys only, off the async threads); when
/// the catalog is empty but backups exist, log it and post it.
pub async fn offer_rebuild(app: App, sinks: AlertSinks) {
    let offer = tokio::task::spawn_blocking(move || crate::actions::rebuild::offer(&app)).await;
    let Ok(Some(text)) = offer else { return };
    tracing::warn!("{text}");
    let msg = ChatMessage::text(&text);
    for (notifier, channel) in &sinks {
        if let Err(e) = with_retries("posting the catalog notice", || {
            notifier.post(channel, &msg)
        })
        .await
        {
            tracing::error!("could not post to {} {channel}: {e}", notifier.platform());
        }
    }
}
