//! The one shape the actions talk to for what differs between target kinds: where a
//! kind's backups live and how they are taken, listed, verified, removed, drilled and
//! restored. [`of`] is the only place that picks an implementation by kind, so adding a
//! kind means one implementation and one arm there, not a branch in every action.
//!
//! Two implementations exist. Kinds whose backups are kept in a store (sqlite,
//! directory, and command and external, which refuse what they cannot do with the
//! existing messages) are [`in_store::InStore`]: its code is each action's own store code,
//! which talks to the [`BackupStore`](crate::stores::BackupStore) shape. gcp-disk keeps
//! its backups as Compute Engine snapshots, [`crate::actions::gcp::Snapshots`]; that code
//! uses only this module and the shared vocabulary (actions::shared, actions::drill_steps),
//! never the actions that call it.
//!
//! The action keeps what is common to every kind (the job and the target's lock, the
//! retention plan, the drill's report); the kind does the part that differs. Verify is
//! the one operation whose job the kind runs itself, because the kinds pick the backup at
//! different times: a stored backup before the job (a mistyped id is no job), a snapshot
//! inside it (a snapshot deleted behind lifeboat's back is a failed verify on record).
//!
//! Restore has two entry points. Chat, approvals and runbooks carry a
//! [`RestorePlan`](crate::actions::restore::RestorePlan) of files put in place at a path;
//! a kind without such a restore (gcp-disk) refuses it, saying what to do instead. The
//! command line takes any kind's plan as a [`PlannedRestore`], shown and then carried out
//! whatever it holds (a path, or a new disk and an instance).

pub mod in_store;

use std::path::Path;
use std::time::Duration;

use crate::actions::drill_steps::{Drill, Sandboxed};
use crate::actions::shared::{Selector, VerifyReport};
use crate::app::App;
use crate::config::TargetKind;
use crate::error::Result;
use crate::progress::JobContext;
use crate::stores::manifest::Manifest;

/// What a target kind does for the actions.
pub trait TargetBackups: Sync {
    /// Take a backup now. The caller holds the target's lock, in a `backup` job.
    fn backup(&self, app: &App, target: &str, ctx: &JobContext) -> Result<Manifest>;

    /// Every complete backup of the target, newest first.
    fn backups(&self, app: &App, target: &str) -> Result<Vec<Manifest>>;

    /// Verify the selected backup, as a `verify` job of `actor`; with `read_data` the
    /// store also reads back every byte it holds.
    fn verify(
        &self,
        app: &App,
        target: &str,
        selector: &Selector,
        read_data: bool,
        actor: &str,
        ctx: &JobContext,
    ) -> Result<VerifyReport>;

    /// Delete the backups a prune plan removes, each leaving the catalog as it goes. The
    /// caller holds the target's lock, in a `prune` job. Returns the bytes the kind
    /// measured as given back, or `None` to keep the plan's estimate.
    fn remove(
        &self,
        app: &App,
        target: &str,
        remove: &[Manifest],
        ctx: &JobContext,
    ) -> Result<Option<u64>>;

    /// The backup a drill of the target would restore.
    fn drill_backup(&self, app: &App, target: &str, selector: &Selector) -> Result<Manifest>;

    /// A drill's restore: find the backup, restore it into a sandbox, check it, run the
    /// target's checks, remove the sandbox; a step on the drill's timeline each.
    fn drill_restore(&self, d: &mut Drill, selector: &Selector) -> Result<Sandboxed>;

    /// `Ok` when a backup's files can be put in place at a path (the target's own, or
    /// `--to`): the restore plan chat, approvals and runbooks carry. Otherwise a usage
    /// error saying how this kind is restored instead.
    fn restores_to_a_path(&self, _target: &str) -> Result<()> {
        Ok(())
    }

    /// The command line's restore plan: `--to` and `--instance` as the kind reads them.
    /// Nothing is written.
    fn cli_restore_plan(
        &self,
        app: &App,
        target: &str,
        selector: &Selector,
        to: Option<&Path>,
        instance: Option<&str>,
    ) -> Result<Box<dyn PlannedRestore>>;

    /// How often the newest backup is verified when the target sets no
    /// `verify_schedule`; `None`: only when asked.
    fn unscheduled_verify_every(&self) -> Option<Duration> {
        None
    }

    /// Whether the backups live outside every configured store, so that rebuilding the
    /// catalog from the stores misses them and it must list them from the kind itself.
    fn outside_stores(&self) -> bool {
        false
    }
}

/// A restore plan as the command line shows it and then carries it out.
pub trait PlannedRestore {
    /// The plan in words, as `--dry-run` prints it.
    fn describe(&self) -> String;
    /// The plan as `--json` prints it.
    fn to_json(&self) -> String;
    /// Carry the plan out as a `restore` job of `actor`.
    fn apply(&self, app: &App, actor: &str, ctx: &JobContext) -> Result<Box<dyn RestoreDone>>;
}

/// A finished command-line restore.
pub trait RestoreDone {
    /// The outcome as `--json` prints it.
    fn to_json(&self) -> String;
    /// The lines printed once it is done, each ending in a newline.
    fn report(&self) -> String;
}

/// The implementation for a kind: the one place that decides by kind.
pub fn of(kind: TargetKind) -> &'static dyn TargetBackups {
    match kind {
        TargetKind::GcpDisk => &crate::actions::gcp::Snapshots,
        TargetKind::Sqlite | TargetKind::Directory | TargetKind::Command | TargetKind::External => {
            &in_store::InStore
        }
    }
}

/// The implementation for a configured target, or a usage error naming the targets.
pub fn for_target(app: &App, target: &str) -> Result<&'static dyn TargetBackups> {
    Ok(of(app.target(target)?.kind))
}

/// Pretty JSON, as the command line prints values (an unserialisable value prints
/// nothing rather than failing a restore that already happened).
pub(crate) fn pretty_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [TargetKind; 5] = [
        TargetKind::Sqlite,
        TargetKind::Directory,
        TargetKind::GcpDisk,
        TargetKind::Command,
        TargetKind::External,
    ];

    #[test]
    fn only_gcp_disk_keeps_its_backups_outside_the_stores() {
        for kind in ALL {
            assert_eq!(
                of(kind).outside_stores(),
                kind == TargetKind::GcpDisk,
                "{}",
                kind.as_str()
            );
        }
    }

    #[test]
    fn only_gcp_disk_refuses_a_restore_to_a_path_and_says_how_instead() {
        for kind in ALL {
            let r = of(kind).restores_to_a_path("t");
            if kind == TargetKind::GcpDisk {
                let e = r.unwrap_err().to_string();
                assert!(
                    e.contains("lifeboat restore t [<backup>] --to <new disk name>"),
                    "{e}"
                );
            } else {
                assert!(r.is_ok(), "{}", kind.as_str());
            }
        }
    }

    #[test]
    fn only_gcp_disk_is_verified_without_a_schedule_hourly() {
        for kind in ALL {
            let every = of(kind).unscheduled_verify_every();
            match kind {
                TargetKind::GcpDisk => assert_eq!(every, Some(Duration::from_secs(3600))),
                _ => assert_eq!(every, None, "{}", kind.as_str()),
            }
        }
    }
}
