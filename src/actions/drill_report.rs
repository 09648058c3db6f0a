//! The drill report: objectives against what was achieved, the action items that follow
//! from the problems found, and the Markdown document kept in the state database and
//! posted to chat (summary, objectives table, UTC timeline, problems, action items).

use crate::actions::drill::DrillReport;
use crate::config::TargetConfig;

pub use crate::actions::drill_steps::human;

/// The objectives a drill missed, as problems. An objective that is not set is never
/// missed.
pub fn missed_objectives(r: &DrillReport) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(obj) = r.rto_objective_seconds {
        match r.rto_seconds {
            Some(rto) if rto > obj => out.push(format!(
                "RTO missed by {}: the verified restore took {} against an objective of {}",
                human(rto - obj),
                human(rto),
                human(obj)
            )),
            Some(_) => {}
            None if r.restore_ok => {}
            None => out.push(format!(
                "RTO not reached: no verified restore, against an objective of {}",
                human(obj)
            )),
        }
    }
    if let (Some(obj), Some(rpo)) = (r.rpo_objective_seconds, r.rpo_seconds)
        && rpo > obj
    {
        let what = match &r.restored_to {
            Some(to) => format!(
                "the moment restored to, {}, was {} before the drill started",
                to.at,
                human(rpo)
            ),
            None => format!("the newest usable backup was {} old", human(rpo)),
        };
        out.push(format!(
            "RPO missed by {}: {what} against an objective of {}",
            human(rpo - obj),
            human(obj)
        ));
    }
    out
}

/// What someone should do about this drill's outcome.
pub fn action_items(r: &DrillReport, cfg: &TargetConfig) -> Vec<String> {
    let t = &r.target;
    let mut items = Vec::new();
    if r.backup.is_none() {
        items.push(format!(
            "no backup of {t} could be restored: take one now (`lifeboat backup {t}`) and make sure `schedule` is set"
        ));
    }
    if let (Some(rto), Some(obj)) = (r.rto_seconds, r.rto_objective_seconds)
        && rto > obj
    {
        let slowest = r
            .steps
            .iter()
            .max_by(|a, b| a.duration_seconds.total_cmp(&b.duration_seconds))
            .map(|s| format!("{} ({})", s.name, human(s.duration_seconds)))
            .unwrap_or_default();
        items.push(format!(
            "RTO missed by {}: the slowest step was {slowest}; speed it up (a nearer store, a smaller backup) or agree a realistic `rto` for {t}",
            human(rto - obj)
        ));
    }
    if let (Some(rpo), Some(obj)) = (r.rpo_seconds, r.rpo_objective_seconds)
        && rpo > obj
        && let Some(to) = &r.restored_to
    {
        // Restored to a moment: the RPO is that moment's age, not a backup's.
        items.push(if to.asked {
            format!(
                "the moment drilled, {}, was {} before the drill started, past the RPO of {}: drill {t} without `at` (its newest replicated moment) to measure the RPO replication achieves now",
                to.at,
                human(rpo),
                human(obj)
            )
        } else {
            format!(
                "replication of {t} was {} behind when the drill started, past the RPO of {}: see `lifeboat status {t}` (its lag, `max_lag` and whether its replicator runs)",
                human(rpo),
                human(obj)
            )
        });
    } else if let (Some(rpo), Some(obj)) = (r.rpo_seconds, r.rpo_objective_seconds)
        && rpo > obj
    {
        let schedule = match &cfg.schedule {
            Some(s) => format!(
                "check the schedule of {t} (`{}`): backups must succeed at least every {}, and the last one is {} old",
                s.0,
                human(obj),
                human(rpo)
            ),
            None => format!(
                "{t} has no `schedule`: add one that backs up at least every {}",
                human(obj)
            ),
        };
        items.push(format!("backup older than RPO: {schedule}"));
    }
    if let Some(s) = r.steps.iter().find(|s| !s.ok && s.name.starts_with("find"))
        && let Some(id) = &r.backup_id
    {
        items.push(format!(
            "backup {id} cannot be drilled ({}): take a new backup now (`lifeboat backup {t}`) and `lifeboat verify` the others",
            s.detail
        ));
    }
    let restore_failed = r
        .steps
        .iter()
        .any(|s| !s.ok && (s.name.starts_with("fetch") || s.name.starts_with("create disk")));
    if restore_failed && let Some(id) = &r.backup_id {
        items.push(format!(
            "backup {id} could not be restored: take a new backup now (`lifeboat backup {t}`), `lifeboat verify` the older ones, and check the store for damage"
        ));
    }
    if r.steps.iter().any(|s| {
        !s.ok
            && (s.name.starts_with("integrity")
                || s.name.starts_with("every file")
                || s.name.starts_with("verify disk"))
    }) {
        items.push(format!(
            "the restored copy of {t} does not match its manifest: do not rely on this backup; take and drill a new one"
        ));
    }
    for s in r
        .steps
        .iter()
        .filter(|s| !s.ok && s.name.starts_with("check "))
    {
        items.push(format!(
            "{} failed: find out why ({}) and fix the data or the check",
            s.name, s.detail
        ));
    }
    if r.sandbox_created && !r.sandbox_removed {
        items.push(match (&cfg.project, &cfg.zone, r.sandbox.file_name()) {
            (Some(project), Some(zone), Some(disk)) if r.sandbox_is_disk => format!(
                "delete the leftover drill disk by hand: `gcloud compute disks delete {} --project {project} --zone {zone}`",
                disk.to_string_lossy()
            ),
            _ => format!(
                "remove the leftover sandbox {} by hand",
                r.sandbox.display()
            ),
        });
    }
    if let Some(b) = r.backup.as_ref().filter(|b| !b.is_consistent()) {
        items.push(format!(
            "backup {} of {t} changed while it was read: {} so that its backups are consistent",
            b.id,
            crate::actions::backup::WAYS_OUT
        ));
    }
    if r.rto_objective_seconds.is_none() {
        items.push(format!(
            "no RTO is set for {t}: agree one and add `rto = \"…\"` to its config"
        ));
    }
    if r.rpo_objective_seconds.is_none() {
        items.push(format!(
            "no RPO is set for {t}: agree one and add `rpo = \"…\"` to its config"
        ));
    }
    items
}

/// An objective against what a drill achieved: the objective as written ("not set"), and
/// the verdict ("✅ met", "❌ missed by 2 min", "❌ not reached", "—" when there is nothing
/// to judge), durations written by `words`. `restore_ok`: an unreached measure is no
/// failure of this objective.
pub fn objective_verdict(
    achieved: Option<f64>,
    objective: Option<f64>,
    restore_ok: bool,
    words: fn(f64) -> String,
) -> (String, String) {
    match (objective, achieved) {
        (None, _) => ("not set".to_string(), "—".to_string()),
        (Some(o), Some(a)) if a <= o => (words(o), "✅ met".to_string()),
        (Some(o), Some(a)) => (words(o), format!("❌ missed by {}", words(a - o))),
        (Some(o), None) if restore_ok => (words(o), "—".to_string()),
        (Some(o), None) => (words(o), "❌ not reached".to_string()),
    }
}

fn objective_row(
    name: &str,
    achieved: Option<f64>,
    objective: Option<f64>,
    restore_ok: bool,
) -> String {
    let shown = achieved.map_or("not reached".to_string(), human);
    let (target, result) = objective_verdict(achieved, objective, restore_ok, human);
    format!("| {name} | {target} | {shown} | {result} |\n")
}

/// The Markdown report.
pub fn render(r: &DrillReport) -> String {
    let verdict = if r.ok { "✅ PASSED" } else { "❌ FAILED" };
    let mut md = format!("# Recovery drill of {}: {verdict}\n\n", r.target);
    md.push_str(&format!(
        "- target: `{}` ({})\n- started: {} UTC, finished {} UTC, by {}\n",
        r.target, r.kind, r.started_at, r.finished_at, r.actor
    ));
    match &r.backup {
        Some(b) => md.push_str(&format!(
            "- backup: `{}` taken {} UTC, {} stored in `{}`\n",
            b.id,
            b.created_at,
            crate::units::human_bytes(b.size_bytes),
            b.store
        )),
        None => md.push_str("- backup: none found\n"),
    }
    if let Some(to) = &r.restored_to {
        md.push_str(&format!("- restored to: {}\n", to.describe()));
    }
    for n in &r.notes {
        md.push_str(&format!("- ⚠️ {n}\n"));
    }
    md.push_str(&format!(
        "- sandbox: {}`{}` ({})\n\n",
        if r.sandbox_is_disk { "new disk " } else { "" },
        r.sandbox.display(),
        sandbox_fate(r)
    ));
    let summary = if r.ok {
        "The backup was restored into a sandbox, verified, passed every check, and met every objective that is set.".to_string()
    } else if r.restore_ok {
        "The backup was restored and verified, but the drill missed an objective.".to_string()
    } else {
        "The drill did not produce a verified restore.".to_string()
    };
    md.push_str(&format!(
        "**Result:** {summary} The live data was not touched.\n\n"
    ));
    md.push_str("## Objectives\n\n| objective | target | achieved | result |\n|---|---|---|---|\n");
    md.push_str(&objective_row(
        "RTO (drill start → verified restore)",
        r.rto_seconds,
        r.rto_objective_seconds,
        r.restore_ok,
    ));
    md.push_str(&objective_row(
        if r.restored_to.is_some() {
            "RPO (replication lag at the moment restored to: for the newest, drill start minus it; for one asked for, at most that moment minus the last transaction shipped by it)"
        } else {
            "RPO (age of the restored data at drill start)"
        },
        r.rpo_seconds,
        r.rpo_objective_seconds,
        true,
    ));
    md.push_str("\n## Timeline (UTC)\n\n| # | step | started | duration | result | detail |\n|---|---|---|---|---|---|\n");
    for (i, s) in r.steps.iter().enumerate() {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            i + 1,
            s.name.replace('|', "\\|"),
            s.started_at,
            human(s.duration_seconds),
            if s.ok { "ok" } else { "FAILED" },
            s.detail.replace('|', "\\|").replace('\n', " ")
        ));
    }
    md.push_str("\n## Problems found\n\n");
    list(&mut md, &r.problems, "none");
    md.push_str("\n## Action items\n\n");
    list(&mut md, &r.action_items, "none");
    md
}

/// What became of the sandbox, in a few words.
pub fn sandbox_fate(r: &DrillReport) -> &'static str {
    match (r.sandbox_created, r.sandbox_removed) {
        (false, _) => "not made",
        (true, true) if r.sandbox_is_disk => "deleted afterwards",
        (true, true) => "removed afterwards",
        (true, false) if r.sandbox_is_disk => "NOT deleted",
        (true, false) => "NOT removed",
    }
}

fn list(md: &mut String, items: &[String], empty: &str) {
    if items.is_empty() {
        md.push_str(&format!("- {empty}\n"));
    }
    for i in items {
        md.push_str(&format!("- {i}\n"));
    }
}

/// The report as a Markdown file for chat.
pub fn document(r: &DrillReport) -> crate::notify::Document {
    crate::notify::Document {
        filename: r.filename(),
        title: format!("Drill report: {}", r.headline()),
        content: crate::notify::Body::Text(r.report.clone()),
    }
}
