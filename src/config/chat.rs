//! `[slack]` and `[discord]`: the bots' credentials and how each chat platform reaches
//! lifeboat — Slack over signed HTTP requests or a Socket Mode WebSocket, Discord over the
//! signed interactions endpoint or its Gateway — and the checks that each mode has the
//! credentials it needs.

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// "http" (default) or "socket"; see `SlackMode`.
    #[serde(default)]
    pub mode: SlackMode,
    /// Required in HTTP mode; in socket mode it also turns the HTTP endpoints on.
    pub signing_secret: Option<Secret>,
    /// The app-level token (xapp-...) Socket Mode connects with.
    pub app_token: Option<Secret>,
    pub bot_token: Secret,
    pub alert_channel: Option<String>,
    #[serde(default = "default_slack_api")]
    pub api_url: String,
}
fn default_slack_api() -> String {
    "https://slack.com/api/".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// "http" (default) or "gateway"; see `DiscordMode`.
    #[serde(default)]
    pub mode: DiscordMode,
    /// Required in HTTP mode; in gateway mode it also turns the HTTP endpoint on.
    pub public_key: Option<Secret>,
    pub bot_token: Secret,
    pub application_id: String,
    pub alert_channel: Option<String>,
    #[serde(default = "default_discord_api")]
    pub api_url: String,
}
fn default_discord_api() -> String {
    "https://discord.com/api/v10".into()
}

/// `[slack] mode`: how Slack's commands, clicks and events arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackMode {
    /// Slack POSTs to lifeboat's public `/slack/*` URLs, signed with the signing secret.
    #[default]
    Http,
    /// lifeboat opens an outgoing WebSocket to Slack with the app-level token.
    Socket,
}

/// `[discord] mode`: how Discord's interactions arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscordMode {
    /// Discord POSTs to lifeboat's public `/discord/interactions`, signed with Ed25519.
    #[default]
    Http,
    /// lifeboat keeps an outgoing Gateway connection with the bot token.
    Gateway,
}

impl SlackMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SlackMode::Http => "http",
            SlackMode::Socket => "socket",
        }
    }
}

impl DiscordMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscordMode::Http => "http",
            DiscordMode::Gateway => "gateway",
        }
    }
}

/// HTTP mode needs the signing secret; socket mode needs an app-level token (`xapp-`),
/// and serves the signed HTTP endpoints too only when a signing secret is also given.
pub fn validate_slack(cfg: &SlackConfig) -> Result<(), String> {
    match cfg.mode {
        SlackMode::Http => {
            if cfg.signing_secret.is_none() {
                return Err(
                    "slack.signing_secret: required with mode = \"http\" (Slack signs \
                     every request with it); to receive Slack without a public URL, set \
                     mode = \"socket\" and app_token instead"
                        .into(),
                );
            }
            if cfg.app_token.is_some() {
                return Err(
                    "slack.app_token: only used with mode = \"socket\"; remove it or \
                     set mode = \"socket\""
                        .into(),
                );
            }
        }
        SlackMode::Socket => {
            let Some(token) = &cfg.app_token else {
                return Err(
                    "slack.app_token: required with mode = \"socket\": an app-level \
                     token (xapp-...) with the connections:write scope, from the Slack \
                     app's Basic Information page"
                        .into(),
                );
            };
            if !token.expose().starts_with("xapp-") {
                return Err("slack.app_token: not an app-level token (those start with \
                     \"xapp-\"); the bot token (xoxb-...) belongs in bot_token"
                    .into());
            }
        }
    }
    Ok(())
}

/// HTTP mode needs the public key; gateway mode does not (the bot token authenticates
/// the connection), and serves the signed endpoint too only when a key is given.
pub fn validate_discord(cfg: &DiscordConfig) -> Result<(), String> {
    if cfg.mode == DiscordMode::Http && cfg.public_key.is_none() {
        return Err(
            "discord.public_key: required with mode = \"http\" (Discord signs \
             every interaction with the application's key); to receive Discord without a \
             public URL, set mode = \"gateway\""
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(section: &str) -> Result<Config, String> {
        let env = |name: &str| match name {
            "SECRET" => Some("s3cr3t".to_string()),
            "XAPP" => Some("xapp-1-A0-123-abc".to_string()),
            "XOXB" => Some("xoxb-123".to_string()),
            "KEY" => Some("ab".repeat(32)),
            _ => None,
        };
        Config::parse(section, "t.toml", std::path::Path::new("."), &env).map_err(|e| e.message)
    }

    #[test]
    fn http_stays_the_default_and_needs_the_signing_secret() {
        let c =
            parse("[slack]\nsigning_secret = \"${SECRET}\"\nbot_token = \"${XOXB}\"\n").unwrap();
        assert_eq!(c.slack.unwrap().mode, super::SlackMode::Http);
        let e = parse("[slack]\nbot_token = \"${XOXB}\"\n").unwrap_err();
        assert!(
            e.contains("slack.signing_secret: required with mode = \"http\""),
            "{e}"
        );
        let e = parse(
            "[slack]\nsigning_secret = \"${SECRET}\"\nbot_token = \"${XOXB}\"\napp_token = \"${XAPP}\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("slack.app_token: only used with mode = \"socket\""),
            "{e}"
        );
    }

    #[test]
    fn socket_mode_needs_an_app_level_token_and_no_signing_secret() {
        let c =
            parse("[slack]\nmode = \"socket\"\nbot_token = \"${XOXB}\"\napp_token = \"${XAPP}\"\n")
                .unwrap();
        let s = c.slack.unwrap();
        assert_eq!(s.mode, super::SlackMode::Socket);
        assert!(s.signing_secret.is_none());
        let e = parse("[slack]\nmode = \"socket\"\nbot_token = \"${XOXB}\"\n").unwrap_err();
        assert!(
            e.contains("slack.app_token: required with mode = \"socket\""),
            "{e}"
        );
        let e =
            parse("[slack]\nmode = \"socket\"\nbot_token = \"${XOXB}\"\napp_token = \"${XOXB}\"\n")
                .unwrap_err();
        assert!(e.contains("not an app-level token"), "{e}");
        assert!(!e.contains("xoxb-123"), "the secret is not shown: {e}");
        let e =
            parse("[slack]\nmode = \"socket\"\nbot_token = \"${XOXB}\"\napp_token = \"xapp-1\"\n")
                .unwrap_err();
        assert!(
            e.contains("slack.app_token: secrets must come from the environment"),
            "{e}"
        );
        let e = parse("[slack]\nmode = \"websocket\"\nbot_token = \"${XOXB}\"\n").unwrap_err();
        assert!(
            e.contains("unknown variant `websocket`") && e.contains("socket"),
            "{e}"
        );
    }

    #[test]
    fn gateway_mode_makes_the_public_key_optional() {
        let base = "bot_token = \"${XOXB}\"\napplication_id = \"42\"\n";
        let c = parse(&format!("[discord]\nmode = \"gateway\"\n{base}")).unwrap();
        assert_eq!(c.discord.unwrap().mode, super::DiscordMode::Gateway);
        let e = parse(&format!("[discord]\n{base}")).unwrap_err();
        assert!(
            e.contains("discord.public_key: required with mode = \"http\""),
            "{e}"
        );
        parse(&format!("[discord]\npublic_key = \"${{KEY}}\"\n{base}")).unwrap();
    }
}
