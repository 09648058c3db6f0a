//! A chat job's words: what the job is called while it runs, and its report (or why it
//! failed) as the final card of its message, with a document to share after it.

use crate::actions;
use crate::card::{Card, Line, Tone};
use crate::db::approvals::ApprovalRecord;
use crate::error::Result;
use crate::executor::job::{Job, JobReport};
use crate::notify::Document;
use crate::units::{human_bytes, human_duration};

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

/// The message's final card, and a document to share after it if the job made one.
/// `approval` is the request that allowed a restore: who asked and who approved head it.
/// `actor` asked for the job: the result mentions (and so notifies) them.
pub(super) fn render(
    job: &Job,
    actor: &str,
    approval: Option<&ApprovalRecord>,
    result: Result<JobReport>,
) -> (Card, Option<Document>) {
    let target = job.target();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let card = Card::new(Tone::Bad, format!("❌ {} failed", describe(job)))
                .lead(requested_by(actor, approval))
                .body(Line::new().text(e.to_string()));
            return (approved_by(card, approval), None);
        }
    };
    let card = match report {
        JobReport::Drill(r) => {
            let who = approval.map(|a| a.requester.as_str()).unwrap_or(actor);
            let card = actions::drill_card::card(&r, Some(who));
            return (card, Some(actions::drill_report::document(&r)));
        }
        JobReport::Backup(m) => {
            let warning = actions::backup::inconsistency_warning(&m);
            let (tone, icon) = match warning {
                Some(_) => (Tone::Warning, "⚠️"),
                None => (Tone::Good, "✅"),
            };
            let mut card = Card::new(tone, format!("{icon} backup of {target} complete"))
                .lead(
                    requested_by(actor, None)
                        .text(format!(", done in {}", human_duration(m.duration_seconds))),
                )
                .fact("Backup", Line::new().code(&m.id))
                .fact("Stored", human_bytes(m.size_bytes))
                .fact("Before compression", human_bytes(m.content_bytes))
                .fact("Store", Line::new().code(&m.store));
            if let Some(w) = warning {
                card = card.body(w);
            }
            card
        }
        JobReport::Verify(r) if r.ok && !r.backup.is_consistent() => Card::new(
            Tone::Warning,
            format!("⚠️ backup of {target} checks out but is INCONSISTENT"),
        )
        .lead(requested_by(actor, None))
        .fact("Backup", Line::new().code(&r.backup.id))
        .body(crate::executor::JobOutput::summary(&r)),
        JobReport::Verify(r) if r.ok => {
            Card::new(Tone::Good, format!("✅ backup of {target} verified"))
                .lead(requested_by(actor, None).text(": all checks passed."))
                .fact("Backup", Line::new().code(&r.backup.id))
        }
        JobReport::Verify(r) => {
            let mut card = Card::new(
                Tone::Bad,
                format!("❌ backup of {target} FAILED verification"),
            )
            .lead(requested_by(actor, None))
            .fact("Backup", Line::new().code(&r.backup.id));
            for p in &r.problems {
                card = card.body(format!("• {p}"));
            }
            card
        }
        JobReport::Restore(o) => {
            let title = format!("✅ restored backup {} of {target}", o.plan.backup.id);
            let card = Card::new(Tone::Good, title).lead(
                requested_by(actor, approval)
                    .text(format!(", done in {}", human_duration(o.duration_seconds))),
            );
            let mut card = crate::approvals::plan_facts(approved_by(card, approval), &o.plan);
            for m in &o.plan.move_aside {
                card = card.body(
                    Line::new()
                        .text("Previous data kept at ")
                        .code(m.to.display().to_string()),
                );
            }
            card
        }
        JobReport::PlannedRestore(done) => {
            let report = done.report();
            let mut lines = report.trim_end().lines();
            let first = lines.next().unwrap_or_default();
            let mut card = Card::new(Tone::Good, format!("✅ restored {target}"))
                .lead(requested_by(actor, None))
                .body(format!("✅ {first}"));
            for line in lines {
                card = card.body(line);
            }
            card
        }
        JobReport::Prune(plan) => {
            let mut card =
                Card::new(Tone::Good, format!("prune of {target}")).lead(requested_by(actor, None));
            for line in plan.describe().trim_end().lines() {
                card = card.body(line);
            }
            card
        }
    };
    (card, None)
}

/// "Requested by @someone": the person who asked hears of the result. For a restore
/// that needed approval, that is the request's requester.
fn requested_by(actor: &str, approval: Option<&ApprovalRecord>) -> Line {
    let who = approval.map(|a| a.requester.as_str()).unwrap_or(actor);
    Line::new().text("Requested by ").notify(who)
}

/// One line per approval of the request that allowed the restore.
fn approved_by(mut card: Card, approval: Option<&ApprovalRecord>) -> Card {
    for a in approval.iter().flat_map(|r| &r.approvers) {
        card = card.context(
            Line::new()
                .text("✅ approved by ")
                .person(&a.actor)
                .text(" at ")
                .stored_time(&a.at),
        );
    }
    card
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
        let (card, _) = render(&job, "slack:U1", None, Ok(JobReport::Backup(m.clone())));
        assert_eq!(card.tone, Tone::Warning);
        let text = card.plain();
        assert!(text.starts_with("⚠️ backup of volume complete"), "{text}");
        assert!(text.contains("Backup: `20261122T083000Z`"), "{text}");
        assert!(text.contains("done in 2.1 s"), "{text}");
        assert_eq!(card.notified(), vec!["slack:U1".to_string()]);
        for needle in [
            "INCONSISTENT",
            "4 files changed while read (a, b, state/system.duckdb, …)",
            "`before_backup`/`after_backup` hook",
            "`exclude`",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        // A verify that finds the stored copy sound does not call it verified either.
        let verify = Job::Verify {
            target: "volume".into(),
            selector: crate::actions::shared::Selector::Latest,
            read_data: false,
        };
        let report = crate::actions::shared::VerifyReport {
            backup: m.clone(),
            ok: true,
            problems: Vec::new(),
            chain: None,
        };
        let (card, _) = render(&verify, "slack:U1", None, Ok(JobReport::Verify(report)));
        assert_eq!(card.tone, Tone::Warning);
        let text = card.plain();
        assert!(text.contains("INCONSISTENT"), "{text}");
        assert!(!text.contains("verified"), "{text}");
        let mut clean = m;
        clean.consistent = Some(true);
        clean.changed_while_read = Some(Vec::new());
        let (card, _) = render(&job, "slack:U1", None, Ok(JobReport::Backup(clean)));
        assert_eq!(card.tone, Tone::Good);
        let text = card.plain();
        assert!(
            text.starts_with("✅") && !text.contains("INCONSISTENT"),
            "{text}"
        );
    }
}
