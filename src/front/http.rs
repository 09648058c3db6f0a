//! The HTTP server of `lifeboat serve`: the router, `/healthz`, and graceful shutdown.

use std::future::Future;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::App;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 1 << 20;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
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

/// Serve until `shutdown` resolves, then stop accepting and let requests in flight end.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}
