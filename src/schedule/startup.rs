//! What `serve` does and says once at start: an empty catalog while the stores hold
//! backups is offered a rebuild, in the log and in the alert channels; hooks a stopped
//! process owed are run and reported there (as are those a command-line action ran later).

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

/// Run the `after_*` hooks a stopped process still owed (each target under its lock),
/// then tell the alert channels.
pub async fn settle_owed_hooks(app: App, sinks: AlertSinks) {
    let settling = app.clone();
    let settled =
        tokio::task::spawn_blocking(move || crate::target_hooks::owed::settle_all(&settling)).await;
    if let Err(e) = settled {
        tracing::error!("running the owed hooks: {e}");
    }
    post_owed_hook_runs(&app, &sinks).await;
}

/// Post the runs of owed hooks no alert channel has heard of yet (serve's own, and those
/// a command-line action ran).
pub async fn post_owed_hook_runs(app: &App, sinks: &AlertSinks) {
    let db = app.db.clone();
    let runs = match tokio::task::spawn_blocking(move || db.hook_runs_take_unposted()).await {
        Ok(Ok(runs)) => runs,
        Ok(Err(e)) => {
            tracing::error!("reading the owed hooks' runs: {e}");
            return;
        }
        Err(_) => return,
    };
    if runs.is_empty() {
        return;
    }
    let text = crate::target_hooks::owed::message(&runs);
    tracing::warn!("{text}");
    let msg = ChatMessage::text(&text);
    for (notifier, channel) in sinks {
        if let Err(e) = with_retries("posting the owed hooks' runs", || {
            notifier.post(channel, &msg)
        })
        .await
        {
            tracing::error!("could not post to {} {channel}: {e}", notifier.platform());
        }
    }
}
