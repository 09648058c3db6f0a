//! btrfs snapshots of a directory target (`snapshot = "btrfs"`): a read-only snapshot of
//! the target's subvolume, taken beside it at the start of the copy, read instead of the
//! live tree (the archive's paths are relative to the root, so the backup has the shape
//! of one taken from the live tree), and removed at the end, whatever happened. One a
//! crash left behind is recognised by its name and removed at the target's next backup
//! and when `serve` starts, always under the target's lock.
//!
//! A snapshot is atomic: every file is as it was at one instant, as after a power cut,
//! which is what databases that survive a power cut (DuckDB, SQLite) recover from; the
//! application never has to pause.
//!
//! The kernel calls themselves are in `btrfs`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::btrfs::{self, SUBVOLUME_ROOT_INODE, SUPER_MAGIC};
use crate::config;
use crate::error::{Error, Result};
use crate::progress::JobContext;

/// What a snapshot of `target`'s data is called, after this prefix and a time stamp. Target
/// names have no dots, so one target's prefix never matches another's snapshots.
fn name_prefix(target: &str) -> String {
    format!(".{target}.lifeboat-snapshot.")
}

/// Check that `path` can be snapshotted: the root of a btrfs subvolume with no other
/// subvolume inside (a snapshot would leave those out), whose parent directory is on the
/// same btrfs filesystem (the snapshot is made there). The refusal says what to do.
pub fn check(path: &Path) -> Result<()> {
    let refused = |why: String| {
        Error::Failed(format!(
            "snapshot = \"btrfs\": {why}; see \"Directory targets on btrfs\" in the README"
        ))
    };
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if !meta.is_dir() {
        return Err(refused(format!("{} is not a directory", path.display())));
    }
    let fs = filesystem_type(path)?;
    if fs != SUPER_MAGIC {
        return Err(refused(format!(
            "{} is on {}, not on btrfs; remove `snapshot`, or keep the data in a btrfs subvolume",
            path.display(),
            btrfs::filesystem_name(fs)
        )));
    }
    if meta.ino() != SUBVOLUME_ROOT_INODE {
        return Err(refused(format!(
            "{} is a plain directory on btrfs, not the root of a subvolume; make it one \
             (`btrfs subvolume create`, then move the files in), or set `path` to the subvolume",
            path.display()
        )));
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| {
            refused(format!(
                "{} has no directory above it to hold a snapshot",
                path.display()
            ))
        })?;
    if filesystem_type(parent)? != SUPER_MAGIC {
        return Err(refused(format!(
            "{} is where its btrfs filesystem is mounted, and a snapshot is made beside the \
             path inside the same filesystem, but {} is on another one; keep the data in a \
             subvolume below the mount point (e.g. `btrfs subvolume create {}/data`)",
            path.display(),
            parent.display(),
            path.display()
        )));
    }
    if !btrfs::may_delete_snapshots() {
        return Err(refused(format!(
            "deleting a snapshot of {} takes root or CAP_SYS_ADMIN, which lifeboat runs without \
             (uid {}); give it CAP_SYS_ADMIN, CAP_FOWNER and CAP_DAC_OVERRIDE \
             (systemd: AmbientCapabilities=, docker: --cap-add)",
            path.display(),
            unsafe { libc::geteuid() }
        )));
    }
    let nested = btrfs::nested_subvolumes(&open_dir(path)?).map_err(|e| {
        Error::io(
            format!("listing the subvolumes inside {}", path.display()),
            e,
        )
    })?;
    if nested > 0 {
        return Err(refused(format!(
            "{} holds {nested} other btrfs subvolume(s) (`btrfs subvolume list -o {}` lists them), \
             and a snapshot leaves their files out: back those up as targets of their own and \
             make them plain directories here, or remove `snapshot`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

/// What `config check` finds wrong with a target's `snapshot` on this host.
pub fn setup_problems(asked: Option<config::Snapshot>, path: &Path, target: &str) -> Vec<String> {
    let problem = match asked {
        Some(config::Snapshot::Btrfs) if path.exists() => check(path).err(),
        _ => None,
    };
    problem
        .map(|e| format!("targets.{target}.snapshot: {e}"))
        .into_iter()
        .collect()
}

/// Remove the snapshots a crashed backup of the target left (see [`remove_leftovers`]);
/// what was removed, in words.
pub fn clean_after_crash(
    asked: Option<config::Snapshot>,
    path: &Path,
    target: &str,
) -> Result<Vec<String>> {
    if asked.is_none() {
        return Ok(Vec::new());
    }
    Ok(remove_leftovers(path, target)?
        .iter()
        .map(|p| {
            format!(
                "removed the btrfs snapshot {} an interrupted backup left",
                p.display()
            )
        })
        .collect())
}

/// At the start of a backup, under the target's lock: refuse a path that cannot be
/// snapshotted before anything is written, and remove what a crash left.
pub fn before_backup(asked: Option<config::Snapshot>, path: &Path, target: &str) -> Result<()> {
    if asked.is_some() {
        check(path)?;
        for removed in clean_after_crash(asked, path, target)? {
            tracing::warn!(target = target, "{removed}");
        }
    }
    Ok(())
}

/// Run `read` on the tree to back up: a snapshot of `path` taken now when one is asked
/// for (removed again however `read` ends), else `path` itself.
pub fn reading<T>(
    asked: Option<config::Snapshot>,
    path: &Path,
    target: &str,
    ctx: &JobContext,
    read: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    let Some(config::Snapshot::Btrfs) = asked else {
        return read(path);
    };
    let taken = Snapshot::take(path, target, ctx)?;
    let read = read(taken.path())?;
    if let Err(e) = taken.remove() {
        // What was read is whole; the next backup removes what is left.
        tracing::warn!(target = target, "{e}");
    }
    Ok(read)
}

/// A read-only snapshot of a target's subvolume, beside it; removed when dropped.
pub struct Snapshot {
    /// Where the snapshot is, for reading.
    at: PathBuf,
    /// The directory holding it, and its name there (what the kernel deletes by).
    beside: File,
    name: OsString,
    removed: bool,
}

impl Snapshot {
    /// Take a read-only snapshot of `live` (checked by [`check`]) for a backup of `target`.
    pub fn take(live: &Path, target: &str, ctx: &JobContext) -> Result<Snapshot> {
        ctx.progress.phase("taking a btrfs snapshot");
        check(live)?;
        let parent = live
            .parent()
            .expect("check() refuses a path without a parent");
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ").to_string();
        let name = format!("{}{}", name_prefix(target), stamp.replace('.', ""));
        let source = open_dir(live)?;
        let beside = open_dir(parent)?;
        let at = parent.join(&name);
        let taken = btrfs::snapshot_readonly(&source, &beside, OsStr::new(&name));
        if let Err(e) = taken {
            let denied = matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES));
            let hint = if denied {
                format!(
                    " (lifeboat's user must own {} or have CAP_FOWNER, and write {} or have CAP_DAC_OVERRIDE)",
                    live.display(),
                    parent.display()
                )
            } else {
                String::new()
            };
            return Err(Error::io(
                format!(
                    "taking a btrfs snapshot of {} at {}{hint}",
                    live.display(),
                    at.display()
                ),
                e,
            ));
        }
        tracing::debug!("took the btrfs snapshot {}", at.display());
        Ok(Snapshot {
            at,
            beside,
            name: name.into(),
            removed: false,
        })
    }

    /// Where the snapshot can be read.
    pub fn path(&self) -> &Path {
        &self.at
    }

    /// Delete the snapshot now.
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        btrfs::delete_subvolume(&self.beside, &self.name).map_err(|e| {
            Error::io(
                format!("removing the btrfs snapshot {}", self.at.display()),
                e,
            )
        })
    }
}

impl Drop for Snapshot {
    /// A copy that failed, was cancelled or panicked still removes its snapshot.
    fn drop(&mut self) {
        if !self.removed
            && let Err(e) = btrfs::delete_subvolume(&self.beside, &self.name)
        {
            tracing::warn!(
                "could not remove the btrfs snapshot {} (the next backup tries again): {e}",
                self.at.display()
            );
        }
    }
}

/// Remove the snapshots of `target`'s data at `live` that an interrupted backup left
/// beside it; the caller holds the target's lock. Only subvolumes named as lifeboat
/// names its snapshots are removed, never a plain directory. The paths removed.
pub fn remove_leftovers(live: &Path, target: &str) -> Result<Vec<PathBuf>> {
    let Some(parent) = live.parent().filter(|p| p.is_dir()) else {
        return Ok(Vec::new());
    };
    let listed = std::fs::read_dir(parent)
        .map_err(|e| Error::io(format!("listing {}", parent.display()), e))?;
    let mut removed = Vec::new();
    let mut beside = None;
    for entry in listed {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", parent.display()), e))?;
        let name = entry.file_name();
        let at = entry.path();
        let is_snapshot = is_snapshot_name(target, &name)
            && std::fs::symlink_metadata(&at)
                .is_ok_and(|m| m.is_dir() && m.ino() == SUBVOLUME_ROOT_INODE)
            && btrfs::filesystem_type(&at).is_ok_and(|t| t == SUPER_MAGIC);
        if !is_snapshot {
            continue;
        }
        if beside.is_none() {
            beside = Some(open_dir(parent)?);
        }
        let dir = beside.as_ref().expect("opened above");
        btrfs::delete_subvolume(dir, &name).map_err(|e| {
            Error::io(
                format!("removing the leftover btrfs snapshot {}", at.display()),
                e,
            )
        })?;
        removed.push(at);
    }
    Ok(removed)
}

/// What the plan of a restore in place says of a target read from snapshots.
pub const RESTORE_NOTE: &str = "the restored tree is staged in a new btrfs subvolume, so the path stays one and the next backup can snapshot it";

/// Make `path` a new, empty btrfs subvolume: a restore in place stages the tree in one, so
/// the target's path is still a subvolume once the copy is renamed in.
pub fn create_subvolume(path: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Failed(format!(
            "{} is not a usable path",
            path.display()
        )));
    };
    btrfs::create_subvolume(&open_dir(parent)?, name).map_err(|e| {
        Error::io(
            format!("creating the btrfs subvolume {}", path.display()),
            e,
        )
    })
}

fn open_dir(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// `statfs`'s filesystem type of `path`, failures in words.
fn filesystem_type(path: &Path) -> Result<i64> {
    btrfs::filesystem_type(path)
        .map_err(|e| Error::io(format!("reading the filesystem of {}", path.display()), e))
}

/// Whether `name` is one lifeboat gives a snapshot of `target`'s data.
fn is_snapshot_name(target: &str, name: &OsStr) -> bool {
    name.as_bytes()
        .strip_prefix(name_prefix(target).as_bytes())
        .is_some_and(|s| !s.is_empty() && s.iter().all(u8::is_ascii_alphanumeric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_targets_snapshot_names_never_match_anothers() {
        let name = OsStr::new(".app-a.lifeboat-snapshot.20261205T150000123456Z");
        assert!(is_snapshot_name("app-a", name));
        assert!(!is_snapshot_name("app", name));
        assert!(!is_snapshot_name(
            "app-a",
            OsStr::new(".app-a.lifeboat-snapshot.")
        ));
        assert!(!is_snapshot_name(
            "app-a",
            OsStr::new(".app-a.lifeboat-snapshot.x.y")
        ));
    }

    #[test]
    fn a_path_on_tmpfs_or_ext4_is_refused_naming_its_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let e = check(dir.path()).unwrap_err().to_string();
        let on_btrfs = filesystem_type(dir.path()).unwrap() == SUPER_MAGIC;
        let why = if on_btrfs {
            "not the root of a subvolume"
        } else {
            "not on btrfs"
        };
        assert!(e.contains(why) && e.contains("snapshot = \"btrfs\""), "{e}");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = check(&file).unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[test]
    fn nothing_is_removed_beside_a_path_that_has_no_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("data");
        std::fs::create_dir(&live).unwrap();
        // A plain directory with a snapshot's name is never taken for one.
        let lookalike = dir.path().join(".t.lifeboat-snapshot.20261205T150000Z");
        std::fs::create_dir(&lookalike).unwrap();
        assert!(remove_leftovers(&live, "t").unwrap().is_empty());
        assert!(lookalike.is_dir());
    }
}
