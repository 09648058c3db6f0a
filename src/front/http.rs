//! The HTTP router of `lifeboat serve`: health, metrics, hooks, the status page and the
//! chat routes of the platforms that are configured, under one body-size limit; and the
//! helpers the signature layers share.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::app::App;
use crate::front::chat::Chat;
use crate::front::hooks::{self, Hooks};
use crate::front::metrics::{self, RequestCounts};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 1 << 20;

/// Every route `serve` answers: health, metrics and hooks always, the status page when
/// enabled, and each platform's signed endpoints when its secret is configured.
pub fn router(app: &App, chat: &Chat, hooks: Hooks) -> Result<Router, String> {
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
        router = router.merge(crate::front::web::routes(app.clone())?);
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
    Ok(router)
}

/// How old a whole-file check of the state database `/healthz` may rely on.
const DAMAGE_CHECK_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let db = app.db.clone();
    let state = app.config.server.state.clone();
    let healthy = tokio::task::spawn_blocking(move || {
        if let Some(why) = crate::db::damage::check(&state, DAMAGE_CHECK_MAX_AGE) {
            return Err(Unusable::Damaged(why));
        }
        db.ping()
            .and_then(|()| Ok((db.chat_links()?, db.chat_channels_unusable()?)))
            .map_err(|e| match e.is_damage() {
                true => Unusable::Damaged(e.to_string()),
                false => Unusable::Failing(e),
            })
    })
    .await;
    let version = env!("CARGO_PKG_VERSION");
    match healthy {
        Ok(Ok((links, unusable))) => {
            let mut body = json!({"status": "ok", "version": version});
            // Outgoing chat connections and alert channels are reported, not judged: a
            // Slack or Discord outage, or a deleted channel, is no reason to restart.
            if !links.is_empty() || !unusable.is_empty() {
                body["chat"] = crate::front::chat::links::health(&links, &unusable);
            }
            (StatusCode::OK, Json(body))
        }
        Ok(Err(unusable)) => {
            let reason = match unusable {
                Unusable::Damaged(why) => format!(
                    "the state database is damaged ({why}); to recover, {}",
                    crate::db::damage::advice(
                        &app.config.server.state,
                        app.config.state_backup_store()
                    )
                ),
                Unusable::Failing(e) => {
                    tracing::error!("health check: {e}");
                    "state database is unusable".to_string()
                }
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "version": version, "reason": reason})),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "version": version})),
        ),
    }
}

/// Why `/healthz` says the state cannot be used.
enum Unusable {
    Damaged(String),
    Failing(crate::db::DbError),
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
