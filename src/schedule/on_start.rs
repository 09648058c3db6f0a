//! What `serve` backs up as it starts: each target that sets `backup_on_start` and has
//! no backup at all yet, so a new installation has something to show (and to restore)
//! without waiting for the first scheduled time.

use crate::app::App;

use super::{TargetWake, backed_up_on_schedule_here, scheduled_backup};

/// Start a backup of every `backup_on_start` target with no backup in the catalog and no
/// successful backup job. They run like scheduled backups (a slot each, retention after).
pub async fn backup_the_never_backed_up(app: &App, wake: &TargetWake) {
    let look = app.clone();
    let names = tokio::task::spawn_blocking(move || never_backed_up(&look)).await;
    let names = match names {
        Ok(Ok(names)) => names,
        Ok(Err(e)) => {
            tracing::error!("looking for targets never backed up: {e}");
            return;
        }
        Err(_) => return,
    };
    if names.is_empty() {
        return;
    }
    // One line naming them all, before any starts.
    tracing::info!(
        "backup_on_start: no backup yet of {}; backing up now",
        names.join(", ")
    );
    for name in names {
        let (app, wake) = (app.clone(), wake.clone());
        tokio::spawn(async move {
            scheduled_backup(app, name.clone()).await;
            wake.wake(&name);
        });
    }
}

/// The `backup_on_start` targets lifeboat has no backup of.
fn never_backed_up(app: &App) -> Result<Vec<String>, crate::db::DbError> {
    let catalog = app.db.catalog_counts()?;
    let mut out = Vec::new();
    for (name, cfg) in &app.config.targets {
        if !cfg.backup_on_start || !backed_up_on_schedule_here(name, cfg) {
            continue;
        }
        let in_catalog = catalog.get(name).is_some_and(|n| *n > 0);
        if !in_catalog && app.db.backup_facts(name)?.last_ok.is_none() {
            out.push(name.clone());
        }
    }
    Ok(out)
}
