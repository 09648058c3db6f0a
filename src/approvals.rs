//! Restore approvals: the message a request is shown with, and what a click on Approve or
//! Deny does. Approvals come from distinct admins other than the requester, are bound to
//! the stored plan, and expire after 30 minutes.

use chrono::{DateTime, Utc};

use crate::actions::restore::RestorePlan;
use crate::app::App;
use crate::auth::{self, Role};
use crate::db::approvals::{ApprovalRecord, Approver};
use crate::error::Error;
use crate::notify::{Button, ChatMessage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

impl Decision {
    pub fn from_action(action: &str) -> Option<Decision> {
        match action {
            "approve" => Some(Decision::Approve),
            "deny" => Some(Decision::Deny),
            _ => None,
        }
    }
}

/// What a click led to.
#[derive(Debug)]
pub enum Outcome {
    /// Not accepted; tell only the clicker why.
    Refused(String),
    /// Accepted; the request still waits for more approvals.
    Pending(ApprovalRecord),
    /// Enough approvals: run this plan.
    Approved(ApprovalRecord, Box<RestorePlan>),
    Denied(ApprovalRecord),
    /// The request ran out of time before this click.
    Expired(ApprovalRecord),
}

/// Apply one click by `actor` (from `channel`) on request `id`.
pub fn click(
    app: &App,
    id: &str,
    actor: &str,
    channel: &str,
    decision: Decision,
    now: DateTime<Utc>,
) -> Result<Outcome, Error> {
    let Some(mut req) = app.db.approval_get(id)? else {
        return Ok(Outcome::Refused(
            "this restore request is unknown to lifeboat.".into(),
        ));
    };
    let refuse = |why: String| {
        let _ = app.db.audit(
            actor,
            "approval refused",
            Some(&req.target),
            "refused",
            Some(&format!("request {id}: {why}")),
        );
        Ok(Outcome::Refused(why))
    };
    if !auth::channel_allowed(&app.config.access, channel) {
        return refuse("lifeboat does not take decisions from this channel.".into());
    }
    if req.status != "pending" {
        return refuse(format!("this restore request is already {}.", req.status));
    }
    if crate::units::parse_time(&req.expires_at).is_some_and(|t| now >= t) {
        req.status = "expired".into();
        req.decided_at = Some(crate::units::time_text(now));
        app.db.approval_update(&req)?;
        app.db.audit(
            "lifeboat",
            "restore request expired",
            Some(&req.target),
            "expired",
            Some(&format!("request {id}")),
        )?;
        return Ok(Outcome::Expired(req));
    }
    if auth::role_of(&app.config.access, actor) != Some(Role::Admin) {
        return refuse("only admins can approve or deny restores.".into());
    }
    match decision {
        Decision::Deny => {
            req.status = "denied".into();
            req.denied_by = Some(actor.to_string());
            req.decided_at = Some(crate::units::time_text(now));
            app.db.approval_update(&req)?;
            app.db.audit(
                actor,
                "restore denied",
                Some(&req.target),
                "denied",
                Some(&format!("request {id}")),
            )?;
            Ok(Outcome::Denied(req))
        }
        Decision::Approve => {
            if actor == req.requester {
                return refuse(
                    "you requested this restore; another admin has to approve it.".into(),
                );
            }
            if req.approvers.iter().any(|a| a.actor == actor) {
                return refuse("you have already approved this restore.".into());
            }
            req.approvers.push(Approver {
                actor: actor.to_string(),
                at: crate::units::time_text(now),
            });
            app.db.audit(
                actor,
                "restore approved",
                Some(&req.target),
                "approved",
                Some(&format!(
                    "request {id} ({} of {})",
                    req.approvers.len(),
                    req.required
                )),
            )?;
            if (req.approvers.len() as u32) < req.required {
                app.db.approval_update(&req)?;
                return Ok(Outcome::Pending(req));
            }
            req.status = "approved".into();
            req.decided_at = Some(crate::units::time_text(now));
            app.db.approval_update(&req)?;
            let plan: RestorePlan = serde_json::from_str(&req.plan).map_err(|e| {
                Error::Failed(format!(
                    "the stored plan of request {id} is unreadable: {e}"
                ))
            })?;
            Ok(Outcome::Approved(req, Box::new(plan)))
        }
    }
}

/// The request's message: the plan, who approved, and the buttons while it is pending.
pub fn message(req: &ApprovalRecord, plan: &RestorePlan) -> ChatMessage {
    let mut text = format!(
        "*Restore requested by {}*\n{}",
        req.requester,
        plan.describe()
    );
    for a in &req.approvers {
        text.push_str(&format!(
            "\n✅ approved by {} at {}",
            a.actor,
            short_time(&a.at)
        ));
    }
    let buttons = match req.status.as_str() {
        "pending" => {
            text.push_str(&format!(
                "\nNeeds {} approval(s) from admins other than the requester; {} so far. Expires at {}.",
                req.required,
                req.approvers.len(),
                short_time(&req.expires_at)
            ));
            vec![
                Button {
                    action: "approve".into(),
                    label: "Approve".into(),
                    value: req.id.clone(),
                    danger: false,
                },
                Button {
                    action: "deny".into(),
                    label: "Deny".into(),
                    value: req.id.clone(),
                    danger: true,
                },
            ]
        }
        "denied" => {
            text.push_str(&format!(
                "\n⛔ denied by {} at {}. Nothing was changed.",
                req.denied_by.as_deref().unwrap_or("?"),
                short_time(req.decided_at.as_deref().unwrap_or_default())
            ));
            Vec::new()
        }
        "expired" => {
            text.push_str("\n⌛ expired without enough approvals. Nothing was changed; request it again if still needed.");
            Vec::new()
        }
        _ => {
            text.push_str("\nApproved: restoring now.");
            Vec::new()
        }
    };
    ChatMessage { text, buttons }
}

fn short_time(rfc3339: &str) -> String {
    crate::units::parse_time(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| rfc3339.to_string())
}
