//! Finding backups: list a target's backups from its store and pick one by id, `latest`
//! or a point in time.

pub use crate::actions::shared::{Selector, parse_at};
use crate::app::App;
use crate::error::{Error, Result};
use crate::stores::manifest::Manifest;

/// A target's complete backups, newest first.
pub fn backups(app: &App, target: &str) -> Result<Vec<Manifest>> {
    crate::actions::kind::for_target(app, target)?.backups(app, target)
}

/// The complete backups in the target's store, newest first.
pub(crate) fn store_backups(app: &App, target: &str) -> Result<Vec<Manifest>> {
    let (store_name, store) = app.store_for(target)?;
    let (found, broken) = store.backups(target)?;
    for b in broken {
        tracing::warn!(target = target, "{b}");
    }
    // Keep the catalog (which answers `status` and metrics) in step with the store, also
    // after the state database was lost or restored.
    if let Err(e) = app.db.catalog_sync(target, &store_name, &found) {
        tracing::warn!(target = target, "updating the catalog: {e}");
    }
    Ok(found)
}

/// Resolve a selector to one backup, with an error that says what exists; its per-file
/// list read in when its store keeps it apart.
pub fn find(app: &App, target: &str, selector: &Selector) -> Result<Manifest> {
    with_file_list(app, target, pick(&backups(app, target)?, target, selector)?)
}

/// Like [`find`], for a check that reads the backup through its store: a per-file list
/// that cannot be read back is left for that read to report as damage, not an error.
pub fn find_to_check(app: &App, target: &str, selector: &Selector) -> Result<Manifest> {
    let listed = pick(&backups(app, target)?, target, selector)?;
    if listed.file_list_apart().is_none() {
        return Ok(listed);
    }
    let (_, store) = app.store_for(target)?;
    match store.with_file_list(listed.clone()) {
        Ok(whole) => Ok(whole),
        Err(e) => {
            tracing::warn!(target = target, backup = %listed.id, "{e}");
            Ok(listed)
        }
    }
}

/// `m` with its per-file list, from its store when the listing left it out.
fn with_file_list(app: &App, target: &str, m: Manifest) -> Result<Manifest> {
    if m.file_list_apart().is_none() {
        return Ok(m);
    }
    let (_, store) = app.store_for(target)?;
    Ok(store.with_file_list(m)?)
}

/// A backup picked by `selector` with, when it changed while it was read, the note that
/// says so and names the newest consistent backup of `target`.
pub fn find_noted(
    app: &App,
    target: &str,
    selector: &Selector,
) -> Result<(Manifest, Option<String>)> {
    let all = backups(app, target)?;
    let picked = pick(&all, target, selector)?;
    let note = inconsistency_note(&picked, &all);
    Ok((with_file_list(app, target, picked)?, note))
}

/// What a restore plan or a drill says of a picked backup that changed while read.
pub fn inconsistency_note(picked: &Manifest, all: &[Manifest]) -> Option<String> {
    if picked.is_consistent() {
        return None;
    }
    let newest = all.iter().find(|m| m.is_consistent());
    let instead = match newest {
        Some(m) => format!(
            "the newest consistent backup is {} (taken {}): `lifeboat restore {} {}`",
            m.id, m.created_at, m.target, m.id
        ),
        None => format!("no backup of {} is consistent", picked.target),
    };
    Some(format!(
        "backup {} is INCONSISTENT ({}): a restore of it may not open; {instead}",
        picked.id,
        crate::actions::backup::changed_files(picked.changed_paths())
    ))
}

/// Resolve a selector among `all` (newest first).
fn pick(all: &[Manifest], target: &str, selector: &Selector) -> Result<Manifest> {
    let found = match selector {
        Selector::Latest => all.first().cloned(),
        Selector::Id(id) => all.iter().find(|m| &m.id == id).cloned(),
        Selector::At(t) => all.iter().find(|m| m.created() <= *t).cloned(),
    };
    found.ok_or_else(|| {
        let recent: Vec<&str> = all.iter().take(5).map(|m| m.id.as_str()).collect();
        let known = if recent.is_empty() {
            format!("{target} has no backups yet; take one with `lifeboat backup {target}`")
        } else {
            format!("newest backups of {target}: {}", recent.join(", "))
        };
        match selector {
            Selector::Latest => Error::Usage(known),
            Selector::Id(id) => Error::Usage(format!("no backup {id:?} of {target}; {known}")),
            Selector::At(t) => Error::Usage(format!(
                "no backup of {target} at or before {}; {known}",
                crate::units::time_text(*t)
            )),
        }
    })
}
