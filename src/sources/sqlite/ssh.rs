//! A SQLite database on another host, over one SSH connection per job: the host's own
//! `sqlite3` makes the consistent copy (see [`remote`](super::remote)); a restore streams
//! the file into a staging file there, checked there, and the host's shell renames it in.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::remote;
use crate::config::TargetKind;
use crate::error::Result;
use crate::progress::JobContext;
use crate::sources::place::{self, Placement, Roots, STOP_THE_APP};
use crate::sources::{Content, Copied, Copier, CopyContext, Move, Restoring, Source, sqlite};
use crate::ssh::{Remote, Session};
use crate::stores::manifest::{Manifest, SqliteFacts};

pub struct SshSqlite {
    pub target: String,
    /// The database's path on the host.
    pub path: PathBuf,
    pub remote: Remote,
    pub roots: Roots,
}

impl Source for SshSqlite {
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

    fn connect(&self, ctx: &JobContext) -> Result<Box<dyn Copier + '_>> {
        let session = Session::open(&self.remote, ctx)?;
        Ok(Box::new(Copy {
            session,
            path: &self.path,
        }))
    }

    fn restores_to_a_path(&self) -> Result<()> {
        Ok(())
    }

    fn plan_restore(&self, backup: &Manifest, to: Option<&Path>) -> Result<Placement> {
        let ctx = JobContext::silent();
        let session = Session::open(&self.remote, &ctx)?;
        let mut at = place::ssh::plan(&session, &self.roots, &backup.id, to, &ctx)?;
        if at.in_place {
            at.notes.push(STOP_THE_APP.into());
        }
        Ok(at)
    }

    fn restore(
        &self,
        backup: &Manifest,
        at: &Placement,
        ctx: &JobContext,
    ) -> Result<Box<dyn Restoring + '_>> {
        let session = Session::open(&self.remote, ctx)?;
        place::ssh::prepare(&session, at, ctx)?;
        Ok(Box::new(Restore {
            session,
            backup: backup.clone(),
            at: at.clone(),
            arrived: None,
        }))
    }

    fn content(&self) -> Option<&'static dyn Content> {
        Some(&sqlite::SqliteContent)
    }
}

struct Copy<'a> {
    session: Session,
    path: &'a Path,
}

impl Copier for Copy<'_> {
    fn copy(&mut self, into: &mut dyn Write, cx: &CopyContext<'_>) -> Result<Copied> {
        let facts = remote::backup(&self.session, self.path, into, cx.job)?;
        Ok(Copied {
            sqlite: Some(facts),
            directory: None,
            changed_while_read: None,
            replicated: None,
        })
    }
}

/// A restore on the host: the file streamed into the staging path and described there.
struct Restore {
    session: Session,
    backup: Manifest,
    at: Placement,
    /// The facts of the copy as it arrived on the host.
    arrived: Option<SqliteFacts>,
}

impl Restoring for Restore {
    fn stage(&mut self, content: &mut dyn Read, ctx: &JobContext) -> Result<()> {
        // In place, the copy takes the owner and mode of the file it replaces.
        let like = self.at.in_place.then_some(self.at.destination.as_path());
        self.arrived = Some(remote::stage(
            &self.session,
            content,
            &self.at.staging,
            self.backup.content_bytes,
            like,
            ctx,
        )?);
        Ok(())
    }

    fn check(&mut self, ctx: &JobContext) -> Result<Vec<String>> {
        let (Some(expected), Some(got)) = (&self.backup.sqlite, &self.arrived) else {
            return Ok(Vec::new());
        };
        ctx.progress.phase("checking the restored database");
        Ok(sqlite::compare(
            "quick_check",
            &got.quick_check,
            &got.tables,
            expected,
        ))
    }

    fn put_in_place(&mut self, ctx: &JobContext) -> Result<Vec<Move>> {
        place::ssh::put_in_place(&self.session, &self.at, ctx)
    }

    fn discard(&mut self) {
        place::ssh::discard(&self.session, &self.at);
    }
}
