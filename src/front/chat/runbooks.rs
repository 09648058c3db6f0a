//! Runbook runs started from chat: one message per run, updated as steps start and end;
//! manual steps posted with Done/Failed buttons; restore steps asking for approval as
//! `/restore` does. The run itself works on a blocking thread and waits by polling the
//! state database, so a click handled by any request reaches it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use super::Chat;
use crate::actions::restore::RestorePlan;
use crate::auth::{self, Role};
use crate::card::{Card, Line, Tone};
use crate::db::approvals::ApprovalStatus;
use crate::error::{Error, Result};
use crate::notify::{Button, ChatMessage, Notifier, Updater, with_retries};
use crate::progress::JobContext;
use crate::runbook::run::{Answer, RunHooks, RunState};
use crate::runbook::{self, Runbook, Step};

/// How often a waiting run looks for an answer.
const POLL: Duration = Duration::from_millis(250);

impl Chat {
    /// Run a runbook in the background, reporting in `channel` (the platform's own id).
    pub(crate) async fn run_runbook(
        &self,
        notifier: Arc<dyn Notifier>,
        channel: String,
        actor: String,
        book: Runbook,
        values: BTreeMap<String, String>,
    ) {
        let first = ChatMessage::card(
            Card::new(Tone::Warning, format!("⏳ Runbook {} starting", book.name))
                .lead(Line::new().text("Requested by ").person(&actor)),
        );
        let Ok(message) = with_retries("posting a runbook message", || {
            notifier.post(&channel, &first)
        })
        .await
        .map_err(|e| tracing::error!("could not post the runbook message for {}: {e}", book.name)) else {
            return;
        };
        let updater = Arc::new(Updater::spawn(notifier.clone(), channel.clone(), message));
        let channel_for_note = channel.clone();
        let hooks = ChatRun {
            chat: self.clone(),
            notifier: notifier.clone(),
            qualified: format!("{}:{channel}", notifier.platform()),
            channel,
            updater: updater.clone(),
            handle: Handle::current(),
            ctx: JobContext::silent(),
            stopping: self.stopping(),
        };
        let app = self.app.clone();
        let result = crate::executor::on_job_thread(move || {
            let channel = hooks.qualified.clone();
            let r = runbook::run::run(&app, &book, &values, &actor, Some(&channel), &hooks);
            (r, hooks)
        })
        .await;
        self.job_ended();
        let mut card = match result {
            Ok((Ok(state), hooks)) => {
                // The per-step table with the total, as the run's report.
                self.post_document(
                    notifier.platform(),
                    hooks.channel.clone(),
                    format!("Runbook {} report (run {})", state.runbook, state.run_id),
                    format!("runbook-{}-run-{}.md", state.runbook, state.run_id),
                    runbook::report::markdown(&state),
                );
                runbook::report::card(&state).context(
                    Line::new()
                        .text("The report with estimates against actual times follows as ")
                        .code(format!("runbook-{}-run-{}.md", state.runbook, state.run_id)),
                )
            }
            Ok((Err(e), _)) => {
                Card::new(Tone::Bad, "❌ The runbook could not run").body(e.to_string())
            }
            Err(e) => {
                Card::new(Tone::Bad, "❌ The runbook stopped").body(format!("internal error ({e})"))
            }
        };
        let note = self
            .timeline_note(notifier.platform(), &channel_for_note)
            .await;
        if !note.is_empty() {
            card = card.context(note.trim_start());
        }
        let last = ChatMessage::card(card);
        match Arc::try_unwrap(updater) {
            Ok(u) => u.finish(last).await,
            Err(u) => u.set(last),
        }
    }

    /// A Done/Failed click on a manual step (`value` is `<run>:<step>`).
    pub(crate) async fn step_click(
        &self,
        value: &str,
        actor: String,
        channel: String,
        action: &str,
    ) -> Option<String> {
        let Some((run, step)) = value
            .split_once(':')
            .and_then(|(r, s)| Some((r.parse::<i64>().ok()?, s.parse::<usize>().ok()?)))
        else {
            return Some("unknown button".into());
        };
        let decision = if action == "step_done" {
            "done"
        } else {
            "failed"
        };
        let access = &self.app.config.access;
        let allowed = auth::role_of(access, &actor).is_some_and(|r| r >= Role::Operator)
            && auth::channel_allowed(access, &channel);
        let db = self.app.db.clone();
        let answer = tokio::task::spawn_blocking(move || -> Result<Option<String>> {
            if !allowed {
                db.audit(
                    &actor,
                    "runbook step answer refused",
                    None,
                    "refused",
                    Some(&format!("run {run} step {step}")),
                )?;
                return Ok(Some(
                    "only operators and admins can mark runbook steps".into(),
                ));
            }
            if db.runbook_run_state(run)?.as_deref() != Some("running") {
                return Ok(Some("this runbook run is over; nothing was changed".into()));
            }
            let standing = db.runbook_confirm(run, step, decision, &actor)?;
            if standing.actor != actor || standing.decision != decision {
                return Ok(Some(format!(
                    "{} already marked this step {}",
                    standing.actor, standing.decision
                )));
            }
            Ok(None)
        })
        .await;
        match answer {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => Some(format!("that did not work: {e}")),
            Err(e) => Some(format!("that did not work: internal error ({e})")),
        }
    }
}

struct ChatRun {
    chat: Chat,
    notifier: Arc<dyn Notifier>,
    /// The platform's own channel id, and the qualified one (`slack:C…`).
    channel: String,
    qualified: String,
    updater: Arc<Updater>,
    handle: Handle,
    ctx: JobContext,
    stopping: crate::progress::Cancel,
}

impl ChatRun {
    /// Wait until `ready` gives an answer, or lifeboat stops.
    fn wait<T>(&self, mut ready: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        loop {
            if let Some(v) = ready()? {
                return Ok(v);
            }
            if self.stopping.is_cancelled() {
                return Err(Error::Usage(
                    "lifeboat stopped while the run was waiting".into(),
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl RunHooks for ChatRun {
    fn update(&self, run: &RunState) {
        self.updater
            .set(ChatMessage::card(runbook::report::card(run)));
    }

    fn manual(
        &self,
        run: &RunState,
        index: usize,
        step: &Step,
        instructions: &str,
    ) -> Result<Answer> {
        let n = index + 1;
        let value = format!("{}:{n}", run.run_id);
        let card = |answer| runbook::report::manual_card(run, n, &step.title, instructions, answer);
        let msg = ChatMessage::card(card(None)).with_buttons(vec![
            Button {
                action: "step_done".into(),
                label: "Done".into(),
                value: value.clone(),
                danger: false,
                confirm: None,
            },
            Button {
                action: "step_failed".into(),
                label: "Failed".into(),
                value,
                danger: true,
                confirm: None,
            },
        ]);
        let posted = self
            .handle
            .block_on(with_retries("posting a manual step", || {
                self.notifier.post(&self.channel, &msg)
            }))
            .map_err(|e| Error::Usage(format!("could not post the manual step: {e}")))?;
        let db = &self.chat.app.db;
        let answer = self.wait(|| Ok(db.runbook_confirmation(run.run_id, n)?))?;
        let ok = answer.decision == "done";
        let detail = format!(
            "marked {} by {} at {} UTC",
            answer.decision,
            answer.actor,
            crate::incident::export::clock(&answer.at)
        );
        // Answered: the buttons go, who marked it and when stay.
        let closed = ChatMessage::card(card(Some((ok, &answer.actor, &answer.at))));
        let _ = self
            .handle
            .block_on(with_retries("updating a manual step", || {
                self.notifier.update(&self.channel, &posted, &closed)
            }));
        Ok(Answer { ok, detail })
    }

    fn approve_restore(&self, run: &RunState, plan: &RestorePlan) -> Result<Answer> {
        let app = &self.chat.app;
        let required = app.target(&plan.target)?.restore_approvals;
        if required == 0 {
            return Ok(Answer {
                ok: true,
                detail: "no approval required by the config".into(),
            });
        }
        let approval = crate::dispatch::new_approval(
            &run.actor,
            &self.qualified,
            plan,
            required,
            Some(run.run_id),
        )?;
        app.db.approval_insert(&approval)?;
        app.db.audit_event(&crate::db::audit::AuditEvent {
            actor: &run.actor,
            action: "restore requested",
            target: Some(&plan.target),
            outcome: "pending",
            detail: Some(&format!(
                "approval {} for runbook {} run {}",
                approval.id, run.runbook, run.run_id
            )),
            channel: Some(&self.qualified),
            ..Default::default()
        })?;
        let platform = if self.notifier.platform() == "discord" {
            "discord"
        } else {
            "slack"
        };
        let id = approval.id.clone();
        self.chat.post_approval(platform, approval, plan.clone());
        let decided = self.wait(|| {
            let req = app.db.approval_get(&id)?;
            Ok(req.filter(|r| r.status != ApprovalStatus::Pending))
        })?;
        Ok(match decided.status {
            ApprovalStatus::Approved => Answer {
                ok: true,
                detail: format!(
                    "approved by {}",
                    decided
                        .approvers
                        .iter()
                        .map(|a| a.actor.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            ApprovalStatus::Denied => Answer {
                ok: false,
                detail: format!(
                    "denied by {}",
                    decided.denied_by.as_deref().unwrap_or("an admin")
                ),
            },
            other @ (ApprovalStatus::Expired | ApprovalStatus::Pending) => Answer {
                ok: false,
                detail: format!("the request {other}"),
            },
        })
    }

    fn job_context(&self) -> JobContext {
        self.ctx.clone()
    }
}
