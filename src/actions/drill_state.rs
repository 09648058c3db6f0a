//! A drill of lifeboat itself: after the state backup is restored into the sandbox and
//! verified, the rest of a recovery runs on that copy too — running jobs marked
//! interrupted, the catalog rebuilt from the stores — and what came back is counted
//! against the live catalog. Only the sandbox copy is written; the live state is read.

use std::collections::BTreeSet;
use std::path::Path;

use crate::actions::rebuild;
use crate::app::App;
use crate::db::Db;
use crate::error::Result;

/// Whether `target` is the one that backs up lifeboat's own state database.
pub fn is_state_target(app: &App, target: &str) -> bool {
    app.config.state_target().is_some_and(|(n, _)| n == target)
}

/// The recovery on the sandbox copy at `copy`: `Ok(detail)` when the rebuilt catalog
/// has what the live one has, else the differences as problems.
pub fn recover_copy(app: &App, copy: &Path) -> Result<std::result::Result<String, Vec<String>>> {
    let db = Db::open(copy)?;
    let interrupted = db
        .jobs_interrupt_all("marked interrupted by a drill of the recovery (sandbox copy)")?
        .len();
    let report = rebuild::rebuild(&db, &app.config, &app.stores())?;
    let rebuilt = db.catalog_counts()?;
    let live = app.db.catalog_counts()?;
    let mut problems = report.warnings();
    let targets: BTreeSet<&String> = rebuilt.keys().chain(live.keys()).collect();
    for t in targets {
        let (r, l) = (
            rebuilt.get(t).copied().unwrap_or(0),
            live.get(t).copied().unwrap_or(0),
        );
        if r != l {
            problems.push(format!(
                "{t}: the catalog rebuilt from the stores lists {r} backups, the live catalog {l}"
            ));
        }
    }
    let open = db
        .incidents()?
        .iter()
        .filter(|i| i.closed_at.is_none())
        .count();
    let pending = db.approvals_in("pending")?.len();
    drop(db);
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    Ok(Ok(format!(
        "catalog rebuilt from {} stores: {} backups of {} targets, as in the live catalog; the restored state has {open} open incidents and {pending} pending restore requests; {interrupted} jobs it recorded as running marked interrupted",
        report.stores.len(),
        report.total(),
        rebuilt.len()
    )))
}
