//! Runbooks: TOML files in the runbooks directory, each an ordered list of steps with an
//! estimate (lifeboat actions, HTTP checks, fixed commands, manual steps), checked
//! against the config when loaded. Running them is in `run`, their report in `report`.

mod load;
pub mod report;
pub mod run;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Config, HumanDuration};
use crate::error::{Error, Result};

pub use load::{Loaded, find, list_text, load_all};

/// Why a runbook file cannot be used; shown as it is to whoever lists or runs it.
#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// Not TOML, or not the shape of a runbook (an unknown key, a missing title).
    #[error("{}", .0.to_string().trim_end())]
    Toml(#[source] toml::de::Error),
    #[error("step {step} ({title}): {source}")]
    Step {
        step: usize,
        title: String,
        #[source]
        source: Box<RunbookError>,
    },
    /// What is wrong with the file, in words.
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for RunbookError {
    fn from(why: String) -> Self {
        RunbookError::Invalid(why)
    }
}

impl From<&str> for RunbookError {
    fn from(why: &str) -> Self {
        RunbookError::Invalid(why.to_string())
    }
}

/// How long a command or HTTP step may take unless the step says otherwise.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// A runbook file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunbookFile {
    title: String,
    #[serde(default)]
    description: String,
    /// Values the person running it supplies (`name=value`), with what each means. They
    /// may only be used in action steps' `backup`, `at` and `to`, never in commands.
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(rename = "step", default)]
    steps: Vec<StepFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    title: String,
    estimate: HumanDuration,
    /// backup | verify | restore | drill, with `target` and optional `backup`/`at`/`to`.
    action: Option<String>,
    target: Option<String>,
    backup: Option<String>,
    at: Option<String>,
    to: Option<String>,
    /// A GET of this URL must answer `status` (default 200) and contain `body_contains`.
    http: Option<String>,
    status: Option<u16>,
    body_contains: Option<String>,
    /// A fixed argv run on the bot host, or on `host` over SSH; must exit `exit_code`
    /// and, if given, print `output_contains`. `{path:<target>}` in an argument is that
    /// target's configured path.
    command: Option<Vec<String>>,
    exit_code: Option<i32>,
    output_contains: Option<String>,
    host: Option<String>,
    ssh_identity: Option<PathBuf>,
    ssh_known_hosts: Option<PathBuf>,
    timeout: Option<HumanDuration>,
    /// Instructions for a person, who marks the step done (button or CLI).
    manual: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Backup,
    Verify,
    Restore,
    Drill,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Action {
        action: ActionKind,
        target: String,
        backup: Option<String>,
        at: Option<String>,
        to: Option<String>,
    },
    Http {
        url: String,
        status: u16,
        body_contains: Option<String>,
        timeout: Duration,
    },
    Command {
        argv: Vec<String>,
        exit_code: i32,
        output_contains: Option<String>,
        remote: Option<crate::ssh::Remote>,
        timeout: Duration,
    },
    Manual {
        instructions: String,
    },
}

#[derive(Debug, Clone)]
pub struct Step {
    pub title: String,
    pub estimate: Duration,
    pub kind: StepKind,
}

impl Step {
    /// One word for the step's kind, for reports.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            StepKind::Action { action, .. } => match action {
                ActionKind::Backup => "backup",
                ActionKind::Verify => "verify",
                ActionKind::Restore => "restore",
                ActionKind::Drill => "drill",
            },
            StepKind::Http { .. } => "http",
            StepKind::Command { .. } => "command",
            StepKind::Manual { .. } => "manual",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Runbook {
    /// The file name without `.toml`.
    pub name: String,
    pub title: String,
    pub description: String,
    pub params: BTreeMap<String, String>,
    pub steps: Vec<Step>,
}

impl Runbook {
    pub fn estimate(&self) -> Duration {
        self.steps.iter().map(|s| s.estimate).sum()
    }

    /// Parse and check one runbook against the config: every step has exactly one kind,
    /// every target exists and supports the action, remote hosts have their keys.
    pub fn parse(
        name: &str,
        text: &str,
        base: &Path,
        config: &Config,
    ) -> Result<Runbook, RunbookError> {
        let file: RunbookFile = toml::from_str(text).map_err(RunbookError::Toml)?;
        if file.steps.is_empty() {
            return Err("a runbook needs at least one [[step]]".into());
        }
        for p in file.params.keys() {
            if !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || p.is_empty() {
                return Err(
                    format!("param {p:?}: names may use letters, digits and '_' only").into(),
                );
            }
        }
        let mut steps = Vec::new();
        for (i, s) in file.steps.into_iter().enumerate() {
            let n = i + 1;
            let title = s.title.clone();
            let step = step(s, base, config, &file.params).map_err(|e| RunbookError::Step {
                step: n,
                title,
                source: Box::new(e),
            })?;
            steps.push(step);
        }
        Ok(Runbook {
            name: name.to_string(),
            title: file.title,
            description: file.description.trim().to_string(),
            params: file.params,
            steps,
        })
    }

    /// Check the values given for a run: every declared param supplied, nothing else.
    pub fn check_params(&self, given: &[(String, String)]) -> Result<BTreeMap<String, String>> {
        let mut values = BTreeMap::new();
        for (k, v) in given {
            if !self.params.contains_key(k) {
                return Err(Error::Usage(format!(
                    "runbook {} has no parameter {k:?}{}",
                    self.name,
                    self.param_hint()
                )));
            }
            values.insert(k.clone(), v.clone());
        }
        if let Some(missing) = self.params.keys().find(|k| !values.contains_key(*k)) {
            return Err(Error::Usage(format!(
                "runbook {} needs {missing}=<{}>{}",
                self.name,
                self.params[missing],
                self.param_hint()
            )));
        }
        Ok(values)
    }

    fn param_hint(&self) -> String {
        if self.params.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self
                .params
                .iter()
                .map(|(k, d)| format!("{k}=<{d}>"))
                .collect();
            format!("; it takes {}", list.join(" "))
        }
    }
}

/// Replace `{name}` with the run's parameter values.
pub fn fill(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// The `{name}` placeholders a text uses.
fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                found.push(after[..close].to_string());
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    found
}

fn step(
    s: StepFile,
    base: &Path,
    config: &Config,
    params: &BTreeMap<String, String>,
) -> Result<Step, RunbookError> {
    let kinds = [
        s.action.is_some(),
        s.http.is_some(),
        s.command.is_some(),
        s.manual.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err("give exactly one of `action`, `http`, `command` or `manual`".into());
    }
    let unused = |keys: &[(&str, bool)]| -> Result<(), RunbookError> {
        match keys.iter().find(|(_, set)| *set) {
            Some((k, _)) => Err(format!("`{k}` does not belong to this kind of step").into()),
            None => Ok(()),
        }
    };
    let timeout = s.timeout.map_or(DEFAULT_STEP_TIMEOUT, |d| d.0);
    let kind = if let Some(action) = s.action {
        unused(&[
            ("http", false),
            ("status", s.status.is_some()),
            ("body_contains", s.body_contains.is_some()),
            ("exit_code", s.exit_code.is_some()),
            ("output_contains", s.output_contains.is_some()),
            ("host", s.host.is_some()),
            ("timeout", s.timeout.is_some()),
        ])?;
        let action = match action.as_str() {
            "backup" => ActionKind::Backup,
            "verify" => ActionKind::Verify,
            "restore" => ActionKind::Restore,
            "drill" => ActionKind::Drill,
            other => {
                return Err(format!(
                    "unknown action {other:?}: use backup, verify, restore or drill"
                )
                .into());
            }
        };
        let target = s.target.ok_or("an action step needs `target`")?;
        let cfg = config.targets.get(&target).ok_or_else(|| {
            format!(
                "unknown target {target:?}; targets: {}",
                config.target_names()
            )
        })?;
        let usable = match action {
            ActionKind::Backup => {
                crate::sources::choose(&target, cfg).is_ok_and(|s| s.takes_backups())
            }
            _ => cfg.keeps_backups(),
        };
        if !usable {
            return Err(
                format!("target {target} (kind {:?}) cannot {action:?}", cfg.kind)
                    .to_lowercase()
                    .into(),
            );
        }
        for text in [&s.backup, &s.at, &s.to].into_iter().flatten() {
            for p in placeholders(text) {
                if !params.contains_key(&p) {
                    return Err(format!("{{{p}}} is not a declared param").into());
                }
            }
        }
        if action != ActionKind::Restore && (s.at.is_some() || s.to.is_some()) {
            return Err("`at` and `to` are for restore steps".into());
        }
        if action == ActionKind::Backup && s.backup.is_some() {
            return Err("`backup` names a backup to use; a backup step makes a new one".into());
        }
        StepKind::Action {
            action,
            target,
            backup: s.backup,
            at: s.at,
            to: s.to,
        }
    } else if let Some(url) = s.http {
        unused(&[
            ("target", s.target.is_some()),
            ("exit_code", s.exit_code.is_some()),
            ("output_contains", s.output_contains.is_some()),
            ("host", s.host.is_some()),
            ("backup", s.backup.is_some()),
        ])?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url:?} is not an http(s) URL").into());
        }
        StepKind::Http {
            url,
            status: s.status.unwrap_or(200),
            body_contains: s.body_contains,
            timeout,
        }
    } else if let Some(argv) = s.command {
        unused(&[
            ("target", s.target.is_some()),
            ("status", s.status.is_some()),
            ("body_contains", s.body_contains.is_some()),
            ("backup", s.backup.is_some()),
        ])?;
        if argv.is_empty() || argv[0].is_empty() {
            return Err("`command` needs at least the program".into());
        }
        let argv = argv
            .iter()
            .map(|a| target_paths(a, config))
            .collect::<Result<Vec<_>, _>>()?;
        let remote = match s.host {
            None => None,
            Some(host) => Some(remote(
                &host,
                s.ssh_identity,
                s.ssh_known_hosts,
                base,
                config,
            )?),
        };
        StepKind::Command {
            argv,
            exit_code: s.exit_code.unwrap_or(0),
            output_contains: s.output_contains,
            remote,
            timeout,
        }
    } else {
        unused(&[
            ("target", s.target.is_some()),
            ("status", s.status.is_some()),
            ("exit_code", s.exit_code.is_some()),
            ("output_contains", s.output_contains.is_some()),
            ("host", s.host.is_some()),
        ])?;
        let instructions = s.manual.unwrap_or_default().trim().to_string();
        if instructions.is_empty() {
            return Err("a manual step needs instructions".into());
        }
        StepKind::Manual { instructions }
    };
    Ok(Step {
        title: s.title,
        estimate: s.estimate.0,
        kind,
    })
}

/// Expand `{path:<target>}` to the target's configured path (from the config, which is
/// trusted; nothing a chat user types ever reaches a command).
fn target_paths(arg: &str, config: &Config) -> Result<String, RunbookError> {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find("{path:") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 6..start + len];
        let path = config
            .targets
            .get(name)
            .and_then(|t| t.path.as_ref())
            .ok_or_else(|| format!("{{path:{name}}}: no target {name:?} with a `path`"))?;
        out.push_str(&rest[..start]);
        out.push_str(&path.to_string_lossy());
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A command step's host: its own key and known_hosts, or those of a configured target
/// on the same host.
fn remote(
    host: &str,
    identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    base: &Path,
    config: &Config,
) -> Result<crate::ssh::Remote, RunbookError> {
    let parsed = crate::config::Host::parse(host).map_err(RunbookError::Invalid)?;
    let same_host = config.targets.values().find(|t| {
        t.host
            .as_deref()
            .is_some_and(|h| crate::config::Host::parse(h).ok().as_ref() == Some(&parsed))
    });
    let pick = |own: Option<PathBuf>, borrowed: Option<&PathBuf>, key: &str| match own {
        Some(p) if p.is_relative() => Ok(base.join(p)),
        Some(p) => Ok(p),
        None => borrowed.cloned().ok_or_else(|| {
            format!("`host` needs `{key}` (or a target on the same host to borrow it from)")
        }),
    };
    let identity = pick(
        identity,
        same_host.and_then(|t| t.ssh_identity.as_ref()),
        "ssh_identity",
    )?;
    let known_hosts = pick(
        known_hosts,
        same_host.and_then(|t| t.ssh_known_hosts.as_ref()),
        "ssh_known_hosts",
    )?;
    Ok(crate::ssh::Remote {
        host: parsed,
        identity,
        known_hosts,
        idle_timeout: same_host
            .and_then(|t| t.ssh_timeout)
            .map_or(crate::ssh::DEFAULT_IDLE_TIMEOUT, |d| d.0),
    })
}
