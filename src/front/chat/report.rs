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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flagged_backup_is_not_a_plain_success_in_chat() {
        let m: crate::stores::manifest::Manifest = serde_json::from_str(
            r#"{"format":1,"id":"20261122T083000Z","target":"volume","kind":"directory",
            "store":"local","created_at":"2026-11-22T08:30:00.000Z","finished_at":"2026-11-22T08:30:02.000Z",
            "duration_seconds":2.1,"status":"complete","artifact":"volume/20261122T083000Z.tar.zst",
            "compression":"zstd","size_bytes":10,"sha256":"ab","content_bytes":20,"content_sha256":"cd",
            "lifeboat_version":"0.4.0","consistent":false,
            "changed_while_read":["a","b","state/system.duckdb","state/system.duckdb.wal"]}"#,
        )
        .unwrap();
        let job = Job::Backup {
            target: "volume".into(),
        };
        let (text, _) = render(&job, None, Ok(JobReport::Backup(m.clone())));
        assert!(text.starts_with("⚠️ backup `20261122T083000Z`"), "{text}");
        for needle in [
            "INCONSISTENT",
            "4 files changed while read (a, b, state/system.duckdb, …)",
            "`before_backup`/`after_backup` hook",
            "`exclude`",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        let mut clean = m;
        clean.consistent = Some(true);
        clean.changed_while_read = Some(Vec::new());
        let (text, _) = render(&job, None, Ok(JobReport::Backup(clean)));
        assert!(
            text.starts_with("✅") && !text.contains("INCONSISTENT"),
            "{text}"
        );
    }
}
