//! `[server]`: where `serve` listens, where its state database, scratch space and runbooks
//! live, how many jobs it runs at once, how its own state goes off-site, and the
//! heartbeat that tells an outside monitor it is alive.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{HumanDuration, Secret, StateBackup, is_http_url};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_state")]
    pub state: PathBuf,
    /// Where temporary copies are made (database snapshots, verify scratch).
    /// Default: `<state dir>/scratch`.
    pub scratch: Option<PathBuf>,
    /// How many jobs `serve` runs at once.
    #[serde(default = "default_max_jobs")]
    pub max_jobs: usize,
    /// The directory of runbook files (`*.toml`). Default: `runbooks` beside the config
    /// directory.
    #[serde(default = "default_runbooks")]
    pub runbooks: PathBuf,
    /// Where and how often lifeboat's own state goes off-site (see `state_backup.rs`).
    pub state_backup: Option<StateBackup>,
    /// An outside monitor `serve` requests every interval while its scheduler runs.
    pub heartbeat: Option<Heartbeat>,
}

/// `[server] heartbeat = { url = "${...}", every = "5m" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The monitor's URL (healthchecks.io style); a secret, from the environment.
    pub url: Secret,
    #[serde(default = "default_every")]
    pub every: HumanDuration,
}

/// The shortest heartbeat interval: monitors count in minutes, and a shorter one only
/// adds requests.
pub const HEARTBEAT_MIN_EVERY: Duration = Duration::from_secs(10);

fn default_every() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            state: default_state(),
            scratch: None,
            max_jobs: default_max_jobs(),
            runbooks: default_runbooks(),
            state_backup: None,
            heartbeat: None,
        }
    }
}

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.max_jobs == 0 {
            return Err("server.max_jobs: must be at least 1".into());
        }
        if let Some(h) = &self.heartbeat {
            if !is_http_url(h.url.expose()) {
                // The value is a secret: say what is wrong without showing it.
                return Err(
                    "server.heartbeat.url: must be a URL starting with http:// or https://".into(),
                );
            }
            if h.every.0 < HEARTBEAT_MIN_EVERY {
                return Err("server.heartbeat.every: must be at least 10s".into());
            }
        }
        Ok(())
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_state() -> PathBuf {
    PathBuf::from("../var/lifeboat.db")
}
fn default_runbooks() -> PathBuf {
    PathBuf::from("../runbooks")
}
fn default_max_jobs() -> usize {
    2
}

#[cfg(test)]
mod tests {
    use crate::config::parse_test as parse;

    #[test]
    fn unknown_key_is_named() {
        let e = parse("[server]\nlisten = \"x\"\nlistne = 1\n").unwrap_err();
        assert!(e.to_string().contains("listne"), "{e}");
        assert!(e.to_string().starts_with("test.toml"), "{e}");
    }

    #[test]
    fn max_jobs_must_be_at_least_one() {
        let e = parse("[server]\nmax_jobs = 0\n").unwrap_err();
        assert!(e.to_string().contains("server.max_jobs"), "{e}");
        assert_eq!(
            parse("[server]\nmax_jobs = 3\n").unwrap().server.max_jobs,
            3
        );
    }

    #[test]
    fn the_heartbeat_url_comes_from_the_environment_and_is_checked_unseen() {
        let ok =
            parse("[server]\nheartbeat = { url = \"https://hc.example/${TOKEN}\" }\n").unwrap();
        let h = ok.server.heartbeat.unwrap();
        assert_eq!(h.every.0.as_secs(), 300);
        assert_eq!(h.url.expose(), "https://hc.example/s3cr3t");
        assert!(!format!("{h:?}").contains("s3cr3t"));
        let literal = parse("[server]\nheartbeat = { url = \"https://hc.example/x\" }\n");
        assert!(
            literal
                .unwrap_err()
                .to_string()
                .contains("server.heartbeat.url")
        );
        let e = parse("[server]\nheartbeat = { url = \"ftp://${TOKEN}\" }\n").unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("server.heartbeat.url") && !e.contains("s3cr3t"),
            "{e}"
        );
        let e = parse("[server]\nheartbeat = { url = \"http://x/${TOKEN}\", every = \"5s\" }\n");
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("server.heartbeat.every")
        );
    }
}
