//! Partial restores: some paths of a tree's backup, into a new folder (`--to`, which must
//! not exist yet), each path keeping its place relative to the tree's root. The plan is a
//! restore plan like any other (approvals and `restore_roots` apply alike); it is never in
//! place, so it never runs the target's restore hooks and never touches the live tree.
//! Carrying it out streams the backup's content from the store, has the source narrow it
//! to the paths asked for (every file checked against the manifest), and stages that as a
//! full restore stages the whole.

use std::path::Path;

use chrono::Utc;

use crate::actions::browse::{AskedPath, asked_paths, files, refuse_without_paths};
use crate::actions::catalog::{Selector, find, find_noted};
use crate::actions::restore::{PlanHooks, RestorePlan};
use crate::app::App;
use crate::error::{Error, Result};
use crate::pipe::ProgressReader;
use crate::progress::JobContext;
use crate::sources::{Restoring, Source};
use crate::units::human_bytes;

/// The plan of restoring `paths` of the selected backup into the new folder `to`.
/// Nothing is written.
pub fn plan(
    app: &App,
    target: &str,
    selector: &Selector,
    paths: &[String],
    to: Option<&Path>,
) -> Result<RestorePlan> {
    refuse_without_paths(app, target)?;
    let Some(to) = to else {
        return Err(Error::Usage(format!(
            "a partial restore writes into a new folder: add --to <dir> (chat: `to <dir>`); \
             it never replaces files of the live tree of {target}"
        )));
    };
    let (backup, inconsistent) = find_noted(app, target, selector)?;
    let asked = asked_paths(app, target, &backup, paths)?;
    let source = crate::actions::kind::source(app, target)?;
    let at = source.plan_restore(&backup, Some(to))?;
    let mut notes = at.notes;
    notes.extend(inconsistent);
    Ok(RestorePlan {
        target: target.to_string(),
        backup_age_seconds: (Utc::now() - backup.created()).num_seconds(),
        backup: backup.summary(),
        destination: at.destination,
        in_place: false,
        move_aside: Vec::new(),
        aside: None,
        staging: at.staging,
        notes,
        host: at.host,
        // Never in place: the restore hooks are for replacing the live data.
        hooks: PlanHooks::default(),
        paths: asked,
        point: None,
    })
}

/// Stream the backup's content through the source's pick (in a thread of its own) into
/// the staging step; both must succeed.
pub(crate) fn stage(
    app: &App,
    plan: &RestorePlan,
    source: &dyn Source,
    restoring: &mut dyn Restoring,
    ctx: &JobContext,
) -> Result<()> {
    let picker = source.paths().ok_or_else(|| source.no_paths())?;
    // The plan keeps the manifest without its file list; the pick checks against it.
    let m = find(app, &plan.target, &Selector::Id(plan.backup.id.clone()))?;
    let wanted: Vec<String> = plan.paths.iter().map(|p| p.path.clone()).collect();
    let (_, store) = app.store_for(&plan.target)?;
    ctx.progress
        .phase("reading the backup and extracting the paths asked for");
    ctx.progress.total(Some(m.content_bytes));
    let raw = store.read_paths(&plan.backup, &wanted)?;
    let mut content = ProgressReader::new(raw, ctx.progress.clone(), ctx.cancel.clone());
    let (mut from_pick, mut into_stage) =
        std::io::pipe().map_err(|e| Error::io("making a pipe", e))?;
    std::thread::scope(|s| {
        let picking = s.spawn(move || {
            let picked = picker.pick(&m, &wanted, &mut content, &mut into_stage, ctx);
            drop(into_stage); // the staging step sees the end
            picked
        });
        let staged = restoring.stage(&mut from_pick, ctx);
        drop(from_pick); // a pick still writing stops
        let picked = picking
            .join()
            .unwrap_or_else(|_| Err(Error::Failed("picking the paths panicked".into())));
        // The pick's error explains a staging step that saw its stream cut short.
        picked.and(staged)
    })
}

/// What a partial restore restored, as its summary says it ("" for a full restore).
pub(crate) fn summary(paths: &[AskedPath]) -> String {
    if paths.is_empty() {
        return String::new();
    }
    let count: u64 = paths.iter().map(|p| p.files).sum();
    let bytes: u64 = paths.iter().map(|p| p.bytes).sum();
    let shown: Vec<&str> = paths.iter().take(3).map(|p| p.path.as_str()).collect();
    let more = if paths.len() > 3 {
        format!(" and {} more", paths.len() - 3)
    } else {
        String::new()
    };
    format!(
        "{}{more} ({}, {}) from ",
        shown.join(", "),
        files(count),
        human_bytes(bytes)
    )
}

/// The plan's lines for the paths asked for: each with its files and bytes, then the sum.
pub(crate) fn describe(paths: &[AskedPath], out: &mut String) {
    if paths.is_empty() {
        return;
    }
    for p in paths {
        let what = match p.kind.as_str() {
            "dir" => format!("folder, {}, {}", files(p.files), human_bytes(p.bytes)),
            "file" => format!("file, {}", human_bytes(p.bytes)),
            other => other.to_string(),
        };
        out.push_str(&format!("  path:        {} ({what})\n", p.path));
    }
    let count: u64 = paths.iter().map(|p| p.files).sum();
    let bytes: u64 = paths.iter().map(|p| p.bytes).sum();
    out.push_str(&format!(
        "  restores:    {}, {} (each keeps its path under the destination)\n",
        files(count),
        human_bytes(bytes)
    ));
}
