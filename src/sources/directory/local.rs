//! A directory tree on this host: walked into a tar stream with include/exclude applied
//! (from a btrfs snapshot of it with `snapshot = "btrfs"`, see `snapshot`), restored by
//! extracting beside it (refusing anything that would escape) and renaming it in.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::Filter;
use super::listing;
use super::snapshot;
use crate::config::{Snapshot, TargetKind};
use crate::error::Result;
use crate::progress::JobContext;
use crate::sources::directory;
use crate::sources::place::{self, Placement, Roots};
use crate::sources::{Content, Copied, Copier, CopyContext, Move, Restoring, Source};
use crate::stores::TreeWriter;
use crate::stores::manifest::Manifest;

pub struct LocalDirectory {
    pub target: String,
    pub path: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub roots: Roots,
    /// Read from a snapshot of the tree, not the live tree.
    pub snapshot: Option<Snapshot>,
}

impl Source for LocalDirectory {
    fn target(&self) -> &str {
        &self.target
    }

    fn kind(&self) -> TargetKind {
        TargetKind::Directory
    }

    fn content_name(&self) -> String {
        directory::content_name(&self.target)
    }

    fn artifact_ext(&self) -> &'static str {
        "tar"
    }

    fn setup_problems(&self) -> Vec<String> {
        snapshot::setup_problems(self.snapshot, &self.path, &self.target)
    }

    fn clean_after_crash(&self) -> Result<Vec<String>> {
        snapshot::clean_after_crash(self.snapshot, &self.path, &self.target)
    }

    fn connect(&self, _ctx: &JobContext) -> Result<Box<dyn Copier + '_>> {
        snapshot::before_backup(self.snapshot, &self.path, &self.target)?;
        Ok(Box::new(Copy(self)))
    }

    fn restores_to_a_path(&self) -> Result<()> {
        Ok(())
    }

    fn plan_restore(&self, backup: &Manifest, to: Option<&Path>) -> Result<Placement> {
        let mut plan = place::local::plan(&self.roots, &backup.id, to)?;
        if self.snapshot.is_some() && plan.in_place {
            plan.notes.push(snapshot::RESTORE_NOTE.into());
        }
        Ok(plan)
    }

    fn restore(
        &self,
        _backup: &Manifest,
        at: &Placement,
        _ctx: &JobContext,
    ) -> Result<Box<dyn Restoring + '_>> {
        place::local::prepare(at)?;
        Ok(Box::new(Restore {
            at: at.clone(),
            subvolume: self.snapshot.is_some() && at.in_place,
        }))
    }

    fn content(&self) -> Option<&'static dyn Content> {
        Some(&directory::TreeContent)
    }

    fn paths(&self) -> Option<&'static dyn crate::sources::Paths> {
        Some(&directory::TreePaths)
    }
}

struct Copy<'a>(&'a LocalDirectory);

impl Copier for Copy<'_> {
    fn copy(&mut self, into: &mut dyn Write, cx: &CopyContext<'_>) -> Result<Copied> {
        let filter = Filter::new(&self.0.include, &self.0.exclude)?;
        let (path, target) = (&self.0.path, &self.0.target);
        let (facts, changed) = snapshot::reading(self.0.snapshot, path, target, cx.job, |root| {
            if root != path.as_path() {
                // Read from a snapshot: the live tree need not stay quiet any longer, so
                // the after_backup hooks may resume the app before the copy is read.
                cx.finished_reading();
            }
            let (facts, notes) = directory::write_tar(root, &filter, into, cx.job)?;
            // One more stat per entry, now that everything has been read (of a snapshot:
            // nothing changes, so nothing is flagged).
            cx.job
                .progress
                .phase("looking for files that changed while read");
            Ok((facts, notes.changed(root, &filter)))
        })?;
        Ok(Copied {
            sqlite: None,
            directory: Some(facts),
            changed_while_read: Some(changed),
            replicated: None,
        })
    }

    fn copy_tree(
        &mut self,
        into: &mut dyn TreeWriter,
        cx: &CopyContext<'_>,
    ) -> Option<Result<Copied>> {
        Some(self.tree(into, cx))
    }
}

impl Copy<'_> {
    /// The tree handed over entry by entry: listed, then read by the store as it needs.
    fn tree(&mut self, into: &mut dyn TreeWriter, cx: &CopyContext<'_>) -> Result<Copied> {
        let filter = Filter::new(&self.0.include, &self.0.exclude)?;
        let (path, target) = (&self.0.path, &self.0.target);
        let (facts, changed) = snapshot::reading(self.0.snapshot, path, target, cx.job, |root| {
            if root != path.as_path() {
                cx.finished_reading();
            }
            // The backup names the tree by its real, absolute path, as `restic backup` does.
            let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            let listed = listing::list(root, &shown, &filter, cx.job)?;
            listing::hand_over(listed, root, &filter, into, cx.job)
        })?;
        Ok(Copied {
            sqlite: None,
            directory: Some(facts),
            changed_while_read: Some(changed),
            replicated: None,
        })
    }
}

/// A restore on this host: the tree extracted at the staging path, renamed in.
struct Restore {
    at: Placement,
    /// Staged in a new btrfs subvolume (in place, for a target read from snapshots).
    subvolume: bool,
}

impl Restoring for Restore {
    fn stage(&mut self, content: &mut dyn Read, ctx: &JobContext) -> Result<()> {
        if !self.subvolume {
            return directory::write_copy(content, &self.at.staging, ctx);
        }
        snapshot::create_subvolume(&self.at.staging)?;
        directory::extract_tar(content, &self.at.staging, ctx).map(|_| ())
    }

    /// Extraction already checked every entry's name and link as it went.
    fn check(&mut self, _ctx: &JobContext) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn put_in_place(&mut self, _ctx: &JobContext) -> Result<Vec<Move>> {
        place::local::put_in_place(&self.at)
    }

    fn discard(&mut self) {
        let _ = place::local::remove_staging(&self.at.staging);
    }
}
