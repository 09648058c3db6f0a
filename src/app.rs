//! App: the one shared context every front-end and action is handed: config, state
//! database, executor, and the stores built from the config.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, TargetConfig};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::stores::{self, BackupStore};

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub db: Db,
    pub executor: Executor,
    /// Jobs `serve` runs at once (`server.max_jobs`), shared by chat and the scheduler.
    pub slots: Arc<tokio::sync::Semaphore>,
    stores: Arc<BTreeMap<String, Arc<dyn BackupStore>>>,
}

impl App {
    /// Open the state database and build the stores. Jobs a crashed process left running
    /// are marked interrupted and returned so the caller can report them.
    pub fn open(config: Config) -> Result<(App, Vec<crate::db::jobs::JobRecord>)> {
        let db = Db::open(&config.server.state)?;
        let state_dir = config
            .server
            .state
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let executor = Executor::new(db.clone(), state_dir.join("locks"));
        let mut built = BTreeMap::new();
        for (name, cfg) in &config.stores {
            built.insert(name.clone(), stores::open_store(name, cfg)?);
        }
        let app = App {
            slots: Arc::new(tokio::sync::Semaphore::new(config.server.max_jobs)),
            config: Arc::new(config),
            db,
            executor,
            stores: Arc::new(built),
        };
        let swept = app.executor.sweep_interrupted()?;
        // A runbook run whose process died is over: say so, and never leave it "running".
        for (id, runbook) in app.db.runbook_runs_sweep()? {
            tracing::warn!("runbook {runbook} (run {id}) was interrupted before it finished");
            app.db.audit(
                "lifeboat",
                "runbook interrupted",
                None,
                "interrupted",
                Some(&format!(
                    "{runbook} (run {id}): the process running it stopped"
                )),
            )?;
        }
        Ok((app, swept))
    }

    /// An app over an in-memory database and the given stores, for tests.
    pub fn for_tests(
        config: Config,
        stores: BTreeMap<String, Arc<dyn BackupStore>>,
        locks: PathBuf,
    ) -> App {
        let db = Db::in_memory();
        App {
            slots: Arc::new(tokio::sync::Semaphore::new(config.server.max_jobs)),
            executor: Executor::new(db.clone(), locks),
            config: Arc::new(config),
            db,
            stores: Arc::new(stores),
        }
    }

    /// A target by name, or a usage error listing the ones that exist.
    pub fn target(&self, name: &str) -> Result<&TargetConfig> {
        self.config.targets.get(name).ok_or_else(|| {
            Error::Usage(format!(
                "unknown target {name:?}; targets: {}",
                self.config.target_names()
            ))
        })
    }

    /// The named target (which must exist), or with `None` every target whose backups
    /// lifeboat keeps: what `list` and `prune` without a target go over.
    pub fn targets_or_all(&self, name: Option<&str>) -> Result<Vec<String>> {
        match name {
            Some(t) => self.target(t).map(|_| vec![t.to_string()]),
            None => Ok(self
                .config
                .targets
                .iter()
                .filter(|(_, c)| c.keeps_backups())
                .map(|(n, _)| n.clone())
                .collect()),
        }
    }

    pub fn store(&self, name: &str) -> Result<Arc<dyn BackupStore>> {
        self.stores
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Usage(format!("unknown store {name:?}")))
    }

    /// Every store of the config, by name.
    pub fn stores(&self) -> Vec<(String, Arc<dyn BackupStore>)> {
        self.stores
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect()
    }

    /// The store a target backs up into.
    pub fn store_for(&self, target: &str) -> Result<(String, Arc<dyn BackupStore>)> {
        let t = self.target(target)?;
        let name = t.store.clone().ok_or_else(|| {
            Error::Usage(format!(
                "target {target} ({}) keeps no backups in a store",
                t.kind.as_str()
            ))
        })?;
        Ok((name.clone(), self.store(&name)?))
    }

    /// A fresh private scratch directory, removed when dropped.
    pub fn scratch(&self) -> Result<tempfile::TempDir> {
        let dir = self.config.scratch_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        tempfile::Builder::new()
            .prefix("job-")
            .tempdir_in(&dir)
            .map_err(|e| {
                Error::io(
                    format!("creating a scratch directory in {}", dir.display()),
                    e,
                )
            })
    }
}
