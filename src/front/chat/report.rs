//! A chat job's words: what the job is called while it runs, and its report (or why it
//! failed) as the final text of its message, with a document to share after it.

use crate::actions;
use crate::db::approvals::ApprovalRecord;
use crate::error::Result;
use crate::executor::job::{Job, JobReport};
use crate::notify::Document;
use crate::units::human_bytes;

/// The job as its message names it: "backup of db", "restore of db from backup X".
pub(super) fn describe(job: &Job) -> String {
    let target = job.target();
    match job {
        Job::Drill { .. } => format!("drill of {target}"),
        Job::Backup { .. } => format!("backup of {target}"),
        Job::Verify { .. } => format!("verify of {target}"),
        Job::Prune { .. } => format!("prune of {target}"),
        Job::Restore { plan, .. } => {
            format!("restore of {target} from backup {}", plan.backup.id)
        }
        Job::PlannedRestore { .. } => format!("restore of {target}"),
    }
}

/// The message's final text, and a document to share after it if the job made one.
/// `approval` is the request that allowed a restore: who asked and who approved head it.
pub(super) fn render(
    job: &Job,
    approval: Option<&ApprovalRecord>,
    result: Result<JobReport>,
) -> (String, Option<Document>) {
    let target = job.target();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let failed = match job {
                Job::Restore { .. } => format!("❌ restore of {target} failed: {e}"),
                _ => format!("❌ {} failed: {e}", describe(job)),
            };
            return (approval_header(approval) + &failed, None);
        }
    };
    let text = match report {
        JobReport::Drill(r) => {
            return (r.chat_summary(), Some(actions::drill_report::document(&r)));
        }
        JobReport::Backup(m) => {
            let warning = actions::backup::inconsistency_warning(&m);
            let mut text = format!(
                "{} backup `{}` of {target} complete: {} stored ({} before compression) in {:.1}s",
                if warning.is_some() { "⚠️" } else { "✅" },
                m.id,
                human_bytes(m.size_bytes),
                human_bytes(m.content_bytes),
                m.duration_seconds
            );
            if let Some(w) = warning {
                text.push('\n');
                text.push_str(&w);
            }
            text
        }
        JobReport::Verify(r) if r.ok => format!(
            "✅ backup `{}` of {target} verified: all checks passed",
            r.backup.id
        ),
        JobReport::Verify(r) => format!(
            "❌ backup `{}` of {target} FAILED verification:\n• {}",
            r.backup.id,
            r.problems.join("\n• ")
        ),
        JobReport::Restore(o) => {
            let mut text = approval_header(approval);
            text.push_str(&format!(
                "✅ restored backup `{}` of {target} to {} in {:.1}s",
                o.plan.backup.id,
                o.plan.destination.display(),
                o.duration_seconds
            ));
            for m in &o.plan.move_aside {
                text.push_str(&format!("\nprevious data kept at {}", m.to.display()));
            }
            text
        }
        JobReport::PlannedRestore(done) => format!("✅ {}", done.report().trim_end()),
        JobReport::Prune(plan) => plan.describe().trim_end().to_string(),
    };
    (text, None)
}

/// "Restore requested by …" and one line per approval, or nothing.
fn approval_header(approval: Option<&ApprovalRecord>) -> String {
    let Some(req) = approval else {
        return String::new();
    };
    let mut text = format!("Restore requested by {}", req.requester);
    for a in &req.approvers {
        text.push_str(&format!("\n✅ approved by {} at {}", a.actor, a.at));
    }
    text.push('\n');
    text
}
