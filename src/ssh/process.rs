//! One running `ssh` command: its stdout as a reader, its stdin as a writer, its stderr
//! collected on a thread, and a watchdog that ends it when it goes silent for too long or
//! the job is cancelled. Dropping it unfinished kills it, so an error anywhere on the
//! lifeboat side also ends the remote command (whose shell then removes its temp files).

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Remote;
use super::errors::{Failure, explain};
use crate::error::{Error, Result};
use crate::progress::{Cancel, JobContext, Progress};

/// Remote scripts report liveness and progress on stderr with this prefix.
pub const PROGRESS_PREFIX: &str = "lifeboat-progress ";
/// How many ordinary stderr lines are kept for error messages.
const KEPT_LINES: usize = 40;

/// Why the watchdog ended a command.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fired {
    Idle,
    Cancelled,
}

/// State shared by the command's readers/writers and its watchdog.
struct Watch {
    start: Instant,
    /// Milliseconds since `start` of the last sign of life.
    last: AtomicU64,
    done: AtomicBool,
    fired: Mutex<Option<Fired>>,
}

impl Watch {
    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last.load(Ordering::Relaxed)))
    }
}

pub struct RemoteChild {
    child: Child,
    stdout: Option<Activity<ChildStdout>>,
    stdin: Option<Activity<ChildStdin>>,
    stderr: Option<JoinHandle<Vec<String>>>,
    watch: Arc<Watch>,
    watchdog: Option<JoinHandle<()>>,
    remote: Remote,
    what: String,
    idle: Duration,
}

impl RemoteChild {
    pub(super) fn spawn(
        mut cmd: Command,
        stdin: bool,
        remote: &Remote,
        what: &str,
        idle: Duration,
        ctx: &JobContext,
    ) -> Result<RemoteChild> {
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::Failed(
                    "the `ssh` command is not installed on this machine (Debian: apt install openssh-client)"
                        .into(),
                )
            } else {
                Error::io("starting ssh", e)
            }
        })?;
        let watch = Arc::new(Watch {
            start: Instant::now(),
            last: AtomicU64::new(0),
            done: AtomicBool::new(false),
            fired: Mutex::new(None),
        });
        let stderr = child.stderr.take().expect("piped");
        let stderr = {
            let watch = watch.clone();
            let progress = ctx.progress.clone();
            std::thread::spawn(move || collect_stderr(stderr, &watch, progress.as_ref()))
        };
        let watchdog = {
            let watch = watch.clone();
            let cancel = ctx.cancel.clone();
            let pid = child.id() as libc::pid_t;
            std::thread::spawn(move || watchdog(pid, &watch, idle, &cancel))
        };
        Ok(RemoteChild {
            stdout: child.stdout.take().map(|s| Activity::new(s, watch.clone())),
            stdin: child.stdin.take().map(|s| Activity::new(s, watch.clone())),
            child,
            stderr: Some(stderr),
            watch,
            watchdog: Some(watchdog),
            remote: remote.clone(),
            what: what.into(),
            idle,
        })
    }

    /// The remote command's stdout.
    pub fn stdout(&mut self) -> &mut dyn Read {
        self.stdout.as_mut().expect("stdout taken only by finish")
    }

    /// The remote command's stdin (only when spawned with `stdin`); take it to write from
    /// another thread, and drop it to send end-of-file.
    pub fn take_stdin(&mut self) -> Option<impl Write + Send + 'static> {
        self.stdin.take()
    }

    /// Wait for the command and judge it: Ok with its stderr when it exited 0, otherwise
    /// the failure in plain words.
    pub fn finish(self) -> Result<String> {
        let remote = self.remote.clone();
        let what = self.what.clone();
        let (code, stderr) = self.finish_with_code()?;
        if code == 0 {
            return Ok(stderr);
        }
        let lines: Vec<String> = stderr.lines().map(String::from).collect();
        Err(explain(&Failure {
            remote: &remote,
            what: &what,
            code: Some(code),
            stderr: &lines,
        }))
    }

    /// Like `finish`, but a non-zero exit of the remote command itself is returned, not
    /// an error; SSH failures, timeouts and cancellation still are errors.
    pub fn finish_with_code(mut self) -> Result<(i32, String)> {
        self.stdin.take();
        self.stdout.take();
        // Wait without reaping, so the watchdog can never signal a recycled pid.
        wait_unreaped(self.child.id());
        self.stop_watchdog();
        let status = self.child.wait();
        let lines = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let fired = *self.watch.fired.lock().unwrap();
        match fired {
            Some(Fired::Cancelled) => return Err(Error::Cancelled),
            Some(Fired::Idle) => {
                return Err(Error::Failed(format!(
                    "{} on {}: nothing came back for {}, so lifeboat stopped it",
                    self.what,
                    self.remote.host,
                    humantime::format_duration(self.idle)
                )));
            }
            None => {}
        }
        let status = status.map_err(|e| Error::io("waiting for ssh", e))?;
        let code = status.code();
        let failure = Failure {
            remote: &self.remote,
            what: &self.what,
            code,
            stderr: &lines,
        };
        match code {
            Some(0) => Ok((0, lines.join("\n"))),
            Some(c) if c != 255 && !failure.is_lifeboat_marker() => Ok((c, lines.join("\n"))),
            _ => Err(explain(&failure)),
        }
    }

    fn stop_watchdog(&mut self) {
        self.watch.done.store(true, Ordering::SeqCst);
        if let Some(h) = self.watchdog.take() {
            let _ = h.join();
        }
    }
}

impl Drop for RemoteChild {
    fn drop(&mut self) {
        if self.watchdog.is_some() {
            // Dropped unfinished: an error on our side. End the command.
            self.stop_watchdog();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Block until the child has exited, leaving it for `Child::wait` to reap.
fn wait_unreaped(pid: u32) {
    loop {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

fn watchdog(pid: libc::pid_t, watch: &Watch, idle: Duration, cancel: &Cancel) {
    while !watch.done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let reason = if cancel.is_cancelled() {
            Some(Fired::Cancelled)
        } else if watch.idle_for() > idle {
            Some(Fired::Idle)
        } else {
            None
        };
        if let Some(reason) = reason {
            *watch.fired.lock().unwrap() = Some(reason);
            // The child is not reaped before `done` is set, so the pid is still ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return;
        }
    }
}

/// Keep the last lines for error messages; progress lines count as a sign of life only
/// when the number they carry moved, so a stuck remote command still times out.
fn collect_stderr(stderr: impl Read, watch: &Watch, progress: &dyn Progress) -> Vec<String> {
    let mut reader = BufReader::new(stderr);
    let mut kept = VecDeque::new();
    let mut markers = Vec::new();
    let mut last_progress: Option<u64> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if let Some(n) = text.strip_prefix(PROGRESS_PREFIX) {
            let n: u64 = n.trim().parse().unwrap_or(0);
            if last_progress != Some(n) {
                watch.touch();
                progress.advance(n.saturating_sub(last_progress.unwrap_or(0)));
                last_progress = Some(n);
            }
            continue;
        }
        watch.touch();
        if text.is_empty() {
            continue;
        }
        if text.starts_with("lifeboat-") {
            markers.push(text); // our scripts' own reasons: always kept
        } else {
            kept.push_back(text);
            if kept.len() > KEPT_LINES {
                kept.pop_front();
            }
        }
    }
    markers.extend(kept);
    markers
}

/// A reader or writer whose every transfer counts as a sign of life.
struct Activity<T> {
    inner: T,
    watch: Arc<Watch>,
}

impl<T> Activity<T> {
    fn new(inner: T, watch: Arc<Watch>) -> Self {
        Activity { inner, watch }
    }
}

impl<T: Read> Read for Activity<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.watch.touch();
        }
        Ok(n)
    }
}

impl<T: Write> Write for Activity<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.watch.touch();
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
