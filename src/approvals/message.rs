//! A restore request as chat shows it: who asked, the plan's facts (target, backup, its
//! age and size, destination, what is moved aside), the steps, who approved, and the
//! buttons while it waits, Approve asking first when the restore replaces data.

use crate::actions::restore::RestorePlan;
use crate::card::{Card, Line, Tone};
use crate::config::AccessConfig;
use crate::db::approvals::{ApprovalRecord, ApprovalStatus};
use crate::notify::{Button, ChatMessage, Confirm};
use crate::units::{count, human_age, human_bytes, parse_time};

/// The admins who can still approve `req` where it was asked: listed by identity on its
/// platform in `[access] admins`, not its requester, not approved already.
pub fn who_can_approve(access: &AccessConfig, req: &ApprovalRecord) -> Vec<String> {
    let platform = format!("{}:", req.platform);
    access
        .admins
        .iter()
        .filter(|a| a.starts_with(&platform) && **a != req.requester)
        .filter(|a| !req.approvers.iter().any(|done| &done.actor == *a))
        .cloned()
        .collect()
}

/// The most approvers a request names (and alerts); past that it says how many more.
const NAMED_APPROVERS: usize = 10;

/// The request's message: the plan, who approved, and the buttons while it is pending.
/// `can_approve` (see `who_can_approve`) are named and alerted while it waits.
pub fn message(req: &ApprovalRecord, plan: &RestorePlan, can_approve: &[String]) -> ChatMessage {
    let (tone, title) = match req.status {
        ApprovalStatus::Pending => (Tone::Warning, "Restore requested"),
        ApprovalStatus::Approved => (Tone::Good, "Restore approved"),
        ApprovalStatus::Denied => (Tone::Bad, "Restore denied"),
        ApprovalStatus::Expired => (Tone::Neutral, "Restore request expired"),
    };
    let mut card = Card::new(tone, format!("{title}: {}", plan.target)).lead(
        Line::new()
            .text("Requested by ")
            .person(&req.requester)
            .text(if plan.in_place {
                ": put an older copy in place of the live data."
            } else {
                ": restore a copy beside the live data."
            }),
    );
    card = plan_facts(card, plan);
    card = plan_steps(card, plan);
    for n in &plan.notes {
        card = card.body(Line::new().text(format!("Note: {n}")));
    }
    for a in &req.approvers {
        card = card.body(
            Line::new()
                .text("✅ approved by ")
                .person(&a.actor)
                .text(" at ")
                .stored_time(&a.at),
        );
    }
    let mut buttons = Vec::new();
    match req.status {
        ApprovalStatus::Pending => {
            let missing = req.required.saturating_sub(req.approvers.len() as u32);
            card = card.body(Line::new().text(format!(
                "Needs {} from an admin other than the requester ({} of {} so far).",
                count(missing as u64, "more approval", Some("more approvals")),
                req.approvers.len(),
                req.required
            )));
            if !can_approve.is_empty() {
                let mut line = Line::new().text("Can approve: ");
                for (i, who) in can_approve.iter().take(NAMED_APPROVERS).enumerate() {
                    if i > 0 {
                        line = line.text(", ");
                    }
                    line = line.notify(who);
                }
                if can_approve.len() > NAMED_APPROVERS {
                    line = line.text(format!(
                        " and {}",
                        count(
                            (can_approve.len() - NAMED_APPROVERS) as u64,
                            "other admin",
                            None
                        )
                    ));
                }
                card = card.body(line);
            }
            let mut expires = Line::new().text("Expires ");
            expires = match parse_time(&req.expires_at) {
                Some(t) => expires.time_relative(t),
                None => expires.text(&req.expires_at),
            };
            card = card.context(expires.text(" · request ").code(&req.id));
            buttons = vec![
                Button {
                    action: "approve".into(),
                    label: "Approve".into(),
                    value: req.id.clone(),
                    danger: false,
                    confirm: plan.in_place.then(|| confirm(plan)),
                },
                Button {
                    action: "deny".into(),
                    label: "Deny".into(),
                    value: req.id.clone(),
                    danger: true,
                    confirm: None,
                },
            ];
        }
        ApprovalStatus::Denied => {
            let mut line = Line::new().text("⛔ denied by ");
            line = match &req.denied_by {
                Some(who) => line.person(who),
                None => line.text("someone"),
            };
            card = card.body(
                line.text(" at ")
                    .stored_time(req.decided_at.as_deref().unwrap_or_default())
                    .text(". Nothing was changed."),
            );
        }
        ApprovalStatus::Expired => {
            card = card.body(
                "⌛ expired without enough approvals. Nothing was changed; request it again if still needed.",
            );
        }
        ApprovalStatus::Approved => {
            card = card.body("Approved: restoring now.");
        }
    }
    ChatMessage::card(card).with_buttons(buttons)
}

/// The facts of a plan, for a request and for the restore's result.
pub fn plan_facts(card: Card, plan: &RestorePlan) -> Card {
    let b = &plan.backup;
    let destination = Line::new()
        .code(where_(plan, &plan.destination))
        .text(if plan.in_place {
            " (in place)"
        } else if plan.paths.is_empty() {
            " (new copy)"
        } else {
            " (new folder holding only the paths asked for)"
        });
    let mut card = card
        .fact("Target", Line::new().code(&plan.target))
        .fact("Backup", Line::new().code(&b.id))
        .fact(
            "Taken",
            Line::new()
                .stored_time(&b.created_at)
                .text(format!(" ({} old)", human_age(plan.backup_age_seconds))),
        )
        .fact("Size", human_bytes(b.content_bytes))
        .fact("Destination", destination);
    if let Some(point) = &plan.point {
        // A restore to a moment: the backup is the base the shipped transactions go onto.
        card = card.fact(
            "To the moment",
            Line::new().stored_time(&point.at).text(format!(
                " (transactions {}–{} of generation {} replayed onto the backup)",
                point.base_txid + 1,
                point.up_to_txid,
                point.generation
            )),
        );
    }
    let aside = if plan.move_aside.is_empty() {
        Line::new().text("nothing (no current data at the destination)")
    } else {
        let mut line = Line::new();
        for (i, m) in plan.move_aside.iter().enumerate() {
            if i > 0 {
                line = line.text(", ");
            }
            line = line.code(m.to.display().to_string());
        }
        line
    };
    card = card.fact("Moved aside to", aside);
    partial_facts(card, plan)
}

/// A partial restore's paths, each with what it holds, and the sum.
fn partial_facts(mut card: Card, plan: &RestorePlan) -> Card {
    if plan.paths.is_empty() {
        return card;
    }
    let mut paths = Line::new();
    for (i, p) in plan.paths.iter().enumerate() {
        if i > 0 {
            paths = paths.text(", ");
        }
        let what = match p.kind.as_str() {
            "dir" => format!(
                " (folder, {}, {})",
                count(p.files, "file", None),
                human_bytes(p.bytes)
            ),
            "file" => format!(" (file, {})", human_bytes(p.bytes)),
            other => format!(" ({other})"),
        };
        paths = paths.code(&p.path).text(what);
    }
    let files: u64 = plan.paths.iter().map(|p| p.files).sum();
    let bytes: u64 = plan.paths.iter().map(|p| p.bytes).sum();
    card = card.fact("Paths", paths).fact(
        "Restores",
        format!(
            "{}, {} (each keeps its path under the destination)",
            count(files, "file", None),
            human_bytes(bytes)
        ),
    );
    card
}

/// What the restore does, in order.
fn plan_steps(mut card: Card, plan: &RestorePlan) -> Card {
    let hooks = &plan.hooks;
    for argv in &hooks.before_restore {
        card = card.step(
            Line::new()
                .text(format!("Run the hook {}: ", hooks.run))
                .code(crate::target_hooks::shown(argv)),
        );
    }
    let fetch = if plan.paths.is_empty() {
        "Download and check the backup into "
    } else {
        "Stream the backup and extract only these paths (each file's SHA-256 checked) into "
    };
    card = card.step(Line::new().text(fetch).code(where_(plan, &plan.staging)));
    for m in &plan.move_aside {
        card = card.step(
            Line::new()
                .text("Move ")
                .code(m.from.display().to_string())
                .text(" aside to ")
                .code(m.to.display().to_string()),
        );
    }
    card = card.step(
        Line::new()
            .text("Rename it to ")
            .code(where_(plan, &plan.destination)),
    );
    for argv in &hooks.after_restore {
        card = card.step(
            Line::new()
                .text(format!("Run the hook {}: ", hooks.run))
                .code(crate::target_hooks::shown(argv)),
        );
    }
    card
}

/// A path, with its host when it is on another one.
fn where_(plan: &RestorePlan, path: &std::path::Path) -> String {
    match &plan.host {
        Some(h) => format!("{h}:{}", path.display()),
        None => path.display().to_string(),
    }
}

/// What Approve asks before it counts on a restore that replaces data.
pub fn confirm(plan: &RestorePlan) -> Confirm {
    let aside: Vec<String> = plan
        .move_aside
        .iter()
        .map(|m| m.to.display().to_string())
        .collect();
    let kept = if aside.is_empty() {
        "There is no current data there to keep.".to_string()
    } else {
        format!("The current data is moved aside to {}.", aside.join(", "))
    };
    Confirm {
        title: "Replace the live data?".into(),
        text: crate::card::clip(
            &format!(
                "This replaces {} with backup {} of {}. {kept}",
                where_(plan, &plan.destination),
                plan.backup.id,
                plan.target
            ),
            // Slack's confirm dialog takes at most 300 characters.
            300,
        ),
        yes: "Approve and restore".into(),
        no: "Cancel".into(),
    }
}

/// The largest messages lifeboat realistically sends, for the renderers' limit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::actions::restore::RestorePlan;
    use crate::card::{Card, Line, Tone};
    use crate::db::approvals::{ApprovalRecord, ApprovalStatus, Approver};

    /// An in-place restore of a target on another host with long paths, 30 files moved
    /// aside, 10 hooks either side, a 2,000-character note, `platform` identities.
    pub fn largest_plan() -> RestorePlan {
        let dir = format!("/srv/{}/data", "deeply/nested/volume".repeat(8));
        let aside: Vec<_> = (0..30)
            .map(|i| {
                serde_json::json!({"from": format!("{dir}/file-{i}.db"),
                    "to": format!("{dir}/file-{i}.db.before-restore-20261205T124620Z")})
            })
            .collect();
        let hooks: Vec<Vec<String>> = (0..10)
            .map(|i| {
                vec![
                    "systemctl".into(),
                    "stop".into(),
                    format!("app-{i}.service"),
                ]
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "target": "gitea-db-with-a-long-name-".repeat(4),
            "backup": {
                "format": 1, "id": "20261205T124620Z", "target": "gitea-db", "kind": "sqlite",
                "store": "offsite-s3", "created_at": "2026-12-05T12:46:20.010Z",
                "finished_at": "2026-12-05T12:46:21.000Z", "duration_seconds": 1.0,
                "status": "complete", "artifact": "gitea-db/x.zst", "compression": "zstd",
                "size_bytes": 123456789, "sha256": "00", "content_bytes": 987654321,
                "content_sha256": "00", "lifeboat_version": "0.1.0"
            },
            "backup_age_seconds": 7260, "destination": format!("{dir}/gitea.db"),
            "in_place": true, "move_aside": aside, "aside": null,
            "staging": format!("{dir}/.gitea.db.staging"),
            "notes": ["x".repeat(2000), "the service is stopped while the copy is renamed in".to_string()],
            "host": "deploy@db-primary.internal.example.com:2222",
            "hooks": {"before_restore": hooks, "after_restore": hooks, "run": "on deploy@db-primary:2222"}
        }))
        .unwrap()
    }

    pub fn request(platform: &str, status: ApprovalStatus) -> ApprovalRecord {
        let user = |n: u32| match platform {
            "discord" => format!("discord:10000000000000000{n}"),
            _ => format!("slack:U0ADMIN{n}"),
        };
        ApprovalRecord {
            id: "0f6b1c2e-5a0d-4c39-9a43-0e5c1d8f7a21".into(),
            target: "gitea-db".into(),
            platform: platform.into(),
            channel: "C0OPS".into(),
            message_ref: None,
            requester: user(1),
            required: 5,
            plan: serde_json::to_string(&largest_plan()).unwrap(),
            status,
            created_at: "2026-12-05T12:46:20.010Z".into(),
            expires_at: "2026-12-05T13:16:20.010Z".into(),
            decided_at: None,
            approvers: (2..6)
                .map(|n| Approver {
                    actor: user(n),
                    at: "2026-12-05T12:50:00.000Z".into(),
                })
                .collect(),
            denied_by: None,
            runbook_run: None,
        }
    }

    /// An incident-sized card: 50 targets as facts, a 200-entry timeline, a 2,000-character
    /// note, people and times on every line.
    pub fn largest_card(platform: &str) -> Card {
        let person = match platform {
            "discord" => "discord:100000000000000002",
            _ => "slack:U0ADMIN2",
        };
        let at = crate::units::parse_time("2026-12-05T12:46:20.010Z").unwrap();
        let mut card = Card::new(Tone::Bad, "🚨 ".to_string() + &"incident ".repeat(30))
            .lead(Line::new().text("n".repeat(2000)))
            .lead(
                Line::new()
                    .text("Opened by ")
                    .notify(person)
                    .text(" at ")
                    .time(at),
            );
        for i in 0..50 {
            card = card.fact(
                format!("target-{i}-{}", "t".repeat(40)),
                Line::new()
                    .code("p".repeat(300))
                    .text(" last backup ")
                    .time(at),
            );
        }
        for i in 0..200 {
            card = card.body(
                Line::new()
                    .time(at)
                    .text(format!(" entry {i}: "))
                    .person(person)
                    .text(" ran ")
                    .code(format!("/restore gitea-db {}", "z".repeat(200))),
            );
        }
        for i in 0..30 {
            card = card.step(format!("step {i} {}", "s".repeat(400)));
            card = card.context(
                Line::new()
                    .text(format!("fine print {i} "))
                    .time_relative(at),
            );
        }
        card
    }
}
