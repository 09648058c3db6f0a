//! Discord: interaction signatures (Ed25519 over `<timestamp><body>`, 5-minute window)
//! checked in a layer, PING → PONG, application commands turned into the same command
//! text Slack sends, message-component buttons, and serenity's HTTP client for messages.

pub mod gateway; // the Gateway: the outgoing WebSocket connection
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
    ChannelId, CommandDataOption, CommandDataOptionValue, CreateAttachment, Interaction,
    MessageFlags, MessageId,
};
use serenity::interactions_endpoint::Verifier;

use crate::config::DiscordConfig;
use crate::dispatch::{Invocation, Reply};
use crate::front::chat::Chat;
use crate::notify::{ChatMessage, Notifier, NotifyError};

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

/// A card as the interaction's answer: the embed, content and allowed mentions of a post,
/// for everyone in the channel or (`public` false) only the invoking user.
fn card_response(msg: &ChatMessage, public: bool) -> Value {
    let post = serde_json::to_value(render::post(msg)).unwrap_or_else(|_| json!({}));
    // Only what an interaction's answer takes (a post has more: nonce, stickers).
    let mut data = json!({});
    for key in ["content", "embeds", "allowed_mentions", "components"] {
        if let Some(v) = post.get(key) {
            data[key] = v.clone();
        }
    }
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
                move |reply: Reply| {
                    tokio::runtime::Handle::current()
                        .spawn(async move { deliver(&chat, &channel, &user, reply) });
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
                None => message_response("Working on it; the answer follows in the channel."),
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

fn deliver(chat: &Chat, channel: &str, user: &str, reply: Reply) {
    match reply {
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

/// Turn Discord's options into the text the same command has in Slack, so one grammar
/// parses both: `/backup now target:x` → `now x`; `/restore target:x at:… dry_run:true` →
/// `x at … dry-run`.
pub fn options_to_text(command: &str, options: &[CommandDataOption]) -> String {
    let mut words: Vec<String> = Vec::new();
    for opt in options {
        match &opt.value {
            CommandDataOptionValue::SubCommand(inner)
            | CommandDataOptionValue::SubCommandGroup(inner) => {
                words.push(opt.name.clone());
                words.push(options_to_text(command, inner));
            }
            value => {
                let text = match value {
                    CommandDataOptionValue::String(s) => s.clone(),
                    CommandDataOptionValue::Integer(i) => i.to_string(),
                    CommandDataOptionValue::Boolean(b) => b.to_string(),
                    _ => continue,
                };
                match (command, opt.name.as_str()) {
                    ("restore", "at") => words.push(format!("at {text}")),
                    ("restore", "to") => words.push(format!("to {}", quoted(&text))),
                    // A path may hold spaces: the grammar takes it in double quotes.
                    ("restore", "path") => words.push(format!("path {}", quoted(&text))),
                    ("backup", "path") => words.push(quoted(&text)),
                    ("restore", "dry_run") => {
                        if text == "true" {
                            words.push("dry-run".into())
                        }
                    }
                    _ => words.push(text),
                }
            }
        }
    }
    // Keyword options must follow the positional ones in the grammar.
    let (keywords, positional): (Vec<String>, Vec<String>) =
        words.into_iter().filter(|w| !w.is_empty()).partition(|w| {
            w.starts_with("at ") || w.starts_with("to ") || w.starts_with("path ") || w == "dry-run"
        });
    positional
        .into_iter()
        .chain(keywords)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A path as one word of the chat grammar.
fn quoted(text: &str) -> String {
    format!("\"{text}\"")
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
    text.parse()
        .map_err(|_| NotifyError::Failed(format!("not a Discord {what} id: {text}")))
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

    fn opt(name: &str, value: CommandDataOptionValue) -> CommandDataOption {
        serde_json::from_value(json!({"name": name, "type": 3, "value": "x"}))
            .map(|mut o: CommandDataOption| {
                o.value = value;
                o
            })
            .unwrap()
    }

    #[test]
    fn options_become_the_slack_text() {
        let s = |v: &str| CommandDataOptionValue::String(v.into());
        let backup = [opt(
            "now",
            CommandDataOptionValue::SubCommand(vec![opt("target", s("gitea-db"))]),
        )];
        assert_eq!(options_to_text("backup", &backup), "now gitea-db");
        let restore = [
            opt("target", s("gitea-db")),
            opt("dry_run", CommandDataOptionValue::Boolean(true)),
            opt("at", s("2026-11-20 14:00")),
            opt("backup", s("latest")),
        ];
        let text = options_to_text("restore", &restore);
        assert_eq!(
            crate::command::Command::parse("/restore", &text).unwrap(),
            crate::command::Command::parse(
                "/restore",
                "gitea-db latest at 2026-11-20 14:00 dry-run"
            )
            .unwrap(),
            "{text}"
        );
        let partial = [
            opt("target", s("site")),
            opt("to", s("/r/back")),
            opt("path", s("a b.txt")),
        ];
        let text = options_to_text("restore", &partial);
        let crate::command::Command::Restore(args) =
            crate::command::Command::parse("/restore", &text).unwrap()
        else {
            panic!("{text}")
        };
        assert_eq!(
            (args.paths, args.to),
            (vec!["a b.txt".to_string()], Some("/r/back".into()))
        );
        let ls = [opt(
            "ls",
            CommandDataOptionValue::SubCommand(vec![
                opt("target", s("site")),
                opt("path", s("my docs")),
            ]),
        )];
        let text = options_to_text("backup", &ls);
        assert_eq!(
            crate::command::Command::parse("/backup", &text).unwrap(),
            crate::command::Command::BackupLs {
                target: "site".into(),
                path: Some("my docs".into())
            },
            "{text}"
        );
        let status = [opt("status", CommandDataOptionValue::SubCommand(vec![]))];
        assert_eq!(options_to_text("backup", &status), "status");
        let note = [opt(
            "note",
            CommandDataOptionValue::SubCommand(vec![opt("text", s("DNS TTL is 1h"))]),
        )];
        assert_eq!(options_to_text("incident", &note), "note DNS TTL is 1h");
        let run = [opt(
            "run",
            CommandDataOptionValue::SubCommand(vec![
                opt("name", s("pitr-before-bad-write")),
                opt("params", s("before=2026-11-22T09:55:00Z")),
            ]),
        )];
        let text = options_to_text("runbook", &run);
        assert!(
            matches!(
                crate::command::Command::parse("/runbook", &text).unwrap(),
                crate::command::Command::Runbook(crate::command::runbook::RunbookArgs::Run { name, params })
                    if name == "pitr-before-bad-write" && params.len() == 1
            ),
            "{text}"
        );
    }

    #[test]
    fn public_keys_are_checked() {
        assert!(verifier("zz").is_err());
        assert!(verifier("00ff").is_err());
    }
}
