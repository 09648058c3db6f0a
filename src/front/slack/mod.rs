//! Slack: request signatures (v0 HMAC-SHA256 over `v0:<timestamp>:<body>`, 5-minute
//! window) checked in a layer, slash commands, Block Kit buttons, the Events API, and the
//! Web API client (slack-morphism) that posts and updates job messages.

pub mod inbound; // what Slack sends, over HTTP or Socket Mode, turned into dispatch calls
mod render; // the one place a ChatMessage becomes Block Kit
pub mod socket; // Socket Mode: the outgoing WebSocket connection

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{KeyInit, Mac};
use serde_json::Value;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use crate::config::SlackConfig;
use crate::front::chat::Chat;
use crate::notify::{ChatMessage, Notifier, NotifyError};
use render::content;

/// Requests older or newer than this are refused (replay protection).
pub const MAX_SKEW_SECONDS: i64 = 300;

#[derive(Debug, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Stale,
    Mismatch,
}

/// Check a Slack request signature at time `now` (unix seconds).
pub fn verify(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::Missing)?;
    if (now - ts).abs() > MAX_SKEW_SECONDS {
        return Err(SignatureError::Stale);
    }
    let Some(hex_sig) = signature.strip_prefix("v0=") else {
        return Err(SignatureError::Mismatch);
    };
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Mismatch)?;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The Slack routes, each behind the signature layer.
pub fn routes(chat: Chat, signing_secret: &crate::config::Secret) -> Router {
    let secret = Arc::new(signing_secret.expose().to_string());
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .route("/slack/events", post(events))
        .layer(axum::middleware::from_fn_with_state(
            secret,
            check_signature,
        ))
        .with_state(chat)
}

async fn check_signature(State(secret): State<Arc<String>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match crate::front::http::read_signed_body(body).await {
        Ok(b) => b,
        Err(too_large) => return too_large,
    };
    let header = |name: &str| crate::front::http::header_text(&parts.headers, name);
    let now = chrono::Utc::now().timestamp();
    let checked = verify(
        &secret,
        &header("x-slack-request-timestamp"),
        &bytes,
        &header("x-slack-signature"),
        now,
    );
    if let Err(why) = checked {
        tracing::warn!(path = %parts.uri.path(), "refused a Slack request: signature {why:?}");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

// The HTTP transport: parse the request, hand it to `inbound`, answer with its JSON.

async fn commands(State(chat): State<Chat>, body: Bytes) -> Response {
    let Ok(event) = serde_urlencoded::from_bytes::<SlackCommandEvent>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed slash command").into_response();
    };
    Json(inbound::command(&chat, event).await).into_response()
}

#[derive(serde::Deserialize)]
struct InteractionForm {
    payload: String,
}

async fn interactions(State(chat): State<Chat>, body: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<InteractionForm>(&body) else {
        return (StatusCode::BAD_REQUEST, "missing payload").into_response();
    };
    let event = match serde_json::from_str::<SlackInteractionEvent>(&form.payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("unreadable Slack interaction: {e}");
            return (StatusCode::BAD_REQUEST, "unreadable payload").into_response();
        }
    };
    // Answered at once; the decision and message updates happen in the background.
    match inbound::interaction(&chat, event) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

async fn events(State(chat): State<Chat>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "unreadable event").into_response();
    };
    let retry = crate::front::http::header_text(&headers, "x-slack-retry-num");
    match inbound::event(&chat, &event, &retry).await {
        Value::Null => StatusCode::OK.into_response(),
        answer => Json(answer).into_response(),
    }
}

/// The Slack Web API through slack-morphism, pointed at `[slack] api_url`: over HTTPS to
/// the real Slack, plain HTTP to loopback fakes; one implementation for both.
pub struct SlackApi<H: SlackClientHttpConnector + Send> {
    client: SlackClient<H>,
    token: SlackApiToken,
}

impl SlackApi<SlackClientHyperHttpsConnector> {
    /// Plain HTTP for loopback fakes, HTTPS otherwise.
    pub fn connect(cfg: &SlackConfig) -> Result<Arc<dyn Notifier>, String> {
        // slack-morphism joins the base and the method with a '/' of its own.
        let url = cfg.api_url.trim_end_matches('/').to_string();
        let token = SlackApiToken::new(SlackApiTokenValue(cfg.bot_token.expose().to_string()));
        if url.starts_with("https://") {
            let connector = SlackClientHyperConnector::new()
                .map_err(|e| format!("cannot set up HTTPS for Slack: {e}"))?
                .with_slack_api_url(&url);
            return Ok(Arc::new(SlackApi {
                client: SlackClient::new(connector),
                token,
            }));
        }
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = SlackClientHyperConnector::with_connector(http).with_slack_api_url(&url);
        Ok(Arc::new(SlackApi {
            client: SlackClient::new(connector),
            token,
        }))
    }
}

/// Slack's answers that no retry can change: the message is gone (deleted, or no longer
/// editable), or the channel cannot be posted to by this bot.
const MESSAGE_GONE: [&str; 3] = [
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
];
const CHANNEL_UNUSABLE: [&str; 4] = [
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "restricted_action",
];

fn notify_error(e: SlackClientError) -> NotifyError {
    match e {
        SlackClientError::RateLimitError(r) => NotifyError::RateLimited(r.retry_after),
        SlackClientError::ApiError(api) if MESSAGE_GONE.contains(&api.code.as_str()) => {
            NotifyError::MessageGone(format!("Slack API: {}", api.code))
        }
        SlackClientError::ApiError(api) if CHANNEL_UNUSABLE.contains(&api.code.as_str()) => {
            NotifyError::ChannelUnusable(format!("Slack API: {}", api.code))
        }
        other => NotifyError::Failed(format!(
            "Slack API: {}",
            other.to_string().lines().next().unwrap_or_default()
        )),
    }
}

#[async_trait]
impl<H> Notifier for SlackApi<H>
where
    H: SlackClientHttpConnector + Send + Sync + 'static,
{
    fn platform(&self) -> &'static str {
        "slack"
    }
    async fn post(&self, channel: &str, msg: &ChatMessage) -> Result<String, NotifyError> {
        let session = self.client.open_session(&self.token);
        let req =
            SlackApiChatPostMessageRequest::new(SlackChannelId(channel.to_string()), content(msg));
        let r = session
            .chat_post_message(&req)
            .await
            .map_err(notify_error)?;
        Ok(r.ts.to_string())
    }
    async fn update(
        &self,
        channel: &str,
        message: &str,
        msg: &ChatMessage,
    ) -> Result<(), NotifyError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(channel.to_string()),
            content(msg),
            SlackTs(message.to_string()),
        );
        session.chat_update(&req).await.map_err(notify_error)?;
        Ok(())
    }
    async fn ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), NotifyError> {
        self.ephemeral_message(channel, user, &ChatMessage::text(text))
            .await
    }
    /// `chat.postEphemeral` with the card's blocks.
    async fn ephemeral_message(
        &self,
        channel: &str,
        user: &str,
        msg: &ChatMessage,
    ) -> Result<(), NotifyError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiChatPostEphemeralRequest::new(
            SlackChannelId(channel.to_string()),
            SlackUserId(user.to_string()),
            content(msg),
        );
        session
            .chat_post_ephemeral(&req)
            .await
            .map_err(notify_error)?;
        Ok(())
    }
    fn message_limit(&self) -> usize {
        2900
    }
    /// A Markdown document, as a file in the channel.
    async fn post_file(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        content: &str,
    ) -> Result<(), NotifyError> {
        self.upload(
            channel,
            filename,
            title,
            content.as_bytes(),
            "text/markdown",
        )
        .await
    }
    /// A PNG (a target's charts), as a file in the channel.
    async fn post_image(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        png: &[u8],
    ) -> Result<(), NotifyError> {
        self.upload(channel, filename, title, png, "image/png")
            .await
    }
}

impl<H> SlackApi<H>
where
    H: SlackClientHttpConnector + Send + Sync + 'static,
{
    /// Slack's external upload: ask for an upload URL, send the bytes there, then
    /// complete the upload into the channel.
    async fn upload(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        bytes: &[u8],
        content_type: &str,
    ) -> Result<(), NotifyError> {
        let session = self.client.open_session(&self.token);
        let url = session
            .get_upload_url_external(&SlackApiFilesGetUploadUrlExternalRequest::new(
                filename.to_string(),
                bytes.len(),
            ))
            .await
            .map_err(notify_error)?;
        session
            .files_upload_via_url(&SlackApiFilesUploadViaUrlRequest::new(
                url.upload_url,
                bytes.to_vec(),
                content_type.into(),
            ))
            .await
            .map_err(notify_error)?;
        let file = SlackApiFilesComplete::new(url.file_id).with_title(title.to_string());
        let done = SlackApiFilesCompleteUploadExternalRequest::new(vec![file])
            .with_channel_id(SlackChannelId(channel.to_string()));
        session
            .files_complete_upload_external(&done)
            .await
            .map_err(notify_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TS: &str = "1531420618";
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_documented_example_verifies_at_its_time() {
        assert_eq!(
            verify(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, 1531420618),
            Ok(())
        );
        assert_eq!(
            verify(
                DOC_SECRET,
                DOC_TS,
                DOC_BODY.as_bytes(),
                DOC_SIG,
                1531420618 + 299
            ),
            Ok(())
        );
    }

    #[test]
    fn tampering_staleness_and_garbage_are_refused() {
        let now = 1531420618;
        let mut body = DOC_BODY.to_string();
        body.push('x');
        assert_eq!(
            verify(DOC_SECRET, DOC_TS, body.as_bytes(), DOC_SIG, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("other-secret", DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, now + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, now - 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(DOC_SECRET, "", DOC_BODY.as_bytes(), DOC_SIG, now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), "a2114d57", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(DOC_SECRET, DOC_TS, DOC_BODY.as_bytes(), "v0=zz", now),
            Err(SignatureError::Mismatch)
        );
    }
}
