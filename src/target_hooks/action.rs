//! One action's hooks (a backup's or an in-place restore's): the `after_*` commands are
//! recorded as owed in the state before any `before_*` runs, so a crash between the two
//! leaves them for the next start ([`super::owed`]); a `before_*` that fails ends the
//! action before it changes anything; the `after_*` run exactly once per action,
//! whatever happened to it — as soon as the data no longer needs to be quiet (a backup
//! that finished reading) or when the action ends. Each command is kept with the job,
//! audited (so incident timelines show it) and noted on the job's progress.

use std::sync::Mutex;

use super::{CommandRun, HookEnv, HookResult, Runner};
use crate::app::App;
use crate::db::hooks::HookRunRecord;
use crate::error::{Error, Result};
use crate::progress::JobContext;

/// Which action, with its two lists' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Backup,
    Restore,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Backup => "backup",
            Action::Restore => "restore",
        }
    }
    fn before(self) -> &'static str {
        match self {
            Action::Backup => "before_backup",
            Action::Restore => "before_restore",
        }
    }
    fn after(self) -> &'static str {
        match self {
            Action::Backup => "after_backup",
            Action::Restore => "after_restore",
        }
    }
    fn nothing_done(self) -> &'static str {
        match self {
            Action::Backup => "nothing was backed up",
            Action::Restore => "nothing was restored and the current data is untouched",
        }
    }
}

#[derive(Default)]
struct State {
    backup: Option<String>,
    /// The `before_*` started (and with it the debt of the `after_*`).
    started: bool,
    owed_row: Option<i64>,
    after_ran: bool,
    /// What went wrong in the `after_*`, to add to the action's result.
    after_failure: Option<String>,
}

/// The hooks of one running action.
pub struct ActionHooks<'a> {
    app: &'a App,
    target: String,
    action: Action,
    job: Option<i64>,
    before: Vec<Vec<String>>,
    after: Vec<Vec<String>>,
    ctx: JobContext,
    state: Mutex<State>,
}

impl<'a> ActionHooks<'a> {
    /// A backup's hooks, as the target's config has them.
    pub fn for_backup(app: &'a App, target: &str, job: i64, ctx: &JobContext) -> Result<Self> {
        let hooks = app.target(target)?.hooks.clone().unwrap_or_default();
        Ok(Self::new(
            app,
            target,
            Action::Backup,
            job,
            hooks.before_backup,
            hooks.after_backup,
            ctx,
        ))
    }

    /// A restore's hooks: the commands its plan listed (what was approved), none for a
    /// plan that does not put data in place.
    pub fn for_restore(
        app: &'a App,
        target: &str,
        job: i64,
        before: Vec<Vec<String>>,
        after: Vec<Vec<String>>,
        ctx: &JobContext,
    ) -> Self {
        Self::new(app, target, Action::Restore, job, before, after, ctx)
    }

    fn new(
        app: &'a App,
        target: &str,
        action: Action,
        job: i64,
        before: Vec<Vec<String>>,
        after: Vec<Vec<String>>,
        ctx: &JobContext,
    ) -> Self {
        ActionHooks {
            app,
            target: target.to_string(),
            action,
            job: Some(job),
            before,
            after,
            ctx: ctx.clone(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn env(&self, result: Option<HookResult>) -> HookEnv {
        HookEnv {
            target: self.target.clone(),
            action: self.action.as_str(),
            job: self.job,
            backup: self.state().backup.clone(),
            result,
        }
    }

    /// Run the `before_*` commands (after owing the `after_*`). `Err`: one failed, and
    /// the action must stop before changing anything (its `after_*` still run at
    /// [`finish`](Self::finish)).
    pub fn before(&self, backup: Option<&str>) -> Result<()> {
        if self.before.is_empty() && self.after.is_empty() {
            return Ok(());
        }
        {
            let mut s = self.state();
            s.backup = backup.map(String::from);
            if !self.after.is_empty() {
                s.owed_row = Some(self.app.db.hooks_owe(
                    &self.target,
                    self.action.as_str(),
                    self.job,
                    backup,
                    &self.after,
                )?);
            }
            s.started = true;
        }
        if self.before.is_empty() {
            return Ok(());
        }
        let runner = Runner::of(self.app.target(&self.target)?)?;
        self.ctx.progress.phase(&format!(
            "{} {}",
            self.action.before(),
            runner.place.describe()
        ));
        let runs = runner.run_list(
            &self.before,
            &self.env(None),
            true,
            Some(&self.ctx.cancel),
            |run| self.report(self.action.before(), run, None),
        );
        match runs.iter().find(|r| !r.outcome.ok()) {
            None => Ok(()),
            Some(_) if self.ctx.cancel.is_cancelled() => Err(Error::Cancelled),
            Some(failed) => Err(Error::Failed(format!(
                "{} {}, so {}",
                self.action.before(),
                failed.describe(),
                self.action.nothing_done()
            ))),
        }
    }

    /// The data no longer needs to be quiet (a backup finished reading): run the
    /// `after_*` now rather than after the upload.
    pub fn reading_ended(&self) {
        self.run_after(HookResult::Ok);
    }

    /// The action ended: run the `after_*` if a `before_*` started and they have not run,
    /// and add what went wrong in them to the action's result.
    pub fn finish<T>(&self, result: Result<T>) -> Result<T> {
        self.run_after(HookResult::of(&result));
        let Some(after) = self.state().after_failure.take() else {
            return result;
        };
        let what = self.action.after();
        match result {
            Ok(_) => Err(Error::Failed(format!(
                "the {} itself succeeded, but {what} {after}; what it should have started or resumed may not be running",
                self.action.as_str()
            ))),
            Err(Error::Cancelled) => {
                Err(Error::Failed(format!("cancelled, and then {what} {after}")))
            }
            Err(e) => Err(Error::Failed(format!("{e}; and then {what} {after}"))),
        }
    }

    fn run_after(&self, result: HookResult) {
        let owed_row = {
            let mut s = self.state();
            if !s.started || s.after_ran {
                return;
            }
            s.after_ran = true;
            s.owed_row
        };
        if self.after.is_empty() {
            return;
        }
        let runner = self.app.target(&self.target).and_then(Runner::of);
        let runs = match runner {
            Ok(runner) => {
                self.ctx.progress.phase(&format!(
                    "{} {}",
                    self.action.after(),
                    runner.place.describe()
                ));
                // Never cancelled: an app must not be left stopped because the job was.
                runner.run_list(&self.after, &self.env(Some(result)), false, None, |run| {
                    self.report(self.action.after(), run, None)
                })
            }
            Err(e) => {
                self.state().after_failure = Some(format!("could not run: {e}"));
                return;
            }
        };
        // Not reached: still owed, for the next start or action to try again.
        let reached = !runs
            .iter()
            .any(|r| matches!(r.outcome, super::Outcome::Unreachable(_)));
        if let Some(row) = owed_row.filter(|_| reached)
            && let Err(e) = self.app.db.hooks_paid(row)
        {
            tracing::error!(
                "clearing the owed {} of {}: {e}",
                self.action.after(),
                self.target
            );
        }
        let failed: Vec<String> = runs
            .iter()
            .filter(|r| !r.outcome.ok())
            .map(CommandRun::describe)
            .collect();
        if !failed.is_empty() {
            self.state().after_failure = Some(failed.join("; "));
        }
    }

    /// Keep, audit and show one command's run.
    fn report(&self, phase: &str, run: &CommandRun, owed_since: Option<&str>) {
        record(
            self.app,
            &self.target,
            self.job,
            phase,
            run,
            owed_since,
            &self.ctx,
        );
    }
}

/// Keep a command's run with its job, audit it (stamping open incidents' timelines), and
/// note it on the job's progress (the terminal shows it).
pub(super) fn record(
    app: &App,
    target: &str,
    job: Option<i64>,
    phase: &str,
    run: &CommandRun,
    owed_since: Option<&str>,
    ctx: &JobContext,
) {
    let rec = HookRunRecord {
        job_id: job,
        target: target.to_string(),
        phase: phase.to_string(),
        command: run.command.clone(),
        outcome: run.outcome.describe(),
        tail: run.tail.clone(),
        at: crate::units::now_text(),
        owed_since: owed_since.map(String::from),
    };
    if let Err(e) = app.db.hook_run_record(&rec) {
        tracing::error!("keeping the run of a hook of {target}: {e}");
    }
    let job_text = job.map(|j| format!("job {j}: ")).unwrap_or_default();
    let owed = owed_since
        .map(|s| format!("owed since {s}: "))
        .unwrap_or_default();
    let detail = format!("{job_text}{owed}{}", run.describe());
    let outcome = if run.outcome.ok() { "ok" } else { "failed" };
    if let Err(e) = app.db.audit(
        "lifeboat",
        &format!("hook {phase}"),
        Some(target),
        outcome,
        Some(&detail),
    ) {
        tracing::error!("auditing a hook of {target}: {e}");
    }
    ctx.progress.note(&format!("{phase} {}", run.describe()));
}
