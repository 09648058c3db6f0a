//! Rebuilding the catalog from the stores, which are the source of truth for backups:
//! every complete backup a store holds (see `Store::discover`) becomes the catalog's
//! rows of that store, and rows of backups no longer there go. Damaged manifests are
//! skipped and named, never fatal; a store that cannot be reached keeps its rows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::app::App;
use crate::config::Config;
use crate::db::Db;
use crate::db::catalog::CatalogChanges;
use crate::error::{Error, Result};
use crate::stores::BackupStore;

/// What one store gave.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRebuild {
    pub store: String,
    /// Complete backups found.
    pub backups: usize,
    #[serde(flatten)]
    pub changes: CatalogChanges,
    /// `<key>: <why>` of every manifest skipped.
    pub skipped: Vec<String>,
    /// The store could not be read; its catalog rows were left as they were.
    pub error: Option<String>,
}

/// One target's backups in the rebuilt catalog.
#[derive(Debug, Clone, Serialize)]
pub struct TargetBackups {
    pub target: String,
    pub backups: usize,
    pub newest: Option<String>,
    pub newest_at: Option<String>,
    /// Found in a store but not in the config (kept in the catalog, not scheduled).
    pub in_config: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub stores: Vec<StoreRebuild>,
    pub targets: Vec<TargetBackups>,
    pub duration_seconds: f64,
}

impl RebuildReport {
    pub fn ok(&self) -> bool {
        self.stores.iter().all(|s| s.error.is_none())
    }

    pub fn total(&self) -> usize {
        self.stores.iter().map(|s| s.backups).sum()
    }

    /// Every warning: skipped manifests and unreadable stores.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.stores {
            if let Some(e) = &s.error {
                out.push(format!(
                    "store {}: not read, its catalog rows kept: {e}",
                    s.store
                ));
            }
            for k in &s.skipped {
                out.push(format!("store {}: skipped {k}", s.store));
            }
        }
        out
    }

    /// The report in words, for the CLI.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for s in &self.stores {
            match &s.error {
                Some(e) => out.push_str(&format!("store {}: NOT READ: {e}\n", s.store)),
                None => out.push_str(&format!(
                    "store {}: {} backups ({} added, {} updated, {} removed, {} unchanged){}\n",
                    s.store,
                    s.backups,
                    s.changes.added,
                    s.changes.updated,
                    s.changes.removed,
                    s.changes.unchanged,
                    if s.skipped.is_empty() {
                        String::new()
                    } else {
                        format!(", {} skipped", s.skipped.len())
                    }
                )),
            }
        }
        for t in &self.targets {
            out.push_str(&format!(
                "  {:<24} {:>5} backups, newest {}{}\n",
                t.target,
                t.backups,
                t.newest_at.as_deref().unwrap_or("-"),
                if t.in_config {
                    ""
                } else {
                    " (not in the config)"
                }
            ));
        }
        out
    }
}

/// Rebuild the catalog in `db` from `stores` (name, store).
pub fn rebuild(
    db: &Db,
    config: &Config,
    stores: &[(String, Arc<dyn BackupStore>)],
) -> Result<RebuildReport> {
    let clock = Instant::now();
    let mut report = Vec::new();
    for (name, store) in stores {
        let mut one = StoreRebuild {
            store: name.clone(),
            backups: 0,
            changes: CatalogChanges::default(),
            skipped: Vec::new(),
            error: None,
        };
        match store.discover() {
            Ok(found) => {
                for s in &found.skipped {
                    tracing::warn!(store = %name, "catalog rebuild: skipped {s}");
                }
                one.backups = found.backups.len();
                one.changes = db.catalog_replace_store(name, &found.backups)?;
                one.skipped = found.skipped;
            }
            Err(e) => one.error = Some(e.to_string()),
        }
        report.push(one);
    }
    let targets = db
        .catalog_counts()?
        .into_iter()
        .map(|(target, backups)| {
            let newest = db.catalog_summary(&target).unwrap_or_default();
            TargetBackups {
                in_config: config.targets.contains_key(&target),
                target,
                backups,
                newest: newest.newest_id,
                newest_at: newest.newest_created_at,
            }
        })
        .collect();
    Ok(RebuildReport {
        stores: report,
        targets,
        duration_seconds: clock.elapsed().as_secs_f64(),
    })
}

/// `lifeboat catalog rebuild [--store NAME]` on the app's own state database.
pub fn run(app: &App, only: Option<&str>, actor: &str) -> Result<RebuildReport> {
    let stores = match only {
        Some(name) => vec![(name.to_string(), app.store(name)?)],
        None => app.stores(),
    };
    if stores.is_empty() {
        return Err(Error::Usage(
            "the config has no stores to rebuild from".into(),
        ));
    }
    let report = rebuild(&app.db, &app.config, &stores)?;
    let detail = format!(
        "{} backups from {}; {} skipped",
        report.total(),
        stores
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        report.stores.iter().map(|s| s.skipped.len()).sum::<usize>()
    );
    let outcome = if report.ok() { "ok" } else { "partial" };
    app.db
        .audit(actor, "catalog rebuild", None, outcome, Some(&detail))?;
    Ok(report)
}

/// For `serve` at start: when the catalog is empty but a store holds backups, the
/// sentence offering a rebuild (only keys are listed, nothing is read).
pub fn offer(app: &App) -> Option<String> {
    if app.db.catalog_counts().ok()?.values().sum::<usize>() > 0 {
        return None;
    }
    let mut found = BTreeMap::new();
    for (name, store) in app.stores() {
        match store.count() {
            Ok(0) => {}
            Ok(n) => {
                found.insert(name, n);
            }
            Err(e) => tracing::warn!("looking for backups in store {name}: {e}"),
        }
    }
    if found.is_empty() {
        return None;
    }
    let listed: Vec<String> = found
        .iter()
        .map(|(s, n)| format!("{n} in store {s}"))
        .collect();
    let store = found.keys().next().cloned().unwrap_or_default();
    Some(format!(
        "lifeboat started with an empty catalog, but the stores hold backups ({}). Run `lifeboat catalog rebuild` to list them, or, if this host replaced a lost one, stop lifeboat and run `lifeboat recover --store {store}` to bring back its state too.",
        listed.join(", ")
    ))
}
