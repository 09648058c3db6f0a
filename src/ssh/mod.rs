//! Targets on other hosts, reached with the system OpenSSH client as Ansible does: host
//! keys always checked against the target's `ssh_known_hosts`, key authentication only,
//! one connection (a ControlMaster) reused by every step of a job, and a watchdog on
//! every remote command. Remote commands are built by lifeboat from config values only,
//! every value shell-quoted; nothing a chat user types ever reaches a remote shell.
//!
//! `run` is the one-call entry point for anything that just needs a command run on a
//! host (runbook command steps naming a `host` are meant to use it); backups and restores
//! hold a `Session` for the whole job and stream through `Session::spawn`.

pub mod errors;
pub mod process;
pub mod quote;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{Host, TargetConfig};
use crate::error::{Error, Result};
use crate::progress::JobContext;

pub use process::RemoteChild;

/// How long a connection may take to come up (TCP, key exchange, authentication).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default for `ssh_timeout`: a remote command that sends nothing for this long is ended.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Keepalives: a silent peer is declared dead after INTERVAL × COUNT_MAX seconds.
const ALIVE_INTERVAL: u32 = 15;
const ALIVE_COUNT_MAX: u32 = 4;
/// How long the shared connection outlives its last use if lifeboat dies without
/// closing it; a live session closes it explicitly when dropped.
const CONTROL_PERSIST: &str = "60s";

/// Everything needed to reach one host, from a target's config.
#[derive(Debug, Clone)]
pub struct Remote {
    pub host: Host,
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
    pub idle_timeout: Duration,
}

impl Remote {
    /// The remote side of a target, or None for a local one. Config validation has
    /// already checked the keys; this only assembles them.
    pub fn of_target(cfg: &TargetConfig) -> Result<Option<Remote>> {
        let Some(text) = cfg.host.as_deref() else {
            return Ok(None);
        };
        let host = Host::parse(text).map_err(|e| Error::Usage(format!("host: {e}")))?;
        let need = |p: &Option<PathBuf>, key: &str| {
            p.clone()
                .ok_or_else(|| Error::Usage(format!("a target with `host` needs `{key}`")))
        };
        Ok(Some(Remote {
            host,
            identity: need(&cfg.ssh_identity, "ssh_identity")?,
            known_hosts: need(&cfg.ssh_known_hosts, "ssh_known_hosts")?,
            idle_timeout: cfg.ssh_timeout.map_or(DEFAULT_IDLE_TIMEOUT, |d| d.0),
        }))
    }
}

/// One job's connection to a host: a private directory holding the ControlMaster socket,
/// so every step of the job rides the same authenticated connection.
pub struct Session {
    remote: Remote,
    dir: tempfile::TempDir,
}

/// ssh reads `%` tokens in paths; a literal `%` is written `%%`.
fn ssh_path(p: &Path) -> String {
    p.to_string_lossy().replace('%', "%%")
}

impl Session {
    /// Connect (authenticating once) within `CONNECT_TIMEOUT`; fails in plain words.
    pub fn open(remote: &Remote, ctx: &JobContext) -> Result<Session> {
        // Unix socket paths are short (108 bytes): keep the socket in a short private
        // directory (mode 0700) of its own rather than under the scratch directory.
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-ssh-")
            .tempdir()
            .map_err(|e| Error::io("creating a directory for the SSH connection", e))?;
        let session = Session {
            remote: remote.clone(),
            dir,
        };
        let what = "connecting";
        let child = session.spawn_with_timeout(
            "exit 0",
            &[],
            false,
            what,
            CONNECT_TIMEOUT + Duration::from_secs(10),
            ctx,
        )?;
        child.finish()?;
        Ok(session)
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    fn control_path(&self) -> PathBuf {
        self.dir.path().join("cm")
    }

    /// `ssh` with every option lifeboat insists on; the caller adds the destination.
    fn ssh(&self) -> Command {
        let r = &self.remote;
        let mut cmd = Command::new("ssh");
        let opts = [
            "BatchMode=yes".to_string(),
            "StrictHostKeyChecking=yes".into(),
            format!("UserKnownHostsFile=\"{}\"", ssh_path(&r.known_hosts)),
            "GlobalKnownHostsFile=/dev/null".into(),
            "UpdateHostKeys=no".into(),
            "CheckHostIP=no".into(),
            "IdentitiesOnly=yes".into(),
            "IdentityAgent=none".into(),
            "PubkeyAuthentication=yes".into(),
            "PasswordAuthentication=no".into(),
            "KbdInteractiveAuthentication=no".into(),
            "PreferredAuthentications=publickey".into(),
            format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()),
            format!("ServerAliveInterval={ALIVE_INTERVAL}"),
            format!("ServerAliveCountMax={ALIVE_COUNT_MAX}"),
            "ControlMaster=auto".into(),
            format!("ControlPath=\"{}\"", ssh_path(&self.control_path())),
            format!("ControlPersist={CONTROL_PERSIST}"),
            // AES-GCM first: with the AES instructions of any current CPU it costs both
            // ends about half the CPU of the default ChaCha20 on bulk transfers.
            "Ciphers=^aes128-gcm@openssh.com,aes256-gcm@openssh.com".into(),
            "ForwardAgent=no".into(),
            "ForwardX11=no".into(),
            "ClearAllForwardings=yes".into(),
            "RequestTTY=no".into(),
            "LogLevel=ERROR".into(),
        ];
        for o in opts {
            cmd.arg("-o").arg(o);
        }
        cmd.arg("-i").arg(ssh_path(&r.identity));
        cmd.arg("-p").arg(r.host.port.to_string());
        cmd.arg("-l").arg(&r.host.user);
        cmd
    }

    /// Start `script` under `sh` on the host with `args` as `$1`, `$2`... Its stdout is
    /// the child's reader; with `stdin`, the child's writer feeds the script's stdin.
    /// `what` names the step in errors ("copying the database").
    pub fn spawn(
        &self,
        script: &str,
        args: &[&str],
        stdin: bool,
        what: &str,
        ctx: &JobContext,
    ) -> Result<RemoteChild> {
        let timeout = self.remote.idle_timeout;
        self.spawn_with_timeout(script, args, stdin, what, timeout, ctx)
    }

    fn spawn_with_timeout(
        &self,
        script: &str,
        args: &[&str],
        stdin: bool,
        what: &str,
        idle: Duration,
        ctx: &JobContext,
    ) -> Result<RemoteChild> {
        // `sh -c` whatever the user's login shell is; `$0` names lifeboat in ps output.
        let mut words = vec!["sh", "-c", script, "lifeboat"];
        words.extend_from_slice(args);
        let remote_command = quote::join(&words);
        let mut cmd = self.ssh();
        cmd.arg("--")
            .arg(&self.remote.host.host)
            .arg(remote_command);
        RemoteChild::spawn(cmd, stdin, &self.remote, what, idle, ctx)
    }

    /// Run `script` to completion and return its stdout (small outputs only).
    pub fn output(
        &self,
        script: &str,
        args: &[&str],
        what: &str,
        ctx: &JobContext,
    ) -> Result<Vec<u8>> {
        let mut child = self.spawn(script, args, false, what, ctx)?;
        let mut out = Vec::new();
        let read = std::io::Read::read_to_end(child.stdout(), &mut out);
        child.finish()?;
        read.map_err(|e| Error::io(format!("{what} on {}", self.remote.host), e))?;
        Ok(out)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Close the shared connection now rather than after ControlPersist.
        let mut cmd = self.ssh();
        cmd.arg("-O")
            .arg("exit")
            .arg("--")
            .arg(&self.remote.host.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Ok(mut child) = cmd.spawn() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a command run with `run` produced.
#[derive(Debug)]
pub struct Output {
    /// The remote command's exit code.
    pub code: i32,
    pub stdout: Vec<u8>,
    /// The last lines it wrote to stderr.
    pub stderr: String,
}

/// Run `argv` on the host over a connection of its own and collect its output. SSH-level
/// failures (host key, refused key, unreachable, lost connection, timeout) are errors in
/// plain words; the command's own exit code is returned for the caller to judge.
pub fn run(remote: &Remote, argv: &[&str], ctx: &JobContext) -> Result<Output> {
    if argv.is_empty() {
        return Err(Error::Usage("no command to run".into()));
    }
    let session = Session::open(remote, ctx)?;
    let mut child = session.spawn(
        "exec \"$@\"",
        argv,
        false,
        &format!("running {}", argv[0]),
        ctx,
    )?;
    let mut stdout = Vec::new();
    let read = std::io::Read::read_to_end(child.stdout(), &mut stdout);
    let (code, stderr) = child.finish_with_code()?;
    read.map_err(|e| Error::io(format!("reading from {}", remote.host), e))?;
    Ok(Output {
        code,
        stdout,
        stderr,
    })
}

/// Test helper: `sh -n` accepts the script (the remote side runs it with `sh`).
#[cfg(test)]
pub(crate) fn assert_valid_sh(script: &str) {
    let out = std::process::Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_in_paths_is_escaped_for_ssh() {
        assert_eq!(ssh_path(Path::new("/a/100%/k")), "/a/100%%/k");
    }
}
