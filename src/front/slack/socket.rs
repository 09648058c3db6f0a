//! Slack Socket Mode: lifeboat opens the connection (apps.connections.open with the
//! app-level token, then a WebSocket to the URL it returns), so Slack needs no public URL.
//! Each envelope's payload goes through `slack::inbound`, exactly as the HTTP endpoints'
//! bodies do, and is acknowledged with its `envelope_id` within Slack's 3 seconds.
//!
//! The client is lifeboat's own, on tokio-tungstenite: slack-morphism's
//! `SlackClientSocketModeListener` connects fine (also to a plain `ws://` test server),
//! but it does not tell its user when a connection closes or fails to come back, so the
//! connection state could not be reported, and it retries at a fixed interval. Its Web API
//! client (apps.connections.open) and its payload models are used as they are.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use slack_morphism::prelude::*;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Secret, SlackConfig};
use crate::front::chat::Chat;
use crate::front::chat::links::{Backoff, Link};
use crate::front::slack::inbound;

/// A ping is sent this often; a connection silent for `SILENT_LIMIT` is given up.
const PING_EVERY: Duration = Duration::from_secs(10);
const SILENT_LIMIT: Duration = Duration::from_secs(30);
/// Opening the WebSocket (TCP, TLS, upgrade) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long envelopes already received get to be acknowledged before a connection that
/// Slack asked us to leave is closed.
const DRAIN: Duration = Duration::from_secs(3);

pub struct SocketMode {
    chat: Chat,
    api_url: String,
    app_token: Secret,
    link: Link,
}

/// Why a connection ended without an error.
enum End {
    /// Slack sent `disconnect` (refresh, warning): connect again at once.
    Refresh(String),
    /// lifeboat is stopping.
    Stopped,
}

/// What one text frame was.
enum Frame {
    Hello(String),
    Disconnect(String),
    Envelope,
    Dropped,
}

impl SocketMode {
    pub fn new(chat: Chat, cfg: &SlackConfig) -> Option<SocketMode> {
        let app_token = cfg.app_token.clone()?;
        let link = Link::new(chat.app.db.clone(), "slack", "socket");
        Some(SocketMode {
            chat,
            api_url: cfg.api_url.trim_end_matches('/').to_string(),
            app_token,
            link,
        })
    }

    /// Stay connected until `stop`, reconnecting with backoff.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::default();
        self.link.connecting("").await;
        loop {
            match self.session(&mut backoff, &stop).await {
                Ok(End::Stopped) => break,
                Ok(End::Refresh(reason)) => {
                    self.link
                        .connecting(&format!("Slack asked for a new connection ({reason})"))
                        .await;
                }
                Err(e) => {
                    if !self
                        .link
                        .retry_after(&e.to_string(), &mut backoff, &stop)
                        .await
                    {
                        break;
                    }
                }
            }
        }
        self.link.stopped().await;
    }

    /// One connection, from apps.connections.open to its end.
    async fn session(
        &self,
        backoff: &mut Backoff,
        stop: &CancellationToken,
    ) -> Result<End, String> {
        let url = open_url(&self.api_url, &self.app_token).await?;
        install_crypto();
        let (mut ws, _) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        .map_err(|_| "timed out opening the Socket Mode connection".to_string())?
        .map_err(|e| format!("opening the Socket Mode connection: {e}"))?;
        let (acks, mut pending) = mpsc::unbounded_channel::<String>();
        let in_flight = TaskTracker::new();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut heard = tokio::time::Instant::now();
        let end = loop {
            tokio::select! {
                _ = stop.cancelled() => break End::Stopped,
                Some(ack) = pending.recv() => {
                    ws.send(Message::text(ack)).await.map_err(|e| format!("sending an acknowledgement: {e}"))?;
                }
                frame = ws.next() => {
                    heard = tokio::time::Instant::now();
                    let text = match frame {
                        None => return Err("Slack closed the connection".into()),
                        Some(Err(e)) => return Err(format!("connection lost: {e}")),
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame.map(|f| format!(" ({} {})", f.code, f.reason)).unwrap_or_default();
                            return Err(format!("Slack closed the connection{why}"));
                        }
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => {
                            tracing::warn!("Slack Socket Mode: ignored a binary frame");
                            continue;
                        }
                        Some(Ok(_)) => continue,
                    };
                    match self.frame(text.as_str(), &acks, &in_flight) {
                        Frame::Hello(detail) => {
                            backoff.reset();
                            self.link.connected(&detail).await;
                        }
                        // Reconnecting at once would only be refused again: back off.
                        Frame::Disconnect(reason) if reason == "link_disabled" => {
                            return Err("Slack disabled Socket Mode for this app (link_disabled)".into());
                        }
                        Frame::Disconnect(reason) => break End::Refresh(reason),
                        Frame::Envelope | Frame::Dropped => {}
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() > SILENT_LIMIT {
                        return Err(format!("no word from Slack for {}s", SILENT_LIMIT.as_secs()));
                    }
                    ws.send(Message::Ping(Default::default())).await.map_err(|e| format!("connection lost: {e}"))?;
                }
            }
        };
        // Envelopes already received are answered on this connection before it closes;
        // an unanswered one would be delivered again on the next.
        in_flight.close();
        let drain = async {
            loop {
                tokio::select! {
                    Some(ack) = pending.recv() => { let _ = ws.send(Message::text(ack)).await; }
                    _ = in_flight.wait() => break,
                }
            }
            while let Ok(ack) = pending.try_recv() {
                let _ = ws.send(Message::text(ack)).await;
            }
        };
        let _ = tokio::time::timeout(DRAIN, drain).await;
        let _ = ws.close(None).await;
        Ok(end)
    }

    /// Read one text frame; envelopes are handled in their own task, which queues the
    /// acknowledgement on `acks`.
    fn frame(
        &self,
        text: &str,
        acks: &mpsc::UnboundedSender<String>,
        tasks: &TaskTracker,
    ) -> Frame {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            tracing::warn!(
                "Slack Socket Mode: dropped a frame that is not JSON: {}",
                preview(text)
            );
            return Frame::Dropped;
        };
        let kind = frame["type"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "hello" => {
                let n = frame["num_connections"].as_u64().unwrap_or(1);
                return Frame::Hello(format!("({n} connection(s) open for this app)"));
            }
            "disconnect" => {
                let reason = frame["reason"].as_str().unwrap_or("unknown").to_string();
                if reason == "link_disabled" {
                    tracing::error!(
                        "Slack disabled Socket Mode for this app (link_disabled): turn it on again in the app's settings"
                    );
                }
                return Frame::Disconnect(reason);
            }
            _ => {}
        }
        let Some(envelope_id) = frame["envelope_id"].as_str().map(String::from) else {
            tracing::warn!(
                "Slack Socket Mode: dropped a {kind:?} frame without an envelope_id: {}",
                preview(text)
            );
            return Frame::Dropped;
        };
        let (chat, acks) = (self.chat.clone(), acks.clone());
        tasks.spawn(async move {
            let payload = envelope(&chat, &kind, frame).await;
            let mut ack = json!({"envelope_id": envelope_id});
            if let Some(p) = payload {
                ack["payload"] = p;
            }
            let _ = acks.send(ack.to_string());
        });
        Frame::Envelope
    }
}

/// Act on one envelope; the acknowledgement's payload, if it has one. An envelope whose
/// payload cannot be read is logged and acknowledged (it would never read better).
async fn envelope(chat: &Chat, kind: &str, mut frame: Value) -> Option<Value> {
    let payload = frame["payload"].take();
    match kind {
        "slash_commands" => match serde_json::from_value::<SlackCommandEvent>(payload) {
            Ok(event) => Some(inbound::command(chat, event).await),
            Err(e) => {
                tracing::warn!(
                    "Slack Socket Mode: unreadable slash command ({e}); acknowledged and dropped"
                );
                None
            }
        },
        "interactive" => {
            match serde_json::from_value::<SlackInteractionEvent>(payload) {
                Ok(event) => {
                    if let Err(why) = inbound::interaction(chat, event) {
                        tracing::warn!("Slack Socket Mode: {why}; acknowledged and dropped");
                    }
                }
                Err(e) => tracing::warn!(
                    "Slack Socket Mode: unreadable interaction ({e}); acknowledged and dropped"
                ),
            }
            None
        }
        "events_api" => {
            let retry = frame["retry_attempt"].as_u64().unwrap_or(0).to_string();
            inbound::event(chat, &payload, &retry).await;
            None
        }
        other => {
            tracing::info!(
                "Slack Socket Mode: acknowledged an envelope of type {other:?} lifeboat does not use"
            );
            None
        }
    }
}

/// apps.connections.open with the app-level token, against `[slack] api_url`: the
/// WebSocket URL to connect to (single use, so asked for again on every connection).
async fn open_url(api_url: &str, app_token: &Secret) -> Result<String, String> {
    let token = SlackApiToken::new(SlackApiTokenValue(app_token.expose().to_string()));
    let req = SlackApiAppsConnectionOpenRequest::new();
    let opened = if api_url.starts_with("https://") {
        let connector = SlackClientHyperConnector::new()
            .map_err(|e| format!("cannot set up HTTPS for Slack: {e}"))?
            .with_slack_api_url(api_url);
        SlackClient::new(connector)
            .open_session(&token)
            .apps_connections_open(&req)
            .await
    } else {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = SlackClientHyperConnector::with_connector(http).with_slack_api_url(api_url);
        SlackClient::new(connector)
            .open_session(&token)
            .apps_connections_open(&req)
            .await
    };
    let opened = opened.map_err(|e| {
        format!(
            "apps.connections.open: {}",
            e.to_string().lines().next().unwrap_or_default()
        )
    })?;
    Ok(opened.url.0.to_string())
}

/// rustls finds two cryptography providers in this build (the AWS SDK brings one, the
/// Slack client another) and then wants to be told which to use for `wss://`.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The start of a frame, for the log (frames may be long; they hold no secrets).
fn preview(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    /// A `wss://` URL needs rustls, which must be told its cryptography provider in this
    /// build: without `install_crypto` the attempt panics instead of failing.
    #[tokio::test]
    async fn a_wss_url_that_does_not_speak_tls_is_an_error_not_a_panic() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        super::install_crypto();
        let url = format!("wss://127.0.0.1:{port}/link");
        let attempt = tokio::spawn(async move { tokio_tungstenite::connect_async(url).await });
        let outcome = attempt.await.expect("connecting does not panic");
        let Err(err) = outcome else {
            panic!("connected to a server that does not speak TLS")
        };
        assert!(
            err.to_string().to_lowercase().contains("tls")
                || matches!(err, tokio_tungstenite::tungstenite::Error::Io(_)),
            "{err}"
        );
    }
}
