//! The HTTP server of `lifeboat serve`: the router (health plus the chat routes of the
//! platforms that are configured), and graceful shutdown that lets chat jobs finish or
//! cancels them.

use std::future::Future;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

use crate::app::App;
use crate::front::chat::Chat;
use crate::front::hooks::{self, Hooks};
use crate::front::metrics::{self, RequestCounts};
use crate::schedule::{AlertSinks, Scheduler};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 1 << 20;

/// Everything `serve` runs: the router, the chat state, and the scheduler.
pub struct Server {
    pub router: Router,
    pub chat: Chat,
    pub scheduler: Scheduler,
    /// Slack Socket Mode and the Discord Gateway, where configured.
    pub connections: crate::front::connections::Connections,
}

/// Build the chat state (notifiers for the configured platforms), the scheduler with its
/// alert channels, and the router.
pub fn build(app: App) -> Result<Server, String> {
    let slack = match &app.config.slack {
        Some(cfg) => Some(crate::front::slack::SlackApi::connect(cfg)?),
        None => None,
    };
    let discord = app
        .config
        .discord
        .as_ref()
        .map(crate::front::discord::DiscordApi::connect);
    let mut sinks: AlertSinks = Vec::new();
    if let (Some(n), Some(c)) = (
        &slack,
        app.config
            .slack
            .as_ref()
            .and_then(|s| s.alert_channel.clone()),
    ) {
        sinks.push((n.clone(), c));
    }
    if let (Some(n), Some(c)) = (
        &discord,
        app.config
            .discord
            .as_ref()
            .and_then(|d| d.alert_channel.clone()),
    ) {
        sinks.push((n.clone(), c));
    }
    let sinks: AlertSinks = sinks
        .into_iter()
        .map(|(n, c)| (crate::front::outbox::for_alerts(&app, n), c))
        .collect();
    let scheduler = Scheduler::new(app.clone(), sinks.clone());
    let chat = Chat::new(app.clone(), slack, discord).with_job_ended(scheduler.waker());
    let hooks = Hooks {
        app: app.clone(),
        wake: scheduler.target_waker(),
        sinks: Arc::new(sinks),
    };
    let counts = RequestCounts::default();
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .with_state(app.clone())
        .merge(
            Router::new()
                .route("/metrics", get(metrics::metrics))
                .with_state((app.clone(), counts.clone())),
        )
        .merge(
            Router::new()
                .route("/hooks/ping/{target}", post(hooks::ping))
                .route("/hooks/alertmanager", post(hooks::alertmanager))
                .with_state(hooks),
        );
    if app.config.web.enabled {
        router = router.merge(crate::front::web::routes(app.clone()));
    }
    // The signed endpoints are served whenever their secret is configured (always in
    // HTTP mode; optionally beside Socket Mode or the Gateway).
    if let Some(secret) = app
        .config
        .slack
        .as_ref()
        .and_then(|s| s.signing_secret.as_ref())
    {
        router = router.merge(crate::front::slack::routes(chat.clone(), secret));
    }
    if let Some(key) = app
        .config
        .discord
        .as_ref()
        .and_then(|d| d.public_key.as_ref())
    {
        let verifier = crate::front::discord::verifier(key.expose())?;
        router = router.merge(crate::front::discord::routes(chat.clone(), verifier));
    }
    let router =
        router
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .layer(axum::middleware::from_fn_with_state(
                counts,
                metrics::count_requests,
            ));
    Ok(Server {
        router,
        connections: crate::front::connections::Connections::new(&chat),
        chat,
        scheduler,
    })
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let db = app.db.clone();
    let healthy =
        tokio::task::spawn_blocking(move || db.ping().and_then(|()| db.chat_links())).await;
    match healthy {
        Ok(Ok(links)) => {
            let mut body = json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")});
            // Outgoing chat connections are reported, not judged: a Slack or Discord
            // outage is no reason to restart lifeboat.
            if !links.is_empty() {
                body["chat"] = crate::front::links::health(&links);
            }
            (StatusCode::OK, Json(body))
        }
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
    let Server {
        router,
        chat,
        scheduler,
        connections,
    } = build(app.clone()).map_err(std::io::Error::other)?;
    let scheduler = tokio::spawn(scheduler.run());
    let connections = connections.start().await;
    let sweeper = {
        let chat = chat.clone();
        tokio::spawn(async move {
            loop {
                chat.expire_requests().await;
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
        })
    };
    let limits = crate::front::listener::Limits::for_this_process();
    tracing::debug!("HTTP limits: {limits:?}");
    crate::front::listener::serve(listener, router, limits, shutdown, SHUTDOWN_GRACE).await?;
    sweeper.abort();
    scheduler.abort();
    connections.stop().await;
    chat.stop();
    chat.tasks().close();
    if tokio::time::timeout(SHUTDOWN_GRACE, chat.tasks().wait())
        .await
        .is_err()
    {
        tracing::info!("cancelling {} running jobs", app.executor.running_count());
    }
    // Scheduled jobs are not tracked as chat tasks: cancel whatever still runs and give
    // it a moment to discard its partial output and record the cancellation.
    app.executor.cancel_all();
    chat.tasks().wait().await;
    for _ in 0..100 {
        if app.executor.running_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// For the signature layers: the whole body (at most `MAX_BODY`, else the 413 to answer)
/// and a header as text ("" when absent or not text).
pub async fn read_signed_body(
    body: axum::body::Body,
) -> Result<axum::body::Bytes, axum::response::Response> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())
}

pub fn header_text(headers: &axum::http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
