//! Running a runbook: steps in order, each timed against its estimate, stopping at the
//! first failure with what to do next. Where a person is needed (a manual step, a
//! restore's approval) the run asks through `RunHooks`, which chat and the CLI implement.
//! Every step start and end is audited, so an open incident's timeline has them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{ActionKind, Runbook, Step, StepKind, fill};
use crate::actions::{self, catalog::Selector, restore::RestorePlan};
use crate::app::App;
use crate::db::audit::AuditEvent;
use crate::error::{Error, Result};
use crate::executor::job::{Job, JobReport};
use crate::progress::JobContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Pending,
    Running,
    /// Waiting for a person: a manual step or a restore's approval.
    Waiting,
    Done,
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    pub index: usize,
    pub title: String,
    pub kind: String,
    pub estimate_seconds: u64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub actual_seconds: Option<f64>,
    pub state: StepState,
    /// What happened: the backup made, the status answered, who confirmed, the error.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunState {
    pub run_id: i64,
    pub runbook: String,
    pub title: String,
    pub actor: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// running | succeeded | failed
    pub state: String,
    pub steps: Vec<StepResult>,
    /// After a failure: what to do now.
    pub next: Option<String>,
}

impl RunState {
    pub fn ok(&self) -> bool {
        self.state == "succeeded"
    }
}

/// A person's answer: to a manual step, or to a restore's approval request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub ok: bool,
    /// Who answered and how, in words ("done by slack:U1", "denied by …", "expired").
    pub detail: String,
}

/// What a run needs from whoever started it.
pub trait RunHooks: Send + Sync {
    /// The run changed: a step started, is waiting, or ended; or the run ended.
    fn update(&self, run: &RunState);
    /// Show a manual step's instructions and wait for a person to mark it done or failed.
    fn manual(
        &self,
        run: &RunState,
        index: usize,
        step: &Step,
        instructions: &str,
    ) -> Result<Answer>;
    /// Ask for a restore's approval (as `/restore` would) and wait for the answer.
    fn approve_restore(&self, run: &RunState, plan: &RestorePlan) -> Result<Answer>;
    /// Where the actions' progress goes, and their cancellation.
    fn job_context(&self) -> JobContext;
}

/// Run `runbook` with the given parameter values to the end or the first failure.
pub fn run(
    app: &App,
    runbook: &Runbook,
    values: &BTreeMap<String, String>,
    actor: &str,
    channel: Option<&str>,
    hooks: &dyn RunHooks,
) -> Result<RunState> {
    let (run_id, started_at) = app.db.runbook_run_insert(&runbook.name, actor, channel)?;
    let mut state = RunState {
        run_id,
        runbook: runbook.name.clone(),
        title: runbook.title.clone(),
        actor: actor.to_string(),
        started_at,
        finished_at: None,
        state: "running".into(),
        steps: runbook
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepResult {
                index: i + 1,
                title: s.title.clone(),
                kind: s.kind_name().into(),
                estimate_seconds: s.estimate.as_secs(),
                started_at: None,
                finished_at: None,
                actual_seconds: None,
                state: StepState::Pending,
                detail: None,
            })
            .collect(),
        next: None,
    };
    let audit = |action: &str, outcome: &str, detail: &str| {
        let event = AuditEvent {
            actor,
            action,
            target: None,
            outcome,
            detail: Some(detail),
            channel,
            ..Default::default()
        };
        if let Err(e) = app.db.audit_event(&event) {
            tracing::error!("audit of runbook {}: {e}", runbook.name);
        }
    };
    audit(
        "runbook started",
        "started",
        &format!(
            "{} (run {run_id}, {} steps)",
            runbook.name,
            runbook.steps.len()
        ),
    );
    hooks.update(&state);
    for (i, step) in runbook.steps.iter().enumerate() {
        state.steps[i].state = StepState::Running;
        state.steps[i].started_at = Some(crate::units::now_text());
        audit(
            "runbook step started",
            "started",
            &format!("{} step {}: {}", runbook.name, i + 1, step.title),
        );
        save(app, &state, None);
        hooks.update(&state);
        let clock = Instant::now();
        let result = execute(app, &mut state, i, step, values, actor, hooks);
        let r = &mut state.steps[i];
        r.finished_at = Some(crate::units::now_text());
        r.actual_seconds = Some(clock.elapsed().as_secs_f64());
        let failed = result.is_err();
        match result {
            Ok(detail) => {
                r.state = StepState::Done;
                r.detail = Some(detail);
            }
            Err(e) => {
                r.state = StepState::Failed;
                r.detail = Some(e.to_string());
            }
        }
        audit(
            "runbook step finished",
            if failed { "failed" } else { "done" },
            &format!(
                "{} step {}: {} — {} in {:.0}s (estimate {})",
                runbook.name,
                i + 1,
                step.title,
                r.detail.as_deref().unwrap_or_default(),
                r.actual_seconds.unwrap_or_default(),
                super::report::estimate_text(step.estimate.as_secs())
            ),
        );
        if failed {
            for later in &mut state.steps[i + 1..] {
                later.state = StepState::Skipped;
            }
            state.next = Some(next_advice(runbook, i, channel.is_some()));
            break;
        }
        save(app, &state, None);
        hooks.update(&state);
    }
    state.state = if state.steps.iter().all(|s| s.state == StepState::Done) {
        "succeeded".into()
    } else {
        "failed".into()
    };
    state.finished_at = Some(crate::units::now_text());
    save(app, &state, Some(&state.state.clone()));
    audit(
        "runbook finished",
        &state.state.clone(),
        &format!(
            "{} (run {run_id}): {}",
            runbook.name,
            super::report::total_line(&state)
        ),
    );
    hooks.update(&state);
    Ok(state)
}

fn save(app: &App, state: &RunState, final_state: Option<&str>) {
    let steps = serde_json::to_string(&state.steps).expect("steps serialize");
    if let Err(e) = app.db.runbook_run_update(state.run_id, &steps, final_state) {
        tracing::error!("saving runbook run {}: {e}", state.run_id);
    }
}

fn next_advice(runbook: &Runbook, failed: usize, chat: bool) -> String {
    let step = &runbook.steps[failed];
    let rest: Vec<String> = runbook.steps[failed + 1..]
        .iter()
        .enumerate()
        .map(|(j, s)| format!("{}. {}", failed + j + 2, s.title))
        .collect();
    let again = if chat {
        format!("`/runbook run {}`", runbook.name)
    } else {
        format!("`lifeboat runbook run {}`", runbook.name)
    };
    let mut text = format!(
        "Stopped at step {} ({}). Nothing after it ran. Fix what the step reports, then run {again} again",
        failed + 1,
        step.title
    );
    if rest.is_empty() {
        text.push('.');
    } else {
        text.push_str(&format!(" or finish by hand: {}.", rest.join("; ")));
    }
    text
}

/// Why a step failed, in the words its report shows; the error behind it, if any, is
/// kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct StepFailed {
    detail: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StepFailed {
    /// `detail`, caused by `source`.
    fn because(detail: String, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StepFailed {
            detail,
            source: Some(Box::new(source)),
        }
    }
}

impl From<String> for StepFailed {
    fn from(detail: String) -> Self {
        StepFailed {
            detail,
            source: None,
        }
    }
}

impl From<Error> for StepFailed {
    fn from(e: Error) -> Self {
        StepFailed::because(e.to_string(), e)
    }
}

impl From<crate::probe::ProbeError> for StepFailed {
    fn from(e: crate::probe::ProbeError) -> Self {
        StepFailed::because(e.to_string(), e)
    }
}

/// Carry out one step; Ok is what happened, Err why it failed.
fn execute(
    app: &App,
    state: &mut RunState,
    index: usize,
    step: &Step,
    values: &BTreeMap<String, String>,
    actor: &str,
    hooks: &dyn RunHooks,
) -> std::result::Result<String, StepFailed> {
    match &step.kind {
        StepKind::Manual { instructions } => {
            state.steps[index].state = StepState::Waiting;
            hooks.update(state);
            let answer = hooks.manual(state, index, step, instructions)?;
            state.steps[index].state = StepState::Running;
            if answer.ok {
                Ok(answer.detail)
            } else {
                Err(answer.detail.into())
            }
        }
        StepKind::Http {
            url,
            status,
            body_contains,
            timeout,
        } => http_check(url, *status, body_contains.as_deref(), *timeout),
        StepKind::Command {
            argv,
            exit_code,
            output_contains,
            remote,
            timeout,
        } => {
            let ctx = hooks.job_context();
            let (code, output) = match remote {
                Some(r) => {
                    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
                    let out = crate::ssh::run(r, &args, &ctx)?;
                    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
                    (out.code, format!("{stdout}\n{}", out.stderr))
                }
                None => run_local(argv, *timeout)?,
            };
            let tail = last_line(&output);
            if code == *exit_code {
                if let Some(needle) = output_contains
                    && !output.contains(needle.as_str())
                {
                    return Err(format!(
                        "{} exited {code} but did not print {needle:?}{}",
                        argv[0],
                        tail.map(|t| format!(" (last line: {t})"))
                            .unwrap_or_default()
                    )
                    .into());
                }
                Ok(format!(
                    "{} exited {code}{}",
                    argv[0],
                    tail.map(|t| format!(": {t}")).unwrap_or_default()
                ))
            } else {
                Err(format!(
                    "{} exited {code}, expected {exit_code}{}",
                    argv[0],
                    tail.map(|t| format!(": {t}")).unwrap_or_default()
                )
                .into())
            }
        }
        StepKind::Action {
            action,
            target,
            backup,
            at,
            to,
        } => {
            let ctx = hooks.job_context();
            let backup = backup.as_deref().map(|b| fill(b, values));
            let at = at.as_deref().map(|a| fill(a, values));
            let selector = Selector::from_args(backup.as_deref(), at.as_deref())?;
            let target = target.clone();
            let (job, approved) = match action {
                ActionKind::Backup => (Job::Backup { target }, None),
                ActionKind::Verify => (
                    Job::Verify {
                        target,
                        selector,
                        read_data: false,
                    },
                    None,
                ),
                ActionKind::Drill => (Job::Drill { target, selector }, None),
                ActionKind::Restore => {
                    let to = to.as_deref().map(|t| fill(t, values));
                    let plan = actions::restore::plan(
                        app,
                        &target,
                        &selector,
                        to.as_deref().map(std::path::Path::new),
                    )?;
                    state.steps[index].state = StepState::Waiting;
                    hooks.update(state);
                    let answer = hooks.approve_restore(state, &plan)?;
                    state.steps[index].state = StepState::Running;
                    hooks.update(state);
                    if !answer.ok {
                        return Err(
                            format!("the restore was not approved: {}", answer.detail).into()
                        );
                    }
                    let plan = Box::new(plan);
                    let job = Job::Restore {
                        plan,
                        approval_id: None,
                    };
                    (job, Some(answer.detail))
                }
            };
            let report = job.run(app, actor, &ctx)?;
            job_step(report, approved.as_deref())
        }
    }
}

/// A job step's report in the run's words: Ok what happened, Err why the step failed (a
/// verify that found problems; a drill that failed or missed an objective). `approved`
/// is who allowed a restore.
fn job_step(report: JobReport, approved: Option<&str>) -> std::result::Result<String, StepFailed> {
    match report {
        JobReport::Backup(m) => Ok(format!(
            "backup {} ({})",
            m.id,
            crate::units::human_bytes(m.size_bytes)
        )),
        JobReport::Verify(r) if r.ok && !r.backup.is_consistent() => {
            Ok(crate::executor::JobOutput::summary(&r))
        }
        JobReport::Verify(r) if r.ok => Ok(format!("backup {} verified", r.backup.id)),
        JobReport::Verify(r) => Err(format!(
            "backup {} failed verification: {}",
            r.backup.id,
            r.problems.join("; ")
        )
        .into()),
        JobReport::Drill(r) => {
            let measured =
                |s: Option<f64>| s.map_or("not reached".to_string(), |s| format!("{s:.0}s"));
            let summary = format!(
                "drill of backup {}: RTO {}, RPO {}",
                r.backup_id.as_deref().unwrap_or("?"),
                measured(r.rto_seconds),
                measured(r.rpo_seconds)
            );
            if r.ok {
                Ok(summary)
            } else {
                Err(format!("{summary}; {}", r.problems.join("; ")).into())
            }
        }
        JobReport::Restore(outcome) => {
            let plan = &outcome.plan;
            let mut text = format!(
                "restored backup {} to {} ({})",
                plan.backup.id,
                plan.destination.display(),
                approved.unwrap_or_default()
            );
            for m in &plan.move_aside {
                text.push_str(&format!("; previous data kept at {}", m.to.display()));
            }
            Ok(text)
        }
        JobReport::PlannedRestore(done) => Ok(done.report().trim_end().to_string()),
        JobReport::Prune(plan) => Ok(crate::executor::JobOutput::summary(&plan)),
    }
}

fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().chars().take(300).collect())
}

/// GET `url`; the answer must have `status` and, if given, contain `body_contains`.
pub fn http_check(
    url: &str,
    status: u16,
    body_contains: Option<&str>,
    timeout: Duration,
) -> std::result::Result<String, StepFailed> {
    let (got, body) = crate::probe::http_get(url, timeout, body_contains.is_some())
        .map_err(|e| StepFailed::because(format!("GET {url} failed: {e}"), e))?;
    if got != status {
        return Err(format!("GET {url} answered {got}, expected {status}").into());
    }
    if let Some(needle) = body_contains
        && !body.contains(needle)
    {
        return Err(format!("GET {url} answered {got} but without {needle:?}").into());
    }
    Ok(format!("GET {url} answered {got}"))
}

/// Run a command on this host with a time limit; its exit code and its output's end.
fn run_local(argv: &[String], timeout: Duration) -> std::result::Result<(i32, String), StepFailed> {
    match crate::probe::run_command(argv, &[], timeout)? {
        // A command killed by a signal has no exit code; report it as 128 + signal, as
        // shells do.
        crate::probe::CommandEnd::Exited {
            code,
            signal,
            output,
        } => Ok((code.unwrap_or(128 + signal.unwrap_or(0)), output)),
        crate::probe::CommandEnd::TimedOut => Err(format!(
            "{} did not finish within {}; it was stopped",
            argv[0],
            humantime::format_duration(timeout)
        )
        .into()),
    }
}
