//! What the actions do differently by where a target's backups are kept: in its store
//! ([`in_store::InStore`]: sqlite and directory; command and external refuse through
//! their sources), or as Compute Engine snapshots ([`crate::actions::gcp::Snapshots`]).
//! This is not a second choice by kind: the target's [`Source`], picked once in
//! [`sources::choose`](crate::sources::choose), says where its copies are kept ([`Kept`]),
//! and [`of`] only reads that.
//!
//! The action keeps what is common to every target (the job and the target's lock, the
//! retention plan, the drill's report); the keeper does the part that differs. Verify is
//! the one operation whose job the keeper runs itself, because the two pick the backup at
//! different times: a stored backup before the job (a mistyped id is no job), a snapshot
//! inside it (a snapshot deleted behind lifeboat's back is a failed verify on record).
//!
//! Restore has two entry points. Chat, approvals and runbooks carry a
//! [`RestorePlan`](crate::actions::restore::RestorePlan) of files put in place at a path;
//! a source without such a restore (gcp-disk) refuses it, saying what to do instead. The
//! command line takes any target's plan as a [`PlannedRestore`], shown and then carried
//! out whatever it holds (a path, or a new disk and an instance).

pub mod in_store;

use std::path::Path;

use crate::actions::drill_steps::{Drill, Sandboxed};
use crate::actions::shared::{Selector, VerifyReport};
use crate::app::App;
use crate::error::Result;
use crate::progress::JobContext;
use crate::sources::{Kept, Source};
use crate::stores::manifest::Manifest;
use crate::target_hooks::ActionHooks;

/// What the actions do with a target's backups where they are kept.
pub trait TargetBackups: Sync {
    /// Take a backup now. The caller holds the target's lock, in a `backup` job. The
    /// keeper runs the `before_backup` hooks once the data is reached and before anything
    /// is written, and tells `hooks` when the data no longer needs to be quiet.
    fn backup(
        &self,
        app: &App,
        target: &str,
        ctx: &JobContext,
        hooks: &ActionHooks<'_>,
    ) -> Result<Manifest>;

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
}

/// A restore plan as the command line shows it and then carries it out.
pub trait PlannedRestore: std::fmt::Debug + Send + Sync {
    /// The target it restores.
    fn target(&self) -> &str;
    /// The plan in words, as `--dry-run` prints it.
    fn describe(&self) -> String;
    /// The plan as `--json` prints it.
    fn to_json(&self) -> String;
    /// Carry the plan out as a `restore` job of `actor`.
    fn apply(&self, app: &App, actor: &str, ctx: &JobContext) -> Result<Box<dyn RestoreDone>>;
}

/// A finished command-line restore.
pub trait RestoreDone: Send {
    /// The outcome as `--json` prints it.
    fn to_json(&self) -> String;
    /// The lines printed once it is done, each ending in a newline.
    fn report(&self) -> String;
}

/// The target's source: its config, through the one chooser.
pub fn source(app: &App, target: &str) -> Result<Box<dyn Source>> {
    crate::sources::choose(target, app.target(target)?)
}

/// The keeper of a source's backups.
pub fn of(source: &dyn Source) -> &'static dyn TargetBackups {
    match source.kept() {
        Kept::InStore => &in_store::InStore,
        Kept::AsSnapshots => &crate::actions::gcp::Snapshots,
    }
}

/// The keeper of a configured target's backups, or a usage error naming the targets.
pub fn for_target(app: &App, target: &str) -> Result<&'static dyn TargetBackups> {
    Ok(of(source(app, target)?.as_ref()))
}

/// Pretty JSON, as the command line prints values (an unserialisable value prints
/// nothing rather than failing a restore that already happened).
pub(crate) fn pretty_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
