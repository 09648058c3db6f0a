//! What lifeboat does with a Slack slash command, button click or event, whichever
//! transport brought it: a signed HTTP request (`front::slack`) or a Socket Mode envelope
//! (`front::slack::socket`). Both hand over the same typed payloads and send back the
//! returned JSON (as the HTTP response body, or as the acknowledgement's payload), so
//! parsing, authorization, audit and jobs are one code path.

use serde_json::{Value, json};
use slack_morphism::prelude::*;

use crate::dispatch::{Invocation, Reply};
use crate::front::chat::Chat;
use crate::notify::ChatMessage;

fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": text})
}

/// A slash command: dispatched within the 3-second budget. Returns the answer Slack
/// shows (ephemeral, or in the channel for public replies).
pub async fn command(chat: &Chat, event: SlackCommandEvent) -> Value {
    let channel = event.channel_id.to_string();
    let user = event.user_id.to_string();
    let inv = Invocation {
        actor: format!("slack:{user}"),
        channel: format!("slack:{channel}"),
        slash: event.command.to_string(),
        text: event.text.unwrap_or_default(),
    };
    let late = {
        let chat = chat.clone();
        let (channel, user) = (channel.clone(), user.clone());
        move |reply: Reply| {
            let handle = tokio::runtime::Handle::current();
            handle.spawn(async move { deliver(&chat, &channel, &user, reply, true).await });
        }
    };
    match chat.dispatch(inv, late).await {
        Some(reply) => {
            let text = reply.text().to_string();
            let answer = match &reply {
                Reply::Public(_) => json!({"response_type": "in_channel", "text": text}),
                // A card answers with its blocks, in the channel or for the requester.
                Reply::Card { public, msg, .. } => {
                    let mut answer = serde_json::to_value(super::render::content(msg))
                        .unwrap_or_else(|_| json!({"text": text}));
                    answer["response_type"] =
                        json!(if *public { "in_channel" } else { "ephemeral" });
                    answer
                }
                _ => ephemeral(&text),
            };
            deliver(chat, &channel, &user, reply, false).await;
            answer
        }
        None => ephemeral("Working on it; the answer follows in a moment."),
    }
}

/// Carry out a reply: start its job or post its approval request. With `late`, the
/// acknowledgement text is also sent as an ephemeral message (the answer is gone).
async fn deliver(chat: &Chat, channel: &str, user: &str, reply: Reply, late: bool) {
    if late && let Some(n) = &chat.slack {
        let _ = match &reply {
            Reply::Public(text) => n.post(channel, &ChatMessage::text(text)).await.map(|_| ()),
            Reply::Card {
                public: true, msg, ..
            } => n.post(channel, msg).await.map(|_| ()),
            Reply::Card { msg, .. } => n.ephemeral_message(channel, user, msg).await,
            other => n.ephemeral(channel, user, other.text()).await,
        };
    }
    match reply {
        Reply::Private(_) | Reply::Public(_) => {}
        Reply::Card { file, .. } => {
            if let Some(doc) = file {
                chat.post_document(
                    "slack",
                    channel.to_string(),
                    doc.title,
                    doc.filename,
                    doc.content,
                )
            }
        }
        Reply::Document {
            title,
            filename,
            body,
            ..
        } => chat.post_document("slack", channel.to_string(), title, filename, body),
        Reply::Job { job, .. } => chat.start_job(
            "slack",
            channel.to_string(),
            format!("slack:{user}"),
            job,
            None,
        ),
        Reply::Approval { approval, plan, .. } => chat.post_approval("slack", *approval, *plan),
    }
}

/// A Block Kit interaction. Button clicks are acted on in the background (the answer to
/// Slack must not wait for the decision and the message updates); other kinds are
/// acknowledged and ignored. Err: what makes the click unusable.
pub fn interaction(chat: &Chat, event: SlackInteractionEvent) -> Result<(), &'static str> {
    let SlackInteractionEvent::BlockActions(event) = event else {
        return Ok(());
    };
    let (Some(user), Some(channel), Some(action)) = (
        event.user.as_ref().map(|u| u.id.to_string()),
        event.channel.as_ref().map(|c| c.id.to_string()),
        event.actions.as_ref().and_then(|a| a.first()),
    ) else {
        return Err("incomplete block action");
    };
    let approval_id = action.value.clone().unwrap_or_default();
    let action_id = action.action_id.to_string();
    let task_chat = chat.clone();
    chat.tasks().spawn(async move {
        let private = task_chat
            .click(
                "slack",
                approval_id,
                format!("slack:{user}"),
                channel.clone(),
                &action_id,
            )
            .await;
        if let (Some(text), Some(n)) = (private, &task_chat.slack) {
            let _ = crate::notify::with_retries("telling a user why", || {
                n.ephemeral(&channel, &user, &text)
            })
            .await;
        }
    });
    Ok(())
}

/// An Events API payload (`url_verification` or an `event_callback`). An event already
/// handled (Slack retried it: `retry` is its retry number) is not acted on again.
/// Returns the answer's body (the challenge for `url_verification`, else empty).
pub async fn event(chat: &Chat, event: &Value, retry: &str) -> Value {
    match event["type"].as_str() {
        Some("url_verification") => json!({"challenge": event["challenge"]}),
        Some("event_callback") => {
            let id = event["event_id"].as_str().unwrap_or_default().to_string();
            let db = chat.app.db.clone();
            let key = id.clone();
            let first = tokio::task::spawn_blocking(move || db.chat_event_first_seen(&key)).await;
            if !matches!(first, Ok(Ok(true))) {
                tracing::info!(
                    "Slack event {id} already handled (retry {retry}); not acting again"
                );
                return Value::Null;
            }
            if event["event"]["type"] == "app_mention"
                && let (Some(channel), Some(n)) =
                    (event["event"]["channel"].as_str(), chat.slack.clone())
            {
                let channel = channel.to_string();
                chat.tasks().spawn(async move {
                    let msg = ChatMessage::text(crate::command::help_text());
                    if let Err(e) = crate::notify::with_retries("answering a mention", || {
                        n.post(&channel, &msg)
                    })
                    .await
                    {
                        tracing::error!("could not answer a mention: {e}");
                    }
                });
            }
            Value::Null
        }
        _ => Value::Null,
    }
}
