//! A hook command on another host, over the job's SSH session. sshd drops environment
//! variables it does not know, so the `LIFEBOAT_*` variables travel as arguments and the
//! remote script exports them; the argv itself travels as quoted words and is exec'd, not
//! re-read by a shell. Killing the local `ssh` does not stop a remote command, so the time
//! limit is enforced on the host by coreutils' `timeout`, which kills the command's whole
//! process group; lifeboat's own limit (a margin later) only ends a connection gone quiet.

use std::time::Duration;

use super::{Outcome, Tail};
use crate::progress::{Cancel, JobContext, Silent};
use crate::ssh::Session;

/// How much later than the remote limit lifeboat gives up on the connection itself.
pub(super) const LOCAL_MARGIN: Duration = Duration::from_secs(30);
/// After TERM at the limit, KILL this much later (`timeout -k`).
const KILL_AFTER_SECS: u64 = 5;
/// The remote script's exit when it could not start the command at all.
const NOT_STARTED: i32 = 125;

/// `$1`: the time limit, `$2`: when KILL follows TERM; then `NAME=value` words up to
/// `--`; then the argv.
const SCRIPT: &str = r#"exec 2>&1
cd / || exit 125
limit=$1; kill_after=$2; shift 2
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do export "$1"; shift; done
shift
if ! command -v timeout >/dev/null 2>&1; then
  echo "lifeboat-hook: this host has no 'timeout' command (coreutils), so no time limit could be enforced"
  exit 125
fi
timeout -k "$kill_after" "$limit" "$@"
"#;

/// Run `argv` on the session's host for at most `timeout`.
pub(super) fn run(
    session: &Session,
    argv: &[String],
    vars: &[(String, String)],
    timeout: Duration,
    cancel: Option<&Cancel>,
) -> (Outcome, Vec<u8>) {
    if argv.is_empty() {
        return (Outcome::NotRun("empty command".into()), Vec::new());
    }
    // Whole seconds, at least one: `timeout` reads fractions too, but not everywhere.
    let limit = format!("{}s", timeout.as_secs_f64().ceil().max(1.0) as u64);
    let kill_after = format!("{KILL_AFTER_SECS}s");
    let mut words: Vec<&str> = vec![limit.as_str(), kill_after.as_str()];
    let assigned: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    words.extend(assigned.iter().map(String::as_str));
    words.push("--");
    words.extend(argv.iter().map(String::as_str));
    let ctx = JobContext {
        progress: std::sync::Arc::new(Silent),
        cancel: cancel.cloned().unwrap_or_default(),
    };
    let what = format!("running the hook {}", argv[0]);
    let mut child = match session.spawn(SCRIPT, &words, false, &what, &ctx) {
        Ok(c) => c,
        Err(e) => return (Outcome::Unreachable(e.to_string()), Vec::new()),
    };
    let mut tail = Tail::default();
    let mut buf = [0u8; 8192];
    loop {
        match child.stdout().read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => tail.push(&buf[..n]),
        }
    }
    let outcome = match child.finish_with_code() {
        Ok((0, _)) => Outcome::Ok,
        // `timeout` says 124 when it had to stop the command (137 when KILL was needed).
        Ok((124 | 137, _)) => Outcome::TimedOut(timeout),
        Ok((NOT_STARTED, _)) => {
            let why = String::from_utf8_lossy(&tail.buf).trim().to_string();
            Outcome::NotRun(if why.is_empty() {
                "the remote shell could not start it".into()
            } else {
                why
            })
        }
        // `timeout` answers 126 (not executable) and 127 (not found) as the shell does.
        Ok((126, _)) => Outcome::NotRun(format!("{}: not executable on the host", argv[0])),
        Ok((127, _)) => Outcome::NotRun(format!("{}: no such program on the host", argv[0])),
        Ok((code, _)) => Outcome::Exit(code),
        Err(crate::error::Error::Cancelled) => Outcome::Cancelled,
        Err(e) => Outcome::Unreachable(e.to_string()),
    };
    (outcome, tail.buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_script_is_valid_sh_and_exports_the_variables() {
        crate::ssh::assert_valid_sh(SCRIPT);
        // Run it here as the remote shell would, on a command that prints its environment.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .args([
                "lifeboat",
                "30s",
                "5s",
                "LIFEBOAT_TARGET=it's mine",
                "--",
                "sh",
                "-c",
                "echo \"[$LIFEBOAT_TARGET]\" \"$0\"",
                "a b",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), "[it's mine] a b", "{text}");
    }
}
