//! The TOML configuration: the `Config` root, loading and parsing (two passes, `${ENV}`
//! interpolation, path resolution) and `validate()` across sections. Each section's types
//! and checks live in `config/`; this is the only module that reads environment
//! variables for settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod access;
mod chat;
mod checks;
mod continuous;
mod env;
mod hooks;
mod host;
mod paths;
mod remote;
mod server;
mod state_backup;
mod store;
mod target;
mod target_hooks;
mod time;
mod web;

pub use access::AccessConfig;
pub use chat::{DiscordConfig, DiscordMode, SlackConfig, SlackMode};
pub use checks::Check;
pub use env::{Secret, expand, known_secret_values};
pub use hooks::HooksConfig;
pub use host::Host;
pub use paths::normalize;
pub use server::{HEARTBEAT_MIN_EVERY, Heartbeat, ServerConfig};
pub use state_backup::{STATE_TARGET, StateBackup};
pub use store::{StoreConfig, StoreKind};
pub use target::{OnChange, Retention, Snapshot, TargetConfig, TargetKind};
pub use target_hooks::{DEFAULT_HOOK_TIMEOUT, TargetHooks};
pub use time::{CronSchedule, HumanDuration, TimeZone};
pub use web::WebConfig;

/// The default config shipped in the binary; used when no config file is found.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/lifeboat.toml");
/// Where the config is looked for when neither `--config` nor `LIFEBOAT_CONFIG` is given.
pub const DEFAULT_PATH: &str = "config/lifeboat.toml";

/// A configuration problem: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub access: AccessConfig,
    pub slack: Option<SlackConfig>,
    pub discord: Option<DiscordConfig>,
    #[serde(default)]
    pub stores: BTreeMap<String, StoreConfig>,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    pub hooks: Option<HooksConfig>,
    /// The status page; absent or `enabled = false` = off.
    #[serde(default)]
    pub web: WebConfig,
    /// The file this config came from ("<embedded>" for the built-in default).
    #[serde(skip)]
    pub source: String,
}

impl Config {
    /// Load a config file, or the embedded default when `path` is the default path and
    /// no such file exists.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let base = path.parent().unwrap_or(Path::new("."));
                let base = if base.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    base
                };
                Config::parse(&text, &path.display().to_string(), base, &env::env_lookup)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Config::parse(
                EMBEDDED_DEFAULT,
                "<embedded>",
                Path::new("config"),
                &env::env_lookup,
            ),
            Err(e) => Err(ConfigError {
                file: path.display().to_string(),
                message: format!("cannot read the config file: {e}"),
            }),
        }
    }

    /// Parse config text. `base` is the directory relative paths are resolved against;
    /// `env` looks up `${NAME}` variables.
    pub fn parse(
        text: &str,
        file: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError {
            file: file.to_string(),
            message,
        };
        // First pass on the raw text: syntax, unknown keys and types, with line numbers.
        toml::from_str::<Config>(text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        let mut value: toml::Value =
            toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        env::check_secrets_from_env(&value, "").map_err(err)?;
        env::interpolate(&mut value, "", env).map_err(err)?;
        let mut config: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| err(e.to_string().trim_end().to_string()))?;
        config.source = file.to_string();
        config.resolve_paths(base);
        config.add_state_target().map_err(err)?;
        config.validate().map_err(err)?;
        Ok(config)
    }

    /// Cross-section checks: references, required keys per kind, reachable paths. Every
    /// store, target and section is checked, so one run names every problem (the first of
    /// each), not only the first found.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut note = |checked: Result<(), String>| {
            if let Err(e) = checked {
                problems.push(e);
            }
        };
        for (name, store) in &self.stores {
            note(check_name("stores", name).and_then(|()| store.validate(name)));
        }
        for (name, t) in &self.targets {
            note(check_name("targets", name).and_then(|()| self.validate_target(name, t)));
        }
        note(self.server.validate());
        note(self.slack.as_ref().map_or(Ok(()), chat::validate_slack));
        note(self.discord.as_ref().map_or(Ok(()), chat::validate_discord));
        note(self.web.validate());
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            n => Err(format!("{n} problems:\n  {}", problems.join("\n  "))),
        }
    }

    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.get(name)
    }

    /// The scratch directory for temporary copies.
    pub fn scratch_dir(&self) -> PathBuf {
        self.server.scratch.clone().unwrap_or_else(|| {
            self.server
                .state
                .parent()
                .unwrap_or(Path::new("."))
                .join("scratch")
        })
    }

    /// Comma-separated target names, for error messages.
    pub fn target_names(&self) -> String {
        names(self.targets.keys())
    }
}

/// Section names joined for error messages ("none" when there are none).
fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Endpoints and check URLs are only ever spoken to over HTTP(S).
fn is_http_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Section names become store keys and file names: keep them tame.
fn check_name(section: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{section}.{name}: names may use letters, digits, '-' and '_' only (at most 64)"
        ))
    }
}

/// The environment the section tests parse with: only `TOKEN` is set.
#[cfg(test)]
fn test_env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("s3cr3t".into()),
        _ => None,
    }
}

/// Parses `text` as `/etc/lifeboat/test.toml` with `test_env`, for the section tests.
#[cfg(test)]
fn parse_test(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", Path::new("/etc/lifeboat"), &test_env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_with_a_problem_is_named_in_one_run() {
        let text = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n\
                    [targets.a]\nkind=\"sqlite\"\nstore=\"l\"\n\
                    [targets.b]\nkind=\"sqlite\"\npath=\"/tmp/b.db\"\nstore=\"nowhere\"\n\
                    [server]\nmax_jobs=0\n";
        let e = parse_test(text).unwrap_err().to_string();
        assert!(e.contains("3 problems:"), "{e}");
        for key in ["targets.a", "targets.b", "server.max_jobs"] {
            assert!(e.contains(key), "{key} in {e}");
        }
    }

    #[test]
    fn embedded_default_parses() {
        let c = Config::parse(
            EMBEDDED_DEFAULT,
            "<embedded>",
            Path::new("config"),
            &test_env,
        )
        .unwrap();
        assert!(c.targets.contains_key("lifeboat-state"));
    }

    #[test]
    fn every_shipped_config_file_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let any_var = |name: &str| Some(format!("value-of-{name}"));
                Config::parse(&text, &path.display().to_string(), &dir, &any_var)
                    .unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(
            seen >= 3,
            "config/lifeboat.toml, example.toml and docker.toml"
        );
    }

    #[test]
    fn section_names_are_tame() {
        let store =
            |name: &str| parse_test(&format!("[stores.{name}]\nkind=\"local\"\npath=\"/tmp\"\n"));
        assert!(store("off-site_2").is_ok());
        for bad in ["\"-x\"", "\"a.b\"", "\"\""] {
            let e = store(bad).unwrap_err().to_string();
            assert!(e.contains("names may use letters"), "{bad}: {e}");
        }
    }
}
