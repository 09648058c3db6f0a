//! A directory tree on this host: walked into a tar stream with include/exclude applied,
//! restored by extracting beside it (refusing anything that would escape) and renaming
//! it in.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::Filter;
use crate::config::TargetKind;
use crate::error::Result;
use crate::progress::JobContext;
use crate::sources::directory;
use crate::sources::place::{self, Placement, Roots};
use crate::sources::{Content, Copied, Copier, CopyContext, Move, Restoring, Source};
use crate::stores::manifest::Manifest;

pub struct LocalDirectory {
    pub target: String,
    pub path: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub roots: Roots,
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

    fn connect(&self, _ctx: &JobContext) -> Result<Box<dyn Copier + '_>> {
        Ok(Box::new(Copy(self)))
    }

    fn restores_to_a_path(&self) -> Result<()> {
        Ok(())
    }

    fn plan_restore(&self, backup: &Manifest, to: Option<&Path>) -> Result<Placement> {
        place::local::plan(&self.roots, &backup.id, to)
    }

    fn restore(
        &self,
        _backup: &Manifest,
        at: &Placement,
        _ctx: &JobContext,
    ) -> Result<Box<dyn Restoring + '_>> {
        place::local::prepare(at)?;
        Ok(Box::new(Restore { at: at.clone() }))
    }

    fn content(&self) -> Option<&'static dyn Content> {
        Some(&directory::TreeContent)
    }
}

struct Copy<'a>(&'a LocalDirectory);

impl Copier for Copy<'_> {
    fn copy(&mut self, into: &mut dyn Write, cx: &CopyContext<'_>) -> Result<Copied> {
        let filter = Filter::new(&self.0.include, &self.0.exclude)?;
        let (facts, notes) = directory::write_tar(&self.0.path, &filter, into, cx.job)?;
        // One more stat per entry, now that everything has been read.
        cx.job
            .progress
            .phase("looking for files that changed while read");
        let changed = notes.changed(&self.0.path, &filter);
        Ok(Copied {
            sqlite: None,
            directory: Some(facts),
            changed_while_read: Some(changed),
        })
    }
}

/// A restore on this host: the tree extracted at the staging path, renamed in.
struct Restore {
    at: Placement,
}

impl Restoring for Restore {
    fn stage(&mut self, content: &mut dyn Read, ctx: &JobContext) -> Result<()> {
        directory::write_copy(content, &self.at.staging, ctx)
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
