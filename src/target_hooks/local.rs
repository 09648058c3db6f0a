//! A hook command on this host: exec'd directly (no shell), with a clean environment, in
//! `/`, in a process group of its own so the time limit (or a cancelled `before_*`) kills
//! everything it started; its stdout and stderr share one pipe whose tail is kept.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{HOOK_PATH, Outcome, Tail};
use crate::progress::Cancel;

/// How long the output may stay open after the command ended (a process it started in
/// the background may hold it); then the tail so far is what is kept.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// How often the command is looked at while it runs.
const POLL: Duration = Duration::from_millis(10);

/// Run `argv` with `vars` added to a minimal environment, for at most `timeout`.
pub(super) fn run(
    argv: &[String],
    vars: &[(String, String)],
    timeout: Duration,
    cancel: Option<&Cancel>,
) -> (Outcome, Vec<u8>) {
    let Some((program, args)) = argv.split_first() else {
        return (Outcome::NotRun("empty command".into()), Vec::new());
    };
    let (mut reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => {
            return (
                Outcome::NotRun(format!("cannot make a pipe: {e}")),
                Vec::new(),
            );
        }
    };
    let child = {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", HOOK_PATH)
            .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/".into()))
            .env("LANG", "C.UTF-8")
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .process_group(0);
        match writer.try_clone() {
            Ok(w) => {
                cmd.stdout(w).stderr(writer);
            }
            Err(e) => {
                return (
                    Outcome::NotRun(format!("cannot make a pipe: {e}")),
                    Vec::new(),
                );
            }
        }
        // `cmd` (holding the pipe's writing ends) is dropped at the end of this block, so
        // the output ends when the command and its children close theirs.
        cmd.spawn()
    };
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (Outcome::NotRun(spawn_error(program, &e)), Vec::new()),
    };
    let tail = Arc::new(Mutex::new(Tail::default()));
    let (ended_tx, ended_rx) = std::sync::mpsc::channel::<()>();
    {
        let tail = tail.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => tail.lock().unwrap().push(&buf[..n]),
                }
            }
            let _ = ended_tx.send(());
        });
    }
    let group = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    let outcome = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                break match (status.code(), status.signal()) {
                    (Some(0), _) => Outcome::Ok,
                    (Some(c), _) => Outcome::Exit(c),
                    (None, Some(s)) => Outcome::Signal(s),
                    (None, None) => Outcome::Exit(-1),
                };
            }
            Ok(None) => {}
            Err(e) => break Outcome::NotRun(format!("cannot wait for it: {e}")),
        }
        let stop = if Instant::now() >= deadline {
            Some(Outcome::TimedOut(timeout))
        } else if cancel.is_some_and(Cancel::is_cancelled) {
            Some(Outcome::Cancelled)
        } else {
            None
        };
        if let Some(outcome) = stop {
            // SAFETY: signals the process group the child leads; the child is not yet
            // reaped, so the group id cannot have been reused.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            break outcome;
        }
        std::thread::sleep(POLL);
    };
    let mut kept = Vec::new();
    if ended_rx.recv_timeout(OUTPUT_GRACE).is_err() {
        kept.extend_from_slice(
            b"\n(lifeboat: a process this command started keeps its output open; redirect that process's output)\n",
        );
    }
    let mut out = tail.lock().unwrap().buf.clone();
    out.extend(kept);
    (outcome, out)
}

/// Why a command could not start, in words a config author acts on.
fn spawn_error(program: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{program}: no such program (hooks run with PATH={HOOK_PATH}; give a full path)"
        ),
        std::io::ErrorKind::PermissionDenied => {
            format!("{program}: not executable (permission denied)")
        }
        _ => format!("{program}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_command_gets_only_the_clean_environment_and_its_output_is_kept() {
        let vars = vec![("LIFEBOAT_TARGET".to_string(), "t1".to_string())];
        let (outcome, out) = run(
            &argv(&["/bin/sh", "-c", "env; echo to-stderr >&2; exit 3"]),
            &vars,
            Duration::from_secs(30),
            None,
        );
        assert_eq!(outcome, Outcome::Exit(3));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("LIFEBOAT_TARGET=t1"), "{text}");
        assert!(text.contains("to-stderr"), "{text}");
        assert!(text.contains(&format!("PATH={HOOK_PATH}")), "{text}");
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        for name in &names {
            assert!(
                [
                    "PATH",
                    "HOME",
                    "LANG",
                    "LIFEBOAT_TARGET",
                    "PWD",
                    "SHLVL",
                    "_"
                ]
                .contains(name),
                "{name} leaked into the hook's environment: {text}"
            );
        }
    }

    #[test]
    fn a_command_that_hangs_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let script = format!(
            "sleep 1000 & echo $! > {}; echo started; wait",
            pidfile.display()
        );
        let (outcome, out) = run(
            &argv(&["/bin/sh", "-c", &script]),
            &[],
            Duration::from_millis(300),
            None,
        );
        assert_eq!(outcome, Outcome::TimedOut(Duration::from_millis(300)));
        assert!(String::from_utf8_lossy(&out).contains("started"));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep was in the group: SIGKILL reaches it (delivery is not
        // instant, so it is waited for), and it is gone or a zombie being reaped.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if state.is_empty() || state.contains(") Z") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the hook's child survived: {state}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn missing_and_unexecutable_programs_are_named() {
        let (o, _) = run(
            &argv(&["no-such-program-x"]),
            &[],
            Duration::from_secs(5),
            None,
        );
        assert!(
            matches!(&o, Outcome::NotRun(w) if w.contains("no such program")),
            "{o:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hook.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        let (o, _) = run(
            &argv(&[script.to_str().unwrap()]),
            &[],
            Duration::from_secs(5),
            None,
        );
        assert!(
            matches!(&o, Outcome::NotRun(w) if w.contains("not executable")),
            "{o:?}"
        );
    }
}
