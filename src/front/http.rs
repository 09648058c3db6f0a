//! The HTTP server of `lifeboat serve`: the router (health plus the chat routes of the
//! platforms that are configured), and graceful shutdown that lets chat jobs finish or
//! cancels them.

use std::future::Future;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::App;
use crate::front::chat::Chat;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 1 << 20;

/// Build the chat state (notifiers for the configured platforms) and the router.
pub fn build(app: App) -> Result<(Router, Chat), String> {
    let slack = match &app.config.slack {
        Some(cfg) => Some(crate::front::slack::SlackApi::connect(cfg)?),
        None => None,
    };
    let discord = app
        .config
        .discord
        .as_ref()
        .map(crate::front::discord::DiscordApi::connect);
    let chat = Chat::new(app.clone(), slack, discord);
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .with_state(app.clone());
    if let Some(cfg) = &app.config.slack {
        router = router.merge(crate::front::slack::routes(chat.clone(), cfg));
    }
    if let Some(cfg) = &app.config.discord {
        let verifier = crate::front::discord::verifier(cfg.public_key.expose())?;
        router = router.merge(crate::front::discord::routes(chat.clone(), verifier));
    }
    Ok((router.layer(DefaultBodyLimit::max(MAX_BODY)), chat))
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let db = app.db.clone();
    let healthy = tokio::task::spawn_blocking(move || db.ping()).await;
    match healthy {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})),
        ),
        Ok(Err(e)) => {
            tracing::error!("health check: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"status": "unavailable", "version": env!("CARGO_PKG_VERSION"), "reason": "state database is unusable"}),
                ),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "version": env!("CARGO_PKG_VERSION")})),
        ),
    }
}

/// How long running chat jobs get to finish after a shutdown signal; then they are
/// cancelled (their partial output discarded) and waited for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serve until `shutdown` resolves, then stop accepting, let requests in flight end, and
/// finish or cancel background jobs.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (router, chat) = build(app.clone()).map_err(std::io::Error::other)?;
    let sweeper = {
        let chat = chat.clone();
        tokio::spawn(async move {
            loop {
                chat.expire_requests().await;
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
        })
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    sweeper.abort();
    chat.tasks().close();
    if tokio::time::timeout(SHUTDOWN_GRACE, chat.tasks().wait())
        .await
        .is_err()
    {
        tracing::info!("cancelling {} running jobs", app.executor.running_count());
        app.executor.cancel_all();
        chat.tasks().wait().await;
    }
    Ok(())
}
