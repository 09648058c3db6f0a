//! `kind = "repository"`: backups kept in a restic-format repository through rustic_core
//! (content-defined chunks, deduplicated across backups and targets, compressed and
//! encrypted), one snapshot per backup, readable by `restic` itself.
//!
//! The repository is opened for each operation (the master key is kept after the first
//! open, so the password's key derivation runs once). A prune waits for the store's
//! running backups and holds new ones back (`gate`): it must never see the packs of a
//! backup still being written as unreferenced.

mod file_list;
mod flat;
mod gate;
mod key;
mod list_check;
mod list_shards;
mod location;
mod node;
mod parent;
mod reader;
mod seal;
pub mod sealed;
mod snapshots;
mod tree_read;
#[cfg(test)]
mod tree_tests;
mod tree_write;
mod unchanged;
mod writer;

use std::io::Read;
use std::sync::{Arc, Mutex};

use rustic_core::repofile::{MasterKey, SnapshotFile, SnapshotId};
use rustic_core::{
    CheckOptions, ConfigOptions, Credentials, KeyOptions, OpenStatus, PruneOptions, Repository,
    RepositoryBackends, RepositoryOptions, RusticError,
};

pub use location::Location;
pub use snapshots::COMPRESSION;

use super::StoreError;
use super::backups::{BackupStore, BackupWriter, NewBackup};
use super::discover::Discovered;
use super::manifest::Manifest;
use crate::progress::JobContext;

type Repo = Repository<OpenStatus>;

pub struct RepositoryStore {
    name: String,
    location: String,
    backends: RepositoryBackends,
    password: String,
    /// zstd level a new repository is created with (restic's default when unset).
    compression_level: Option<i32>,
    /// The master key, once a password has opened a key of the repository.
    key: Mutex<Option<MasterKey>>,
    /// Backups at once, or one prune alone.
    gate: Arc<gate::Gate>,
}

impl RepositoryStore {
    pub fn new(
        name: &str,
        location: &str,
        password: &str,
        compression_level: Option<i32>,
    ) -> Result<Self, StoreError> {
        let parsed = Location::parse(location)
            .map_err(|e| StoreError::Other(format!("stores.{name}: {e}")))?;
        let backends = parsed
            .backends()
            .map_err(|e| StoreError::Other(format!("stores.{name}: {e}")))?;
        Ok(RepositoryStore {
            name: name.to_string(),
            location: location.to_string(),
            backends,
            password: password.to_string(),
            compression_level,
            key: Mutex::new(None),
            gate: Arc::default(),
        })
    }

    fn fail(&self, doing: &str, e: Box<RusticError>) -> StoreError {
        if e.is_incorrect_password() {
            return StoreError::Other(format!(
                "{}: the password does not open this repository (check the variable behind \
                 stores.{}.password); nothing in it was changed",
                self.describe(),
                self.name
            ));
        }
        StoreError::Other(format!("{}: {doing}: {}", self.describe(), one_line(&e)))
    }

    fn unopened(&self) -> Result<Repository<()>, StoreError> {
        Repository::new(&RepositoryOptions::default().no_cache(true), &self.backends)
            .map_err(|e| self.fail("opening", e))
    }

    /// The open repository, or `None` when none has been initialised at the location.
    fn open(&self) -> Result<Option<Repo>, StoreError> {
        let repo = self.unopened()?;
        if repo
            .config_id()
            .map_err(|e| self.fail("reading the config", e))?
            .is_none()
        {
            return Ok(None);
        }
        let known = self.key.lock().unwrap().clone();
        let credentials = match known {
            Some(key) => Credentials::Masterkey(key),
            None => Credentials::password(&self.password),
        };
        let open = repo
            .open(&credentials)
            .map_err(|e| self.fail("opening", e))?;
        *self.key.lock().unwrap() = Some(open.key());
        Ok(Some(open))
    }

    /// The repository's master key, for the objects sealed beside its snapshots
    /// (`sealed`); `create`: initialise the repository first when there is none.
    fn master_key(&self, create: bool) -> Result<MasterKey, StoreError> {
        let repo = if create {
            self.open_or_init()?
        } else {
            self.open_existing()?
        };
        Ok(repo.key())
    }

    fn open_existing(&self) -> Result<Repo, StoreError> {
        self.open()?.ok_or_else(|| {
            StoreError::Other(format!(
                "{}: no repository has been initialised there yet (`lifeboat store init {}`)",
                self.describe(),
                self.name
            ))
        })
    }

    fn open_or_init(&self) -> Result<Repo, StoreError> {
        match self.open()? {
            Some(repo) => Ok(repo),
            None => {
                let mut config = ConfigOptions::default();
                config.set_compression = self.compression_level;
                // restic's own pack size: rustic_core's default of 32 MiB doubles the
                // memory the archiver holds in packs being filled and written.
                config.set_datapack_size = Some(bytesize::ByteSize::mib(16));
                // Created with a master key and no key file; the key file is written
                // here with restic's usual scrypt memory (`key`).
                let master = MasterKey::new();
                let repo = self
                    .unopened()?
                    .init(
                        &Credentials::Masterkey(master.clone()),
                        &KeyOptions::default(),
                        &config,
                    )
                    .map_err(|e| self.fail("initialising", e))?;
                key::save(
                    &self.backends,
                    &master,
                    &self.password,
                    snapshots::hostname(),
                )
                .map_err(|why| {
                    StoreError::Other(format!(
                        "{}: the repository was created but its key could not be \
                             written ({why}); remove what was created there and try again",
                        self.describe()
                    ))
                })?;
                tracing::info!(store = %self.name, location = %self.location, "initialised the repository");
                *self.key.lock().unwrap() = Some(repo.key());
                Ok(repo)
            }
        }
    }

    /// Every snapshot tagged as lifeboat's, whole backups or not.
    fn our_snapshots(&self, repo: &Repo) -> Result<Vec<SnapshotFile>, StoreError> {
        Ok(repo
            .get_all_snapshots()
            .map_err(|e| self.fail("listing snapshots", e))?
            .into_iter()
            .filter(snapshots::is_ours)
            .collect())
    }

    fn snapshot_of(&self, repo: &Repo, m: &Manifest) -> Result<SnapshotFile, StoreError> {
        repo.get_snapshot_from_str(&m.artifact, |_| true)
            .map_err(|_| StoreError::NotFound {
                store: self.describe(),
                key: format!("snapshot {}", m.artifact),
            })
    }

    /// A backup's content: its one file, or its native tree as a tar stream (only the
    /// paths `wanted` and the directories above them when given).
    fn read_snapshot(
        &self,
        m: &Manifest,
        wanted: Option<&[String]>,
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        let repo = self.open()?.ok_or_else(|| StoreError::NotFound {
            store: self.describe(),
            key: format!("snapshot {}", m.artifact),
        })?;
        let snap = self.snapshot_of(&repo, m)?;
        // The snapshot's own manifest, whole (the caller's may be a summary).
        let published = snapshots::manifest_of(&snap).map_err(|why| {
            StoreError::Other(format!("{}: snapshot {}: {why}", self.describe(), snap.id))
        })?;
        let repo = repo
            .to_indexed()
            .map_err(|e| self.fail("reading the index", e))?;
        let published = match file_list::read_into(&repo, &snap, published) {
            Ok(m) => m,
            Err(why) => {
                return Ok(Box::new(reader::SnapshotReader::failed(
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: snapshot {}: {why}", self.describe(), snap.id),
                    ),
                )));
            }
        };
        if published.is_native_tree() {
            return Ok(Box::new(tree_read::open(
                self.describe(),
                repo,
                &snap,
                published,
                wanted,
            )?));
        }
        reader::SnapshotReader::open(self.describe(), repo, &snap)
    }

    fn prune_options(ignore: Vec<SnapshotId>) -> PruneOptions {
        // Deleting at once keeps the repository as restic expects it (no packs marked
        // for later deletion); the lock above is what makes that safe.
        PruneOptions::default()
            .instant_delete(true)
            .ignore_snaps(ignore)
    }
}

/// rustic's errors carry guidance over several lines; messages here are one line,
/// without the backtraces rustic adds when `RUST_BACKTRACE` is set.
fn one_line(e: &RusticError) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Backtrace:"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl BackupStore for RepositoryStore {
    fn describe(&self) -> String {
        format!("repository store \"{}\" ({})", self.name, self.location)
    }

    fn begin(&self, new: &NewBackup) -> Result<Box<dyn BackupWriter>, StoreError> {
        let pass = self.gate.writer();
        // Opened (or created) now, so a wrong password fails before any content is made.
        let repo = self.open_or_init()?;
        Ok(Box::new(writer::SnapshotWriter::start(
            self.describe(),
            repo,
            new,
            pass,
        )?))
    }

    fn backups(&self, target: &str) -> Result<(Vec<Manifest>, Vec<String>), StoreError> {
        let Some(repo) = self.open()? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut found = Vec::new();
        let mut broken = Vec::new();
        for snap in self.our_snapshots(&repo)? {
            if snapshots::target_of(&snap).as_deref() != Some(target) {
                continue;
            }
            match snapshots::manifest_of(&snap) {
                Ok(m) => found.push(m),
                Err(why) => broken.push(format!("snapshot {}: {why}", snap.id)),
            }
        }
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok((found, broken))
    }

    fn read(&self, m: &Manifest) -> Result<Box<dyn Read + Send>, StoreError> {
        self.read_snapshot(m, None)
    }

    fn read_paths(
        &self,
        m: &Manifest,
        wanted: &[String],
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        self.read_snapshot(m, Some(wanted))
    }

    fn with_file_list(&self, m: Manifest) -> Result<Manifest, StoreError> {
        if m.file_list_apart().is_none() {
            return Ok(m);
        }
        let repo = self.open_existing()?;
        let snap = self.snapshot_of(&repo, &m)?;
        let repo = repo
            .to_indexed()
            .map_err(|e| self.fail("reading the index", e))?;
        file_list::read_into(&repo, &snap, m).map_err(|why| {
            StoreError::Other(format!("{}: snapshot {}: {why}", self.describe(), snap.id))
        })
    }

    fn remove(&self, m: &Manifest) -> Result<(), StoreError> {
        let repo = self.open_existing()?;
        match self.snapshot_of(&repo, m) {
            Ok(snap) => repo
                .delete_snapshots(&[snap.id])
                .map_err(|e| self.fail("forgetting a snapshot", e)),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn bytes_freed(&self, doomed: &[Manifest]) -> Result<u64, StoreError> {
        let Some(repo) = self.open()? else {
            return Ok(0);
        };
        let mut ignore = Vec::new();
        for m in doomed {
            match self.snapshot_of(&repo, m) {
                Ok(s) => ignore.push(s.id),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let plan = repo
            .prune_plan(&Self::prune_options(ignore))
            .map_err(|e| self.fail("planning the prune", e))?;
        Ok(freed(&plan.stats))
    }

    fn reclaim(&self, ctx: &JobContext) -> Result<u64, StoreError> {
        let _alone = self.gate.prune();
        let Some(repo) = self.open()? else {
            return Ok(0);
        };
        ctx.progress.phase("pruning the repository");
        let opts = Self::prune_options(Vec::new());
        let plan = repo
            .prune_plan(&opts)
            .map_err(|e| self.fail("planning the prune", e))?;
        let bytes = freed(&plan.stats);
        repo.prune(&opts, plan)
            .map_err(|e| self.fail("pruning", e))?;
        Ok(bytes)
    }

    fn clean_leftovers(&self, target: &str) -> Result<usize, StoreError> {
        let Some(repo) = self.open()? else {
            return Ok(0);
        };
        // Snapshots of this target that are not whole backups: saves cut short right after
        // the commit by a cancellation or an unreadable spool.
        // Trees stored natively but never published are tagged unfinished.
        let partial: Vec<SnapshotId> = repo
            .get_all_snapshots()
            .map_err(|e| self.fail("listing snapshots", e))?
            .into_iter()
            .filter(|s| {
                snapshots::target_of(s).as_deref() == Some(target)
                    && (s.tags.contains(tree_write::UNFINISHED_TAG)
                        || (snapshots::is_ours(s) && snapshots::manifest_of(s).is_err()))
            })
            .map(|s| s.id)
            .collect();
        if !partial.is_empty() {
            repo.delete_snapshots(&partial)
                .map_err(|e| self.fail("forgetting interrupted snapshots", e))?;
        }
        Ok(partial.len())
    }

    fn discover(&self) -> Result<Discovered, StoreError> {
        let mut out = Discovered::default();
        let Some(repo) = self.open()? else {
            return Ok(out);
        };
        for snap in self.our_snapshots(&repo)? {
            match snapshots::manifest_of(&snap) {
                Ok(m) => out.backups.push(m),
                Err(why) => out.skipped.push(format!("snapshot {}: {why}", snap.id)),
            }
        }
        out.backups
            .sort_by(|a, b| (&a.target, &a.created_at).cmp(&(&b.target, &b.created_at)));
        Ok(out)
    }

    fn count(&self) -> Result<usize, StoreError> {
        let Some(repo) = self.open()? else {
            return Ok(0);
        };
        Ok(self
            .our_snapshots(&repo)?
            .iter()
            .filter(|s| snapshots::manifest_of(s).is_ok())
            .count())
    }

    fn check(&self, read_data: bool, ctx: &JobContext) -> Result<Vec<String>, StoreError> {
        let repo = self.open_existing()?;
        ctx.progress.phase(if read_data {
            "checking the repository, reading every pack"
        } else {
            "checking the repository"
        });
        let results = repo
            .check(CheckOptions::default().read_data(read_data))
            .map_err(|e| self.fail("checking", e))?;
        Ok(results
            .0
            .iter()
            // The level type is not exported; warnings (e.g. packs no index names, left by
            // an interrupted backup) do not affect integrity.
            .filter(|(level, _)| format!("{level:?}") == "Error")
            .map(|(_, e)| format!("repository check: {e}"))
            .collect())
    }

    fn init(&self) -> Result<bool, StoreError> {
        if self.open()?.is_some() {
            return Ok(false);
        }
        self.open_or_init()?;
        Ok(true)
    }
}

/// What a prune plan gives back: packs removed whole, the unused part of repacked
/// packs, and packs no index knows (left by interrupted backups).
fn freed(stats: &rustic_core::PruneStats) -> u64 {
    let size = stats.size_sum();
    size.remove + size.repackrm + stats.size_unref
}
