//! Webhooks: external backup jobs reporting in (`POST /hooks/ping/<target>`, bearer token
//! of the target) and Prometheus Alertmanager (`POST /hooks/alertmanager`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::db::audit::AuditEvent;
use crate::notify::{ChatMessage, with_retries};
use crate::schedule::AlertSinks;

#[derive(Clone)]
pub struct Hooks {
    pub app: App,
    pub wake: crate::schedule::TargetWake,
    pub sinks: Arc<AlertSinks>,
}

#[derive(Deserialize)]
struct Ping {
    status: String,
    #[serde(default)]
    message: Option<String>,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn token_matches(given: Option<&str>, expected: &str) -> bool {
    given.is_some_and(|g| g.as_bytes().ct_eq(expected.as_bytes()).into())
}

fn error(code: StatusCode, text: &str) -> Response {
    (code, Json(json!({"error": text}))).into_response()
}

pub async fn ping(
    State(hooks): State<Hooks>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(cfg) = hooks.app.config.targets.get(&target) else {
        return error(StatusCode::NOT_FOUND, "no such target");
    };
    let Some(token) = &cfg.token else {
        return error(StatusCode::NOT_FOUND, "this target takes no reports");
    };
    if !token_matches(bearer(&headers), token.expose()) {
        tracing::warn!(target = %target, "refused a ping: missing or wrong token");
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let ping: Ping = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"status\": \"success\"|\"fail\", \"message\": ...}}: {e}"),
            );
        }
    };
    let ok = match ping.status.as_str() {
        "success" => true,
        "fail" => false,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("status must be \"success\" or \"fail\", not {other:?}"),
            );
        }
    };
    let message = ping.message.unwrap_or_else(|| {
        if ok {
            "reported success".into()
        } else {
            "reported failure".into()
        }
    });
    let app = hooks.app.clone();
    let (t, m) = (target.clone(), message.clone());
    let recorded = tokio::task::spawn_blocking(move || {
        let id = app.db.job_record_report(&t, &format!("hook:{t}"), ok, &m)?;
        app.db.audit(
            &format!("hook:{t}"),
            "external report",
            Some(&t),
            if ok { "succeeded" } else { "failed" },
            Some(&m),
        )?;
        Ok::<_, crate::db::DbError>(id)
    })
    .await;
    match recorded {
        Ok(Ok(job)) => {
            hooks.wake.wake(&target);
            Json(json!({"recorded": true, "job": job})).into_response()
        }
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "could not record the report",
        ),
    }
}

#[derive(Deserialize)]
struct AlertmanagerPayload {
    #[serde(default)]
    alerts: Vec<AmAlert>,
}

#[derive(Deserialize)]
struct AmAlert {
    status: String,
    #[serde(default)]
    labels: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    annotations: serde_json::Map<String, serde_json::Value>,
    /// When the alert began firing; its timeline entry keeps this time.
    #[serde(default, rename = "startsAt")]
    starts_at: Option<String>,
}

pub async fn alertmanager(State(hooks): State<Hooks>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(token) = hooks
        .app
        .config
        .hooks
        .as_ref()
        .and_then(|h| h.alertmanager_token.as_ref())
    else {
        return error(
            StatusCode::NOT_FOUND,
            "the Alertmanager hook is not configured",
        );
    };
    if !token_matches(bearer(&headers), token.expose()) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let payload: AlertmanagerPayload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("not an Alertmanager webhook: {e}"),
            );
        }
    };
    let firing: Vec<&AmAlert> = payload
        .alerts
        .iter()
        .filter(|a| a.status == "firing")
        .collect();
    for alert in &firing {
        let text = |m: &serde_json::Map<String, serde_json::Value>, k: &str| {
            m.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let name = text(&alert.labels, "alertname");
        let summary = [
            text(&alert.annotations, "summary"),
            text(&alert.annotations, "description"),
        ]
        .join(" ");
        let mut line = format!("🔥 Alertmanager: {name} is firing. {}", summary.trim());
        let app = hooks.app.clone();
        let audit_line = line.clone();
        // Alertmanager's zero time means "unknown"; anything unparsable is "now".
        let at = alert
            .starts_at
            .as_deref()
            .and_then(crate::units::parse_time)
            .filter(|t| t.timestamp() > 0)
            .map(crate::units::time_text);
        let stamped = tokio::task::spawn_blocking(move || {
            app.db.audit_event(&AuditEvent {
                actor: "hook:alertmanager",
                action: "alert",
                outcome: "firing",
                detail: Some(&audit_line),
                at,
                ..Default::default()
            })
        })
        .await;
        if let Ok(Ok(incidents)) = stamped
            && let Some(id) = incidents.first()
        {
            line.push_str(&format!("\n📎 on incident #{id}'s timeline"));
        }
        let msg = ChatMessage::text(line);
        for (notifier, channel) in hooks.sinks.iter() {
            if let Err(e) = with_retries("posting an Alertmanager alert", || {
                notifier.post(channel, &msg)
            })
            .await
            {
                tracing::error!("could not post an Alertmanager alert: {e}");
            }
        }
    }
    Json(json!({"posted": firing.len()})).into_response()
}
