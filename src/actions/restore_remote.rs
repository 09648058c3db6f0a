//! Restores of targets on another host: the same plan and the same rules as a local
//! restore (stage next to the destination, check, move the current data aside, rename
//! the copy in, never delete), every filesystem step done by the host's own shell.
//! Paths are the host's: they are checked lexically here and looked at only there.

use std::path::{Component, Path, PathBuf};

use chrono::Utc;

use crate::actions::catalog::{Selector, find};
use crate::actions::restore::{
    Move, RestoreOutcome, RestorePlan, failed_checks, sibling, stream_content,
};
use crate::app::App;
use crate::config::{TargetConfig, TargetKind};
use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::sources::remote_sqlite::PRELUDE;
use crate::sources::{remote_directory, remote_sqlite, sqlite};
use crate::ssh::{Remote, Session};

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

/// The plan for a remote target, made by looking at the host (nothing is written).
pub fn plan(
    app: &App,
    target: &str,
    cfg: &TargetConfig,
    selector: &Selector,
    to: Option<&Path>,
) -> Result<RestorePlan> {
    let remote = Remote::of_target(cfg)?.expect("called for remote targets");
    let backup = find(app, target, selector)?;
    let live = cfg
        .path
        .clone()
        .expect("validated: path-based kind has a path");
    let ctx = JobContext::silent();
    let session = Session::open(&remote, &ctx)?;
    let (destination, in_place) = match to {
        Some(to) => (check_destination(&session, cfg, &live, to, &ctx)?, false),
        None => (live.clone(), true),
    };
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut move_aside = Vec::new();
    let mut notes = Vec::new();
    let aside = in_place.then(|| sibling(&destination, &format!(".pre-restore-{stamp}")));
    if let Some(aside) = &aside {
        // The journal files belong to a database and travel with it; which are there is
        // looked at again when the plan is carried out.
        let mut candidates = vec![(destination.clone(), aside.clone())];
        for suffix in ["-wal", "-shm", "-journal"] {
            candidates.push((sibling(&destination, suffix), sibling(aside, suffix)));
        }
        if cfg.kind == TargetKind::Sqlite {
            notes.push("stop the application using this database first; it would keep writing to the moved-aside file".into());
        }
        let paths: Vec<&Path> = candidates.iter().map(|(from, _)| from.as_path()).collect();
        let found = probe(&session, &paths, &ctx)?;
        for ((from, to), state) in candidates.into_iter().zip(found) {
            if state != Probe::Missing {
                move_aside.push(Move { from, to });
            }
        }
    }
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let staging = destination.with_file_name(format!(".{name}.lifeboat-restore-{}", backup.id));
    Ok(RestorePlan {
        target: target.to_string(),
        backup_age_seconds: (Utc::now() - backup.created()).num_seconds(),
        backup: backup.summary(),
        destination,
        in_place,
        move_aside,
        aside,
        staging,
        notes,
        host: Some(remote.host.to_string()),
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
    cfg: &TargetConfig,
    live: &Path,
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
    let own_root = match cfg.kind {
        TargetKind::Sqlite => live.parent().map(Path::to_path_buf),
        _ => Some(live.to_path_buf()),
    };
    let roots: Vec<PathBuf> = own_root
        .into_iter()
        .chain(cfg.restore_roots.iter().cloned())
        .collect();
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

/// Carry out a remote plan; the caller holds the target's lock.
pub fn apply_locked(app: &App, plan: &RestorePlan, ctx: &JobContext) -> Result<RestoreOutcome> {
    let clock = std::time::Instant::now();
    let cfg = app.target(&plan.target)?;
    let remote = Remote::of_target(cfg)?.expect("a plan with a host is for a remote target");
    let session = Session::open(&remote, ctx)?;
    let staging = plan.staging.to_string_lossy().into_owned();
    let dest = plan.destination.to_string_lossy().into_owned();
    let aside = plan
        .aside
        .as_ref()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args = [staging.as_str(), dest.as_str(), aside.as_str()];
    session.output(&script(PREPARE), &args, "preparing the restore", ctx)?;

    if let Err(e) = stage(app, &session, plan, ctx) {
        // Remove what was staged; the current data was not touched.
        let _ = session.output(
            "rm -rf -- \"$1\" \"$1-journal\" \"$1-wal\" \"$1-shm\"",
            &[&staging],
            "removing the unfinished copy",
            &JobContext::silent(),
        );
        return Err(match e {
            Error::Cancelled => Error::Cancelled,
            other => Error::Failed(format!("{other}; nothing was changed")),
        });
    }

    ctx.progress.phase("moving into place");
    session.output(
        &script(SWAP),
        &args,
        "moving the restored copy into place",
        ctx,
    )?;
    Ok(RestoreOutcome {
        plan: plan.clone(),
        ok: true,
        duration_seconds: clock.elapsed().as_secs_f64(),
    })
}

/// Stream the backup into the staging path on the host and check it there.
fn stage(app: &App, session: &Session, plan: &RestorePlan, ctx: &JobContext) -> Result<()> {
    let m = &plan.backup;
    match m.kind.as_str() {
        "sqlite" => {
            let like = plan.in_place.then_some(plan.destination.as_path());
            let mut arrived = None;
            stream_content(app, plan, ctx, |content| {
                arrived = Some(remote_sqlite::stage(
                    session,
                    content,
                    &plan.staging,
                    m.content_bytes,
                    like,
                    ctx,
                )?);
                Ok(())
            })?;
            if let (Some(expected), Some(got)) = (&m.sqlite, arrived) {
                ctx.progress.phase("checking the restored database");
                let problems =
                    sqlite::compare("quick_check", &got.quick_check, &got.tables, expected);
                failed_checks(m, problems)?;
            }
            Ok(())
        }
        "directory" => stream_content(app, plan, ctx, |content| {
            remote_directory::stage(session, content, &plan.staging, ctx)
        }),
        other => Err(Error::Failed(format!(
            "cannot restore backups of kind {other}"
        ))),
    }
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
