//! Putting a restored copy in place, the same way on every host: the plan's shape
//! ([`Placement`]), and the rules both places share (stage next to the destination,
//! move the current data and its journal files aside to `<path>.pre-restore-<UTC
//! timestamp>`, rename the copy in, never delete). `local` does it with this host's
//! filesystem calls, `ssh` with the other host's shell.

pub mod local;
pub mod ssh;

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};

/// One rename of current data out of the way.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Move {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// Where a restore writes and what it moves: the part of a restore plan a source makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub destination: PathBuf,
    pub in_place: bool,
    /// Current data moved aside before the restored copy is renamed in.
    pub move_aside: Vec<Move>,
    /// In place: where the current data goes (journal files get the same name + suffix).
    pub aside: Option<PathBuf>,
    /// Where the restored copy is assembled before it is renamed into place.
    pub staging: PathBuf,
    pub notes: Vec<String>,
    /// The host the paths are on (`user@host:port`); absent for this machine.
    pub host: Option<String>,
}

/// Where a target's restores may write: beside its own data, and its `restore_roots`.
#[derive(Debug, Clone)]
pub struct Roots {
    /// The live data's path.
    pub live: PathBuf,
    /// The directory `--to` may write under besides the restore roots: the database's
    /// directory, or the tree itself.
    pub own: Option<PathBuf>,
    pub restore_roots: Vec<PathBuf>,
}

impl Roots {
    /// Every directory `--to` may write under.
    pub fn all(&self) -> Vec<PathBuf> {
        self.own
            .iter()
            .chain(&self.restore_roots)
            .cloned()
            .collect()
    }
}

/// The journal files that belong to a database and travel with it when it is moved.
pub(crate) const JOURNALS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Where the current data at `destination` goes: `<path>.pre-restore-<UTC timestamp>`.
pub(crate) fn aside_for(destination: &Path) -> PathBuf {
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    sibling(destination, &format!(".pre-restore-{stamp}"))
}

/// Where the copy of `backup_id` is staged: a hidden name beside the destination, on the
/// same filesystem so that putting it in place is a rename.
pub(crate) fn staging_for(destination: &Path, backup_id: &str) -> PathBuf {
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    destination.with_file_name(format!(".{name}.lifeboat-restore-{backup_id}"))
}

/// The note an in-place restore of a database carries.
pub(crate) const STOP_THE_APP: &str =
    "stop the application using this database first; it would keep writing to the moved-aside file";
