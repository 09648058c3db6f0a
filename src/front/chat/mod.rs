//! What Slack and Discord share once a request is trusted: running dispatch off the async
//! threads with a deadline (the platforms want an answer within 3 seconds), starting
//! chat jobs that post and update one message, and acting on approval clicks.

pub mod links; // chat connection states (Socket Mode, Gateway) for health, metrics, status
pub mod outbox; // alerts queued in the state database until a platform takes them
mod report; // a chat job's words: its name while it runs, its report as text
pub mod runbooks; // runbooks started from chat: steps posted, manual steps and approvals asked

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::actions;
use crate::app::App;
use crate::approvals::{self, Decision, Outcome};
use crate::card::{Card, Line, Tone};
use crate::db::approvals::{ApprovalRecord, ApprovalStatus};
use crate::dispatch::{ChatJob, Invocation, Reply};
use crate::executor::job::Job;
use crate::notify::{
    ChatMessage, ChatProgress, Confirm, Notifier, Updater, post_document, with_retries,
};
use crate::progress::{Cancel, JobContext};

/// The part of the 3-second budget dispatch may use before we answer "working on it".
pub const DISPATCH_BUDGET: Duration = Duration::from_millis(2000);

/// Shared state of the chat front-ends.
#[derive(Clone)]
pub struct Chat {
    pub app: App,
    pub slack: Option<Arc<dyn Notifier>>,
    pub discord: Option<Arc<dyn Notifier>>,
    tasks: TaskTracker,
    job_ended: Arc<tokio::sync::Notify>,
    /// Set when `serve` stops: work waiting for a person gives up.
    stopping: Cancel,
}

impl Chat {
    pub fn new(
        app: App,
        slack: Option<Arc<dyn Notifier>>,
        discord: Option<Arc<dyn Notifier>>,
    ) -> Chat {
        Chat {
            app,
            slack,
            discord,
            tasks: TaskTracker::new(),
            job_ended: Arc::new(tokio::sync::Notify::new()),
            stopping: Cancel::new(),
        }
    }

    /// Be told when a chat job ends (the watchdog looks at the targets again).
    pub fn with_job_ended(mut self, wake: Arc<tokio::sync::Notify>) -> Chat {
        self.job_ended = wake;
        self
    }

    pub fn notifier(&self, platform: &str) -> Option<Arc<dyn Notifier>> {
        match platform {
            "slack" => self.slack.clone(),
            "discord" => self.discord.clone(),
            _ => None,
        }
    }

    /// Tell work that waits for people (runbook steps) that lifeboat is stopping.
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    pub(crate) fn stopping(&self) -> Cancel {
        self.stopping.clone()
    }

    pub(crate) fn job_ended(&self) {
        self.job_ended.notify_one();
    }

    /// Background work started from chat; `serve` waits for it on shutdown.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Dispatch within the budget. If it takes longer, answer now and deliver the reply
    /// later through `late` (e.g. an ephemeral message).
    pub async fn dispatch(
        &self,
        inv: Invocation,
        late: impl FnOnce(Reply) + Send + 'static,
    ) -> Option<Reply> {
        let app = self.app.clone();
        let mut work = tokio::task::spawn_blocking(move || crate::dispatch::dispatch(&app, &inv));
        match tokio::time::timeout(DISPATCH_BUDGET, &mut work).await {
            Ok(Ok(reply)) => Some(reply),
            Ok(Err(e)) => Some(Reply::Private(format!(
                "that did not work: internal error ({e})"
            ))),
            Err(_) => {
                self.tasks.spawn(async move {
                    if let Ok(reply) = work.await {
                        late(reply);
                    }
                });
                None
            }
        }
    }

    /// Post the approval request message and remember where it is.
    pub fn post_approval(
        &self,
        platform: &'static str,
        approval: crate::db::approvals::ApprovalRecord,
        plan: actions::restore::RestorePlan,
    ) {
        let Some(notifier) = self.notifier(platform) else {
            return;
        };
        let app = self.app.clone();
        self.tasks.spawn(async move {
            let can_approve = approvals::who_can_approve(&app.config.access, &approval);
            let msg = approvals::message(&approval, &plan, &can_approve);
            match with_retries("posting a restore request", || {
                notifier.post(&approval.channel, &msg)
            })
            .await
            {
                Ok(message_ref) => {
                    let db = app.db.clone();
                    let saved = tokio::task::spawn_blocking(move || {
                        db.approval_set_message(&approval.id, &message_ref)
                    })
                    .await;
                    if let Ok(Err(e)) = saved {
                        tracing::error!("saving the approval message reference: {e}");
                    }
                }
                Err(e) => tracing::error!("could not post the restore request: {e}"),
            }
        });
    }

    /// Share a document (an incident export, a runbook report) in a channel: uploaded as
    /// a file where the platform takes files, otherwise as messages in order.
    pub fn post_document(
        &self,
        platform: &'static str,
        channel: String,
        title: String,
        filename: String,
        body: impl Into<crate::notify::Body>,
    ) {
        let body = body.into();
        let Some(notifier) = self.notifier(platform) else {
            return;
        };
        self.tasks.spawn(async move {
            let doc = crate::notify::Document {
                filename,
                title,
                content: body,
            };
            crate::notify::post_document(notifier.as_ref(), &channel, &doc).await;
        });
    }

    /// Post a message everyone in the channel sees (a late public reply).
    pub fn post_public(&self, platform: &'static str, channel: String, msg: ChatMessage) {
        let Some(notifier) = self.notifier(platform) else {
            return;
        };
        self.tasks.spawn(async move {
            if let Err(e) = with_retries("posting a reply", || notifier.post(&channel, &msg)).await
            {
                tracing::error!("could not post a reply to {channel}: {e}");
            }
        });
    }

    /// Start a job that reports in `channel` (the platform's own id). With `message`, the
    /// job updates that message instead of posting a new one.
    pub fn start_job(
        &self,
        platform: &'static str,
        channel: String,
        actor: String,
        job: ChatJob,
        message: Option<String>,
    ) {
        let Some(notifier) = self.notifier(platform) else {
            return;
        };
        let chat = self.clone();
        match job {
            ChatJob::Runbook { runbook, values } => self.tasks.spawn(async move {
                chat.run_runbook(notifier, channel, actor, *runbook, values)
                    .await
            }),
            ChatJob::Job(job) => self
                .tasks
                .spawn(async move { chat.run_job(notifier, channel, actor, job, message).await }),
        };
    }

    async fn run_job(
        &self,
        notifier: Arc<dyn Notifier>,
        channel: String,
        actor: String,
        job: Job,
        message: Option<String>,
    ) {
        let what = report::describe(&job);
        let running = Card::new(Tone::Neutral, format!("⏳ {what}"))
            .lead(Line::new().text("Requested by ").person(&actor));
        let first = ChatMessage::card(running.clone());
        let message = match message {
            Some(m) => Some(m),
            None => with_retries("posting a job message", || notifier.post(&channel, &first))
                .await
                .map_err(|e| tracing::error!("could not post the job message for {what}: {e}"))
                .ok(),
        };
        let updater =
            message.map(|m| Arc::new(Updater::spawn(notifier.clone(), channel.clone(), m)));
        let progress: Arc<dyn crate::progress::Progress> = match &updater {
            Some(u) => Arc::new(ChatProgress::new(running.clone(), u.clone())),
            None => Arc::new(crate::progress::Silent),
        };
        let ctx = JobContext {
            progress,
            cancel: Cancel::new(),
        };
        let queued = || {
            if let Some(u) = &updater {
                u.set(ChatMessage::card(
                    running.clone().body("queued: waiting for a free job slot"),
                ));
            }
        };
        let started = std::time::Instant::now();
        let result = job.run_in_slot(&self.app, &actor, ctx, queued).await;
        self.job_ended.notify_one();
        let (mut card, document) = match result {
            Ok(result) => {
                let approval = self.approval_of(&job).await;
                report::render(&job, &actor, approval.as_ref(), result)
            }
            Err(e) => (
                Card::new(Tone::Bad, format!("❌ {what} failed"))
                    .body(format!("internal error ({e})")),
                None,
            ),
        };
        let note = self.timeline_note(notifier.platform(), &channel).await;
        if !note.is_empty() {
            card = card.context(note.trim_start());
        }
        tracing::info!(
            "{what}: {} ({})",
            card.title,
            crate::units::human_duration(started.elapsed().as_secs_f64())
        );
        let msg = ChatMessage::card(card);
        if let Some(u) = updater {
            match Arc::try_unwrap(u) {
                Ok(u) => u.finish(msg).await,
                Err(u) => u.set(msg),
            }
        }
        if let Some(doc) = document {
            post_document(notifier.as_ref(), &channel, &doc).await;
        }
    }

    /// The approval request that allowed a restore job, if it needed one.
    async fn approval_of(&self, job: &Job) -> Option<ApprovalRecord> {
        let Job::Restore {
            approval_id: Some(id),
            ..
        } = job
        else {
            return None;
        };
        let (db, id) = (self.app.db.clone(), id.clone());
        tokio::task::spawn_blocking(move || db.approval_get(&id).ok().flatten())
            .await
            .ok()
            .flatten()
    }

    /// "📎 on incident #N's timeline" when the job's events went onto an open incident
    /// seen from this channel; empty otherwise.
    pub(crate) async fn timeline_note(&self, platform: &str, channel: &str) -> String {
        let db = self.app.db.clone();
        let qualified = format!("{platform}:{channel}");
        let ids =
            tokio::task::spawn_blocking(move || db.incidents_open_for(Some(&qualified))).await;
        match ids {
            Ok(Ok(ids)) if !ids.is_empty() => {
                let list: Vec<String> = ids.iter().map(|i| format!("#{i}")).collect();
                format!("\n📎 on incident {}'s timeline", list.join(", "))
            }
            _ => String::new(),
        }
    }

    /// Act on an Approve/Deny click. Returns the text to show only the clicker, if any;
    /// the request's message is updated in every other case.
    pub async fn click(
        &self,
        platform: &'static str,
        approval_id: String,
        actor: String,
        channel: String,
        action: &str,
    ) -> Option<String> {
        if action.starts_with("step_") {
            return self
                .step_click(&approval_id, actor, format!("{platform}:{channel}"), action)
                .await;
        }
        let Some(decision) = Decision::from_action(action) else {
            return Some("unknown button".into());
        };
        let app = self.app.clone();
        let qualified = format!("{platform}:{channel}");
        let (id, who) = (approval_id.clone(), actor.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            approvals::click(&app, &id, &who, &qualified, decision, chrono::Utc::now())
        })
        .await;
        let outcome = match outcome {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Some(format!("that did not work: {e}")),
            Err(e) => return Some(format!("that did not work: internal error ({e})")),
        };
        let (req, run) = match outcome {
            Outcome::Refused(why) => return Some(why),
            Outcome::Pending(req) | Outcome::Denied(req) | Outcome::Expired(req) => (req, None),
            // A runbook run waits on its own request and carries out the restore itself.
            Outcome::Approved(req, _) if req.runbook_run.is_some() => (req, None),
            Outcome::Approved(req, plan) => (req, Some(plan)),
        };
        let Ok(plan) = serde_json::from_str::<actions::restore::RestorePlan>(&req.plan) else {
            return Some("the stored plan is unreadable".into());
        };
        let expired = req.status == ApprovalStatus::Expired;
        self.update_request(platform, &req, &plan).await;
        if let Some(plan) = run {
            let job = ChatJob::Job(Job::Restore {
                approval_id: Some(req.id.clone()),
                plan,
            });
            self.start_job(
                platform,
                req.channel.clone(),
                req.requester.clone(),
                job,
                req.message_ref.clone(),
            );
        }
        expired.then(|| "this restore request has expired; nothing was changed.".to_string())
    }

    /// What Approve asks before it counts, for a request still waiting. Ok(None): the
    /// request is unknown or decided (the click itself then says so).
    pub async fn confirm_of(&self, approval_id: &str) -> Result<Option<Confirm>, String> {
        let (db, id) = (self.app.db.clone(), approval_id.to_string());
        let req = tokio::task::spawn_blocking(move || db.approval_get(&id))
            .await
            .map_err(|e| format!("that did not work: internal error ({e})"))?
            .map_err(|e| format!("that did not work: {e}"))?;
        let Some(req) = req.filter(|r| r.status == ApprovalStatus::Pending) else {
            return Ok(None);
        };
        let plan = serde_json::from_str::<actions::restore::RestorePlan>(&req.plan)
            .map_err(|_| "the stored plan is unreadable".to_string())?;
        Ok(Some(approvals::confirm(&plan)))
    }

    async fn update_request(
        &self,
        platform: &'static str,
        req: &crate::db::approvals::ApprovalRecord,
        plan: &actions::restore::RestorePlan,
    ) {
        let (Some(notifier), Some(message)) = (self.notifier(platform), req.message_ref.clone())
        else {
            return;
        };
        let can_approve = approvals::who_can_approve(&self.app.config.access, req);
        let msg = approvals::message(req, plan, &can_approve);
        if let Err(e) = with_retries("updating a restore request", || {
            notifier.update(&req.channel, &message, &msg)
        })
        .await
        {
            tracing::error!("could not update restore request {}: {e}", req.id);
        }
    }

    /// Expire pending requests whose 30 minutes are up, and say so on their messages.
    pub async fn expire_requests(&self) {
        let db = self.app.db.clone();
        let now = crate::units::now_text();
        let expired = tokio::task::spawn_blocking(move || {
            let mut expired = Vec::new();
            for req in db.approvals_expired(&now)? {
                let mut decided = req.clone();
                decided.status = ApprovalStatus::Expired;
                decided.decided_at = Some(now.clone());
                // A click that decided it meanwhile wins; nothing to expire then.
                if !db.approval_decide(&req, &decided)? {
                    continue;
                }
                db.audit(
                    "lifeboat",
                    "restore request expired",
                    Some(&req.target),
                    "expired",
                    Some(&format!("request {}", req.id)),
                )?;
                expired.push(decided);
            }
            Ok::<_, crate::db::DbError>(expired)
        })
        .await;
        let Ok(Ok(found)) = expired else { return };
        for req in found {
            if let Ok(plan) = serde_json::from_str(&req.plan) {
                let platform = if req.platform == "discord" {
                    "discord"
                } else {
                    "slack"
                };
                self.update_request(platform, &req, &plan).await;
            }
        }
    }
}
