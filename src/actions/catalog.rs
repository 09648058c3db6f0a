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

/// Resolve a selector to one backup, with an error that says what exists.
pub fn find(app: &App, target: &str, selector: &Selector) -> Result<Manifest> {
    let all = backups(app, target)?;
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
