//! The status page of `serve` (`[web] enabled = true`): read-only HTML views of what
//! `lifeboat status` computes, with history charts drawn on the server. Every request
//! needs a login (see `auth`), is audited, and is answered with a policy that lets the
//! page run no script and load nothing from elsewhere.

pub mod auth;
mod incident;
mod layout;
pub mod link;
mod overview;
mod password;
mod target;
mod throttle;
pub mod token_file;

use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use maud::{Markup, html};

use crate::app::App;
use crate::db::audit::AuditEvent;
use auth::{Auth, Login};

#[derive(Clone)]
struct Web {
    app: App,
    auth: Arc<Auth>,
}

/// The page's routes, each behind the login check and the audit.
pub fn routes(app: App) -> Result<Router, String> {
    let generated = generated_token(&app)?;
    let web = Web {
        auth: Arc::new(Auth::new(&app.config.web, generated)),
        app,
    };
    Ok(Router::new()
        .route("/", get(overview_view))
        .route("/targets/{name}", get(target_view))
        .route("/incidents/{id}", get(incident_view))
        .route_layer(axum::middleware::from_fn_with_state(web.clone(), guard))
        .with_state(web))
}

/// The token lifeboat made for the page (`[web] generate_token`), made at first start.
pub fn generated_token(app: &App) -> Result<Option<String>, String> {
    let web = &app.config.web;
    if !(web.enabled && web.generate_token) {
        return Ok(None);
    }
    let path = token_file::path(&app.config.server.state);
    token_file::load_or_create(&path)
        .map(Some)
        .map_err(|e| format!("the status page's token: {e}"))
}

/// What the browser may do with our pages: show them, with inline style and inline
/// SVG, and nothing else (no scripts, no frames, no requests elsewhere).
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Log in, run the view, audit the visit, and set the page's security headers.
async fn guard(State(web): State<Web>, req: Request, next: Next) -> Response {
    let presented = link::Presented::of(req.headers(), req.uri().query());
    let header = presented.header();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let path: String = req.uri().path().chars().take(200).collect();
    let (actor, mut response) = match web.auth.login(header.as_deref(), peer).await {
        // A token in the address is swapped for a cookie and the address without it.
        Login::Allowed(actor) => match &presented {
            link::Presented::Query(token) => (actor, link::exchange(&path, token)),
            _ => (actor, next.run(req).await),
        },
        Login::Refused(refused) => {
            if let Some(wait) = refused.now_waits {
                tracing::warn!(
                    "status page: repeated failed logins from {}; it must wait {}s",
                    peer.map_or("?".into(), |p| p.to_string()),
                    wait.as_secs()
                );
            }
            let who = refused.claimed.as_deref().unwrap_or("anonymous");
            (
                format!("web:{who}"),
                unauthorized(!web.app.config.web.users.is_empty()),
            )
        }
        // Not audited one by one: a client that is made to wait may be a flood, and
        // the failures that made it wait were.
        Login::Wait(wait) => return too_many(wait),
    };
    audit(&web.app, actor, path, response.status()).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// 429 with the seconds to wait before trying again.
fn too_many(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        "too many login attempts: try again later\n",
    )
        .into_response()
}

/// 401; a browser is asked for a password only when there are users to log in as.
fn unauthorized(passwords: bool) -> Response {
    if !passwords {
        return (
            StatusCode::UNAUTHORIZED,
            "open the status page at the address with ?token= that lifeboat printed at \
             start, or send Authorization: Bearer <token>\n",
        )
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"lifeboat status\", charset=\"UTF-8\"",
        )],
        "log in to see the lifeboat status page\n",
    )
        .into_response()
}

/// One audit record per request: who, which page, how it ended. Kept off incident
/// timelines (looking is not an event of the incident).
async fn audit(app: &App, actor: String, path: String, status: StatusCode) {
    let outcome = match status.as_u16() {
        // 303: a token in the address, accepted and swapped for a cookie.
        200..=299 | 303 => "ok",
        401 => "refused",
        404 => "not found",
        _ => "failed",
    };
    let db = app.db.clone();
    let result = tokio::task::spawn_blocking(move || {
        let target = path.strip_prefix("/targets/").map(str::to_string);
        db.audit_event(&AuditEvent {
            actor: &actor,
            action: "web view",
            target: target.as_deref(),
            outcome,
            detail: Some(&format!("GET {path} → {}", status.as_u16())),
            skip_timeline: true,
            ..Default::default()
        })
    })
    .await;
    if let Ok(Err(e)) = result {
        tracing::error!("audit of a status page view: {e}");
    }
}

/// Run a view's reading and rendering off the async threads (they query SQLite).
async fn view<F>(f: F) -> Response
where
    F: FnOnce() -> crate::error::Result<(StatusCode, Markup)> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok((status, markup))) => html_response(status, markup),
        Ok(Err(e)) => {
            tracing::error!("status page: {e}");
            html_response(StatusCode::INTERNAL_SERVER_ERROR, unavailable())
        }
        Err(_) => html_response(StatusCode::INTERNAL_SERVER_ERROR, unavailable()),
    }
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

fn unavailable() -> Markup {
    layout::page(
        "Unavailable",
        Utc::now(),
        false,
        html! { h1 { "The status could not be read" } p { "The lifeboat log says why." } },
    )
}

async fn overview_view(State(web): State<Web>) -> Response {
    view(move || {
        let o = overview::gather(&web.app, Utc::now())?;
        Ok((StatusCode::OK, overview::render(&o)))
    })
    .await
}

async fn target_view(State(web): State<Web>, Path(name): Path<String>) -> Response {
    view(move || {
        let now = Utc::now();
        Ok(match target::gather(&web.app, &name, now)? {
            Some(p) => (StatusCode::OK, target::render(&p)),
            None => (StatusCode::NOT_FOUND, target::not_found(&name, now)),
        })
    })
    .await
}

async fn incident_view(State(web): State<Web>, Path(id): Path<String>) -> Response {
    view(move || {
        let now = Utc::now();
        let found = match id.parse::<i64>() {
            Ok(n) => incident::gather(&web.app, n, now)?,
            Err(_) => None,
        };
        Ok(match found {
            Some(p) => (StatusCode::OK, incident::render(&p)),
            None => (
                StatusCode::NOT_FOUND,
                layout::page(
                    "Not found",
                    now,
                    false,
                    html! { h1 { "No incident " q #asked { (id) } } p { a href="/" { "Status" } } },
                ),
            ),
        })
    })
    .await
}
