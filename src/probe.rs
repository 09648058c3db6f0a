//! Probes shared by drill checks and runbook steps: an HTTP GET that reports the status
//! (and body, when asked), and a command run on this host with a time limit whose output
//! is kept. Callers judge the result and word it their own way.

use std::ffi::OsStr;
use std::io::{Read, Seek};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a probe could not be made (a probe that ran and got an answer is not an error,
/// whatever the answer: its caller judges it).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer to the request: refused, unresolvable, timed out.
    #[error("{0}")]
    Request(#[source] Box<ureq::Error>),
    #[error("reading the answer: {0}")]
    Body(#[source] Box<ureq::Error>),
    #[error("no command given")]
    NoCommand,
    #[error("cannot capture the output: {0}")]
    Capture(#[source] std::io::Error),
    #[error("cannot start {program}: {source}")]
    Start {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// GET `url` within `timeout`: its status, and its body (up to 1 MiB) if `with_body`.
pub fn http_get(
    url: &str,
    timeout: Duration,
    with_body: bool,
) -> Result<(u16, String), ProbeError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| ProbeError::Request(Box::new(e)))?;
    let status = response.status().as_u16();
    let body = if with_body {
        response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| ProbeError::Body(Box::new(e)))?
    } else {
        String::new()
    };
    Ok((status, body))
}

/// How a command run by `run_command` ended.
pub enum CommandEnd {
    /// It exited (`code` is None when a signal ended it); `output` is the end of what it
    /// wrote to stdout and stderr, in the order written.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        output: String,
    },
    /// It was still running when the time was up, and was killed.
    TimedOut,
}

/// How much of a command's output is kept: the end, where errors are.
const OUTPUT_KEPT: u64 = 4096;

/// Run `argv` (no shell) with extra `env`, stdin closed, killed after `timeout`.
pub fn run_command(
    argv: &[String],
    env: &[(&str, &OsStr)],
    timeout: Duration,
) -> Result<CommandEnd, ProbeError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(ProbeError::NoCommand);
    };
    // One file for both streams keeps their order and never blocks a chatty command.
    let mut output = tempfile::tempfile().map_err(ProbeError::Capture)?;
    let stdout = output.try_clone().map_err(ProbeError::Capture)?;
    let stderr = output.try_clone().map_err(ProbeError::Capture)?;
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|source| ProbeError::Start {
            program: program.clone(),
            source,
        })?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(CommandEnd::TimedOut);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(source) => {
                return Err(ProbeError::Wait {
                    program: program.clone(),
                    source,
                });
            }
        }
    };
    let len = output.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    let _ = output.seek(std::io::SeekFrom::Start(len.saturating_sub(OUTPUT_KEPT)));
    let _ = output.read_to_end(&mut bytes);
    Ok(CommandEnd::Exited {
        code: status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&status),
        output: String::from_utf8_lossy(&bytes).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_report_code_output_env_and_timeouts() {
        let sandbox = OsStr::new("/tmp/sandbox");
        let end = run_command(
            &argv(&[
                "sh",
                "-c",
                "echo out; echo \"err $LIFEBOAT_SANDBOX\" >&2; exit 3",
            ]),
            &[("LIFEBOAT_SANDBOX", sandbox)],
            Duration::from_secs(10),
        )
        .unwrap();
        match end {
            CommandEnd::Exited { code, output, .. } => {
                assert_eq!(code, Some(3));
                assert_eq!(output, "out\nerr /tmp/sandbox\n");
            }
            CommandEnd::TimedOut => panic!("timed out"),
        }
        let slow = run_command(&argv(&["sleep", "5"]), &[], Duration::from_millis(100));
        assert!(matches!(slow, Ok(CommandEnd::TimedOut)));
        let missing = run_command(&argv(&["/nonexistent/tool"]), &[], Duration::from_secs(1));
        assert!(
            missing
                .err()
                .unwrap()
                .to_string()
                .contains("cannot start /nonexistent/tool")
        );
    }
}
