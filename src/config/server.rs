//! `[server]`: where `serve` listens, where its state database, scratch space and runbooks
//! live, how many jobs it runs at once, and how its own state goes off-site.

use std::path::PathBuf;

use serde::Deserialize;

use super::StateBackup;

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
        }
    }
}

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.max_jobs == 0 {
            return Err("server.max_jobs: must be at least 1".into());
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
}
