//! What backups interrupted by a crash left on the targets' side (a btrfs snapshot beside
//! a directory target), removed when `serve` starts: each target under its lock, each
//! removal logged and audited. A target busy with a job is left to that job, whose backup
//! removes them itself.

use crate::app::App;

/// Remove every target's leftovers; failures are logged, never stop `serve`.
pub fn clean_at_start(app: &App) {
    for name in app.config.targets.keys() {
        let Ok(source) = crate::actions::kind::source(app, name) else {
            continue;
        };
        let removed = match app
            .executor
            .with_target_lock(name, || source.clean_after_crash())
        {
            Ok(Some(Ok(removed))) => removed,
            Ok(None) => continue,
            Ok(Some(Err(e))) | Err(e) => {
                tracing::warn!(
                    target = name.as_str(),
                    "cleaning up after an interrupted backup: {e}"
                );
                continue;
            }
        };
        for what in removed {
            tracing::warn!(target = name.as_str(), "{what}");
            if let Err(e) = app.db.audit(
                "lifeboat",
                "backup leftovers removed",
                Some(name),
                "removed",
                Some(&what),
            ) {
                tracing::warn!("auditing a removal: {e}");
            }
        }
    }
}
