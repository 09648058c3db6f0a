//! `after_*` commands a process owed when it stopped (a crash, SIGKILL, power loss
//! between a `before_*` and its `after_*`): run at the next `serve` start and at the
//! start of the next action on that target, always under the target's lock (so never
//! beside the action that owes them, and never from `status` or `config check`). Each run
//! is kept, audited, noted on the job, and left for `serve` to post to the alert
//! channels. Hooks must therefore tolerate running twice.

use super::action::record;
use super::{CommandRun, HookEnv, HookResult, Outcome, Runner};
use crate::app::App;
use crate::db::hooks::{HookRunRecord, OwedHooks};
use crate::progress::JobContext;

/// Run what is owed for `target`; the caller holds its lock. Never fails the caller:
/// problems are logged, audited and posted, and what could not be run stays owed.
pub fn settle(app: &App, target: &str, ctx: &JobContext) {
    let owed = match app.db.hooks_owed(Some(target)) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("reading the hooks owed for {target}: {e}");
            return;
        }
    };
    for o in owed {
        settle_one(app, &o, ctx);
    }
}

/// `serve` at start: settle every target's debts, each under its lock (a target another
/// process holds is left to that process, which settles at its next action).
pub fn settle_all(app: &App) {
    let owed = match app.db.hooks_owed(None) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("reading the owed hooks: {e}");
            return;
        }
    };
    let mut targets: Vec<String> = owed.into_iter().map(|o| o.target).collect();
    targets.dedup();
    for target in targets {
        let ctx = JobContext::silent();
        match app
            .executor
            .with_target_lock(&target, || settle(app, &target, &ctx))
        {
            Ok(Some(())) => {}
            Ok(None) => tracing::info!(
                "{target} is busy: the hooks owed for it run when its current job ends or at its next action"
            ),
            Err(e) => tracing::error!("locking {target} to run its owed hooks: {e}"),
        }
    }
}

fn settle_one(app: &App, o: &OwedHooks, ctx: &JobContext) {
    let phase = format!("after_{}", o.action);
    let runner = app.target(&o.target).and_then(Runner::of);
    let runner = match runner {
        Ok(r) => r,
        Err(e) => {
            // The target is gone from the config (or its hooks' host is unusable): say
            // what should have run, so a person can run it, and stop owing it here.
            for argv in &o.commands {
                let run = CommandRun {
                    command: super::shown(argv),
                    outcome: Outcome::NotRun(format!(
                        "{e}; run it by hand if the application is still stopped"
                    )),
                    tail: String::new(),
                };
                record(app, &o.target, o.job_id, &phase, &run, Some(&o.since), ctx);
            }
            pay(app, o);
            return;
        }
    };
    tracing::warn!(
        "{}: running the {phase} owed since {} (job {:?} stopped before running it)",
        o.target,
        o.since,
        o.job_id
    );
    ctx.progress.phase(&format!(
        "{phase} owed since {} {}",
        o.since,
        runner.place.describe()
    ));
    let env = HookEnv {
        target: o.target.clone(),
        action: if o.action == "restore" {
            "restore"
        } else {
            "backup"
        },
        job: o.job_id,
        backup: o.backup_id.clone(),
        result: Some(HookResult::Failed),
    };
    let runs = runner.run_list(&o.commands, &env, false, None, |run| {
        record(app, &o.target, o.job_id, &phase, run, Some(&o.since), ctx)
    });
    if runs
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Unreachable(_)))
    {
        // The host may come back: keep owing them; the next start or action tries again.
        return;
    }
    pay(app, o);
}

fn pay(app: &App, o: &OwedHooks) {
    if let Err(e) = app.db.hooks_paid(o.id) {
        tracing::error!("clearing the owed hooks of {}: {e}", o.target);
    }
}

/// The alert channels' text for runs of owed commands.
pub fn message(runs: &[HookRunRecord]) -> String {
    let mut text = String::from(
        "⚠️ lifeboat stopped between a hook that stops or pauses an application and the one that starts it again; it ran the owed commands now:",
    );
    for r in runs {
        text.push_str(&format!(
            "\n• {} {} (owed since {}{}): `{}` {}",
            r.target,
            r.phase,
            r.owed_since.as_deref().unwrap_or("?"),
            r.job_id.map(|j| format!(", job {j}")).unwrap_or_default(),
            r.command,
            r.outcome
        ));
        if !r.tail.is_empty() {
            text.push_str(&format!("\n```\n{}\n```", r.tail));
        }
    }
    text
}
