//! Putting a restored copy in place on this host: the plan (checking `--to` against the
//! target's roots, symlinks resolved), the checks that it still holds, and the renames.

use std::path::{Component, Path, PathBuf};

use super::{JOURNALS, Move, Placement, Roots, aside_for, sibling, staging_for};
use crate::error::{Error, Result};

/// The plan of a restore of `backup_id` on this host. Nothing is written.
pub fn plan(roots: &Roots, backup_id: &str, to: Option<&Path>) -> Result<Placement> {
    let (destination, in_place) = match to {
        Some(to) => (check_destination(roots, to)?, false),
        None => (roots.live.clone(), true),
    };
    let aside = in_place.then(|| aside_for(&destination));
    let move_aside = aside
        .as_deref()
        .map(|a| moves_for(&destination, a))
        .unwrap_or_default();
    Ok(Placement {
        staging: staging_for(&destination, backup_id),
        destination,
        in_place,
        move_aside,
        aside,
        notes: Vec::new(),
        host: None,
    })
}

/// What moving `destination` aside to `aside` involves right now: the data itself and
/// its journal files (`-wal`, `-shm`, `-journal`), which belong to a database and must
/// travel with it.
pub(crate) fn moves_for(destination: &Path, aside: &Path) -> Vec<Move> {
    let mut moves = Vec::new();
    if destination.symlink_metadata().is_ok() {
        moves.push(Move {
            from: destination.to_path_buf(),
            to: aside.to_path_buf(),
        });
    }
    for suffix in JOURNALS {
        let from = sibling(destination, suffix);
        if from.symlink_metadata().is_ok() {
            let to = sibling(aside, suffix);
            moves.push(Move { from, to });
        }
    }
    moves
}

/// `--to` must be a new path under the target's own location or one of its restore roots.
fn check_destination(roots: &Roots, to: &Path) -> Result<PathBuf> {
    if to.components().any(|c| c == Component::ParentDir) {
        return Err(Error::Usage(format!(
            "--to {}: `..` is not allowed in a destination",
            to.display()
        )));
    }
    let to = if to.is_absolute() {
        to.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("reading the current directory", e))?
            .join(to)
    };
    if to.symlink_metadata().is_ok() {
        return Err(Error::Usage(format!(
            "--to {}: it already exists; choose a path that does not exist yet",
            to.display()
        )));
    }
    let roots = roots.all();
    let parent = to
        .parent()
        .ok_or_else(|| Error::Usage("--to: not a usable path".into()))?;
    let real_parent = std::fs::canonicalize(parent).map_err(|_| {
        Error::Usage(format!(
            "--to {}: the directory {} does not exist",
            to.display(),
            parent.display()
        ))
    })?;
    let allowed = roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .any(|root| real_parent.starts_with(&root));
    if !allowed {
        let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(Error::Usage(format!(
            "--to {}: restores of this target may only write under {}",
            to.display(),
            shown.join(" or ")
        )));
    }
    Ok(real_parent.join(to.file_name().expect("has a file name")))
}

/// Before staging: the plan still holds (nothing in the way of the moves, a new
/// destination still new), the parent exists, our own leftovers are gone.
pub(crate) fn prepare(at: &Placement) -> Result<()> {
    let planned_aside = at.aside.as_deref().map(|a| moves_for(&at.destination, a));
    for m in planned_aside.iter().flatten() {
        if m.to.symlink_metadata().is_ok() {
            return Err(Error::Failed(format!(
                "{} already exists; make a new plan",
                m.to.display()
            )));
        }
    }
    if !at.in_place && at.destination.symlink_metadata().is_ok() {
        return Err(Error::Failed(format!(
            "{} appeared since the plan was made; make a new plan",
            at.destination.display()
        )));
    }
    if let Some(parent) = at.destination.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    remove_staging(&at.staging)
}

/// Move the current data aside (the journal files there now: they may have come or gone
/// since the plan was made) and rename the staged copy in.
pub(crate) fn put_in_place(at: &Placement) -> Result<Vec<Move>> {
    let moves = at
        .aside
        .as_deref()
        .map(|a| moves_for(&at.destination, a))
        .unwrap_or_default();
    for m in &moves {
        std::fs::rename(&m.from, &m.to).map_err(|e| {
            Error::io(
                format!("moving {} aside to {}", m.from.display(), m.to.display()),
                e,
            )
        })?;
    }
    std::fs::rename(&at.staging, &at.destination).map_err(|e| {
        Error::io(
            format!("renaming the restored copy to {}", at.destination.display()),
            e,
        )
    })?;
    if let Some(parent) = at.destination.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(moves)
}

/// Our own staging leftovers from an interrupted restore are safe to remove.
pub(crate) fn remove_staging(staging: &Path) -> Result<()> {
    let r = match staging.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(staging),
        Ok(_) => std::fs::remove_file(staging),
        Err(_) => return Ok(()),
    };
    r.map_err(|e| Error::io(format!("removing the leftover {}", staging.display()), e))
}
