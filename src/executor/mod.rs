//! Runs jobs: a job record from start to end, one job per target at a time (a lock file
//! the OS releases if the process dies), cancellation, and the sweep that marks jobs left
//! running by a crashed process as interrupted. What the jobs are, and the one place
//! they are run from, is in `job`.

pub mod job;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::db::Db;
use crate::db::jobs::{JobRecord, JobState};
use crate::error::{Error, Result};
use crate::progress::{Cancel, JobContext, Progress};

#[derive(Clone)]
pub struct Executor {
    db: Db,
    locks_dir: PathBuf,
    running: Arc<Mutex<HashMap<i64, Running>>>,
}

/// A job this process runs: how to cancel it, and where it is.
type Running = (Cancel, Arc<Live>);

/// Where a running job is: its phase and bytes, as its progress last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveProgress {
    pub phase: String,
    pub done_bytes: u64,
    pub total_bytes: Option<u64>,
}

/// The shared, cheaply updated form of `LiveProgress`.
#[derive(Default)]
struct Live {
    phase: Mutex<(String, Option<u64>)>,
    done: std::sync::atomic::AtomicU64,
}

/// How a finished job went, as recorded.
pub struct Finished<T> {
    pub job: JobRecord,
    pub value: T,
}

/// What a job returns to be recorded beside its state.
pub trait JobOutput {
    /// The backup the job produced or used, if any.
    fn backup_id(&self) -> Option<String> {
        None
    }
    /// A one-line summary for the job record.
    fn summary(&self) -> String;
    /// Whether the job's result counts as success (a verify that found problems does not).
    fn ok(&self) -> bool {
        true
    }
}

impl Executor {
    pub fn new(db: Db, locks_dir: PathBuf) -> Executor {
        Executor {
            db,
            locks_dir,
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn lock_path(&self, target: &str) -> PathBuf {
        self.locks_dir.join(format!("{target}.lock"))
    }

    fn try_lock(&self, target: &str) -> Result<Option<File>> {
        std::fs::create_dir_all(&self.locks_dir)
            .map_err(|e| Error::io(format!("creating {}", self.locks_dir.display()), e))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path(target))
            .map_err(|e| Error::io("opening the target lock", e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking the target", e)),
        }
    }

    /// Mark jobs recorded as running whose target lock nobody holds as interrupted
    /// (their process died). Returns them.
    pub fn sweep_interrupted(&self) -> Result<Vec<JobRecord>> {
        let mut swept = Vec::new();
        for job in self.db.jobs_running(None)? {
            if let Some(lock) = self.try_lock(&job.target)? {
                self.db.job_finish(
                    job.id,
                    JobState::Interrupted,
                    None,
                    Some("the process running this job stopped before it finished"),
                    None,
                )?;
                self.db.audit(
                    "lifeboat",
                    &format!("{} interrupted", job.kind),
                    Some(&job.target),
                    "interrupted",
                    Some(&format!(
                        "job {} started {} by {}",
                        job.id, job.started_at, job.actor
                    )),
                )?;
                drop(lock);
                swept.push(job);
            }
        }
        Ok(swept)
    }

    /// Run `work` as a job of `kind` on `target`, refusing at once if another job holds
    /// the target. The job is recorded before it starts and when it ends, whatever happens.
    pub fn run<T: JobOutput>(
        &self,
        kind: &str,
        target: &str,
        actor: &str,
        ctx: &JobContext,
        work: impl FnOnce(&JobRecord, &JobContext) -> Result<T>,
    ) -> Result<Finished<T>> {
        let Some(lock) = self.try_lock(target)? else {
            return Err(Error::Busy(self.busy_message(target)?));
        };
        let job = self.db.job_insert(kind, target, actor)?;
        let live = Arc::new(Live::default());
        self.running
            .lock()
            .unwrap()
            .insert(job.id, (ctx.cancel.clone(), live.clone()));
        self.db.audit(
            actor,
            &format!("{kind} started"),
            Some(target),
            "started",
            Some(&format!("job {}", job.id)),
        )?;
        // Each phase of the job is audited, so an incident's timeline shows the job's steps.
        let stamped = JobContext {
            progress: Arc::new(PhaseAudit {
                inner: ctx.progress.clone(),
                db: self.db.clone(),
                actor: actor.to_string(),
                action: format!("{kind} phase"),
                target: target.to_string(),
                job: job.id,
                live,
            }),
            cancel: ctx.cancel.clone(),
        };
        let result = work(&job, &stamped);
        self.running.lock().unwrap().remove(&job.id);
        let (state, backup_id, message) = match &result {
            Ok(v) if v.ok() => (JobState::Succeeded, v.backup_id(), v.summary()),
            Ok(v) => (JobState::Failed, v.backup_id(), v.summary()),
            Err(Error::Cancelled) => (JobState::Cancelled, None, "cancelled".to_string()),
            Err(e) => (JobState::Failed, None, e.to_string()),
        };
        self.db
            .job_finish(job.id, state, backup_id.as_deref(), Some(&message), None)?;
        self.db.audit(
            actor,
            &format!("{kind} finished"),
            Some(target),
            state.as_str(),
            Some(&format!("job {}: {message}", job.id)),
        )?;
        drop(lock);
        let job = self.db.job_get(job.id)?.unwrap_or(job);
        result.map(|value| Finished { job, value })
    }

    /// Run `work` holding the target's lock, without a job record (housekeeping: what a
    /// crashed job left); `None` (nothing run) when another job holds it, which cleans up
    /// after itself.
    pub fn with_target_lock<T>(&self, target: &str, work: impl FnOnce() -> T) -> Result<Option<T>> {
        let Some(lock) = self.try_lock(target)? else {
            return Ok(None);
        };
        let out = work();
        drop(lock);
        Ok(Some(out))
    }

    fn busy_message(&self, target: &str) -> Result<String> {
        let running = self.db.jobs_running(Some(target))?;
        Ok(match running.last() {
            Some(j) => format!(
                "{target} is busy: job {} ({} by {}, started {}) is still running; try again when it ends",
                j.id, j.kind, j.actor, j.started_at
            ),
            None => format!("{target} is busy: another job holds it; try again when it ends"),
        })
    }

    /// Ask every running job of this process to stop.
    pub fn cancel_all(&self) {
        for (c, _) in self.running.lock().unwrap().values() {
            c.cancel();
        }
    }

    /// The live progress of a job this process is running (None: not running here).
    pub fn progress_of(&self, job: i64) -> Option<LiveProgress> {
        let running = self.running.lock().unwrap();
        let (_, live) = running.get(&job)?;
        let (phase, total) = live.phase.lock().unwrap().clone();
        Some(LiveProgress {
            phase,
            done_bytes: live.done.load(std::sync::atomic::Ordering::Relaxed),
            total_bytes: total,
        })
    }

    pub fn running_count(&self) -> usize {
        self.running.lock().unwrap().len()
    }
}

/// How far below the HTTP front end a job's threads run (nice value steps): compression
/// and hashing of a large backup then never delay the acknowledgements chat platforms
/// want within 3 seconds.
const JOB_NICENESS: i32 = 10;

/// Run `work` (a backup, verify, restore, drill or runbook run) on a thread of its own at a
/// lower CPU priority; threads it starts (e.g. zstd's workers) inherit the priority. Jobs
/// do not use tokio's blocking pool, whose threads also answer chat requests.
pub async fn on_job_thread<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (done, result) = tokio::sync::oneshot::channel();
    // Inside the job, tokio's handle is there as on its blocking threads (jobs post to
    // chat and start tasks).
    let runtime = tokio::runtime::Handle::try_current().ok();
    std::thread::Builder::new()
        .name("lifeboat-job".into())
        .spawn(move || {
            let _entered = runtime.as_ref().map(|r| r.enter());
            lower_this_threads_priority();
            let _ = done.send(work());
        })
        .map_err(|e| Error::io("cannot start a job thread", e))?;
    result
        .await
        .map_err(|_| Error::Failed("the job stopped unexpectedly (see the log)".into()))
}

/// Lower the calling thread's priority by `JOB_NICENESS` (Linux nice values are per thread).
fn lower_this_threads_priority() {
    // SAFETY: plain system calls on this thread's own id; no memory is shared.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        let wanted = (current + JOB_NICENESS).min(19);
        if libc::setpriority(libc::PRIO_PROCESS, tid, wanted) != 0 {
            tracing::debug!(
                "could not lower a job thread's priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Passes progress on, keeps the job's live progress, and writes each new phase to the
/// audit log.
struct PhaseAudit {
    inner: Arc<dyn Progress>,
    db: Db,
    actor: String,
    action: String,
    target: String,
    job: i64,
    live: Arc<Live>,
}

impl Progress for PhaseAudit {
    fn phase(&self, name: &str) {
        if let Err(e) = self.db.audit(
            &self.actor,
            &self.action,
            Some(&self.target),
            "running",
            Some(&format!("job {}: {name}", self.job)),
        ) {
            tracing::warn!("audit of a job phase: {e}");
        }
        *self.live.phase.lock().unwrap() = (name.to_string(), None);
        self.live
            .done
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.inner.phase(name);
    }
    fn total(&self, bytes: Option<u64>) {
        self.live.phase.lock().unwrap().1 = bytes;
        self.inner.total(bytes)
    }
    fn advance(&self, bytes: u64) {
        self.live
            .done
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        self.inner.advance(bytes)
    }
    fn note(&self, text: &str) {
        self.inner.note(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Out;
    impl JobOutput for Out {
        fn summary(&self) -> String {
            "done".into()
        }
    }

    #[test]
    fn second_job_on_a_target_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Executor::new(Db::in_memory(), dir.path().to_path_buf());
        let ctx = JobContext::silent();
        let inner = ex.clone();
        let r = ex
            .run("backup", "t1", "cli:alice", &ctx, |job, ctx| {
                let second = inner.run("backup", "t1", "cli:bob", ctx, |_, _| Ok(Out));
                match second {
                    Err(Error::Busy(msg)) => {
                        assert!(msg.contains(&format!("job {}", job.id)), "{msg}");
                        assert!(msg.contains("cli:alice"), "{msg}");
                    }
                    _ => panic!("second job was not refused"),
                }
                // The first job's progress is visible while it runs.
                ctx.progress.phase("copying");
                ctx.progress.total(Some(10));
                ctx.progress.advance(4);
                let live = inner.progress_of(job.id).expect("running job has progress");
                assert_eq!(
                    live,
                    LiveProgress {
                        phase: "copying".into(),
                        done_bytes: 4,
                        total_bytes: Some(10)
                    }
                );
                // Another target is independent.
                assert!(
                    inner
                        .run("backup", "t2", "cli:bob", ctx, |_, _| Ok(Out))
                        .is_ok()
                );
                Ok(Out)
            })
            .unwrap();
        assert_eq!(r.job.state, JobState::Succeeded);
        assert_eq!(ex.progress_of(r.job.id), None, "finished jobs have none");
    }

    #[tokio::test]
    async fn job_threads_run_at_a_lower_priority_than_their_caller() {
        let niceness =
            || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let ours = niceness();
        let theirs = on_job_thread(niceness).await.unwrap();
        assert_eq!(theirs, (ours + JOB_NICENESS).min(19));
        assert_eq!(niceness(), ours, "the caller is untouched");
        // Jobs can start tasks on the runtime, as they could on its blocking threads.
        let spawned = on_job_thread(|| tokio::spawn(async { 7 })).await.unwrap();
        assert_eq!(spawned.await.unwrap(), 7);
        let panicked = on_job_thread(|| -> i32 { panic!("boom") }).await;
        assert!(
            panicked
                .unwrap_err()
                .to_string()
                .contains("stopped unexpectedly")
        );
    }

    #[test]
    fn jobs_left_running_are_swept_as_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::in_memory();
        let ex = Executor::new(db.clone(), dir.path().to_path_buf());
        let job = db.job_insert("backup", "t1", "cli:alice").unwrap(); // as if a process died
        let swept = ex.sweep_interrupted().unwrap();
        assert_eq!(swept.len(), 1);
        assert_eq!(
            db.job_get(job.id).unwrap().unwrap().state,
            JobState::Interrupted
        );
        assert!(ex.sweep_interrupted().unwrap().is_empty());
    }
}
