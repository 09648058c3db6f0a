//! One entry point for every chat front-end: an Invocation (who, where, what) is checked
//! against the channel allow-list and roles, parsed into a `Command`, and answered with a
//! `Reply`: a private answer, a job to start, or a restore plan awaiting approval.
//! Every accepted and refused command is written to the audit log.

use chrono::Utc;

use crate::actions;
use crate::actions::catalog::Selector;
use crate::actions::restore::RestorePlan;
use crate::app::App;
use crate::auth::{self, Role};
use crate::command::incident::{ExportFormat, IncidentArgs};
use crate::command::runbook::RunbookArgs;
use crate::command::{Command, help_text};
use crate::db::approvals::ApprovalRecord;
use crate::db::audit::AuditEvent;
use crate::error::Error;
use crate::executor::job::Job;
use crate::incident;
use crate::units::human_bytes;

/// How many entries `/backup ls` shows before pointing to `lifeboat ls`: the reply stays
/// a short message.
const LS_PAGE: usize = 20;

/// How long a restore request waits for its approvals.
pub const APPROVAL_TTL: chrono::Duration = chrono::Duration::minutes(30);

#[derive(Debug, Clone)]
pub struct Invocation {
    /// `slack:U…` / `discord:…`
    pub actor: String,
    /// `slack:C…` / `discord:…`
    pub channel: String,
    /// The slash command, e.g. `/backup`.
    pub slash: String,
    pub text: String,
}

/// Work a reply starts in the background; it reports in the channel.
#[derive(Debug, Clone)]
pub enum ChatJob {
    /// A job the executor runs (a backup, verify, restore or drill).
    Job(Job),
    /// A runbook run: its steps reported one by one.
    Runbook {
        runbook: Box<crate::runbook::Runbook>,
        values: std::collections::BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone)]
pub enum Reply {
    /// Only the requester sees it: answers, refusals, usage.
    Private(String),
    /// Everyone in the channel sees it (incident notes and the like).
    Public(String),
    /// Acknowledge privately, then post a document (an export, a chart) to the channel.
    Document {
        ack: String,
        title: String,
        filename: String,
        body: crate::notify::Body,
    },
    /// A card (incident status, an export's summary, the status of every target): in the
    /// channel when `public`, else for the requester only; `file`, the whole of what the
    /// card sums up, is posted to the channel after it.
    Card {
        public: bool,
        msg: crate::notify::ChatMessage,
        file: Option<crate::notify::Document>,
    },
    /// Acknowledge privately, then run the job, posting and updating one channel message.
    Job { ack: String, job: ChatJob },
    /// Post the plan with Approve/Deny buttons and wait.
    Approval {
        ack: String,
        approval: Box<ApprovalRecord>,
        plan: Box<RestorePlan>,
    },
}

impl Reply {
    pub fn text(&self) -> &str {
        match self {
            Reply::Private(t) | Reply::Public(t) => t,
            Reply::Card { msg, .. } => &msg.text,
            Reply::Job { ack, .. } | Reply::Approval { ack, .. } | Reply::Document { ack, .. } => {
                ack
            }
        }
    }

    /// Add a line of fine print: to a card's fine print, else to the text.
    fn add_note(&mut self, note: &str) {
        let text = match self {
            Reply::Card { msg, .. } => {
                if let Some(card) = msg.card.take() {
                    *msg = crate::notify::ChatMessage::card(card.context(note))
                        .with_buttons(std::mem::take(&mut msg.buttons));
                    return;
                }
                &mut msg.text
            }
            Reply::Private(t) | Reply::Public(t) => t,
            Reply::Job { ack, .. } | Reply::Approval { ack, .. } | Reply::Document { ack, .. } => {
                ack
            }
        };
        text.push('\n');
        text.push_str(note);
    }
}

/// Authorize and answer one command. Never fails: every problem becomes a private reply.
pub fn dispatch(app: &App, inv: &Invocation) -> Reply {
    let (mut reply, outcome) = decide(app, inv);
    let detail = format!(
        "{} {} in {}: {}",
        inv.slash,
        inv.text.trim(),
        inv.channel,
        first_line(reply.text())
    );
    let event = AuditEvent {
        actor: &inv.actor,
        action: "command",
        outcome,
        detail: Some(&detail),
        channel: Some(&inv.channel),
        // Incident commands write their own timeline entries.
        skip_timeline: inv.slash.trim_start_matches('/') == "incident",
        ..Default::default()
    };
    match app.db.audit_event(&event) {
        Ok(incidents) => {
            if let Some(id) = incidents.first() {
                reply.add_note(&format!("📎 on incident #{id}'s timeline"));
            }
        }
        Err(e) => tracing::error!("audit log: {e}"),
    }
    reply
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

fn decide(app: &App, inv: &Invocation) -> (Reply, &'static str) {
    let access = &app.config.access;
    if !auth::channel_allowed(access, &inv.channel) {
        return refuse(
            "lifeboat does not take commands in this channel; use one of the team's operations channels.",
        );
    }
    let command = match Command::parse(&inv.slash, &inv.text) {
        Ok(c) => c,
        Err(e) => return refuse(format!("{}.\nUsage: `{}`", e.problem, e.usage)),
    };
    let Some(role) = auth::role_of(access, &inv.actor) else {
        return refuse(format!(
            "you are not on lifeboat's access list ({}); ask an admin to add you.",
            inv.actor
        ));
    };
    let needed = command.required_role();
    if role < needed {
        return refuse(format!(
            "`{}` needs the {} role; you are a {}.",
            command.usage(),
            needed.as_str(),
            role.as_str()
        ));
    }
    if let Some(target) = command.target()
        && !app.config.targets.contains_key(target)
    {
        return refuse(format!(
            "unknown target `{target}`; targets: {}.\nUsage: `{}`",
            app.config.target_names(),
            command.usage()
        ));
    }
    match run(app, inv, command, role) {
        Ok(reply) => (reply, "accepted"),
        Err(Error::Usage(msg)) | Err(Error::Busy(msg)) => refuse(msg),
        Err(e) => {
            tracing::error!("command {} {} from {}: {e}", inv.slash, inv.text, inv.actor);
            refuse(format!("that did not work: {e}"))
        }
    }
}

fn refuse(text: impl Into<String>) -> (Reply, &'static str) {
    (Reply::Private(text.into()), "refused")
}

fn run(app: &App, inv: &Invocation, command: Command, _role: Role) -> Result<Reply, Error> {
    match command {
        Command::Help => Ok(Reply::Private(help_text())),
        Command::Incident(args) => incident_reply(app, inv, args),
        Command::Runbook(RunbookArgs::List) => {
            Ok(Reply::Private(crate::runbook::list_text(&app.config)?))
        }
        Command::Runbook(RunbookArgs::Run { name, params }) => {
            let runbook = crate::runbook::find(&app.config, &name)?;
            let values = runbook.check_params(&params)?;
            Ok(Reply::Job {
                ack: format!(
                    "Running runbook {name} ({} steps); it reports step by step in the channel.",
                    runbook.steps.len()
                ),
                job: ChatJob::Runbook {
                    runbook: Box::new(runbook),
                    values,
                },
            })
        }
        Command::Drill { target, backup, at } => {
            refuse_if_busy(app, &target)?;
            let cfg = app.target(&target)?;
            actions::drill::refuse_unsupported(&target, cfg)?;
            // One reading of the time for chat and the command line.
            let selector = Selector::from_args(backup.as_deref(), at.as_deref())?;
            let ack = match &selector {
                // A moment nothing reaches is refused here, before any drill is recorded.
                Selector::At(moment) => format!(
                    "Drilling {target}: {}; the result and the report follow in the channel.",
                    actions::drill_point::reachable(app, &target, cfg, *moment)?
                ),
                _ => {
                    actions::drill::find_backup(app, &target, &selector)?;
                    format!(
                        "Drilling {target}: restoring into a sandbox and checking it; the result and the report follow in the channel."
                    )
                }
            };
            Ok(Reply::Job {
                ack,
                job: ChatJob::Job(Job::Drill { target, selector }),
            })
        }
        Command::BackupStatus { target: None } => {
            let all = actions::status::all(app, Utc::now())?;
            let (card, file) = actions::status_card::card(&all);
            Ok(Reply::Card {
                public: false,
                msg: crate::notify::ChatMessage::card(card),
                file,
            })
        }
        Command::BackupStatus {
            target: Some(target),
        } => status_chart(app, &target),
        Command::BackupList { target } => Ok(Reply::Private(list_text(app, target.as_deref())?)),
        Command::BackupLs { target, path } => {
            let listing = actions::browse::ls(app, &target, path.as_deref(), &Selector::Latest)?;
            Ok(Reply::Private(listing.text(Some(LS_PAGE))))
        }
        Command::BackupNow { target } => {
            refuse_if_busy(app, &target)?;
            Ok(Reply::Job {
                ack: format!("Starting a backup of {target}; progress follows in the channel."),
                job: ChatJob::Job(Job::Backup { target }),
            })
        }
        Command::Verify { target, backup } => {
            refuse_if_busy(app, &target)?;
            let selector = Selector::from_args(backup.as_deref(), None)?;
            actions::catalog::find(app, &target, &selector)?;
            Ok(Reply::Job {
                ack: format!("Verifying {target}; the result follows in the channel."),
                job: ChatJob::Job(Job::Verify {
                    target,
                    selector,
                    read_data: false,
                }),
            })
        }
        Command::Restore(args) => {
            let selector = Selector::from_args(args.backup.as_deref(), args.at.as_deref())?;
            if args.to.as_deref().is_some_and(|p| !p.starts_with('/')) {
                return Err(Error::Usage("`to` needs an absolute path".into()));
            }
            let to = args.to.as_deref().map(std::path::Path::new);
            let plan = if args.paths.is_empty() {
                actions::restore::plan(app, &args.target, &selector, to)?
            } else {
                actions::partial::plan(app, &args.target, &selector, &args.paths, to)?
            };
            if args.dry_run {
                return Ok(Reply::Private(format!(
                    "Dry run, nothing will change:\n{}",
                    plan.describe()
                )));
            }
            refuse_if_busy(app, &args.target)?;
            let required = app.target(&args.target)?.restore_approvals;
            if required == 0 {
                return Ok(Reply::Job {
                    ack: format!(
                        "Restoring {} (no approval required by the config).",
                        args.target
                    ),
                    job: ChatJob::Job(Job::Restore {
                        approval_id: None,
                        plan: Box::new(plan),
                    }),
                });
            }
            let approval = new_approval(&inv.actor, &inv.channel, &plan, required, None)?;
            app.db.approval_insert(&approval)?;
            app.db.audit(
                &inv.actor,
                "restore requested",
                Some(&args.target),
                "pending",
                Some(&format!("approval {}", approval.id)),
            )?;
            Ok(Reply::Approval {
                ack: format!(
                    "Restore plan for {} posted; it needs {required} other admin(s) to approve.",
                    args.target
                ),
                approval: Box::new(approval),
                plan: Box::new(plan),
            })
        }
    }
}

fn incident_reply(app: &App, inv: &Invocation, args: IncidentArgs) -> Result<Reply, Error> {
    let scope = incident::Scope {
        channel: Some(&inv.channel),
    };
    let db = &app.db;
    Ok(match args {
        IncidentArgs::Start { title } => {
            let i = incident::start(db, scope, &inv.actor, &title)?;
            public_card(incident::card::opened(&i))
        }
        IncidentArgs::Note { text } => {
            let (i, e) = incident::add(db, scope, &inv.actor, "note", &text)?;
            public_card(incident::card::added(&i, &e))
        }
        IncidentArgs::Action { text } => {
            let (i, e) = incident::add(db, scope, &inv.actor, "action", &text)?;
            public_card(incident::card::added(&i, &e))
        }
        IncidentArgs::Status => Reply::Card {
            public: false,
            msg: crate::notify::ChatMessage::card(incident::status_card(db, scope)?),
            file: None,
        },
        IncidentArgs::Close => {
            let i = incident::close(db, scope, &inv.actor)?;
            public_card(incident::card::closed(&i, Utc::now()))
        }
        IncidentArgs::Export { format } => {
            let x = incident::export(db, scope, None)?;
            let (body, ext) = match format {
                ExportFormat::Markdown => (x.markdown(), "md"),
                ExportFormat::Json => (x.json(), "json"),
            };
            let filename = format!("incident-{}.{ext}", x.id);
            let summary = incident::card::export_summary(&x, &filename, Utc::now());
            Reply::Card {
                public: true,
                msg: crate::notify::ChatMessage::card(summary),
                file: Some(crate::notify::Document {
                    title: format!("Incident #{}: {}", x.id, x.title),
                    filename,
                    content: body.into(),
                }),
            }
        }
    })
}

/// A card everyone in the channel sees.
fn public_card(card: crate::card::Card) -> Reply {
    Reply::Card {
        public: true,
        msg: crate::notify::ChatMessage::card(card),
        file: None,
    }
}

fn refuse_if_busy(app: &App, target: &str) -> Result<(), Error> {
    if let Some(job) = app.db.jobs_running(Some(target))?.first() {
        return Err(Error::Busy(format!(
            "{target} is busy: job {} ({} by {}, started {}) is still running.",
            job.id, job.kind, job.actor, job.started_at
        )));
    }
    Ok(())
}

/// A pending approval request for `plan`, asked by `actor` in `channel` (qualified).
pub fn new_approval(
    actor: &str,
    channel: &str,
    plan: &RestorePlan,
    required: u32,
    runbook_run: Option<i64>,
) -> Result<ApprovalRecord, Error> {
    let now = Utc::now();
    let (platform, channel) = channel.split_once(':').unwrap_or(("", channel));
    Ok(ApprovalRecord {
        id: random_id()?,
        target: plan.target.clone(),
        platform: platform.to_string(),
        channel: channel.to_string(),
        message_ref: None,
        requester: actor.to_string(),
        required,
        plan: serde_json::to_string(plan).expect("plan serializes"),
        status: crate::db::approvals::ApprovalStatus::Pending,
        created_at: crate::units::time_text(now),
        expires_at: crate::units::time_text(now + APPROVAL_TTL),
        decided_at: None,
        approvers: Vec::new(),
        denied_by: None,
        runbook_run,
    })
}

/// An unguessable id for approval buttons: 128 bits from the OS's random source. Without
/// one no request is made: a guessable id would let anyone who sees one button forge
/// another request's click.
fn random_id() -> Result<String, Error> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("reading the OS's random source (/dev/urandom)", e))?;
    Ok(hex::encode(bytes))
}

/// `/backup status <target>`: the target's line, then its history charts as a picture.
fn status_chart(app: &App, target: &str) -> Result<Reply, Error> {
    let cfg = app.target(target)?;
    let now = Utc::now();
    let status = actions::status::one(app, target, cfg, now)?;
    let line = actions::status_card::line(&status);
    let mut text = format!("{} — {}", line.plain(), status.health.as_str());
    for why in &status.health_reasons {
        text.push_str(&format!("\n   ◦ {why}"));
    }
    let days = actions::history::CHART_DAYS;
    let history = actions::history::history(app, target, now, days)?;
    match crate::charts::png(&history) {
        Ok(png) => Ok(Reply::Document {
            ack: format!("{text}\nPosting its charts for the last {days} days."),
            title: format!("{target}: backup size, duration, RPO and drill RTO, last {days} days"),
            filename: format!("{target}-status.png"),
            body: crate::notify::Body::Png(png),
        }),
        Err(e) => {
            tracing::error!("charts of {target}: {e}");
            Ok(Reply::Private(format!(
                "{text}\n(the charts could not be drawn)"
            )))
        }
    }
}

fn list_text(app: &App, target: Option<&str>) -> Result<String, Error> {
    let names = app.targets_or_all(target)?;
    let mut out = String::new();
    for name in names {
        let backups = actions::catalog::backups(app, &name)?;
        out.push_str(&format!("*{name}*: {} backups\n", backups.len()));
        for m in backups.iter().take(10) {
            out.push_str(&format!(
                "  `{}`  {}  {}\n",
                m.id,
                m.created_at,
                human_bytes(m.size_bytes)
            ));
        }
        if backups.len() > 10 {
            out.push_str(&format!("  … and {} older\n", backups.len() - 10));
        }
    }
    Ok(out)
}
