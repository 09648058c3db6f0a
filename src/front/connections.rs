//! The outgoing chat connections `serve` keeps — Slack Socket Mode and the Discord
//! Gateway, each when its section's `mode` asks for it — started with the server and
//! stopped with it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{DiscordMode, SlackMode};
use crate::front::chat::Chat;
use crate::front::discord_gateway::Gateway;
use crate::front::slack_socket::SocketMode;

/// Connections to open (none when every platform uses HTTP).
pub struct Connections {
    slack: Option<SocketMode>,
    discord: Option<Gateway>,
    chat: Chat,
}

/// Connections being kept open.
pub struct Running {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Connections {
    pub fn new(chat: &Chat) -> Connections {
        let config = chat.app.config.clone();
        let slack = config
            .slack
            .as_ref()
            .filter(|s| s.mode == SlackMode::Socket)
            .and_then(|s| SocketMode::new(chat.clone(), s));
        let discord = config
            .discord
            .as_ref()
            .filter(|d| d.mode == DiscordMode::Gateway)
            .map(|d| Gateway::new(chat.clone(), d));
        Connections {
            slack,
            discord,
            chat: chat.clone(),
        }
    }

    pub async fn start(self) -> Running {
        let mut kept = Vec::new();
        self.slack.is_some().then(|| kept.push("slack"));
        self.discord.is_some().then(|| kept.push("discord"));
        // A platform switched back to HTTP keeps no connection state around.
        let db = self.chat.app.db.clone();
        let forget = tokio::task::spawn_blocking(move || db.chat_links_keep(&kept)).await;
        if let Ok(Err(e)) = forget {
            tracing::warn!("clearing old chat connection states: {e}");
        }
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        if let Some(s) = self.slack {
            tasks.push(tokio::spawn(s.run(stop.clone())));
        }
        if let Some(d) = self.discord {
            tasks.push(tokio::spawn(d.run(stop.clone())));
        }
        Running { stop, tasks }
    }
}

impl Running {
    /// Close the connections (envelopes in flight are still acknowledged) and record them
    /// as stopped.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(8), task).await;
        }
    }
}
