//! A directory tree on another host, over one SSH connection per job: the host lists and
//! archives it (see [`remote`](super::remote)), or, for a store that keeps native trees,
//! lists it and sends only the files new or changed since the previous backup (see
//! [`remote_tree`](super::remote_tree)); a restore checks every entry here and
//! streams a clean archive into `tar -x` in a staging directory there, which the host's
//! shell renames in.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Filter, remote, remote_tree};
use crate::config::TargetKind;
use crate::error::Result;
use crate::progress::JobContext;
use crate::sources::directory;
use crate::sources::place::{self, Placement, Roots};
use crate::sources::{Content, Copied, Copier, CopyContext, Move, Restoring, Source};
use crate::ssh::{Remote, Session};
use crate::stores::TreeWriter;
use crate::stores::manifest::Manifest;

pub struct SshDirectory {
    pub target: String,
    /// The tree's root on the host.
    pub path: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub remote: Remote,
    pub roots: Roots,
}

impl Source for SshDirectory {
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

    fn connect(&self, ctx: &JobContext) -> Result<Box<dyn Copier + '_>> {
        let session = Arc::new(Session::open(&self.remote, ctx)?);
        Ok(Box::new(Copy {
            session,
            source: self,
        }))
    }

    fn restores_to_a_path(&self) -> Result<()> {
        Ok(())
    }

    fn plan_restore(&self, backup: &Manifest, to: Option<&Path>) -> Result<Placement> {
        let ctx = JobContext::silent();
        let session = Session::open(&self.remote, &ctx)?;
        place::ssh::plan(&session, &self.roots, &backup.id, to, &ctx)
    }

    fn restore(
        &self,
        _backup: &Manifest,
        at: &Placement,
        ctx: &JobContext,
    ) -> Result<Box<dyn Restoring + '_>> {
        let session = Session::open(&self.remote, ctx)?;
        place::ssh::prepare(&session, at, ctx)?;
        Ok(Box::new(Restore {
            session,
            at: at.clone(),
        }))
    }

    // A drill or a verify reads the backup on this host, as for a local tree.

    fn content(&self) -> Option<&'static dyn Content> {
        Some(&directory::TreeContent)
    }

    fn paths(&self) -> Option<&'static dyn crate::sources::Paths> {
        Some(&directory::TreePaths)
    }
}

struct Copy<'a> {
    /// Shared with the threads that fetch files while a tree is stored.
    session: Arc<Session>,
    source: &'a SshDirectory,
}

impl Copier for Copy<'_> {
    fn copy(&mut self, into: &mut dyn Write, cx: &CopyContext<'_>) -> Result<Copied> {
        let s = self.source;
        let filter = Filter::new(&s.include, &s.exclude)?;
        let (facts, changed) = remote::backup(&self.session, &s.path, &filter, into, cx.job)?;
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
        let s = self.source;
        Some(Filter::new(&s.include, &s.exclude).and_then(|filter| {
            let (facts, changed) =
                remote_tree::backup(&self.session, &s.path, &filter, into, cx.job)?;
            Ok(Copied {
                sqlite: None,
                directory: Some(facts),
                changed_while_read: Some(changed),
                replicated: None,
            })
        }))
    }
}

/// A restore on the host: the checked archive unpacked at the staging path.
struct Restore {
    session: Session,
    at: Placement,
}

impl Restoring for Restore {
    fn stage(&mut self, content: &mut dyn Read, ctx: &JobContext) -> Result<()> {
        remote::stage(&self.session, content, &self.at.staging, ctx)
    }

    /// Every entry's name and link was checked here before it was sent.
    fn check(&mut self, _ctx: &JobContext) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn put_in_place(&mut self, ctx: &JobContext) -> Result<Vec<Move>> {
        place::ssh::put_in_place(&self.session, &self.at, ctx)
    }

    fn discard(&mut self) {
        place::ssh::discard(&self.session, &self.at);
    }
}
