//! The Discord Gateway: serenity's client keeps an outgoing WebSocket (identify, heartbeat,
//! resume after a drop), so Discord needs no public interactions URL. Each
//! INTERACTION_CREATE goes through `discord::interaction_response`, exactly as a signed
//! HTTP interaction does, and the answer is posted to the interaction's callback.
//!
//! The gateway URL comes from `GET /gateway` through the same HTTP client (and proxy) as
//! every other Discord call, so `[discord] api_url` points both at a test server; a plain
//! `ws://` URL works. serenity reconnects by itself (a resume at once, then a new session
//! every 5 s); when its client stops altogether (e.g. a refused token) it is rebuilt here
//! with exponential backoff.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serenity::all::{
    ClientBuilder, ConnectionStage, Context, Event, EventHandler, GatewayIntents, Interaction,
    RawEventHandler, Ready, ShardManager,
};
use tokio_util::sync::CancellationToken;

use crate::config::DiscordConfig;
use crate::front::chat::Chat;
use crate::front::chat::links::{Backoff, Link};
use crate::front::discord::{http_client, interaction_response};

/// How often the shards' state is looked at for `/healthz` and `/metrics`.
const WATCH_EVERY: Duration = Duration::from_millis(500);

struct Handler {
    chat: Chat,
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        tracing::info!("Discord Gateway: ready as {}", ready.user.name);
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let (id, token) = (interaction.id(), interaction.token().to_string());
        let answer = match interaction_response(&self.chat, interaction).await {
            Ok(answer) => answer,
            Err(why) => {
                tracing::warn!("Discord Gateway: {why}; not answered");
                return;
            }
        };
        let sent = ctx
            .http
            .create_interaction_response(id, &token, &answer, Vec::new())
            .await;
        if let Err(e) = sent {
            tracing::error!("Discord Gateway: answering interaction {id}: {e}");
        }
    }
}

/// serenity files an INTERACTION_CREATE it cannot read as an unknown event and drops it
/// silently; lifeboat says so in the log (the connection carries on).
struct Unreadable;

#[async_trait]
impl RawEventHandler for Unreadable {
    async fn raw_event(&self, _ctx: Context, event: Event) {
        if let Event::Unknown(u) = event
            && u.kind == "INTERACTION_CREATE"
        {
            let text: String = u.value.to_string().chars().take(200).collect();
            tracing::warn!("Discord Gateway: dropped an unreadable interaction: {text}");
        }
    }
}

pub struct Gateway {
    chat: Chat,
    cfg: DiscordConfig,
    link: Link,
}

impl Gateway {
    pub fn new(chat: Chat, cfg: &DiscordConfig) -> Gateway {
        let link = Link::new(chat.app.db.clone(), "discord", "gateway");
        Gateway {
            chat,
            cfg: cfg.clone(),
            link,
        }
    }

    /// Stay connected until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::default();
        self.link.connecting("").await;
        loop {
            // Interactions arrive whatever the intents; lifeboat reads no other events.
            let builder =
                ClientBuilder::new_with_http(http_client(&self.cfg), GatewayIntents::empty());
            let client = builder
                .event_handler(Handler {
                    chat: self.chat.clone(),
                })
                .raw_event_handler(Unreadable)
                .await;
            let outcome = match client {
                Ok(mut client) => {
                    let shards = client.shard_manager.clone();
                    let watch = tokio::spawn(watch(shards.clone(), self.link.clone()));
                    let outcome = tokio::select! {
                        r = client.start() => Some(r),
                        _ = stop.cancelled() => None,
                    };
                    watch.abort();
                    if outcome.is_none() {
                        shards.shutdown_all().await;
                    }
                    outcome
                }
                Err(e) => Some(Err(e)),
            };
            let Some(result) = outcome else { break };
            let why = match result {
                Ok(()) => "the Gateway client stopped".to_string(),
                Err(e) => format!("Gateway: {e}"),
            };
            if !self.link.retry_after(&why, &mut backoff, &stop).await {
                break;
            }
        }
        self.link.stopped().await;
    }
}

/// Follow the shard's stage: connected while a shard runner is in the Connected stage.
/// serenity reports a lost connection only through this state (a runner that fails to
/// resume is replaced, not announced).
async fn watch(shards: Arc<ShardManager>, link: Link) {
    let mut last: Option<bool> = None;
    loop {
        let stage = {
            let runners = shards.runners.lock().await;
            runners.values().map(|r| r.stage).next()
        };
        let connected = stage == Some(ConnectionStage::Connected);
        if last != Some(connected) {
            if connected {
                link.connected("").await;
            } else if last.is_some() {
                let what = stage.map_or("no shard running".to_string(), |s| format!("{s:?}"));
                link.disconnected(&format!("reconnecting ({what})")).await;
            }
            last = Some(connected);
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}
