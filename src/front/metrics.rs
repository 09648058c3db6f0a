//! `GET /metrics` in the Prometheus text format, and the per-route request counter that
//! feeds it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::App;

/// Requests served, by route and status.
#[derive(Clone, Default)]
pub struct RequestCounts(Arc<Mutex<BTreeMap<(String, u16), u64>>>);

/// The route a path belongs to, from a fixed set so labels stay few whatever is requested.
fn route_of(path: &str) -> &'static str {
    const ROUTES: &[&str] = &[
        "/healthz",
        "/metrics",
        "/slack/commands",
        "/slack/interactions",
        "/slack/events",
        "/discord/interactions",
        "/hooks/alertmanager",
    ];
    if path.starts_with("/hooks/ping/") {
        return "/hooks/ping/{target}";
    }
    // The status page's views (their names and ids stay out of the labels).
    if path == "/" {
        return "/";
    }
    if path.starts_with("/targets/") {
        return "/targets/{name}";
    }
    if path.starts_with("/incidents/") {
        return "/incidents/{id}";
    }
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

pub async fn count_requests(
    State(counts): State<RequestCounts>,
    req: Request,
    next: Next,
) -> Response {
    let route = route_of(req.uri().path()).to_string();
    let response = next.run(req).await;
    *counts
        .0
        .lock()
        .unwrap()
        .entry((route, response.status().as_u16()))
        .or_default() += 1;
    response
}

pub(super) fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn metrics(State((app, counts)): State<(App, RequestCounts)>) -> Response {
    let requests = counts.0.lock().unwrap().clone();
    let body = tokio::task::spawn_blocking(move || render(&app, &requests)).await;
    match body {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        _ => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "state database unavailable\n",
        )
            .into_response(),
    }
}

fn render(
    app: &App,
    requests: &BTreeMap<(String, u16), u64>,
) -> Result<String, crate::error::Error> {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let now = chrono::Utc::now();
    let (mut last_success, mut size, mut duration, mut failures, mut overdue) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut lag = vec![];
    for (name, cfg) in &app.config.targets {
        let label = format!("{{target=\"{}\"}}", esc(name));
        if cfg.continuous.is_some()
            && let Some(seconds) = crate::replicate::lag::of(app, name, now).lag_seconds
        {
            lag.push((label.clone(), seconds));
        }
        let facts = app.db.backup_facts(name)?;
        if let Some(ok) = &facts.last_ok {
            if let Some(t) =
                crate::units::parse_time(ok.finished_at.as_deref().unwrap_or(&ok.started_at))
            {
                last_success.push((label.clone(), t.timestamp() as f64));
            }
            if let (Some(start), Some(end)) = (
                crate::units::parse_time(&ok.started_at),
                ok.finished_at.as_deref().and_then(crate::units::parse_time),
            ) {
                duration.push((
                    label.clone(),
                    (end - start).num_milliseconds() as f64 / 1000.0,
                ));
            }
            if let Some(id) = &ok.backup_id
                && let Some(bytes) = catalog_size(app, name, id)
            {
                size.push((label.clone(), bytes as f64));
            }
        }
        failures.push((label.clone(), facts.consecutive_failures as f64));
        let newest = facts
            .last_ok
            .as_ref()
            .and_then(|j| crate::units::parse_time(&j.started_at));
        let (_, missed) = crate::actions::status::due(cfg, newest, now);
        overdue.push((label, if missed.is_some() { 1.0 } else { 0.0 }));
    }
    family(
        "lifeboat_replication_lag_seconds",
        "gauge",
        "How far a continuously replicated target's shipped transactions are behind now.",
        lag,
    );
    family(
        "lifeboat_last_success_timestamp_seconds",
        "gauge",
        "Unix time the last successful backup of the target finished.",
        last_success,
    );
    family(
        "lifeboat_last_backup_size_bytes",
        "gauge",
        "Stored size of the target's last successful backup.",
        size,
    );
    family(
        "lifeboat_last_backup_duration_seconds",
        "gauge",
        "How long the target's last successful backup took.",
        duration,
    );
    family(
        "lifeboat_consecutive_failures",
        "gauge",
        "Failed backups of the target since its last success.",
        failures,
    );
    family(
        "lifeboat_overdue",
        "gauge",
        "1 when a scheduled backup of the target is late beyond its grace.",
        overdue,
    );
    let jobs = app
        .db
        .job_counts()?
        .into_iter()
        .map(|(kind, state, n)| {
            (
                format!("{{kind=\"{}\",outcome=\"{}\"}}", esc(&kind), esc(&state)),
                n as f64,
            )
        })
        .collect();
    family(
        "lifeboat_jobs_total",
        "counter",
        "Jobs recorded, by kind and outcome.",
        jobs,
    );
    family(
        "lifeboat_chat_connected",
        "gauge",
        "1 while serve's outgoing chat connection (Slack Socket Mode, Discord Gateway) is up.",
        crate::front::chat::links::metric_samples(&app.db.chat_links()?),
    );
    let http = requests
        .iter()
        .map(|((route, status), n)| {
            (
                format!("{{endpoint=\"{}\",status=\"{status}\"}}", esc(route)),
                *n as f64,
            )
        })
        .collect();
    family(
        "lifeboat_http_requests_total",
        "counter",
        "HTTP requests served since start, by endpoint and status.",
        http,
    );
    family(
        "lifeboat_build_info",
        "gauge",
        "Version of the running lifeboat.",
        vec![(
            format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
            1.0,
        )],
    );
    if app.config.server.heartbeat.is_some() {
        let (ok, failed, last_ok) = crate::monitor::heartbeat::counts();
        family(
            "lifeboat_heartbeat_pings_total",
            "counter",
            "Heartbeat requests to [server] heartbeat since start, by outcome.",
            vec![
                ("{outcome=\"ok\"}".into(), ok as f64),
                ("{outcome=\"failed\"}".into(), failed as f64),
            ],
        );
        family(
            "lifeboat_heartbeat_last_success_timestamp_seconds",
            "gauge",
            "Unix time the heartbeat monitor last accepted a ping.",
            last_ok
                .map(|t| (String::new(), t as f64))
                .into_iter()
                .collect(),
        );
    }
    super::alert_metrics::render(app, &mut out)?;
    Ok(out)
}

fn catalog_size(app: &App, target: &str, id: &str) -> Option<u64> {
    app.db
        .lock()
        .query_row(
            "SELECT size_bytes FROM catalog WHERE target = ?1 AND id = ?2",
            [target, id],
            |r| r.get::<_, i64>(0),
        )
        .ok()
        .map(|n| n as u64)
}
