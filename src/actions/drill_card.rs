//! A finished drill as a card (src/card.rs), for a drill asked for in chat and a scheduled
//! one alike: green when it passed, amber when the restore was sound but an objective was
//! missed, red when there was no verified restore; RTO and RPO as facts with their
//! objective and verdict, the checks counted, the drill's steps as a list, problems and
//! notes below. The Markdown report goes after it as a file (`drill_report::document`).

use crate::actions::drill::DrillReport;
use crate::actions::drill_report::{objective_verdict, sandbox_fate};
use crate::card::{Card, Line, Tone};
use crate::units::{count, human_bytes, human_duration};

/// The drill's card. `requester`: who asked for it in chat (mentioned, so notified);
/// None for a scheduled drill.
pub fn card(r: &DrillReport, requester: Option<&str>) -> Card {
    let (tone, title) = if r.ok {
        (Tone::Good, format!("✅ Drill of {} passed", r.target))
    } else if r.restore_ok {
        (
            Tone::Warning,
            format!("⚠️ Drill of {} missed an objective", r.target),
        )
    } else {
        (Tone::Bad, format!("❌ Drill of {} failed", r.target))
    };
    let asked = match requester {
        Some(who) => Line::new().text("Requested by ").notify(who).text(": "),
        None => Line::new().text("Scheduled drill: "),
    };
    let what = if r.sandbox_is_disk {
        "a new disk"
    } else {
        "a sandbox"
    };
    let lead = match (&r.backup_id, &r.restored_to) {
        (Some(_), Some(to)) => asked
            .text("restored to ")
            .stored_time(&to.at)
            .text(" (base copy ")
            .code(&to.base_backup)
            .text(format!(
                " and {}) into {what} ({}); the live data was not touched.",
                count(to.transactions, "shipped transaction", None),
                sandbox_fate(r)
            )),
        (Some(id), None) => asked.text("backup ").code(id).text(format!(
            " restored into {what} ({}); the live data was not touched.",
            sandbox_fate(r)
        )),
        (None, _) => asked.text("no backup could be restored; the live data was not touched."),
    };
    let mut card = Card::new(tone, title)
        .lead(lead)
        .fact(
            "RTO",
            objective(r.rto_seconds, r.rto_objective_seconds, r.restore_ok),
        )
        .fact(
            "RPO",
            objective(r.rpo_seconds, r.rpo_objective_seconds, true),
        )
        .fact("Checks", checks(r));
    if let Some(to) = &r.restored_to {
        card = card.fact("Restored to", Line::new().stored_time(&to.at));
    }
    if let Some(b) = &r.backup {
        card = card
            .fact("Backup taken", Line::new().stored_time(&b.created_at))
            .fact("Size", human_bytes(b.size_bytes));
    }
    card = card.fact("Target", Line::new().code(&r.target));
    for s in &r.steps {
        let mark = if s.ok { "✅" } else { "❌" };
        // The name as words: a check's name quotes its SQL or command in backquotes,
        // which bold markup around it would break.
        let mut line = Line::new().text(format!(
            "{mark} {} ({})",
            s.name,
            human_duration(s.duration_seconds)
        ));
        if !s.detail.is_empty() {
            line = line.text(format!(": {}", one_line(&s.detail)));
        }
        card = card.step(line);
    }
    for p in &r.problems {
        card = card.body(format!("• {}", one_line(p)));
    }
    for n in &r.notes {
        card = card.body(format!("⚠️ {}", one_line(n)));
    }
    if !r.action_items.is_empty() {
        card = card.body(format!(
            "{} in the report.",
            count(r.action_items.len() as u64, "action item", None)
        ));
    }
    card.context(
        Line::new()
            .text("Started ")
            .stored_time(&r.started_at)
            .text(" · the full report follows as ")
            .code(r.filename()),
    )
}

/// "12.3 s · objective 5 min · ✅ met", "not reached · objective 5 min · ❌ not reached".
fn objective(achieved: Option<f64>, objective: Option<f64>, restore_ok: bool) -> Line {
    let shown = achieved.map_or("not reached".to_string(), human_duration);
    let (goal, verdict) = objective_verdict(achieved, objective, restore_ok, human_duration);
    match objective {
        Some(_) => Line::from(format!("{shown} · objective {goal} · {verdict}")),
        None => Line::from(format!("{shown} · no objective set")),
    }
}

/// The drill checks (sql / http / command) that ran: "3 of 4 passed", "none configured".
fn checks(r: &DrillReport) -> Line {
    let ran: Vec<_> = r
        .steps
        .iter()
        .filter(|s| s.name.starts_with("check "))
        .collect();
    if ran.is_empty() {
        return Line::from("none configured");
    }
    let passed = ran.iter().filter(|s| s.ok).count();
    let mark = if passed == ran.len() { "✅" } else { "❌" };
    Line::from(format!("{mark} {passed} of {} passed", ran.len()))
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests;

/// Drill reports of any size for tests here and in the renderers' limit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::actions::drill::DrillReport;
    use crate::actions::drill_steps::Step;

    /// A drill of `gitea-db` with `checks` checks (the last one failing unless
    /// `checks_pass`), a backup `rpo` seconds old and an RTO objective of `rto_objective`.
    pub fn drill(
        checks: usize,
        checks_pass: bool,
        rpo: Option<f64>,
        rto_objective: Option<f64>,
    ) -> DrillReport {
        let manifest: crate::stores::manifest::Manifest = serde_json::from_str(
            r#"{"format":1,"id":"20261205T124620Z","target":"gitea-db","kind":"sqlite",
            "store":"local","created_at":"2026-12-05T12:46:20.010Z","finished_at":"2026-12-05T12:46:22.000Z",
            "duration_seconds":2.1,"status":"complete","artifact":"gitea-db/20261205T124620Z.db.zst",
            "compression":"zstd","size_bytes":4404019,"sha256":"ab","content_bytes":9000000,"content_sha256":"cd",
            "lifeboat_version":"0.4.0"}"#,
        )
        .unwrap();
        let step = |name: String, ok: bool, detail: &str| Step {
            name,
            started_at: "2026-12-05T13:27:00.000Z".into(),
            duration_seconds: 1.5,
            ok,
            detail: detail.into(),
        };
        let mut steps = vec![
            step("fetch backup 20261205T124620Z".into(), true, "4.2 MiB"),
            step("integrity_check".into(), true, "ok"),
        ];
        let mut problems = Vec::new();
        for i in 0..checks {
            let ok = checks_pass || i + 1 < checks;
            let name = format!(
                "check {}: sql `SELECT count(*) FROM repository WHERE is_private = 0 AND owner_id IN (SELECT id FROM user WHERE type = {i})` >= 1",
                i + 1
            );
            if !ok {
                problems.push(format!("{name} failed: 0 rows"));
            }
            steps.push(step(name, ok, if ok { "42" } else { "0 rows" }));
        }
        let restore_ok = checks_pass || checks == 0;
        let rpo_objective = Some(3600.0);
        let rto = restore_ok.then_some(12.5);
        let objectives_met = rto.zip(rto_objective).is_none_or(|(a, o)| a <= o)
            && rpo.zip(rpo_objective).is_none_or(|(a, o)| a <= o);
        DrillReport {
            drill_id: Some(7),
            target: "gitea-db".into(),
            kind: crate::config::TargetKind::Sqlite,
            backup_id: Some(manifest.id.clone()),
            backup: Some(manifest),
            actor: "slack:U0OPS1".into(),
            started_at: "2026-12-05T13:27:00.000Z".into(),
            finished_at: "2026-12-05T13:27:12.500Z".into(),
            ok: restore_ok && objectives_met,
            restore_ok,
            objectives_met,
            rto_seconds: rto,
            rpo_seconds: rpo,
            restored_to: None,
            rto_objective_seconds: rto_objective,
            rpo_objective_seconds: rto_objective.and(rpo_objective),
            sandbox: "/var/lib/lifeboat/drills/gitea-db-7".into(),
            sandbox_is_disk: false,
            sandbox_created: true,
            sandbox_removed: true,
            steps,
            problems,
            notes: Vec::new(),
            action_items: vec!["no RTO is set: agree one".into()],
            report: "# Recovery drill".into(),
        }
    }

    /// The largest drill worth showing: 120 checks, many failing notes and problems.
    pub fn largest() -> DrillReport {
        let mut r = drill(120, false, Some(90_000.0), Some(60.0));
        for i in 0..40 {
            r.problems.push(format!("problem {i}: {}", "x".repeat(300)));
            r.notes.push(format!("note {i}: {}", "y".repeat(300)));
        }
        r
    }
}
