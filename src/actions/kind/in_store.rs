//! Kinds whose backups are kept in a store: each operation is the action's own store
//! code, talking to the target's [`BackupStore`](crate::stores::BackupStore). Kinds the
//! store code cannot back up or restore (command, external) get its refusals.

use std::path::Path;

use crate::actions::drill_steps::{Drill, Sandboxed};
use crate::actions::kind::{PlannedRestore, RestoreDone, TargetBackups, pretty_json};
use crate::actions::restore::{RestoreOutcome, RestorePlan};
use crate::actions::shared::{Selector, VerifyReport};
use crate::actions::{backup, catalog, drill, prune, restore, verify};
use crate::app::App;
use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::stores::manifest::Manifest;
use crate::target_hooks::ActionHooks;

pub struct InStore;

impl TargetBackups for InStore {
    fn backup(
        &self,
        app: &App,
        target: &str,
        ctx: &JobContext,
        hooks: &ActionHooks<'_>,
    ) -> Result<Manifest> {
        backup::backup_locked(app, target, ctx, hooks)
    }

    fn backups(&self, app: &App, target: &str) -> Result<Vec<Manifest>> {
        catalog::store_backups(app, target)
    }

    fn verify(
        &self,
        app: &App,
        target: &str,
        selector: &Selector,
        read_data: bool,
        actor: &str,
        ctx: &JobContext,
    ) -> Result<VerifyReport> {
        verify::in_store(app, target, selector, read_data, actor, ctx)
    }

    fn remove(
        &self,
        app: &App,
        target: &str,
        remove: &[Manifest],
        ctx: &JobContext,
    ) -> Result<Option<u64>> {
        prune::remove_from_store(app, target, remove, ctx)
    }

    fn drill_backup(&self, app: &App, target: &str, selector: &Selector) -> Result<Manifest> {
        catalog::find(app, target, selector)
    }

    fn drill_restore(&self, d: &mut Drill, selector: &Selector) -> Result<Sandboxed> {
        drill::restore_in_sandbox(d, selector)
    }

    fn cli_restore_plan(
        &self,
        app: &App,
        target: &str,
        selector: &Selector,
        to: Option<&Path>,
        instance: Option<&str>,
    ) -> Result<Box<dyn PlannedRestore>> {
        if instance.is_some() {
            return Err(Error::Usage(
                "--instance is only for gcp-disk targets".into(),
            ));
        }
        Ok(Box::new(restore::plan(app, target, selector, to)?))
    }
}

impl PlannedRestore for RestorePlan {
    fn target(&self) -> &str {
        &self.target
    }

    fn describe(&self) -> String {
        RestorePlan::describe(self)
    }

    fn to_json(&self) -> String {
        pretty_json(self)
    }

    fn apply(&self, app: &App, actor: &str, ctx: &JobContext) -> Result<Box<dyn RestoreDone>> {
        let outcome = restore::apply(app, self, actor, ctx)?;
        Ok(Box::new(Restored {
            planned: self.clone(),
            outcome,
        }))
    }
}

/// A finished restore and the plan it carried out: what was moved aside is reported as
/// the plan showed it.
struct Restored {
    planned: RestorePlan,
    outcome: RestoreOutcome,
}

impl RestoreDone for Restored {
    fn to_json(&self) -> String {
        pretty_json(&self.outcome)
    }

    fn report(&self) -> String {
        let plan = &self.planned;
        let mut out = format!(
            "restored backup {} of {} to {} in {}\n",
            plan.backup.id,
            plan.target,
            plan.destination.display(),
            crate::units::human_duration(self.outcome.duration_seconds)
        );
        for m in &plan.move_aside {
            out.push_str(&format!("previous data kept at {}\n", m.to.display()));
        }
        out
    }
}
