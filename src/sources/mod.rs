//! Sources: the one seam where target kinds differ. A [`Source`] is a target's data as
//! lifeboat reaches it: it takes a consistent copy into a store's writer, stages a
//! restore beside the destination, puts it in place, checks a restored copy and describes
//! the plan. [`choose`] is the only place that picks an implementation from the config,
//! so adding a kind means one new file and one new arm there; a target on another host is
//! another implementation of the same seam, not an `if` in every action.
//!
//! One implementation per file: [`sqlite::local`], [`sqlite::ssh`],
//! [`directory::local`], [`directory::ssh`], [`gcp_disk`], [`command`], [`external`].
//! Stores, hashing, compression, catalogs and jobs are the actions' business; a source
//! only reads and writes the target's data.

pub mod choose;
pub mod command;
pub mod directory;
pub mod external;
pub mod gcp_disk;
pub mod place;
pub mod sqlite;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::config::TargetKind;
use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::stores::manifest::{DirectoryFacts, FileEntry, Manifest, SqliteFacts};

pub use choose::choose;
pub use place::{Move, Placement};

/// A target's data, as one kind in one place reaches it.
///
/// The shape of a backup, and where the features to come fit in:
///
/// 1. [`connect`](Source::connect) reaches the data before anything is written to a
///    store (a host that cannot be reached leaves not even a partial write).
/// 2. [`Copier::copy`] takes the consistent copy into the store's writer and returns the
///    facts the manifest records. Hooks that quiesce an application will run around this
///    call, in the action: `before_backup` after `connect`, `after_backup` as soon as
///    `copy` has finished reading ([`CopyContext::finished_reading`]), before the store
///    has finished publishing.
/// 3. A copy is one byte stream, or, for a store that keeps native trees, a tree of
///    entries (path, metadata, content on demand) handed over by
///    [`Copier::copy_tree`] when the source can. A directory source compares each
///    entry's metadata at the end of the copy with what it was when read and returns what
///    changed ([`Copied::changed_while_read`]); the action flags or refuses the backup.
///    A SQLite source will add a replicator that ships WAL frames continuously between
///    full copies: a further method here, with a default for the sources that cannot.
///
/// A restore is plan, then apply: [`plan_restore`](Source::plan_restore) only looks
/// (destination, what is moved aside, where the copy is staged); [`restore`](Source::restore)
/// carries that plan out in steps the action drives, so the content's checksum is proven
/// between staging and putting in place. A partial restore (single paths of a tree, see
/// [`paths`](Source::paths)) is the same plan with the content narrowed to those paths
/// before it is staged.
///
/// Verify and drills look at a backup's content on this host, whatever host the target
/// is on: [`check_content`](Source::check_content), [`write_copy`](Source::write_copy)
/// and [`check_copy`](Source::check_copy).
pub trait Source: Send + Sync {
    /// The target's name.
    fn target(&self) -> &str;

    /// The kind, as manifests, status and messages name it.
    fn kind(&self) -> TargetKind;

    /// Where this source's backups are kept.
    fn kept(&self) -> Kept {
        Kept::InStore
    }

    /// Whether lifeboat takes backups of it (an external target's are made elsewhere and
    /// only reported), so whether it is scheduled for them.
    fn takes_backups(&self) -> bool {
        true
    }

    /// How often the newest backup is verified when the target sets no
    /// `verify_schedule`; `None`: only when asked.
    fn unscheduled_verify_every(&self) -> Option<Duration> {
        None
    }

    /// Why a drill cannot restore this source, or `None` when it can.
    fn drill_refusal(&self) -> Option<&'static str> {
        None
    }

    /// The name the content has inside a backup: what `restic restore` writes out.
    fn content_name(&self) -> String;

    /// What an artifact of the content is called after its id, before `.zst`.
    fn artifact_ext(&self) -> &'static str {
        "bin"
    }

    /// What `config check` finds wrong on this host beyond the config itself (a btrfs
    /// snapshot asked of a path that is not a subvolume), in words.
    fn setup_problems(&self) -> Vec<String> {
        Vec::new()
    }

    /// Remove what a backup interrupted by a crash left beside the data (a filesystem
    /// snapshot); the caller holds the target's lock. What was removed, in words.
    fn clean_after_crash(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Reach the data, ready to copy it.
    fn connect(&self, _ctx: &JobContext) -> Result<Box<dyn Copier + '_>> {
        Err(Error::Usage(format!(
            "backups of {} targets are not available in this build of lifeboat",
            self.kind().as_str()
        )))
    }

    /// `Ok` when a backup can be put in place at a path (the target's own, or `--to`);
    /// otherwise the refusal, asked before any backup is looked up.
    fn restores_to_a_path(&self) -> Result<()> {
        Err(self.no_restores())
    }

    /// The plan of a restore of `backup` to `to` (a new path) or in place. Nothing is
    /// written.
    fn plan_restore(&self, _backup: &Manifest, _to: Option<&Path>) -> Result<Placement> {
        Err(self.no_restores())
    }

    /// Start carrying out a plan: check it still holds, make room for the staged copy.
    fn restore(
        &self,
        _backup: &Manifest,
        _at: &Placement,
        _ctx: &JobContext,
    ) -> Result<Box<dyn Restoring + '_>> {
        Err(self.no_restores())
    }

    /// The refusal of a restore to a path, saying how this kind is restored instead.
    fn no_restores(&self) -> Error {
        Error::Usage(format!(
            "restores of {} ({}) are not available in this build of lifeboat",
            self.target(),
            self.kind().as_str()
        ))
    }

    /// How a backup's content is checked and written out on this host (verify and
    /// drills), whatever host the target itself is on; `None` for kinds whose backups
    /// lifeboat cannot look into.
    fn content(&self) -> Option<&'static dyn Content> {
        None
    }

    /// Single paths of this source's backups (listed from the manifest, picked out of the
    /// content for a partial restore); `None` for kinds whose backups are one whole.
    fn paths(&self) -> Option<&'static dyn Paths> {
        None
    }

    /// The refusal of `ls`, `diff` and partial restores for a kind without paths.
    fn no_paths(&self) -> Error {
        Error::Usage(format!(
            "{} is a {} target: its backups are one whole, with no paths to list, compare or \
             restore one by one (that is for directory targets); restore it whole with \
             `lifeboat restore {}`",
            self.target(),
            self.kind().as_str(),
            self.target()
        ))
    }

    /// Check a backup's content as it streams from the store (verify); the problems
    /// found. `scratch` is a private directory on this host.
    fn check_content(
        &self,
        m: &Manifest,
        content: &mut dyn Read,
        scratch: &Path,
        ctx: &JobContext,
    ) -> Result<Vec<String>> {
        match self.content() {
            Some(c) => c.check_content(m, content, scratch, ctx),
            None => Ok(vec![format!(
                "cannot verify backups of kind {}",
                self.kind().as_str()
            )]),
        }
    }

    /// Write a backup's content as a new copy at `dest` on this host (a drill's sandbox).
    fn write_copy(
        &self,
        m: &Manifest,
        content: &mut dyn Read,
        dest: &Path,
        ctx: &JobContext,
    ) -> Result<()> {
        match self.content() {
            Some(c) => c.write_copy(m, content, dest, ctx),
            None => Err(Error::Failed(format!(
                "cannot restore backups of kind {}",
                self.kind().as_str()
            ))),
        }
    }

    /// What [`check_copy`](Source::check_copy) is called on a drill's timeline.
    fn copy_check_name(&self) -> &'static str {
        self.content()
            .map_or("check the restored copy", |c| c.copy_check_name())
    }

    /// Check a copy [`write_copy`](Source::write_copy) made against its manifest:
    /// `Ok(what was seen)` or `Err(problems)`.
    fn check_copy(&self, m: &Manifest, copy: &Path, ctx: &JobContext) -> Result<Checked> {
        match self.content() {
            Some(c) => c.check_copy(m, copy, ctx),
            None => Ok(Err(vec![
                "the manifest has nothing to check the copy against".into(),
            ])),
        }
    }
}

/// One kind of backup content (a SQLite file, a tree), checked and written on this host:
/// the same for a local target and one over SSH.
pub trait Content: Send + Sync {
    /// The problems found in the content as it streams from the store.
    fn check_content(
        &self,
        m: &Manifest,
        content: &mut dyn Read,
        scratch: &Path,
        ctx: &JobContext,
    ) -> Result<Vec<String>>;

    /// Write the content as a new copy at `dest`.
    fn write_copy(
        &self,
        m: &Manifest,
        content: &mut dyn Read,
        dest: &Path,
        ctx: &JobContext,
    ) -> Result<()>;

    /// What checking a copy is called on a drill's timeline.
    fn copy_check_name(&self) -> &'static str;

    /// Check a written copy against its manifest.
    fn check_copy(&self, m: &Manifest, copy: &Path, ctx: &JobContext) -> Result<Checked>;
}

/// The paths of a tree's backups: what the manifest lists, and the content narrowed to
/// some of them (a partial restore), the same on every host.
pub trait Paths: Send + Sync {
    /// Every entry of the backup, as its manifest records it.
    fn entries<'m>(&self, m: &'m Manifest) -> Result<&'m [FileEntry]>;

    /// Copy from `content` (the backup's whole content) into `into`, in the same format,
    /// only the entries at or under `wanted` (relative paths the manifest lists) and the
    /// directories above them, each checked against the manifest (names, links, every
    /// file's SHA-256); stops reading once all were seen. What was copied.
    fn pick(
        &self,
        m: &Manifest,
        wanted: &[String],
        content: &mut dyn Read,
        into: &mut dyn Write,
        ctx: &JobContext,
    ) -> Result<Picked>;
}

/// What a pick copied: the entries at or under the wanted paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Picked {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// The files' bytes.
    pub bytes: u64,
}

/// A check's outcome: what was seen, or the problems found.
pub type Checked = std::result::Result<String, Vec<String>>;

/// Where a source's backups are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// In the target's store, as an artifact and a manifest.
    InStore,
    /// As the cloud provider's snapshots (gcp-disk), outside every store.
    AsSnapshots,
}

/// A source reached and ready to copy.
pub trait Copier {
    /// Write a consistent copy of the data into `into` (the store's writer, through
    /// hashing); return the facts of exactly what was written.
    fn copy(&mut self, into: &mut dyn Write, cx: &CopyContext<'_>) -> Result<Copied>;

    /// Hand the data over as a tree, entry by entry, to a store that keeps native trees;
    /// `None` (the default) for sources that only stream, which are then copied with
    /// [`copy`](Copier::copy).
    fn copy_tree(
        &mut self,
        _into: &mut dyn crate::stores::TreeWriter,
        _cx: &CopyContext<'_>,
    ) -> Option<Result<Copied>> {
        None
    }
}

/// What a copy may need from the action running it.
pub struct CopyContext<'a> {
    pub job: &'a JobContext,
    /// A private scratch directory on this host, made on demand, removed when dropped.
    pub scratch: &'a dyn Fn() -> Result<tempfile::TempDir>,
    /// The store's write errors in words (which backup, which store).
    pub write_err: &'a dyn Fn(std::io::Error) -> Error,
    /// Called through [`finished_reading`](CopyContext::finished_reading).
    pub finished_reading: &'a dyn Fn(),
}

impl CopyContext<'_> {
    /// The source has read everything it copies: the data no longer needs to be quiet,
    /// so the target's `after_backup` hooks run now. A source whose reading ends before
    /// `copy` returns calls this then; otherwise the action calls it when `copy` returns.
    /// Calling it more than once is harmless.
    pub fn finished_reading(&self) {
        (self.finished_reading)()
    }
}

/// The facts of a copy, as the manifest records them.
#[derive(Debug, Default)]
pub struct Copied {
    pub sqlite: Option<SqliteFacts>,
    pub directory: Option<DirectoryFacts>,
    /// The paths that changed, vanished or appeared while the copy was read, when the
    /// source compared them at its end (directories); `None` for copies consistent by
    /// construction.
    pub changed_while_read: Option<Vec<String>>,
    /// A database this process replicates, pinned by its replicator: the shipped
    /// transaction the copy is the database after (recorded as a base copy once the
    /// backup is published).
    pub replicated: Option<sqlite::replicator_pin::ReplicationMark>,
}

/// A restore being carried out, step by step: the action streams the content into
/// [`stage`](Restoring::stage), proves its checksum, asks for [`check`](Restoring::check),
/// and only then calls [`put_in_place`](Restoring::put_in_place). On any failure before
/// that it calls [`discard`](Restoring::discard): the current data was never touched.
pub trait Restoring {
    /// Write the backup's content into the staging place.
    fn stage(&mut self, content: &mut dyn Read, ctx: &JobContext) -> Result<()>;
    /// Check the staged copy against the manifest; the problems found.
    fn check(&mut self, ctx: &JobContext) -> Result<Vec<String>>;
    /// Move the current data aside and rename the staged copy in; what was moved.
    fn put_in_place(&mut self, ctx: &JobContext) -> Result<Vec<Move>>;
    /// Remove what was staged.
    fn discard(&mut self);
}
