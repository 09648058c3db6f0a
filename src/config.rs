//! The TOML configuration: typed sections, `${ENV}` interpolation, path resolution and
//! `validate()`. This is the only module that reads environment variables for settings.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod chat;
pub use chat::{DiscordMode, SlackMode};
mod state_backup;
mod store;
pub use store::{StoreConfig, StoreKind};
mod web;
pub use state_backup::{STATE_TARGET, StateBackup};
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub operators: Vec<String>,
    #[serde(default)]
    pub viewers: Vec<String>,
    #[serde(default)]
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// "http" (default) or "socket"; see `chat::SlackMode`.
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
    /// "http" (default) or "gateway"; see `chat::DiscordMode`.
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    pub alertmanager_token: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    Sqlite,
    Directory,
    GcpDisk,
    Command,
    External,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Sqlite => "sqlite",
            TargetKind::Directory => "directory",
            TargetKind::GcpDisk => "gcp-disk",
            TargetKind::Command => "command",
            TargetKind::External => "external",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
}

impl Retention {
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }
}

/// An extra check a drill runs on a restored copy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub sql: Option<String>,
    pub min: Option<i64>,
    pub equals: Option<i64>,
    pub http: Option<String>,
    pub status: Option<u16>,
    pub command: Option<Vec<String>>,
    pub exit_code: Option<i32>,
    /// http and command: how long the check may take (default 30s for http, 10m for a
    /// command).
    pub timeout: Option<HumanDuration>,
}

impl Check {
    /// The check in words, for reports: `sql "SELECT …" >= 1`, `GET http://… → 200`.
    pub fn describe(&self) -> String {
        if let Some(sql) = &self.sql {
            let mut out = format!("sql `{sql}`");
            if let Some(min) = self.min {
                out.push_str(&format!(" ≥ {min}"));
            }
            if let Some(eq) = self.equals {
                out.push_str(&format!(" = {eq}"));
            }
            return out;
        }
        if let Some(url) = &self.http {
            return format!("GET {url} → {}", self.status.unwrap_or(200));
        }
        let argv = self.command.clone().unwrap_or_default().join(" ");
        format!("command `{argv}` → exit {}", self.exit_code.unwrap_or(0))
    }

    /// Keys that only belong to another kind of check, and what each check needs.
    fn validate(&self, key: &str, kind: TargetKind) -> Result<(), String> {
        let kinds = [
            self.sql.is_some(),
            self.http.is_some(),
            self.command.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(format!(
                "{key}: give exactly one of `sql`, `http` or `command`"
            ));
        }
        let stray = |set: bool, k: &str, with: &str| -> Result<(), String> {
            if set {
                Err(format!("{key}.{k}: only used with `{with}`"))
            } else {
                Ok(())
            }
        };
        stray(self.sql.is_none() && self.min.is_some(), "min", "sql")?;
        stray(self.sql.is_none() && self.equals.is_some(), "equals", "sql")?;
        stray(
            self.http.is_none() && self.status.is_some(),
            "status",
            "http",
        )?;
        stray(
            self.command.is_none() && self.exit_code.is_some(),
            "exit_code",
            "command",
        )?;
        stray(
            self.sql.is_some() && self.timeout.is_some(),
            "timeout",
            "http` or `command",
        )?;
        if self.sql.is_some() && kind != TargetKind::Sqlite {
            return Err(format!(
                "{key}.sql: sql checks run on a restored SQLite copy; this target is of kind \"{}\"",
                kind.as_str()
            ));
        }
        if let Some(url) = &self.http
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "{key}.http: must be a URL starting with http:// or https://"
            ));
        }
        if self.command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(format!("{key}.command: give the program and its arguments"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub kind: TargetKind,
    pub path: Option<PathBuf>,
    pub store: Option<String>,
    pub schedule: Option<CronSchedule>,
    pub grace: Option<HumanDuration>,
    pub max_duration: Option<HumanDuration>,
    #[serde(default)]
    pub retention: Retention,
    pub rto: Option<HumanDuration>,
    pub rpo: Option<HumanDuration>,
    #[serde(default = "default_approvals")]
    pub restore_approvals: u32,
    pub drill_schedule: Option<CronSchedule>,
    /// Cron for verifying the newest backup in `serve`; a failed verify alerts.
    pub verify_schedule: Option<CronSchedule>,
    #[serde(default)]
    pub restore_roots: Vec<PathBuf>,
    pub timezone: Option<TimeZone>,
    pub realert: Option<HumanDuration>,
    #[serde(default)]
    pub checks: Vec<Check>,
    /// directory: globs relative to `path`; empty include = everything.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Remote host (`ssh://user@host:port`) and its SSH settings: the private key
    /// lifeboat authenticates with (required), the known_hosts file its host key is
    /// checked against (required), and how long a remote command may send nothing
    /// before it is ended (default 10m).
    pub host: Option<String>,
    pub ssh_identity: Option<PathBuf>,
    pub ssh_known_hosts: Option<PathBuf>,
    pub ssh_timeout: Option<HumanDuration>,
    /// gcp-disk
    pub project: Option<String>,
    pub zone: Option<String>,
    pub disk: Option<String>,
    pub endpoint: Option<String>,
    pub credentials: Option<String>,
    /// gcp-disk: how often to poll a running operation at first (it backs off to ten
    /// times this). Default 1s.
    pub poll_interval: Option<HumanDuration>,
    /// command: argv of a dump command whose stdout is the backup.
    pub command: Option<Vec<String>>,
    /// external: bearer token for `POST /hooks/ping/<target>`.
    pub token: Option<Secret>,
    /// Added by lifeboat itself (the state database's target), not written in the file.
    #[serde(skip)]
    pub built_in: bool,
}

fn default_approvals() -> u32 {
    1
}

impl TargetConfig {
    /// The path the target's data lives at; validated to exist for local path kinds.
    pub fn data_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether lifeboat keeps backups of this target that `list` and `prune` see: in a
    /// store, or (gcp-disk) as cloud snapshots.
    pub fn keeps_backups(&self) -> bool {
        self.store.is_some() || self.kind == TargetKind::GcpDisk
    }
}

/// A secret value: printed as `***` everywhere.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A humantime duration such as "90s", "15m", "1h30m", "7d".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

/// A cron expression with a seconds field, parsed when the config loads.
#[derive(Debug, Clone)]
pub struct CronSchedule(pub cron::Schedule);

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        cron::Schedule::from_str(&text).map(CronSchedule).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid cron expression {text:?} (six fields, seconds first, e.g. \"0 30 3 * * *\"): {e}"
            ))
        })
    }
}

/// An IANA time zone name such as "Europe/Prague".
#[derive(Debug, Clone, Copy)]
pub struct TimeZone(pub chrono_tz::Tz);

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        chrono_tz::Tz::from_str(&text)
            .map(TimeZone)
            .map_err(|_| serde::de::Error::custom(format!("unknown time zone {text:?}")))
    }
}

/// Keys whose values are secrets and must come from `${...}`.
const SECRET_KEYS: &[&str] = &[
    "signing_secret",
    "app_token",
    "bot_token",
    "public_key",
    "token",
    "alertmanager_token",
    "password",
];

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
                Config::parse(&text, &path.display().to_string(), base, &env_lookup)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Config::parse(
                EMBEDDED_DEFAULT,
                "<embedded>",
                Path::new("config"),
                &env_lookup,
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
        check_secrets_from_env(&value, "").map_err(err)?;
        interpolate(&mut value, "", env).map_err(err)?;
        let mut config: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| err(e.to_string().trim_end().to_string()))?;
        config.source = file.to_string();
        config.resolve_paths(base);
        config.add_state_target().map_err(err)?;
        config.validate().map_err(err)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let base = absolute(base);
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = normalize(&base.join(&*p));
            }
        };
        fix(&mut self.server.state);
        fix(&mut self.server.runbooks);
        if let Some(s) = self.server.scratch.as_mut() {
            fix(s);
        }
        for store in self.stores.values_mut() {
            if let Some(p) = store.path.as_mut() {
                fix(p);
            }
        }
        for target in self.targets.values_mut() {
            // A remote target's path and restore roots are paths on that host.
            if target.host.is_none() {
                if let Some(p) = target.path.as_mut() {
                    fix(p);
                }
                target.restore_roots.iter_mut().for_each(fix);
            }
            if let Some(p) = target.ssh_identity.as_mut() {
                fix(p);
            }
            if let Some(p) = target.ssh_known_hosts.as_mut() {
                fix(p);
            }
        }
    }

    /// Cross-section checks: references, required keys per kind, reachable paths.
    pub fn validate(&self) -> Result<(), String> {
        for (name, store) in &self.stores {
            check_name("stores", name)?;
            store.validate(name)?;
        }
        for (name, t) in &self.targets {
            check_name("targets", name)?;
            self.validate_target(name, t)?;
        }
        if self.server.max_jobs == 0 {
            return Err("server.max_jobs: must be at least 1".into());
        }
        self.slack.as_ref().map_or(Ok(()), chat::validate_slack)?;
        self.discord
            .as_ref()
            .map_or(Ok(()), chat::validate_discord)?;
        self.web.validate()?;
        Ok(())
    }

    fn validate_target(&self, name: &str, t: &TargetConfig) -> Result<(), String> {
        let key = |k: &str| format!("targets.{name}.{k}");
        let kind = t.kind.as_str();
        let needs = |present: bool, k: &str| -> Result<(), String> {
            if present {
                Ok(())
            } else {
                Err(format!("{}: required for kind \"{kind}\"", key(k)))
            }
        };
        match t.kind {
            TargetKind::Sqlite | TargetKind::Directory => {
                needs(t.path.is_some(), "path")?;
                needs(t.store.is_some(), "store")?;
            }
            TargetKind::Command => {
                needs(t.command.as_ref().is_some_and(|c| !c.is_empty()), "command")?;
                needs(t.store.is_some(), "store")?;
            }
            TargetKind::GcpDisk => {
                needs(t.project.is_some(), "project")?;
                needs(t.zone.is_some(), "zone")?;
                needs(t.disk.is_some(), "disk")?;
                if t.store.is_some() {
                    return Err(format!(
                        "{}: gcp-disk targets keep their backups as Compute Engine snapshots, not in a store; remove `store`",
                        key("store")
                    ));
                }
                match t.credentials.as_deref() {
                    None | Some("default") | Some("anonymous") => {}
                    Some(other) => {
                        return Err(format!(
                            "{}: must be \"default\" or \"anonymous\", not {other:?}",
                            key("credentials")
                        ));
                    }
                }
                if let Some(endpoint) = &t.endpoint
                    && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                {
                    return Err(format!(
                        "{}: must be a URL starting with http:// or https://",
                        key("endpoint")
                    ));
                }
            }
            TargetKind::External => {
                needs(t.schedule.is_some(), "schedule")?;
                needs(t.token.is_some(), "token")?;
            }
        }
        if let Some(store) = &t.store
            && !self.stores.contains_key(store)
        {
            return Err(format!(
                "{}: no store named {store:?} (stores: {})",
                key("store"),
                names(self.stores.keys())
            ));
        }
        validate_remote(name, t)?;
        if !t.include.is_empty() || !t.exclude.is_empty() {
            for g in t.include.iter().chain(&t.exclude) {
                globset::Glob::new(g)
                    .map_err(|e| format!("{}: bad glob {g:?}: {e}", key("include/exclude")))?;
            }
        }
        for (i, c) in t.checks.iter().enumerate() {
            c.validate(&format!("{}[{i}]", key("checks")), t.kind)?;
        }
        Ok(())
    }

    /// Filesystem checks for `config check`: data paths and restore roots exist.
    /// Kept out of `validate()` so the bot can start before a target's disk is mounted.
    pub fn check_reachable(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, t) in &self.targets {
            if t.host.is_some() {
                problems.extend(check_remote_files(name, t));
                continue; // its paths are on the other host
            }
            for root in &t.restore_roots {
                if !root.is_dir() {
                    problems.push(format!(
                        "targets.{name}.restore_roots: {} is not an existing directory",
                        root.display()
                    ));
                }
            }
            let local =
                t.host.is_none() && matches!(t.kind, TargetKind::Sqlite | TargetKind::Directory);
            let Some(path) = t.path.as_deref().filter(|_| local) else {
                continue;
            };
            if path == self.server.state {
                continue; // lifeboat's own state: created on first start
            }
            if !path.exists() {
                problems.push(format!(
                    "targets.{name}.path: {} does not exist",
                    path.display()
                ));
            }
        }
        problems
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

/// The key and known_hosts files of a remote target exist, and the host is listed.
fn check_remote_files(name: &str, t: &TargetConfig) -> Vec<String> {
    let mut problems = Vec::new();
    for (p, k) in [
        (&t.ssh_identity, "ssh_identity"),
        (&t.ssh_known_hosts, "ssh_known_hosts"),
    ] {
        if let Some(p) = p
            && !p.is_file()
        {
            problems.push(format!(
                "targets.{name}.{k}: {} is not a readable file",
                p.display()
            ));
        }
    }
    if problems.is_empty()
        && let Ok(Some(remote)) = crate::ssh::Remote::of_target(t)
        && let Ok(false) = remote.known_host_listed()
    {
        problems.push(format!(
            "targets.{name}.ssh_known_hosts: {} has no key for {}; add the host's key line after checking its fingerprint",
            remote.known_hosts.display(),
            remote.host.known_hosts_name()
        ));
    }
    problems
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The SSH keys of a target: all or nothing, and only where lifeboat can use them.
fn validate_remote(name: &str, t: &TargetConfig) -> Result<(), String> {
    let key = |k: &str| format!("targets.{name}.{k}");
    let Some(host) = t.host.as_deref() else {
        for (set, k) in [
            (t.ssh_identity.is_some(), "ssh_identity"),
            (t.ssh_known_hosts.is_some(), "ssh_known_hosts"),
            (t.ssh_timeout.is_some(), "ssh_timeout"),
        ] {
            if set {
                return Err(format!("{}: only used with `host`", key(k)));
            }
        }
        return Ok(());
    };
    if !matches!(t.kind, TargetKind::Sqlite | TargetKind::Directory) {
        return Err(format!(
            "{}: targets of kind \"{}\" cannot be on another host (sqlite and directory can)",
            key("host"),
            t.kind.as_str()
        ));
    }
    crate::ssh::Host::parse(host).map_err(|e| format!("{}: {e}", key("host")))?;
    // Key authentication only, with a key of lifeboat's own: no agent, no passwords.
    for (value, k) in [
        (&t.ssh_identity, "ssh_identity"),
        (&t.ssh_known_hosts, "ssh_known_hosts"),
    ] {
        let Some(p) = value else {
            return Err(format!("{}: required with `host`", key(k)));
        };
        if p.to_string_lossy().contains('"') {
            return Err(format!("{}: the path may not contain '\"'", key(k)));
        }
    }
    let remote_abs = |p: &Path| {
        p.is_absolute()
            && !p
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
    };
    if let Some(p) = &t.path
        && !remote_abs(p)
    {
        return Err(format!(
            "{}: a path on another host must be absolute, without `..`",
            key("path")
        ));
    }
    if let Some(r) = t.restore_roots.iter().find(|r| !remote_abs(r)) {
        return Err(format!(
            "{}: {} is on the remote host and must be absolute, without `..`",
            key("restore_roots"),
            r.display()
        ));
    }
    Ok(())
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

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn check_secrets_from_env(value: &toml::Value, path: &str) -> Result<(), String> {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let toml::Value::String(s) = v
                    && SECRET_KEYS.contains(&k.as_str())
                    && !s.contains("${")
                {
                    return Err(format!(
                        "{p}: secrets must come from the environment, write it as \"${{SOME_VARIABLE}}\""
                    ));
                }
                check_secrets_from_env(v, &p)?;
            }
            Ok(())
        }
        toml::Value::Array(a) => a.iter().try_for_each(|v| check_secrets_from_env(v, path)),
        _ => Ok(()),
    }
}

/// Replace every `${NAME}` in string values with the variable's value.
fn interpolate(
    value: &mut toml::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    match value {
        toml::Value::String(s) => {
            *s = expand(s, env)
                .map_err(|var| format!("{path}: environment variable {var} is not set"))?;
            Ok(())
        }
        toml::Value::Table(t) => t.iter_mut().try_for_each(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            interpolate(v, &p, env)
        }),
        toml::Value::Array(a) => a.iter_mut().try_for_each(|v| interpolate(v, path, env)),
        _ => Ok(()),
    }
}

/// Expand `${NAME}` references; returns the name of the first missing variable.
pub fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        match env(name) {
            Some(v) => out.push_str(&v),
            None => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Lexical normalization: drop `.` and fold `..` (no filesystem access).
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cr3t".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", Path::new("/etc/lifeboat"), &env)
    }

    #[test]
    fn embedded_default_parses() {
        let c = Config::parse(EMBEDDED_DEFAULT, "<embedded>", Path::new("config"), &env).unwrap();
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
    fn unknown_key_is_named() {
        let e = parse("[server]\nlisten = \"x\"\nlistne = 1\n").unwrap_err();
        assert!(e.to_string().contains("listne"), "{e}");
        assert!(e.to_string().starts_with("test.toml"), "{e}");
    }

    #[test]
    fn compression_level_must_be_a_zstd_level() {
        let store = |level: &str| {
            parse(&format!(
                "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\ncompression_level={level}\n"
            ))
        };
        assert_eq!(store("9").unwrap().stores["l"].compression_level, Some(9));
        let e = store("0").unwrap_err().to_string();
        assert!(
            e.contains("stores.l.compression_level: 0 is not a zstd level"),
            "{e}"
        );
        assert!(store("22").is_err());
    }

    #[test]
    fn bad_cron_is_named() {
        let e = parse(
            "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.a]\nkind=\"sqlite\"\npath=\"/tmp/a.db\"\nstore=\"l\"\nschedule=\"every day\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid cron expression"), "{e}");
        assert!(e.to_string().contains("schedule"), "{e}");
    }

    #[test]
    fn missing_env_var_is_named() {
        let e = parse("[hooks]\nalertmanager_token = \"${NOPE_NOT_SET}\"\n").unwrap_err();
        assert!(e.to_string().contains("NOPE_NOT_SET"), "{e}");
        assert!(e.to_string().contains("hooks.alertmanager_token"), "{e}");
    }

    #[test]
    fn secret_literal_is_refused_and_never_echoed() {
        let e = parse("[hooks]\nalertmanager_token = \"hunter2\"\n").unwrap_err();
        assert!(e.to_string().contains("environment"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let c = parse("[hooks]\nalertmanager_token = \"${TOKEN}\"\n").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"));
    }

    #[test]
    fn unknown_store_reference() {
        let e = parse("[targets.a]\nkind=\"sqlite\"\npath=\"/tmp/a.db\"\nstore=\"nope\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("targets.a.store"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_config_dir() {
        let c = parse("[stores.l]\nkind=\"local\"\npath=\"../var/backups\"\n").unwrap();
        assert_eq!(
            c.stores["l"].path.as_deref(),
            Some(Path::new("/etc/var/backups"))
        );
        assert_eq!(c.server.state, Path::new("/etc/var/lifeboat.db"));
    }

    #[test]
    fn s3_settings_are_checked() {
        let s3 = |extra: &str| parse(&format!("[stores.o]\nkind=\"s3\"\nbucket=\"b\"\n{extra}\n"));
        assert!(s3("sse=\"AES256\"\nobject_lock_mode=\"GOVERNANCE\"\nobject_lock_days=30").is_ok());
        assert!(s3("sse=\"aws:kms\"\nsse_kms_key_id=\"alias/x\"").is_ok());
        for (extra, named) in [
            ("sse=\"aes\"", "stores.o.sse"),
            ("sse_kms_key_id=\"k\"", "stores.o.sse_kms_key_id"),
            (
                "object_lock_mode=\"GOVERNANCE\"",
                "stores.o.object_lock_days",
            ),
            ("object_lock_days=3", "stores.o.object_lock_mode"),
            (
                "object_lock_mode=\"LEGAL\"\nobject_lock_days=3",
                "stores.o.object_lock_mode",
            ),
            (
                "object_lock_mode=\"COMPLIANCE\"\nobject_lock_days=0",
                "stores.o.object_lock_days",
            ),
            ("endpoint=\"localhost:9000\"", "stores.o.endpoint"),
        ] {
            let e = s3(extra).unwrap_err().to_string();
            assert!(e.contains(named), "{extra}: {e}");
        }
        let e = parse("[stores.l]\nkind=\"local\"\npath=\"/tmp\"\nsse=\"AES256\"\n").unwrap_err();
        assert!(e.to_string().contains("stores.l.sse"), "{e}");
    }

    #[test]
    fn gcp_disk_targets_keep_no_store() {
        let gcp = "[targets.d]\nkind=\"gcp-disk\"\nproject=\"p\"\nzone=\"z\"\ndisk=\"d\"\n";
        assert!(parse(gcp).is_ok());
        let e = parse(&format!(
            "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n{gcp}store=\"l\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("targets.d.store"), "{e}");
        let e = parse(&format!("{gcp}credentials=\"mine\"\n")).unwrap_err();
        assert!(e.to_string().contains("targets.d.credentials"), "{e}");
    }

    #[test]
    fn remote_targets_need_their_ssh_keys_and_absolute_paths() {
        let base = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.r]\nkind=\"sqlite\"\nstore=\"l\"\n";
        let ok = format!(
            "{base}path=\"/srv/app.db\"\nhost=\"ssh://backup@db1:2222\"\nssh_identity=\"key\"\nssh_known_hosts=\"kh\"\nrestore_roots=[\"/var/tmp/r\"]\n"
        );
        let c = parse(&ok).unwrap();
        let t = &c.targets["r"];
        assert_eq!(
            t.ssh_identity.as_deref(),
            Some(Path::new("/etc/lifeboat/key"))
        );
        assert_eq!(
            t.restore_roots,
            vec![PathBuf::from("/var/tmp/r")],
            "remote: as written"
        );
        for (bad, named) in [
            (ok.replace("ssh_identity=\"key\"\n", ""), "ssh_identity"),
            (
                ok.replace("ssh_known_hosts=\"kh\"\n", ""),
                "ssh_known_hosts",
            ),
            (ok.replace("/srv/app.db", "app.db"), "targets.r.path"),
            (ok.replace("[\"/var/tmp/r\"]", "[\"r\"]"), "restore_roots"),
            (ok.replace("ssh://backup@db1:2222", "db1"), "targets.r.host"),
            (ok.replace("backup@", "-oProxyCommand=x@"), "targets.r.host"),
        ] {
            let e = parse(&bad).unwrap_err().to_string();
            assert!(e.contains(named), "{named}: {e}");
        }
        let stray = format!("{base}path=\"/srv/app.db\"\nssh_timeout=\"5m\"\n");
        let e = parse(&stray).unwrap_err().to_string();
        assert!(e.contains("only used with `host`"), "{e}");
    }

    #[test]
    fn drill_checks_are_checked_at_load() {
        let base = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.t]\nstore=\"l\"\npath=\"/tmp/x\"\n";
        let with =
            |kind: &str, check: &str| parse(&format!("{base}kind=\"{kind}\"\nchecks=[{check}]\n"));
        assert!(with("sqlite", "{ sql = \"SELECT 1\", min = 1 }").is_ok());
        assert!(with("directory", "{ command = [\"true\"], exit_code = 0 }").is_ok());
        for (kind, check, named) in [
            (
                "directory",
                "{ sql = \"SELECT 1\", min = 1 }",
                "checks[0].sql",
            ),
            ("sqlite", "{ http = \"localhost\" }", "checks[0].http"),
            (
                "sqlite",
                "{ http = \"http://x\", exit_code = 1 }",
                "checks[0].exit_code",
            ),
            ("sqlite", "{ command = [] }", "checks[0].command"),
            (
                "sqlite",
                "{ sql = \"SELECT 1\", http = \"http://x\" }",
                "exactly one",
            ),
        ] {
            let e = with(kind, check).unwrap_err().to_string();
            assert!(e.contains(named), "{check}: {e}");
        }
    }

    #[test]
    fn expand_handles_text_around() {
        assert_eq!(expand("a${TOKEN}b", &env).unwrap(), "as3cr3tb");
        assert_eq!(expand("${X}", &env).unwrap_err(), "X");
    }
}
