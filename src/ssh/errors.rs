//! Turning a failed `ssh` command into plain words: ssh itself exits 255 and says what
//! went wrong on stderr in its own terms; lifeboat's remote scripts mark their own
//! reasons with `lifeboat-error:` and `lifeboat-missing:` lines.

use super::Remote;
use crate::error::Error;

/// Everything known about a failed command.
pub struct Failure<'a> {
    pub remote: &'a Remote,
    /// The step, as in "copying the database".
    pub what: &'a str,
    /// Exit code; None when killed by a signal.
    pub code: Option<i32>,
    pub stderr: &'a [String],
}

impl Failure<'_> {
    fn has(&self, needle: &str) -> bool {
        self.stderr.iter().any(|l| l.contains(needle))
    }
    fn marker(&self, prefix: &str) -> Option<&str> {
        self.stderr
            .iter()
            .find_map(|l| l.strip_prefix(prefix).map(str::trim))
    }
    /// Whether one of lifeboat's scripts explained the failure itself.
    pub fn is_lifeboat_marker(&self) -> bool {
        self.stderr
            .iter()
            .any(|l| l.starts_with("lifeboat-error:") || l.starts_with("lifeboat-missing:"))
    }
}

/// The failure in words a person on call can act on.
pub fn explain(f: &Failure) -> Error {
    let r = f.remote;
    let host = &r.host;
    let kh = r.known_hosts.display();
    let key = r.identity.display();
    if let Some(cmd) = f.marker("lifeboat-missing:") {
        return Error::Failed(format!(
            "{} on {host}: the host has no `{cmd}` command; install it there (Debian: apt install {})",
            f.what,
            package_of(cmd)
        ));
    }
    if let Some(reason) = f.marker("lifeboat-error:") {
        return Error::Failed(format!("{} on {host}: {reason}", f.what));
    }
    let ssh_failed = f.code == Some(255) || f.code.is_none();
    let msg = if f.has("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || f.has("has changed and you have requested strict")
    {
        format!(
            "refusing to connect to {host}: its host key does not match the one in {kh}. If the host was reinstalled or its key rotated on purpose, check the new key's fingerprint with its administrator and replace its line in {kh}"
        )
    } else if f.has("host key is known for") || f.has("Host key verification failed") {
        format!(
            "refusing to connect to {host}: {kh} has no matching key for it (known_hosts name {}). Add its key after checking the fingerprint, e.g. `ssh-keyscan -p {} {} >> {kh}`",
            host.known_hosts_name(),
            host.port,
            host.host
        )
    } else if f.has("UNPROTECTED PRIVATE KEY FILE") || f.has("bad permissions") {
        format!("ssh refuses the key file {key} because others can read it: chmod 600 {key}")
    } else if f.has("no such identity") || (f.has("Load key") && f.has("No such file")) {
        format!("the key file {key} does not exist or cannot be read")
    } else if f.has("Permission denied (") {
        format!(
            "{host} refused lifeboat's key {key}: add its public key ({key}.pub) to ~{}/.ssh/authorized_keys on that host",
            host.user
        )
    } else if f.has("Connection refused") {
        format!(
            "{host} refused the connection on port {}: is sshd running there and listening on that port?",
            host.port
        )
    } else if f.has("Could not resolve hostname") || f.has("Name or service not known") {
        format!("cannot resolve the host name {}", host.host)
    } else if f.has("No route to host") || f.has("Network is unreachable") {
        format!("{host} is unreachable from here (no route to it)")
    } else if f.has("timed out") || f.has("Timeout, server") {
        format!(
            "no answer from {host}: the connection timed out while {}",
            f.what
        )
    } else if ssh_failed
        && (f.has("closed by remote host")
            || f.has("Connection closed")
            || f.has("Connection reset")
            || f.has("Broken pipe")
            || f.has("mux_client")
            || f.has("Control socket")
            || f.code.is_none()
            // A multiplexed session whose connection died exits 255 without a word.
            || f.stderr.iter().all(|l| l.trim().is_empty()))
    {
        format!(
            "the connection to {host} was lost while {}; nothing was kept from this attempt",
            f.what
        )
    } else if f.code == Some(127) || f.has("command not found") {
        format!(
            "{} on {host}: a command lifeboat needs is missing there ({})",
            f.what,
            last_line(f.stderr)
        )
    } else if ssh_failed {
        format!(
            "ssh to {host} failed while {}: {}",
            f.what,
            last_line(f.stderr)
        )
    } else {
        format!(
            "{} on {host} failed (exit code {}): {}",
            f.what,
            f.code.unwrap_or(-1),
            last_line(f.stderr)
        )
    };
    Error::Failed(msg)
}

fn last_line(lines: &[String]) -> String {
    lines
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "no message".into())
}

/// The Debian package that provides a command lifeboat needs on a remote host.
fn package_of(cmd: &str) -> &str {
    match cmd {
        "sqlite3" => "sqlite3",
        "tar" => "tar",
        "find" => "findutils",
        _ => "coreutils",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Host;
    use std::path::PathBuf;

    fn remote() -> Remote {
        Remote {
            host: Host::parse("ssh://backup@db1:2222").unwrap(),
            identity: PathBuf::from("/etc/lifeboat/id_ed25519"),
            known_hosts: PathBuf::from("/etc/lifeboat/known_hosts"),
            idle_timeout: std::time::Duration::from_secs(60),
        }
    }

    fn words(code: Option<i32>, stderr: &[&str]) -> String {
        let r = remote();
        let lines: Vec<String> = stderr.iter().map(|s| s.to_string()).collect();
        explain(&Failure {
            remote: &r,
            what: "copying the database",
            code,
            stderr: &lines,
        })
        .to_string()
    }

    #[test]
    fn ssh_failures_become_plain_words() {
        let changed = words(
            Some(255),
            &[
                "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
                "Host key verification failed.",
            ],
        );
        assert!(changed.contains("does not match"), "{changed}");
        assert!(changed.contains("/etc/lifeboat/known_hosts"), "{changed}");
        let unknown = words(
            Some(255),
            &[
                "No ED25519 host key is known for [db1]:2222 and you have requested strict checking.",
                "Host key verification failed.",
            ],
        );
        assert!(unknown.contains("no matching key"), "{unknown}");
        assert!(unknown.contains("[db1]:2222"), "{unknown}");
        let refused = words(Some(255), &["backup@db1: Permission denied (publickey)."]);
        assert!(refused.contains("refused lifeboat's key"), "{refused}");
        assert!(
            refused.contains("~backup/.ssh/authorized_keys"),
            "{refused}"
        );
        let down = words(
            Some(255),
            &["ssh: connect to host db1 port 2222: Connection refused"],
        );
        assert!(down.contains("is sshd running"), "{down}");
        let lost = words(Some(255), &["Connection to db1 closed by remote host."]);
        assert!(
            lost.contains("connection to backup@db1:2222 was lost"),
            "{lost}"
        );
        let timeout = words(
            Some(255),
            &["ssh: connect to host db1 port 2222: Connection timed out"],
        );
        assert!(timeout.contains("timed out"), "{timeout}");
    }

    #[test]
    fn script_markers_win_over_everything() {
        let missing = words(Some(127), &["lifeboat-missing: sqlite3"]);
        assert!(missing.contains("has no `sqlite3`"), "{missing}");
        assert!(missing.contains("apt install sqlite3"), "{missing}");
        let said = words(
            Some(3),
            &[
                "some noise",
                "lifeboat-error: the database /srv/a.db does not exist",
            ],
        );
        assert!(
            said.ends_with(
                "copying the database on backup@db1:2222: the database /srv/a.db does not exist"
            ),
            "{said}"
        );
    }

    #[test]
    fn other_failures_keep_the_last_line() {
        let other = words(Some(1), &["Error: database is locked"]);
        assert!(other.contains("exit code 1"), "{other}");
        assert!(other.contains("database is locked"), "{other}");
    }
}
