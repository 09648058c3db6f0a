//! Discord: interaction signatures (Ed25519 over `<timestamp><body>`, 5-minute window)
//! checked in a layer, PING → PONG, application commands turned into the same command
//! text Slack sends, message-component buttons, and serenity's HTTP client for messages.

pub mod gateway; // the Gateway: the outgoing WebSocket connection
mod options; // a command's options as the text Slack sends for it
mod render; // the one place a ChatMessage becomes an embed, content and buttons

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use serenity::all::{
    ApplicationId, ChannelId, CreateAttachment, Interaction, MessageFlags, MessageId,
};
use serenity::interactions_endpoint::Verifier;

use crate::config::DiscordConfig;
use crate::dispatch::{Invocation, Reply};
use crate::front::chat::Chat;
use crate::notify::{ChatMessage, Notifier, NotifyError};

pub use options::options_to_text;

use render::MAX_CONTENT;
/// Interaction response flag: only the invoking user sees the message.
const EPHEMERAL: u64 = 1 << 6;

/// Parse the application's public key (64 hex digits) into a verifier.
pub fn verifier(public_key: &str) -> Result<Verifier, String> {
    let bytes =
        hex::decode(public_key.trim()).map_err(|_| "discord.public_key: not hex".to_string())?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "discord.public_key: must be 32 bytes (64 hex digits)".to_string())?;
    Verifier::try_new(key).map_err(|_| "discord.public_key: not a valid Ed25519 key".to_string())
}

pub fn routes(chat: Chat, verifier: Verifier) -> Router {
    Router::new()
        .route("/discord/interactions", post(interactions))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(verifier),
            check_signature,
        ))
        .with_state(chat)
}

async fn check_signature(
    State(verifier): State<Arc<Verifier>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match crate::front::http::read_signed_body(body).await {
        Ok(b) => b,
        Err(too_large) => return too_large,
    };
    let header = |name: &str| crate::front::http::header_text(&parts.headers, name);
    let (signature, timestamp) = (
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
    );
    let fresh = timestamp.parse::<i64>().is_ok_and(|ts| {
        (chrono::Utc::now().timestamp() - ts).abs() <= crate::front::slack::MAX_SKEW_SECONDS
    });
    if !fresh || verifier.verify(&signature, &timestamp, &bytes).is_err() {
        tracing::warn!(path = %parts.uri.path(), fresh, "refused a Discord request: bad or stale signature");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// An answer everyone in the channel sees.
fn public_response(text: &str) -> Value {
    let content: String = text.chars().take(MAX_CONTENT).collect();
    json!({"type": 4, "data": {"content": content}})
}

/// A message as an interaction's answer takes it: the content, embeds, allowed mentions
/// and buttons of a post (a post has more: nonce, stickers).
fn answer_data(msg: &ChatMessage) -> Value {
    let post = serde_json::to_value(render::post(msg)).unwrap_or_else(|_| json!({}));
    let mut data = json!({});
    for key in ["content", "embeds", "allowed_mentions", "components"] {
        if let Some(v) = post.get(key) {
            data[key] = v.clone();
        }
    }
    data
}

/// A card as the interaction's answer, for everyone in the channel or (`public` false)
/// only the invoking user.
fn card_response(msg: &ChatMessage, public: bool) -> Value {
    let mut data = answer_data(msg);
    if !public {
        data["flags"] = json!(EPHEMERAL);
    }
    json!({"type": 4, "data": data})
}

fn message_response(text: &str) -> Value {
    let content: String = text.chars().take(MAX_CONTENT).collect();
    json!({"type": 4, "data": {"content": content, "flags": EPHEMERAL}})
}

/// The ephemeral question a click came from, replaced by the answer (buttons gone).
fn replace_question(text: &str) -> Value {
    let content: String = text.chars().take(MAX_CONTENT).collect();
    json!({"type": 7, "data": {"content": content, "components": []}})
}

async fn interactions(State(chat): State<Chat>, body: Bytes) -> Response {
    let interaction = match serde_json::from_slice::<Interaction>(&body) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("unreadable Discord interaction: {e}");
            return (StatusCode::BAD_REQUEST, "unreadable interaction").into_response();
        }
    };
    match interaction_response(&chat, interaction).await {
        Ok(answer) => Json(answer).into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

/// What lifeboat answers an interaction with, whichever transport brought it (the HTTP
/// endpoint returns it as the response body; the Gateway client posts it to the
/// interaction's callback): PING → PONG, a command dispatched within the 3-second budget,
/// a button click decided. Err: an interaction kind lifeboat does not take.
pub async fn interaction_response(
    chat: &Chat,
    interaction: Interaction,
) -> Result<Value, &'static str> {
    match interaction {
        Interaction::Ping(_) => Ok(json!({"type": 1})),
        Interaction::Command(cmd) => {
            let channel = cmd.channel_id.to_string();
            let user = cmd.user.id.to_string();
            let inv = Invocation {
                actor: format!("discord:{user}"),
                channel: format!("discord:{channel}"),
                slash: format!("/{}", cmd.data.name),
                text: options_to_text(&cmd.data.name, &cmd.data.options),
            };
            let late = {
                let chat = chat.clone();
                let (channel, user) = (channel.clone(), user.clone());
                let request = format!("{}/{}", cmd.application_id, cmd.token);
                move |reply: Reply| {
                    tokio::runtime::Handle::current().spawn(async move {
                        answer_late(&chat, &request, &reply).await;
                        deliver(&chat, &channel, &user, reply)
                    });
                }
            };
            Ok(match chat.dispatch(inv, late).await {
                Some(Reply::Public(text)) => public_response(&text),
                Some(Reply::Card { public, msg, file }) => {
                    if let Some(doc) = file {
                        chat.post_document(
                            "discord",
                            channel,
                            doc.title,
                            doc.filename,
                            doc.content,
                        );
                    }
                    card_response(&msg, public)
                }
                Some(reply) => {
                    let text = reply.text().to_string();
                    deliver(chat, &channel, &user, reply);
                    message_response(&text)
                }
                // Past the budget: "thinking…", seen only by the asker, until `answer_late`
                // replaces it with the answer.
                None => json!({"type": 5, "data": {"flags": EPHEMERAL}}),
            })
        }
        Interaction::Component(click) => {
            let Some((action, id)) = click.data.custom_id.split_once(':') else {
                return Ok(message_response("unknown button"));
            };
            // Asked from an ephemeral Confirm/Cancel: the answer replaces that question.
            let from_question = click
                .message
                .flags
                .is_some_and(|f| f.contains(MessageFlags::EPHEMERAL));
            if action == "cancel" {
                return Ok(replace_question("Not approved: nothing was changed."));
            }
            if let Some(asked) = action.strip_prefix(render::ASK) {
                match chat.confirm_of(id).await {
                    Ok(Some(confirm)) => return Ok(render::ask(&confirm, asked, id)),
                    Err(why) => return Ok(message_response(&why)),
                    // No longer waiting (or unknown): the click itself says why.
                    Ok(None) => {}
                }
            }
            let action = action.strip_prefix(render::ASK).unwrap_or(action);
            let private = chat
                .click(
                    "discord",
                    id.to_string(),
                    format!("discord:{}", click.user.id),
                    click.channel_id.to_string(),
                    action,
                )
                .await;
            Ok(match (private, from_question) {
                (Some(text), true) => replace_question(&text),
                (None, true) => replace_question("✅ Your approval is recorded."),
                (Some(text), false) => message_response(&text),
                // The request's message was edited through the bot; acknowledge the click.
                (None, false) => json!({"type": 6}),
            })
        }
        _ => Err("unsupported interaction"),
    }
}

/// A reply that came after the interaction was deferred: the deferred answer, which only
/// the asker sees, becomes the reply's private part (a private card whole, otherwise its
/// text); what belongs in the channel is posted there by `deliver`.
async fn answer_late(chat: &Chat, request: &str, reply: &Reply) {
    let Some(discord) = &chat.discord else {
        return;
    };
    let answer = match reply {
        Reply::Card {
            public: false, msg, ..
        } => msg.clone(),
        Reply::Card { public: true, .. } | Reply::Public(_) => {
            ChatMessage::text("Answered in the channel.")
        }
        other => ChatMessage::text(other.text()),
    };
    let sent = crate::notify::with_retries("answering a deferred interaction", || {
        discord.answer_request(request, &answer)
    })
    .await;
    if let Err(e) = sent {
        tracing::error!("could not answer a deferred Discord interaction: {e}");
    }
}

fn deliver(chat: &Chat, channel: &str, user: &str, reply: Reply) {
    match reply {
        // Answered in the interaction's response (`answer_late` when it came late).
        Reply::Private(_) => {}
        // Only a late reply gets here: the interaction's answer is gone, so post it.
        Reply::Public(text) => {
            chat.post_public("discord", channel.to_string(), ChatMessage::text(text))
        }
        Reply::Card { public, msg, file } => {
            if public {
                chat.post_public("discord", channel.to_string(), msg);
            }
            if let Some(doc) = file {
                chat.post_document(
                    "discord",
                    channel.to_string(),
                    doc.title,
                    doc.filename,
                    doc.content,
                );
            }
        }
        Reply::Document {
            title,
            filename,
            body,
            ..
        } => chat.post_document("discord", channel.to_string(), title, filename, body),
        Reply::Job { job, .. } => chat.start_job(
            "discord",
            channel.to_string(),
            format!("discord:{user}"),
            job,
            None,
        ),
        Reply::Approval { approval, plan, .. } => chat.post_approval("discord", *approval, *plan),
    }
}

/// Discord's HTTP API through serenity, pointed at `[discord] api_url`.
pub struct DiscordApi {
    http: serenity::http::Http,
}

impl DiscordApi {
    pub fn connect(cfg: &DiscordConfig) -> Arc<dyn Notifier> {
        Arc::new(DiscordApi {
            http: http_client(cfg),
        })
    }
}

/// serenity's HTTP client for `[discord] api_url` and the bot token.
pub fn http_client(cfg: &DiscordConfig) -> serenity::http::Http {
    let mut builder = serenity::http::HttpBuilder::new(cfg.bot_token.expose());
    let base = cfg
        .api_url
        .trim_end_matches('/')
        .trim_end_matches("/api/v10");
    if base != "https://discord.com" {
        // serenity reaches another host only through its proxy setting, and only
        // with its own rate limiter off; 429s are then handled by `with_retries`.
        builder = builder.proxy(base).ratelimiter_disabled(true);
    }
    builder.build()
}

/// Discord's JSON error codes that no retry can change: Unknown Message; and Unknown
/// Channel, Missing Access, Missing Permissions (the bot cannot post there).
const MESSAGE_GONE: [isize; 1] = [10008];
const CHANNEL_UNUSABLE: [isize; 3] = [10003, 50001, 50013];

fn notify_error(e: serenity::Error) -> NotifyError {
    if let serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) = &e {
        if r.status_code.as_u16() == 429 {
            // serenity does not expose Retry-After here; `with_retries` backs off instead.
            return NotifyError::RateLimited(None);
        }
        let why = format!("Discord API: {} ({})", r.error.message, r.error.code);
        if MESSAGE_GONE.contains(&r.error.code) {
            return NotifyError::MessageGone(why);
        }
        if CHANNEL_UNUSABLE.contains(&r.error.code) {
            return NotifyError::ChannelUnusable(why);
        }
    }
    NotifyError::Failed(format!("Discord API: {e}"))
}

fn parse_id(what: &str, text: &str) -> Result<u64, NotifyError> {
    // Snowflakes are never 0 (serenity's id types panic on it).
    text.parse()
        .ok()
        .filter(|id| *id != 0)
        .ok_or_else(|| NotifyError::Failed(format!("not a Discord {what} id: {text}")))
}

#[async_trait]
impl Notifier for DiscordApi {
    fn platform(&self) -> &'static str {
        "discord"
    }
    async fn post(&self, channel: &str, msg: &ChatMessage) -> Result<String, NotifyError> {
        let channel = ChannelId::new(parse_id("channel", channel)?);
        let builder = render::post(msg);
        let sent = self
            .http
            .send_message(channel, Vec::new(), &builder)
            .await
            .map_err(notify_error)?;
        Ok(sent.id.to_string())
    }
    async fn update(
        &self,
        channel: &str,
        message: &str,
        msg: &ChatMessage,
    ) -> Result<(), NotifyError> {
        let channel = ChannelId::new(parse_id("channel", channel)?);
        let message = MessageId::new(parse_id("message", message)?);
        let builder = render::edit(msg);
        self.http
            .edit_message(channel, message, &builder, Vec::new())
            .await
            .map_err(notify_error)?;
        Ok(())
    }
    async fn ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), NotifyError> {
        // Discord has private messages only as interaction responses; outside one there
        // is nowhere private to say it, and the channel is not the place.
        tracing::info!("not delivered to discord:{user} in {channel} (no private channel): {text}");
        Ok(())
    }
    /// The deferred answer edited through the interaction's webhook (PATCH
    /// `/webhooks/{application id}/{token}/messages/@original`): it stays ephemeral.
    async fn answer_request(&self, request: &str, msg: &ChatMessage) -> Result<(), NotifyError> {
        let (application, token) = request
            .split_once('/')
            .ok_or_else(|| NotifyError::Failed(format!("not an interaction: {request}")))?;
        let application = ApplicationId::new(parse_id("application", application)?);
        // serenity takes the application from the client; it is the same for every
        // interaction this bot receives.
        self.http.set_application_id(application);
        self.http
            .edit_original_interaction_response(token, &answer_data(msg), Vec::new())
            .await
            .map_err(notify_error)?;
        Ok(())
    }
    fn message_limit(&self) -> usize {
        MAX_CONTENT
    }
    /// A message with the document attached (multipart upload).
    async fn post_file(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        content: &str,
    ) -> Result<(), NotifyError> {
        self.post_file_bytes(channel, filename, title, content.as_bytes().to_vec())
            .await
    }
    /// A PNG (a target's charts), attached to a message the same way.
    async fn post_image(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        png: &[u8],
    ) -> Result<(), NotifyError> {
        self.post_file_bytes(channel, filename, title, png.to_vec())
            .await
    }
}

impl DiscordApi {
    /// A message carrying `bytes` as an attachment (Discord's multipart upload).
    async fn post_file_bytes(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        bytes: Vec<u8>,
    ) -> Result<(), NotifyError> {
        let channel = ChannelId::new(parse_id("channel", channel)?);
        let file = CreateAttachment::bytes(bytes, filename.to_string());
        let builder = render::post(&ChatMessage::text(title));
        self.http
            .send_message(channel, vec![file], &builder)
            .await
            .map_err(notify_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_answer_carries_only_what_an_interaction_response_takes() {
        let card = crate::card::Card::new(crate::card::Tone::Bad, "🚨 Incident #1: x")
            .fact("People", crate::card::Line::new().person("discord:5551"));
        let answer = card_response(&ChatMessage::card(card.clone()), false);
        assert_eq!(answer["type"], 4);
        let data = answer["data"].as_object().unwrap();
        // Discord's interaction callback data: content, embeds, allowed_mentions, flags,
        // components, attachments, tts, poll.
        for key in data.keys() {
            assert!(
                [
                    "content",
                    "embeds",
                    "allowed_mentions",
                    "flags",
                    "components"
                ]
                .contains(&key.as_str()),
                "{key} in {answer}"
            );
        }
        assert_eq!(data["flags"], EPHEMERAL);
        assert_eq!(data["embeds"][0]["fields"][0]["value"], "<@5551>");
        let public = card_response(&ChatMessage::card(card), true);
        assert!(public["data"].get("flags").is_none(), "{public}");
    }

    #[test]
    fn public_keys_are_checked() {
        assert!(verifier("zz").is_err());
        assert!(verifier("00ff").is_err());
    }
}
