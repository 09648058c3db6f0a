//! Fakes of the chat platforms' Web APIs (they record every call and answer as the real
//! ones do), request signing exactly as Slack and Discord sign, and a running `serve`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use super::Home;

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub auth: String,
    pub body: Value,
    /// The body as sent (uploads are neither JSON nor forms).
    pub raw: String,
    pub at: std::time::Instant,
}

#[derive(Default)]
struct FakeState {
    calls: Vec<Call>,
    /// Status codes to answer the next calls to a path suffix with (then 200).
    scripted: Vec<(String, VecDeque<(u16, u64)>)>,
    /// Fixed JSON answers for paths ending with a suffix (e.g. apps.connections.open).
    answers: Vec<(String, Value)>,
    /// While set, every call is answered 503 (the platform is out of reach).
    down: bool,
    /// Messages someone deleted: the first Slack post whose text contains the needle,
    /// and its ts once posted; edits of it are answered `message_not_found`.
    deleted: Vec<(String, Option<String>)>,
    /// Slack channels that are gone: posts there are answered `channel_not_found`.
    gone_channels: Vec<String>,
    next_id: u64,
}

/// A recording fake of the Slack Web API or the Discord REST API.
pub struct FakeApi {
    pub base: String,
    state: Arc<Mutex<FakeState>>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeApi {
    pub fn start() -> FakeApi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(FakeState {
            next_id: 1000,
            ..Default::default()
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeApi {
            base,
            state,
            _runtime: runtime,
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Calls whose path ends with `suffix` (e.g. "chat.update").
    pub fn calls_to(&self, suffix: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.ends_with(suffix))
            .collect()
    }

    /// The contents of every file uploaded to the fake Slack.
    pub fn uploads(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.starts_with("/upload/"))
            .map(|c| c.raw)
            .collect()
    }

    /// Answer the next `n` calls to `suffix` with HTTP 429 and `Retry-After: secs`.
    pub fn rate_limit(&self, suffix: &str, n: usize, secs: u64) {
        let mut s = self.state.lock().unwrap();
        s.scripted.push((
            suffix.to_string(),
            std::iter::repeat_n((429, secs), n).collect(),
        ));
    }

    /// Answer the next `n` calls made with HTTP `method` (e.g. Discord's "PATCH" edits)
    /// with HTTP 429 and `Retry-After: secs`.
    pub fn rate_limit_method(&self, method: &str, n: usize, secs: u64) {
        self.rate_limit(&format!("{method} *"), n, secs);
    }

    /// Answer every call with 503 while `down` (recorded all the same).
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// As if someone deleted the first Slack message posted with `needle` in its text:
    /// every edit of it is answered `{"ok": false, "error": "message_not_found"}`.
    pub fn delete_first_message(&self, needle: &str) {
        self.state
            .lock()
            .unwrap()
            .deleted
            .push((needle.to_string(), None));
    }

    /// As if the Slack channel was deleted: every post there is answered
    /// `{"ok": false, "error": "channel_not_found"}`.
    pub fn delete_channel(&self, channel: &str) {
        let mut s = self.state.lock().unwrap();
        s.gone_channels.push(channel.to_string());
    }

    /// Answer calls to paths ending with `suffix` with `body` (200, JSON).
    pub fn answer(&self, suffix: &str, body: Value) {
        self.state
            .lock()
            .unwrap()
            .answers
            .push((suffix.to_string(), body));
    }

    /// Wait until a Slack message was edited to a text containing `needle` (a job's
    /// result); returns every call so far.
    pub fn wait_update(&self, secs: u64, needle: &str) -> Vec<Call> {
        self.wait_until(secs, &format!("an update saying {needle:?}"), |c| {
            c.iter().any(|c| {
                c.path.ends_with("chat.update")
                    && c.body["text"].as_str().unwrap_or("").contains(needle)
            })
        })
    }

    /// Wait until a Discord message was edited to content containing `needle`; returns
    /// every call so far.
    pub fn wait_edit(&self, secs: u64, needle: &str) -> Vec<Call> {
        self.wait_until(secs, &format!("an edit saying {needle:?}"), |c| {
            c.iter().any(|c| {
                c.method == "PATCH" && c.body["content"].as_str().unwrap_or("").contains(needle)
            })
        })
    }

    /// Wait until `cond` holds over the recorded calls.
    pub fn wait_until(&self, secs: u64, what: &str, cond: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let calls = self.calls();
            if cond(&calls) {
                return calls;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; calls: {calls:#?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
        Value::Object(
            form.into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    });
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut s = state.lock().unwrap();
    s.calls.push(Call {
        method: method.to_string(),
        path: path.clone(),
        auth,
        body: parsed.clone(),
        raw: String::from_utf8_lossy(&body).to_string(),
        at: std::time::Instant::now(),
    });
    if s.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    for (suffix, queue) in s.scripted.iter_mut() {
        let by_method = suffix.strip_suffix(" *") == Some(method.as_str());
        if (by_method || path.ends_with(suffix.as_str()))
            && let Some((code, secs)) = queue.pop_front()
        {
            let mut r = (
                StatusCode::from_u16(code).unwrap(),
                Json(json!({"ok": false, "error": "ratelimited", "retry_after": secs})),
            )
                .into_response();
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
            return r;
        }
    }
    if let Some((_, body)) = s
        .answers
        .iter()
        .find(|(suffix, _)| path.ends_with(suffix.as_str()))
    {
        return Json(body.clone()).into_response();
    }
    s.next_id += 1;
    let id = s.next_id;
    // Slack's external file upload: an upload URL, the bytes posted there, completion.
    if path.starts_with("/api/files.getUploadURLExternal") {
        let host = headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1");
        return Json(json!({"ok": true, "upload_url": format!("http://{host}/upload/F{id}"), "file_id": format!("F{id}")})).into_response();
    }
    if path.starts_with("/upload/") {
        return (StatusCode::OK, format!("OK - {}", body.len())).into_response();
    }
    if path.starts_with("/api/files.completeUploadExternal") {
        let files = parsed["files"].clone();
        return Json(json!({"ok": true, "files": files})).into_response();
    }
    if path.starts_with("/api/chat.") {
        let channel = parsed["channel"].as_str().unwrap_or("C0").to_string();
        let refused = |error: &str| Json(json!({"ok": false, "error": error})).into_response();
        if s.gone_channels.contains(&channel) {
            return refused("channel_not_found");
        }
        let edited = parsed["ts"].as_str().map(String::from);
        if path.ends_with("chat.update") && s.deleted.iter().any(|(_, ts)| *ts == edited) {
            return refused("message_not_found");
        }
        let ts = parsed["ts"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("1700000000.{id:06}"));
        let text = parsed["text"].clone();
        if path.ends_with("chat.postMessage") {
            let said = text.as_str().unwrap_or_default();
            for (needle, deleted) in s.deleted.iter_mut() {
                if deleted.is_none() && said.contains(needle.as_str()) {
                    *deleted = Some(ts.clone());
                }
            }
        }
        // The shapes Slack answers chat.postMessage, chat.update and chat.postEphemeral with.
        let message =
            json!({"type": "message", "text": text, "user": "U0BOT", "bot_id": "B0BOT", "ts": ts});
        return Json(json!({"ok": true, "channel": channel, "ts": ts, "text": text, "message_ts": ts, "message": message})).into_response();
    }
    // An interaction's answer, as the Gateway client sends it: 204 like Discord.
    if path.starts_with("/api/v10/interactions/") && path.ends_with("/callback") {
        return StatusCode::NO_CONTENT.into_response();
    }
    // An interaction's webhook: its deferred answer edited (`messages/@original`) or a
    // follow-up posted, answered with the message as Discord does.
    if path.starts_with("/api/v10/webhooks/") {
        return Json(discord_message(
            "1",
            &id.to_string(),
            parsed["content"].as_str().unwrap_or_default(),
        ))
        .into_response();
    }
    if path.starts_with("/api/v10/channels/") {
        let parts: Vec<&str> = path.split('/').collect();
        let channel = parts.get(4).copied().unwrap_or("1");
        let message = parts
            .get(6)
            .map(|m| m.to_string())
            .unwrap_or_else(|| id.to_string());
        return Json(discord_message(
            channel,
            &message,
            parsed["content"].as_str().unwrap_or_default(),
        ))
        .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        Json(json!({"ok": false, "error": "unknown_method"})),
    )
        .into_response()
}

use axum::Json;

/// A message object as Discord returns it.
pub fn discord_message(channel: &str, id: &str, content: &str) -> Value {
    json!({
        "id": id, "channel_id": channel, "content": content,
        "author": {"id": "4242", "username": "lifeboat", "discriminator": "0000", "global_name": null, "avatar": null, "bot": true},
        "timestamp": "2026-11-22T09:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
        "pinned": false, "type": 0, "flags": 0, "components": []
    })
}

pub const SLACK_SECRET: &str = "test-signing-secret-1234567890ab";
/// Seed of the Discord application's test key pair.
pub const DISCORD_SEED: [u8; 32] = [7u8; 32];

pub fn discord_public_key_hex() -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&DISCORD_SEED);
    hex::encode(key.verifying_key().to_bytes())
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Slack's signature: `v0=` + hex HMAC-SHA256(secret, `v0:{ts}:{body}`).
pub fn slack_signature(secret: &str, ts: i64, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Discord's signature: Ed25519 over `{ts}{body}`.
pub fn discord_signature(ts: i64, body: &str) -> String {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(&DISCORD_SEED);
    hex::encode(key.sign(format!("{ts}{body}").as_bytes()).to_bytes())
}

/// `lifeboat serve` running as a child process; killed on drop.
pub struct Serve {
    pub child: Child,
    pub addr: String,
    /// serve's log lines so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    pub fn start(home: &Home) -> Serve {
        Serve::from_command(home.command(&["serve"]))
    }

    /// Start `serve` from a prepared command (e.g. with extra environment).
    pub fn from_command(mut cmd: std::process::Command) -> Serve {
        let mut child = cmd
            .env("LIFEBOAT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("serve exited before listening")
                .unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining the log so the child never blocks on a full pipe.
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.by_ref().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Serve { child, addr, log }
    }

    /// serve's log so far, one string.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// GET a path of serve's; status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent.get(&self.url(path)).call().expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    }

    /// `/healthz`'s report on a platform's outgoing connection.
    pub fn chat_health(&self, platform: &str) -> Value {
        let (_, body) = self.get("/healthz");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["chat"][platform].clone()
    }

    /// Wait until `/healthz` says the platform's connection is (or is not) up.
    pub fn wait_chat_connected(&self, platform: &str, connected: bool, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let h = self.chat_health(platform);
            if h["connected"] == connected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{platform} connected != {connected} after {secs}s: {h}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "serve exits cleanly on SIGTERM");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POST a body with the given headers; returns status and body text.
pub fn post(
    url: &str,
    content_type: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.post(url).header("content-type", content_type);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let mut resp = req.send(body).expect("request sent");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// A slash command as Slack sends it, signed.
pub fn slack_command(
    serve: &Serve,
    user: &str,
    channel: &str,
    command: &str,
    text: &str,
) -> (u16, String) {
    let body = serde_urlencoded::to_string([
        ("token", "legacy-unused"),
        ("team_id", "T0TEAM"),
        ("team_domain", "acme"),
        ("channel_id", channel),
        ("channel_name", "ops"),
        ("user_id", user),
        ("user_name", "someone"),
        ("command", command),
        ("text", text),
        (
            "response_url",
            "https://hooks.slack.com/commands/T0TEAM/1/abc",
        ),
        ("trigger_id", "1.2.3"),
    ])
    .unwrap();
    signed_slack_post(
        serve,
        "/slack/commands",
        "application/x-www-form-urlencoded",
        &body,
    )
}

pub fn signed_slack_post(
    serve: &Serve,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let ts = now();
    let headers = [
        ("x-slack-request-timestamp", ts.to_string()),
        ("x-slack-signature", slack_signature(SLACK_SECRET, ts, body)),
    ];
    post(&serve.url(path), content_type, &headers, body)
}

/// An interaction as Discord sends it to the interactions endpoint, signed.
pub fn discord_interaction(serve: &Serve, body: &str) -> (u16, String) {
    let ts = now();
    let headers = [
        ("x-signature-ed25519", discord_signature(ts, body)),
        ("x-signature-timestamp", ts.to_string()),
    ];
    post(
        &serve.url("/discord/interactions"),
        "application/json",
        &headers,
        body,
    )
}

/// The `text` of each call (messages and their edits).
pub fn texts(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A Block Kit button click as Slack sends it, signed.
pub fn slack_click(
    serve: &Serve,
    user: &str,
    channel: &str,
    message_ts: &str,
    action: &str,
    value: &str,
) -> (u16, String) {
    let payload = json!({
        "type": "block_actions",
        "team": {"id": "T0TEAM", "domain": "acme"},
        "user": {"id": user, "username": "someone", "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "token": "legacy-unused",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": false},
        "trigger_id": "1.2.3",
        "channel": {"id": channel, "name": "ops"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "actions": [{"type": "button", "action_id": action, "block_id": "b1", "value": value, "action_ts": "1700000000.1"}]
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    signed_slack_post(
        serve,
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        &body,
    )
}
