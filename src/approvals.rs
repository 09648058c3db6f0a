//! Restore approvals: the message a request is shown with, and what a click on Approve or
//! Deny does. Approvals come from distinct admins other than the requester, are bound to
//! the stored plan, and expire after 30 minutes.

use chrono::{DateTime, Utc};

use crate::actions::restore::RestorePlan;
use crate::app::App;
use crate::auth::{self, Role};
use crate::db::approvals::{ApprovalRecord, ApprovalStatus, Approver};
use crate::error::Error;

mod message; // the request as chat shows it
#[cfg(test)]
pub(crate) use message::fixtures;
pub use message::{confirm, message, plan_facts, who_can_approve};

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

/// How often a click re-reads a request that another click changed in between before it
/// gives up; each retry means another decision was recorded, so a few are plenty.
const CLICK_ATTEMPTS: usize = 8;

/// Apply one click by `actor` (from `channel`) on request `id`. The decision is written
/// only if the request is still as it was read (compare-and-set), so two clicks that
/// arrive together never both decide: the later one reads the request again and is judged
/// on what the first one left (an approval counted next to the first, or "already
/// decided").
pub fn click(
    app: &App,
    id: &str,
    actor: &str,
    channel: &str,
    decision: Decision,
    now: DateTime<Utc>,
) -> Result<Outcome, Error> {
    for _ in 0..CLICK_ATTEMPTS {
        let Some(req) = app.db.approval_get(id)? else {
            return Ok(Outcome::Refused(
                "this restore request is unknown to lifeboat.".into(),
            ));
        };
        match judge(app, &req, actor, channel, decision, now) {
            Judged::Refuse(why) => {
                app.db.audit(
                    actor,
                    "approval refused",
                    Some(&req.target),
                    "refused",
                    Some(&format!("request {id}: {why}")),
                )?;
                return Ok(Outcome::Refused(why));
            }
            Judged::Decide(decided, step) => {
                if !app.db.approval_decide(&req, &decided)? {
                    continue; // another click came first: judge this one on what it left
                }
                audit_decision(app, &decided, actor, step)?;
                return finish(*decided, step);
            }
        }
    }
    Err(Error::Failed(format!(
        "restore request {id} kept changing while this click was recorded; try again"
    )))
}

/// What one click would do to a request as read.
enum Judged {
    Refuse(String),
    Decide(Box<ApprovalRecord>, Step),
}

/// The decision a click makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Expire,
    Deny,
    Approve,
    Complete,
}

fn judge(
    app: &App,
    req: &ApprovalRecord,
    actor: &str,
    channel: &str,
    decision: Decision,
    now: DateTime<Utc>,
) -> Judged {
    if !auth::channel_allowed(&app.config.access, channel) {
        return Judged::Refuse("lifeboat does not take decisions from this channel.".into());
    }
    if req.status != ApprovalStatus::Pending {
        return Judged::Refuse(format!("this restore request is already {}.", req.status));
    }
    let mut next = req.clone();
    if crate::units::parse_time(&req.expires_at).is_some_and(|t| now >= t) {
        next.status = ApprovalStatus::Expired;
        next.decided_at = Some(crate::units::time_text(now));
        return Judged::Decide(Box::new(next), Step::Expire);
    }
    if auth::role_of(&app.config.access, actor) != Some(Role::Admin) {
        return Judged::Refuse("only admins can approve or deny restores.".into());
    }
    match decision {
        Decision::Deny => {
            next.status = ApprovalStatus::Denied;
            next.denied_by = Some(actor.to_string());
            next.decided_at = Some(crate::units::time_text(now));
            Judged::Decide(Box::new(next), Step::Deny)
        }
        Decision::Approve => {
            if actor == req.requester {
                return Judged::Refuse(
                    "you requested this restore; another admin has to approve it.".into(),
                );
            }
            if req.approvers.iter().any(|a| a.actor == actor) {
                return Judged::Refuse("you have already approved this restore.".into());
            }
            next.approvers.push(Approver {
                actor: actor.to_string(),
                at: crate::units::time_text(now),
            });
            if (next.approvers.len() as u32) < req.required {
                return Judged::Decide(Box::new(next), Step::Approve);
            }
            next.status = ApprovalStatus::Approved;
            next.decided_at = Some(crate::units::time_text(now));
            Judged::Decide(Box::new(next), Step::Complete)
        }
    }
}

/// The audit record of a decision that was written.
fn audit_decision(app: &App, req: &ApprovalRecord, actor: &str, step: Step) -> Result<(), Error> {
    let id = &req.id;
    let (who, action, outcome, detail) = match step {
        Step::Expire => (
            "lifeboat",
            "restore request expired",
            "expired",
            format!("request {id}"),
        ),
        Step::Deny => (actor, "restore denied", "denied", format!("request {id}")),
        Step::Approve | Step::Complete => (
            actor,
            "restore approved",
            "approved",
            format!("request {id} ({} of {})", req.approvers.len(), req.required),
        ),
    };
    app.db
        .audit(who, action, Some(&req.target), outcome, Some(&detail))?;
    Ok(())
}

fn finish(req: ApprovalRecord, step: Step) -> Result<Outcome, Error> {
    Ok(match step {
        Step::Expire => Outcome::Expired(req),
        Step::Deny => Outcome::Denied(req),
        Step::Approve => Outcome::Pending(req),
        Step::Complete => {
            let plan: RestorePlan = serde_json::from_str(&req.plan).map_err(|e| {
                Error::Failed(format!(
                    "the stored plan of request {} is unreadable: {e}",
                    req.id
                ))
            })?;
            Outcome::Approved(req, Box::new(plan))
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::db::approvals::ApprovalStatus;

    const ADMINS: [&str; 3] = ["slack:UA1", "slack:UA2", "slack:UA3"];

    fn app() -> (App, tempfile::TempDir) {
        let text = "[access]\nadmins = [\"slack:UA1\", \"slack:UA2\", \"slack:UA3\"]\nchannels = [\"slack:C0OPS\"]\n\
                    [targets.app-db]\nkind = \"external\"\nschedule = \"0 0 3 * * *\"\ntoken = \"${T}\"\n";
        let config =
            crate::config::Config::parse(text, "t.toml", std::path::Path::new("/etc"), &|_| {
                Some("0123456789abcdef".into())
            })
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let app = App::for_tests(config, Default::default(), dir.path().to_path_buf());
        (app, dir)
    }

    /// A plan as the current release stores it with a request.
    fn plan_json() -> String {
        serde_json::json!({
            "target": "app-db",
            "backup": {
                "format": 1, "id": "20260101T000000Z", "target": "app-db", "kind": "sqlite",
                "store": "local", "created_at": "2026-01-01T00:00:00.000Z",
                "finished_at": "2026-01-01T00:00:01.000Z", "duration_seconds": 1.0,
                "status": "complete", "artifact": "app-db/x.zst", "compression": "zstd",
                "size_bytes": 1, "sha256": "00", "content_bytes": 1, "content_sha256": "00",
                "lifeboat_version": "0.1.0"
            },
            "backup_age_seconds": 60, "destination": "/srv/app.db", "in_place": true,
            "move_aside": [], "aside": null, "staging": "/srv/.app.db.staging", "notes": []
        })
        .to_string()
    }

    fn request(app: &App, n: usize, required: u32) -> String {
        let now = Utc::now();
        let id = format!("request-{n}");
        app.db
            .approval_insert(&ApprovalRecord {
                id: id.clone(),
                target: "app-db".into(),
                platform: "slack".into(),
                channel: "C0OPS".into(),
                message_ref: None,
                requester: ADMINS[0].into(),
                required,
                plan: plan_json(),
                status: ApprovalStatus::Pending,
                created_at: crate::units::time_text(now),
                expires_at: crate::units::time_text(now + chrono::Duration::minutes(30)),
                decided_at: None,
                approvers: Vec::new(),
                denied_by: None,
                runbook_run: None,
            })
            .unwrap();
        id
    }

    /// `clicks` all released at once on request `id`; their outcomes.
    fn together(app: &App, id: &str, clicks: &[(&'static str, Decision)]) -> Vec<Outcome> {
        let barrier = Arc::new(Barrier::new(clicks.len()));
        std::thread::scope(|s| {
            let handles: Vec<_> = clicks
                .iter()
                .map(|(actor, decision)| {
                    let barrier = barrier.clone();
                    s.spawn(move || {
                        barrier.wait();
                        click(app, id, actor, "slack:C0OPS", *decision, Utc::now()).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn simultaneous_clicks_decide_a_request_exactly_once() {
        let (app, _dir) = app();
        for round in 0..150 {
            // Two Approves and a Deny, one approval required: exactly one decides.
            let id = request(&app, round, 1);
            let outcomes = together(
                &app,
                &id,
                &[
                    (ADMINS[1], Decision::Approve),
                    (ADMINS[2], Decision::Approve),
                    (ADMINS[2], Decision::Deny),
                ],
            );
            let approved = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Approved(..)))
                .count();
            let denied = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Denied(..)))
                .count();
            assert_eq!(approved + denied, 1, "round {round}: {outcomes:?}");
            let stored = app.db.approval_get(&id).unwrap().unwrap();
            let expect = if approved == 1 {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Denied
            };
            assert_eq!(stored.status, expect, "round {round}");
            assert_eq!(stored.denied_by.is_some(), denied == 1, "round {round}");
            for o in &outcomes {
                if let Outcome::Refused(why) = o {
                    assert!(why.contains("already"), "round {round}: {why}");
                }
            }
        }
    }

    #[test]
    fn a_decision_made_while_the_message_was_posted_stands_when_its_place_is_saved() {
        let (app, _dir) = app();
        let id = request(&app, 0, 1);
        let outcome = click(
            &app,
            &id,
            ADMINS[1],
            "slack:C0OPS",
            Decision::Deny,
            Utc::now(),
        );
        assert!(matches!(outcome.unwrap(), Outcome::Denied(..)));
        app.db.approval_set_message(&id, "C0OPS:1.1").unwrap();
        let stored = app.db.approval_get(&id).unwrap().unwrap();
        assert_eq!(stored.status, ApprovalStatus::Denied);
        assert_eq!(stored.denied_by.as_deref(), Some(ADMINS[1]));
        assert_eq!(stored.message_ref.as_deref(), Some("C0OPS:1.1"));
    }

    #[test]
    fn two_approvals_that_arrive_together_both_count() {
        let (app, _dir) = app();
        for round in 0..100 {
            let id = request(&app, round, 2);
            let outcomes = together(
                &app,
                &id,
                &[
                    (ADMINS[1], Decision::Approve),
                    (ADMINS[2], Decision::Approve),
                ],
            );
            let kinds: Vec<&str> = outcomes
                .iter()
                .map(|o| match o {
                    Outcome::Pending(_) => "pending",
                    Outcome::Approved(..) => "approved",
                    _ => "other",
                })
                .collect();
            assert!(
                kinds.contains(&"pending") && kinds.contains(&"approved"),
                "round {round}: {outcomes:?}"
            );
            let stored = app.db.approval_get(&id).unwrap().unwrap();
            assert_eq!(stored.status, ApprovalStatus::Approved);
            assert_eq!(stored.approvers.len(), 2, "round {round}");
        }
    }

    #[test]
    fn the_admins_who_can_approve_are_those_of_the_platform_not_yet_heard() {
        let (app, _dir) = app();
        let id = request(&app, 0, 2);
        let mut req = app.db.approval_get(&id).unwrap().unwrap();
        let access = &app.config.access;
        assert_eq!(
            who_can_approve(access, &req),
            vec!["slack:UA2", "slack:UA3"]
        );
        req.approvers.push(Approver {
            actor: "slack:UA2".into(),
            at: crate::units::now_text(),
        });
        assert_eq!(who_can_approve(access, &req), vec!["slack:UA3"]);
        req.platform = "discord".into();
        assert!(who_can_approve(access, &req).is_empty());
    }

    #[test]
    fn statuses_written_by_earlier_releases_read_back() {
        let (app, _dir) = app();
        let id = request(&app, 0, 1);
        for word in ["approved", "denied", "expired", "pending"] {
            app.db
                .lock()
                .execute(
                    "UPDATE approvals SET status = ?1 WHERE id = ?2",
                    [word, id.as_str()],
                )
                .unwrap();
            let read = app.db.approval_get(&id).unwrap().unwrap();
            assert_eq!(read.status.as_str(), word);
        }
    }
}
