//! Target hooks (`[targets.<t>.hooks]`): the commands run around a target's backups and
//! restores so the copy is consistent and the app is never left stopped. Not the webhooks
//! of `front/hooks.rs`.
//!
//! A command is an argv, never given to a local shell: here (`local`) with a clean
//! environment in a process group of its own that the time limit kills whole, or on
//! another host over the system `ssh` (`remote`), quoted for the remote shell, with the
//! `LIFEBOAT_*` variables set by the remote script and the time limit enforced there too.
//! [`ActionHooks`] (`action`) is one action's hooks: the `after_*` commands owed in the
//! state before any `before_*` runs, and run whatever happens; [`owed`] runs what a
//! crashed process still owed. Every command's outcome and output tail (secrets masked)
//! is kept with its job, audited and shown.

pub mod action;
mod local;
mod mask;
pub mod owed;
mod remote;

use std::time::Duration;

use crate::config::TargetConfig;
use crate::error::{Error, Result};
use crate::progress::{Cancel, JobContext};
use crate::ssh::{Remote, Session};

pub use action::ActionHooks;
pub use mask::Masker;

/// How much of a command's output is kept: its last bytes, then its last lines.
const TAIL_BYTES: usize = 4096;
const TAIL_LINES: usize = 20;

/// The environment every hook gets besides the `LIFEBOAT_*` variables.
const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the action a hook runs around went, for `after_*` (`LIFEBOAT_RESULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookResult {
    Ok,
    Failed,
    Cancelled,
}

impl HookResult {
    pub fn as_str(self) -> &'static str {
        match self {
            HookResult::Ok => "ok",
            HookResult::Failed => "failed",
            HookResult::Cancelled => "cancelled",
        }
    }

    /// The result of an action as it ended.
    pub fn of<T>(r: &Result<T>) -> HookResult {
        match r {
            Ok(_) => HookResult::Ok,
            Err(Error::Cancelled) => HookResult::Cancelled,
            Err(_) => HookResult::Failed,
        }
    }
}

/// The `LIFEBOAT_*` variables of one run.
#[derive(Debug, Clone)]
pub struct HookEnv {
    pub target: String,
    /// "backup" or "restore".
    pub action: &'static str,
    pub job: Option<i64>,
    pub backup: Option<String>,
    pub result: Option<HookResult>,
}

impl HookEnv {
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("LIFEBOAT_TARGET".to_string(), self.target.clone()),
            ("LIFEBOAT_ACTION".into(), self.action.into()),
        ];
        if let Some(j) = self.job {
            v.push(("LIFEBOAT_JOB".into(), j.to_string()));
        }
        if let Some(b) = &self.backup {
            v.push(("LIFEBOAT_BACKUP".into(), b.clone()));
        }
        if let Some(r) = self.result {
            v.push(("LIFEBOAT_RESULT".into(), r.as_str().into()));
        }
        v
    }
}

/// How one command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Exit(i32),
    Signal(i32),
    TimedOut(Duration),
    /// It never ran (not found, not executable): why.
    NotRun(String),
    /// Its host could not be reached (or the connection broke): it may not have run.
    Unreachable(String),
    /// The job was cancelled while a `before_*` ran; it was killed.
    Cancelled,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        *self == Outcome::Ok
    }

    pub fn describe(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Exit(c) => format!("failed (exit {c})"),
            Outcome::Signal(s) => format!("failed (killed by signal {s})"),
            Outcome::TimedOut(d) => format!(
                "timed out after {} and was killed",
                humantime::format_duration(*d)
            ),
            Outcome::NotRun(why) => format!("could not run: {why}"),
            Outcome::Unreachable(why) => format!("not run: {why}"),
            Outcome::Cancelled => "cancelled (killed)".into(),
        }
    }
}

/// One command as it ran: shown and kept with secrets masked.
#[derive(Debug, Clone)]
pub struct CommandRun {
    pub command: String,
    pub outcome: Outcome,
    pub tail: String,
}

impl CommandRun {
    /// "`docker pause app`: failed (exit 1)", and the output's tail on further lines.
    pub fn describe(&self) -> String {
        let mut out = format!("`{}`: {}", self.command, self.outcome.describe());
        if !self.tail.is_empty() {
            out.push_str("; output:\n");
            out.push_str(&indent(&self.tail));
        }
        out
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a target's hooks run.
pub enum Place {
    Here,
    Over(Remote),
}

impl Place {
    /// `hooks.host` with its keys, else the target's own host, else this machine.
    pub fn of(cfg: &TargetConfig) -> Result<Place> {
        let hooks = cfg.hooks.as_ref();
        if let Some(h) = hooks.filter(|h| h.host.is_some()) {
            let host = crate::config::Host::parse(h.host.as_deref().unwrap_or_default())
                .map_err(|e| Error::Usage(format!("hooks.host: {e}")))?;
            let need = |p: &Option<std::path::PathBuf>, k: &str| {
                p.clone()
                    .ok_or_else(|| Error::Usage(format!("hooks.host needs hooks.{k}")))
            };
            return Ok(Place::Over(Remote {
                host,
                identity: need(&h.ssh_identity, "ssh_identity")?,
                known_hosts: need(&h.ssh_known_hosts, "ssh_known_hosts")?,
                idle_timeout: crate::ssh::DEFAULT_IDLE_TIMEOUT,
            }));
        }
        Ok(match Remote::of_target(cfg)? {
            Some(r) => Place::Over(r),
            None => Place::Here,
        })
    }

    /// "here" or "on user@host:port", for messages.
    pub fn describe(&self) -> String {
        match self {
            Place::Here => "on this host".into(),
            Place::Over(r) => format!("on {}", r.host),
        }
    }
}

/// Runs hook commands at one place with one time limit, masking what they print.
pub struct Runner {
    pub place: Place,
    pub timeout: Duration,
    pub masker: Masker,
}

impl Runner {
    /// The runner of a target's hooks, as configured.
    pub fn of(cfg: &TargetConfig) -> Result<Runner> {
        Ok(Runner {
            place: Place::of(cfg)?,
            timeout: cfg
                .hooks
                .as_ref()
                .map_or(crate::config::DEFAULT_HOOK_TIMEOUT, |h| h.timeout()),
            masker: Masker::from_config(),
        })
    }

    /// Run `commands` in order, each to its end or its time limit; with `stop_at_failure`
    /// the first that fails ends the list. `cancel`: the job's, for `before_*` only
    /// (`after_*` run to their end whatever happens to the job).
    pub fn run_list(
        &self,
        commands: &[Vec<String>],
        env: &HookEnv,
        stop_at_failure: bool,
        cancel: Option<&Cancel>,
        mut each: impl FnMut(&CommandRun),
    ) -> Vec<CommandRun> {
        let mut runs = Vec::new();
        if commands.is_empty() {
            return runs;
        }
        let vars = env.vars();
        let session = match &self.place {
            Place::Here => None,
            Place::Over(remote) => {
                let mut remote = remote.clone();
                // The remote time limit ends a silent command first; this only catches
                // a connection that went quiet.
                remote.idle_timeout = self.timeout + remote::LOCAL_MARGIN;
                let ctx = JobContext {
                    progress: std::sync::Arc::new(crate::progress::Silent),
                    cancel: cancel.cloned().unwrap_or_default(),
                };
                match Session::open(&remote, &ctx) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        // Unreachable: every command is reported as not run.
                        let why = self.masker.mask(&e.to_string());
                        for argv in commands {
                            let run = CommandRun {
                                command: self.masker.mask(&shown(argv)),
                                outcome: Outcome::Unreachable(why.clone()),
                                tail: String::new(),
                            };
                            each(&run);
                            runs.push(run);
                            if stop_at_failure {
                                break;
                            }
                        }
                        return runs;
                    }
                }
            }
        };
        for argv in commands {
            let (outcome, raw) = match &session {
                None => local::run(argv, &vars, self.timeout, cancel),
                Some(s) => remote::run(s, argv, &vars, self.timeout, cancel),
            };
            let run = CommandRun {
                command: self.masker.mask(&shown(argv)),
                outcome,
                tail: self.masker.mask(&tail_text(&raw)),
            };
            each(&run);
            let failed = !run.outcome.ok();
            runs.push(run);
            if failed && stop_at_failure {
                break;
            }
        }
        runs
    }
}

/// An argv as people read it (the shell's quoting, so spaces stay visible).
pub fn shown(argv: &[String]) -> String {
    crate::ssh::quote::join(argv)
}

/// The last lines of the last bytes of some output, as text.
fn tail_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..].join("\n")
}

/// A ring of the last `TAIL_BYTES` bytes written.
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > TAIL_BYTES {
            let cut = self.buf.len() - TAIL_BYTES;
            self.buf.drain(..cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_of_the_last_bytes() {
        let mut t = Tail::default();
        for i in 0..2000 {
            t.push(format!("line {i}\n").as_bytes());
        }
        assert!(t.buf.len() <= TAIL_BYTES);
        let text = tail_text(&t.buf);
        assert_eq!(text.lines().count(), TAIL_LINES);
        assert!(text.ends_with("line 1999"), "{text}");
    }

    #[test]
    fn the_environment_names_the_action() {
        let env = HookEnv {
            target: "app".into(),
            action: "restore",
            job: Some(4),
            backup: None,
            result: Some(HookResult::Cancelled),
        };
        let vars = env.vars();
        assert!(vars.contains(&("LIFEBOAT_RESULT".into(), "cancelled".into())));
        assert!(vars.contains(&("LIFEBOAT_JOB".into(), "4".into())));
        assert!(!vars.iter().any(|(k, _)| k == "LIFEBOAT_BACKUP"));
    }
}
