//! The one job runner: a [`Job`] value (backup, verify, restore, drill, prune) that chat,
//! the scheduler, runbooks and the command line build, run here — in `serve` with a job
//! slot and a job thread of its own, always with the caller's progress and cancellation —
//! and get back as a [`JobReport`] they only render.

use std::sync::Arc;

use tokio::sync::TryAcquireError;

use crate::actions::catalog::Selector;
use crate::actions::drill::DrillReport;
use crate::actions::kind::{PlannedRestore, RestoreDone};
use crate::actions::prune::PrunePlan;
use crate::actions::restore::{RestoreOutcome, RestorePlan};
use crate::actions::verify::VerifyReport;
use crate::actions::{self};
use crate::app::App;
use crate::error::{Error, Result};
use crate::executor::JobOutput;
use crate::progress::JobContext;
use crate::stores::manifest::Manifest;

/// One piece of work on one target, as the executor runs it (a job record, the target's
/// lock); what it reports is the matching [`JobReport`] variant.
#[derive(Debug, Clone)]
pub enum Job {
    Backup {
        target: String,
    },
    /// With `read_data`, the store reads every byte it holds.
    Verify {
        target: String,
        selector: Selector,
        read_data: bool,
    },
    /// A restore of files put in place at a path (chat, approvals, runbooks).
    Restore {
        plan: Box<RestorePlan>,
        /// The approval request that allowed it, if one was needed.
        approval_id: Option<String>,
    },
    /// A restore as the command line plans it through the target's kind (a gcp-disk
    /// target's: a new disk).
    PlannedRestore {
        plan: Arc<dyn PlannedRestore>,
    },
    Drill {
        target: String,
        selector: Selector,
    },
    /// Remove the backups retention no longer keeps.
    Prune {
        target: String,
    },
}

/// What a job that ran to its end reports: the action's own report.
pub enum JobReport {
    Backup(Manifest),
    /// `ok == false` when the backup failed verification.
    Verify(VerifyReport),
    Restore(RestoreOutcome),
    PlannedRestore(Box<dyn RestoreDone>),
    /// `ok == false` when the drill failed or missed an objective.
    Drill(DrillReport),
    Prune(PrunePlan),
}

impl JobReport {
    /// Whether the job's result counts as success (a failed verify or drill does not).
    pub fn ok(&self) -> bool {
        match self {
            JobReport::Verify(r) => r.ok,
            JobReport::Drill(r) => r.ok,
            _ => true,
        }
    }

    /// The backup the job made or used, as its job record keeps it.
    pub fn backup_id(&self) -> Option<String> {
        match self {
            JobReport::Backup(m) => m.backup_id(),
            JobReport::Verify(r) => r.backup_id(),
            JobReport::Restore(o) => o.backup_id(),
            JobReport::PlannedRestore(_) => None,
            JobReport::Drill(r) => r.backup_id(),
            JobReport::Prune(p) => p.backup_id(),
        }
    }
}

impl Job {
    /// The target the job runs on.
    pub fn target(&self) -> &str {
        match self {
            Job::Backup { target }
            | Job::Verify { target, .. }
            | Job::Drill { target, .. }
            | Job::Prune { target } => target,
            Job::Restore { plan, .. } => &plan.target,
            Job::PlannedRestore { plan } => plan.target(),
        }
    }

    /// Run the job on this thread (the command line, a runbook's thread, or
    /// [`Job::run_in_slot`]'s job thread). `Err` is a job that could not run or failed.
    pub fn run(&self, app: &App, actor: &str, ctx: &JobContext) -> Result<JobReport> {
        Ok(match self {
            Job::Backup { target } => {
                JobReport::Backup(actions::backup::run(app, target, actor, ctx)?)
            }
            Job::Verify {
                target,
                selector,
                read_data,
            } => JobReport::Verify(actions::verify::run_reading(
                app, target, selector, *read_data, actor, ctx,
            )?),
            Job::Restore { plan, .. } => {
                JobReport::Restore(actions::restore::apply(app, plan, actor, ctx)?)
            }
            Job::PlannedRestore { plan } => JobReport::PlannedRestore(plan.apply(app, actor, ctx)?),
            Job::Drill { target, selector } => {
                JobReport::Drill(actions::drill::run(app, target, selector, actor, ctx)?)
            }
            Job::Prune { target } => {
                JobReport::Prune(actions::prune::run(app, target, actor, ctx)?)
            }
        })
    }

    /// Run the job as `serve` runs jobs: in a free job slot (`queued` is called first when
    /// none is free) on a job thread. The outer `Err`: the job thread was lost; the inner
    /// result is [`Job::run`]'s.
    pub async fn run_in_slot(
        &self,
        app: &App,
        actor: &str,
        ctx: JobContext,
        queued: impl FnOnce(),
    ) -> Result<Result<JobReport>> {
        let (job, job_app, actor) = (self.clone(), app.clone(), actor.to_string());
        in_slot(app, queued, move || job.run(&job_app, &actor, &ctx)).await
    }
}

/// Run `work` in one of `serve`'s job slots (`server.max_jobs`, shared by chat and the
/// scheduler) on a job thread: the one place a slot is taken. When no slot is free,
/// `queued` is called, then the work waits for one.
pub async fn in_slot<T, F>(app: &App, queued: impl FnOnce(), work: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let permit = match app.slots.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(TryAcquireError::NoPermits) => {
            queued();
            app.slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| stopping())?
        }
        Err(TryAcquireError::Closed) => return Err(stopping()),
    };
    let result = super::on_job_thread(work).await;
    drop(permit);
    result
}

fn stopping() -> Error {
    Error::Failed("no job slot: lifeboat is stopping".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn app(slots: usize) -> (App, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config =
            crate::config::Config::parse("", "t.toml", std::path::Path::new("/etc"), &|_| None)
                .unwrap();
        let mut app = App::for_tests(config, Default::default(), dir.path().to_path_buf());
        app.slots = Arc::new(tokio::sync::Semaphore::new(slots));
        (app, dir)
    }

    #[tokio::test]
    async fn work_waits_for_a_free_slot_and_says_it_is_queued() {
        let (app, _dir) = app(1);
        let held = app.slots.clone().try_acquire_owned().unwrap();
        let queued = Arc::new(AtomicBool::new(false));
        let saw = queued.clone();
        let slots = app.slots.clone();
        let waiting = tokio::spawn(async move {
            in_slot(
                &app,
                || saw.store(true, Ordering::SeqCst),
                || std::thread::current().name().map(String::from),
            )
            .await
        });
        // Nothing runs until the slot is given back; then the work runs on a job thread.
        while !queued.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        assert_eq!(slots.available_permits(), 0);
        drop(held);
        let thread = waiting.await.unwrap().unwrap();
        assert_eq!(thread.as_deref(), Some("lifeboat-job"));
        assert_eq!(slots.available_permits(), 1, "the slot is given back");
    }

    #[tokio::test]
    async fn a_job_on_an_unknown_target_reports_the_actions_error() {
        let (app, _dir) = app(1);
        let job = Job::Backup {
            target: "nope".into(),
        };
        let ran = job
            .run_in_slot(&app, "cli:alice", JobContext::silent(), || {
                panic!("a slot is free")
            })
            .await
            .expect("the job thread ran");
        let err = ran.err().expect("an unknown target is refused");
        assert!(err.to_string().contains("unknown target"), "{err}");
        assert_eq!(job.target(), "nope");
    }
}
