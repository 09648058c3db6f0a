//! A SQLite database on this host: copied online as of one transaction (see
//! [`copy`](super::copy)), restored by writing the file beside it and renaming it in.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::config::TargetKind;
use crate::error::Result;
use crate::progress::JobContext;
use crate::sources::place::{self, Placement, Roots, STOP_THE_APP};
use crate::sources::{Content, Copied, Copier, CopyContext, Move, Restoring, Source, sqlite};
use crate::stores::manifest::Manifest;

pub struct LocalSqlite {
    pub target: String,
    pub path: PathBuf,
    pub roots: Roots,
}

impl Source for LocalSqlite {
    fn target(&self) -> &str {
        &self.target
    }

    fn kind(&self) -> TargetKind {
        TargetKind::Sqlite
    }

    fn content_name(&self) -> String {
        sqlite::content_name(&self.target, &self.path)
    }

    fn artifact_ext(&self) -> &'static str {
        "sqlite"
    }

    fn connect(&self, _ctx: &JobContext) -> Result<Box<dyn Copier + '_>> {
        Ok(Box::new(Copy(self)))
    }

    fn restores_to_a_path(&self) -> Result<()> {
        Ok(())
    }

    fn plan_restore(&self, backup: &Manifest, to: Option<&Path>) -> Result<Placement> {
        let mut at = place::local::plan(&self.roots, &backup.id, to)?;
        if at.in_place {
            at.notes.push(STOP_THE_APP.into());
        }
        Ok(at)
    }

    fn restore(
        &self,
        backup: &Manifest,
        at: &Placement,
        _ctx: &JobContext,
    ) -> Result<Box<dyn Restoring + '_>> {
        place::local::prepare(at)?;
        Ok(Box::new(Restore {
            backup: backup.clone(),
            at: at.clone(),
        }))
    }

    fn content(&self) -> Option<&'static dyn Content> {
        Some(&sqlite::SqliteContent)
    }
}

struct Copy<'a>(&'a LocalSqlite);

impl Copier for Copy<'_> {
    fn copy(&mut self, into: &mut dyn Write, cx: &CopyContext<'_>) -> Result<Copied> {
        // Replicated by this process: its replicator pins the file at a shipped
        // transaction, so the copy is also a base copy of the replicated history.
        match sqlite::replicator_pin::ask(&self.0.target) {
            Some(Ok((pinned, mark))) => {
                cx.job
                    .progress
                    .phase("reading the database (pinned by its replicator at one transaction)");
                let facts = pinned.stream(&self.0.path, into, cx.write_err, cx.job)?;
                return Ok(Copied {
                    sqlite: Some(facts),
                    directory: None,
                    changed_while_read: None,
                    replicated: Some(mark),
                });
            }
            Some(Err(why)) => tracing::warn!(
                target = %self.0.target,
                "the replicator could not pin the database for this backup ({why}); the backup pins it itself"
            ),
            None => {}
        }
        let scratch = (cx.scratch)()?;
        let (facts, _) = sqlite::backup(&self.0.path, scratch.path(), into, cx.write_err, cx.job)?;
        Ok(Copied {
            sqlite: Some(facts),
            directory: None,
            changed_while_read: None,
            replicated: None,
        })
    }
}

/// A restore on this host: the file written at the staging path, renamed in.
struct Restore {
    backup: Manifest,
    at: Placement,
}

impl Restoring for Restore {
    fn stage(&mut self, content: &mut dyn Read, _ctx: &JobContext) -> Result<()> {
        sqlite::write_copy(&self.backup, content, &self.at.staging)
    }

    fn check(&mut self, _ctx: &JobContext) -> Result<Vec<String>> {
        Ok(sqlite::check_recorded(&self.backup))
    }

    fn put_in_place(&mut self, _ctx: &JobContext) -> Result<Vec<Move>> {
        place::local::put_in_place(&self.at)
    }

    fn discard(&mut self) {
        let _ = place::local::remove_staging(&self.at.staging);
    }
}
