//! Putting a restored copy in place on another host: the same plan and the same rules
//! as on this host (stage next to the destination, check, move the current data aside,
//! rename the copy in, never delete), every filesystem step done by the host's own
//! shell. Paths are the host's: they are checked lexically here and looked at only there.

use std::path::{Component, Path, PathBuf};

use super::{JOURNALS, Move, Placement, Roots, aside_for, sibling, staging_for};
use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::ssh::Session;

/// Shell helpers every remote script starts with: `say` fails with a reason lifeboat
/// shows as is, `need` fails naming a missing command, and signals end the script
/// through its EXIT trap so temporary files never stay behind.
pub const PRELUDE: &str = r#"
say() { printf 'lifeboat-error: %s\n' "$*" >&2; exit 3; }
need() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 || { printf 'lifeboat-missing: %s\n' "$c" >&2; exit 127; }; done; }
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
"#;

/// For each argument: `d <physical path>` for a directory, `e` for anything else that
/// exists (dangling links included), `n` for nothing; NUL-terminated.
const PROBE: &str = r#"
for p in "$@"; do
  if [ -d "$p" ]; then printf 'd %s\0' "$(cd -P -- "$p" 2>/dev/null && pwd -P)"
  elif [ -e "$p" ] || [ -L "$p" ]; then printf 'e \0'
  else printf 'n \0'; fi
done
"#;

/// `$1` staging, `$2` destination, `$3` where the current data goes (empty: not in
/// place). Checks the plan still holds, creates the parent, clears our own leftovers.
const PREPARE: &str = r#"
need mkdir rm
there() { [ -e "$1" ] || [ -L "$1" ]; }
staging=$1 dest=$2 aside=$3
if [ -n "$aside" ]; then
  for s in "" -wal -shm -journal; do ! there "$aside$s" || say "$aside$s already exists; make a new plan"; done
elif there "$dest"; then
  say "$dest appeared since the plan was made; make a new plan"
fi
parent=${dest%/*}; [ -n "$parent" ] || parent=/
mkdir -p -- "$parent" || say "cannot create $parent"
rm -rf -- "$staging" "$staging-journal" "$staging-wal" "$staging-shm" || say "cannot remove the leftover $staging"
"#;

/// Same arguments. Moves the current data and the journal files present now aside, then
/// renames the restored copy in; if anything fails, what was moved is put back.
const SWAP: &str = r#"
need mv
there() { [ -e "$1" ] || [ -L "$1" ]; }
sfx() { [ "$1" = main ] || printf -- '-%s' "$1"; }
staging=$1 dest=$2 aside=$3 moved=
undo() { for k in $moved; do s=$(sfx "$k"); there "$dest$s" || mv -- "$aside$s" "$dest$s"; done; }
there "$staging" || say "the restored copy $staging is missing"
if [ -n "$aside" ]; then
  for k in main wal shm journal; do
    s=$(sfx "$k")
    ! there "$aside$s" || say "$aside$s already exists; make a new plan"
  done
  for k in main wal shm journal; do
    s=$(sfx "$k")
    if there "$dest$s"; then
      mv -- "$dest$s" "$aside$s" || { undo; say "could not move $dest$s aside; the current data was put back"; }
      moved="$moved $k"
    fi
  done
elif there "$dest"; then
  say "$dest appeared since the plan was made; make a new plan"
fi
if there "$dest"; then undo; say "$dest is in the way; the current data was put back"; fi
mv -- "$staging" "$dest" || { undo; say "could not rename the restored copy to $dest; the current data was put back"; }
"#;

fn script(body: &str) -> String {
    format!("{PRELUDE}{body}")
}

/// The plan of a restore of `backup_id` on the session's host, made by looking there
/// (nothing is written).
pub fn plan(
    session: &Session,
    roots: &Roots,
    backup_id: &str,
    to: Option<&Path>,
    ctx: &JobContext,
) -> Result<Placement> {
    let (destination, in_place) = match to {
        Some(to) => (check_destination(session, roots, to, ctx)?, false),
        None => (roots.live.clone(), true),
    };
    let mut move_aside = Vec::new();
    let aside = in_place.then(|| aside_for(&destination));
    if let Some(aside) = &aside {
        // The journal files belong to a database and travel with it; which are there is
        // looked at again when the plan is carried out.
        let mut candidates = vec![(destination.clone(), aside.clone())];
        for suffix in JOURNALS {
            candidates.push((sibling(&destination, suffix), sibling(aside, suffix)));
        }
        let paths: Vec<&Path> = candidates.iter().map(|(from, _)| from.as_path()).collect();
        let found = probe(session, &paths, ctx)?;
        for ((from, to), state) in candidates.into_iter().zip(found) {
            if state != Probe::Missing {
                move_aside.push(Move { from, to });
            }
        }
    }
    Ok(Placement {
        staging: staging_for(&destination, backup_id),
        destination,
        in_place,
        move_aside,
        aside,
        notes: Vec::new(),
        host: Some(session.remote().host.to_string()),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Probe {
    Missing,
    Exists,
    /// A directory, with its physical path (symlinks resolved) when it can be entered.
    Dir(Option<PathBuf>),
}

fn probe(session: &Session, paths: &[&Path], ctx: &JobContext) -> Result<Vec<Probe>> {
    let args: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = session.output(&script(PROBE), &args, "looking at the destination", ctx)?;
    let found: Vec<Probe> = out
        .split(|b| *b == 0)
        .take(paths.len())
        .map(|rec| match rec.first() {
            Some(b'd') => {
                let real = String::from_utf8_lossy(rec.get(2..).unwrap_or_default()).into_owned();
                Probe::Dir((!real.is_empty()).then(|| PathBuf::from(real)))
            }
            Some(b'e') => Probe::Exists,
            _ => Probe::Missing,
        })
        .collect();
    if found.len() != paths.len() {
        return Err(Error::Failed(format!(
            "unexpected answer from {} when looking at the destination",
            session.remote().host
        )));
    }
    Ok(found)
}

/// `--to` on a remote host: absolute, no `..`, a new name in an existing directory under
/// the target's own location or a restore root, also once symlinks are followed there.
fn check_destination(
    session: &Session,
    roots: &Roots,
    to: &Path,
    ctx: &JobContext,
) -> Result<PathBuf> {
    let shown = to.display();
    if !to.is_absolute() {
        return Err(Error::Usage(format!(
            "--to {shown}: give an absolute path on the target's host"
        )));
    }
    if to.components().any(|c| c == Component::ParentDir) {
        return Err(Error::Usage(format!(
            "--to {shown}: `..` is not allowed in a destination"
        )));
    }
    let to: PathBuf = to.components().collect(); // drops `.` and doubled slashes
    let (Some(parent), Some(_)) = (to.parent(), to.file_name()) else {
        return Err(Error::Usage("--to: not a usable path".into()));
    };
    let roots = roots.all();
    let listed: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    let refuse = || {
        Error::Usage(format!(
            "--to {}: restores of this target may only write under {} on its host",
            to.display(),
            listed.join(" or ")
        ))
    };
    if !roots.iter().any(|r| parent.starts_with(r)) {
        return Err(refuse());
    }
    let mut paths: Vec<&Path> = vec![&to, parent];
    paths.extend(roots.iter().map(PathBuf::as_path));
    let found = probe(session, &paths, ctx)?;
    if found[0] != Probe::Missing {
        return Err(Error::Usage(format!(
            "--to {}: it already exists; choose a path that does not exist yet",
            to.display()
        )));
    }
    let Probe::Dir(Some(real_parent)) = &found[1] else {
        return Err(Error::Usage(format!(
            "--to {}: the directory {} does not exist on the host",
            to.display(),
            parent.display()
        )));
    };
    // A symlink inside a root must not lead the restore somewhere else.
    let inside = found[2..].iter().any(|r| match r {
        Probe::Dir(Some(real_root)) => real_parent.starts_with(real_root),
        _ => false,
    });
    if !inside {
        return Err(refuse());
    }
    Ok(to)
}

/// The three arguments PREPARE and SWAP take.
fn args(at: &Placement) -> [String; 3] {
    let text = |p: &Path| p.to_string_lossy().into_owned();
    [
        text(&at.staging),
        text(&at.destination),
        at.aside.as_deref().map(text).unwrap_or_default(),
    ]
}

/// Before staging: the plan still holds, the parent exists, our own leftovers are gone.
pub(crate) fn prepare(session: &Session, at: &Placement, ctx: &JobContext) -> Result<()> {
    let args = args(at);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    session.output(&script(PREPARE), &args, "preparing the restore", ctx)?;
    Ok(())
}

/// Move the current data aside and rename the staged copy in, all on the host.
pub(crate) fn put_in_place(
    session: &Session,
    at: &Placement,
    ctx: &JobContext,
) -> Result<Vec<Move>> {
    let args = args(at);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    session.output(
        &script(SWAP),
        &args,
        "moving the restored copy into place",
        ctx,
    )?;
    Ok(at.move_aside.clone())
}

/// Remove what was staged; the current data was not touched.
pub(crate) fn discard(session: &Session, at: &Placement) {
    let staging = at.staging.to_string_lossy();
    let _ = session.output(
        "rm -rf -- \"$1\" \"$1-journal\" \"$1-wal\" \"$1-shm\"",
        &[&staging],
        "removing the unfinished copy",
        &JobContext::silent(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_valid_sh() {
        for body in [PROBE, PREPARE, SWAP] {
            crate::ssh::assert_valid_sh(&script(body));
        }
    }
}
