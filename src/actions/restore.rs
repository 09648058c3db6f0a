//! Restore: build a plan (which backup, where, what is moved aside) that dry-run prints,
//! approvals bind to, and `apply` executes: stage next to the destination, check, move the
//! current data aside, rename the restored copy in. Current data is never deleted.

use std::path::{Component, Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::actions::catalog::{Selector, find};
use crate::actions::restore_remote;
use crate::app::App;
use crate::config::{TargetConfig, TargetKind};
use crate::error::{Error, Result};
use crate::executor::JobOutput;
use crate::pipe::{DurableFile, HashReader, ProgressReader};
use crate::progress::JobContext;
use crate::sources::{directory, sqlite};
use crate::stores::manifest::Manifest;
pub use crate::units::human_age;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Move {
    pub from: PathBuf,
    pub to: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RestorePlan {
    pub target: String,
    pub backup: Manifest,
    pub backup_age_seconds: i64,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    #[serde(flatten)]
    pub plan: RestorePlan,
    pub ok: bool,
    pub duration_seconds: f64,
}

impl JobOutput for RestoreOutcome {
    fn backup_id(&self) -> Option<String> {
        Some(self.plan.backup.id.clone())
    }
    fn summary(&self) -> String {
        format!(
            "restored backup {} of {} to {}",
            self.plan.backup.id,
            self.plan.target,
            self.plan.destination.display()
        )
    }
}

impl RestorePlan {
    /// The plan in words, as dry-run, the CLI and the approval message show it.
    pub fn describe(&self) -> String {
        let b = &self.backup;
        let mut out = format!(
            "Restore plan for {}\n  backup:      {} (taken {}, {} old, {})\n  destination: {}{}{}\n",
            self.target,
            b.id,
            b.created_at,
            human_age(self.backup_age_seconds),
            crate::units::human_bytes(b.content_bytes),
            self.host
                .as_ref()
                .map(|h| format!("{h}:"))
                .unwrap_or_default(),
            self.destination.display(),
            if self.in_place {
                " (in place)"
            } else {
                " (new copy)"
            },
        );
        if self.move_aside.is_empty() {
            out.push_str("  move aside:  nothing (no current data at the destination)\n");
        }
        for m in &self.move_aside {
            out.push_str(&format!(
                "  move aside:  {} -> {}\n",
                m.from.display(),
                m.to.display()
            ));
        }
        out.push_str(&format!(
            "  steps:       download and check into {}, then rename it to {}\n",
            self.staging.display(),
            self.destination.display()
        ));
        for n in &self.notes {
            out.push_str(&format!("  note:        {n}\n"));
        }
        out
    }
}

/// Build the restore plan. Nothing is written.
pub fn plan(
    app: &App,
    target: &str,
    selector: &Selector,
    to: Option<&Path>,
) -> Result<RestorePlan> {
    let cfg = app.target(target)?;
    // A kind restored otherwise (gcp-disk: a new disk) says how, from the command line.
    crate::actions::kind::of(cfg.kind).restores_to_a_path(target)?;
    if !matches!(cfg.kind, TargetKind::Sqlite | TargetKind::Directory) {
        return Err(Error::Usage(format!(
            "restores of {target} ({}) are not available in this build of lifeboat",
            cfg.kind.as_str(),
        )));
    }
    if cfg.host.is_some() {
        return restore_remote::plan(app, target, cfg, selector, to);
    }
    let backup = find(app, target, selector)?;
    let live = cfg
        .path
        .clone()
        .expect("validated: path-based kind has a path");
    let (destination, in_place) = match to {
        Some(to) => (check_destination(cfg, &live, to)?, false),
        None => (live.clone(), true),
    };
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut notes = Vec::new();
    let aside = in_place.then(|| sibling(&destination, &format!(".pre-restore-{stamp}")));
    let move_aside = aside
        .as_deref()
        .map(|a| moves_for(&destination, a))
        .unwrap_or_default();
    if in_place && cfg.kind == TargetKind::Sqlite {
        notes.push("stop the application using this database first; it would keep writing to the moved-aside file".into());
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
    for suffix in ["-wal", "-shm", "-journal"] {
        let from = sibling(destination, suffix);
        if from.symlink_metadata().is_ok() {
            let to = sibling(aside, suffix);
            moves.push(Move { from, to });
        }
    }
    moves
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `--to` must be a new path under the target's own location or one of its restore roots.
fn check_destination(cfg: &TargetConfig, live: &Path, to: &Path) -> Result<PathBuf> {
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
    let own_root = match cfg.kind {
        TargetKind::Sqlite => live.parent().map(Path::to_path_buf),
        _ => Some(live.to_path_buf()),
    };
    let roots: Vec<PathBuf> = own_root
        .into_iter()
        .chain(cfg.restore_roots.iter().cloned())
        .collect();
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

/// Run a plan as a job.
pub fn apply(
    app: &App,
    plan: &RestorePlan,
    actor: &str,
    ctx: &JobContext,
) -> Result<RestoreOutcome> {
    let done = app
        .executor
        .run("restore", &plan.target, actor, ctx, |_, ctx| {
            if plan.host.is_some() {
                restore_remote::apply_locked(app, plan, ctx)
            } else {
                apply_locked(app, plan, ctx)
            }
        })?;
    Ok(done.value)
}

fn apply_locked(app: &App, plan: &RestorePlan, ctx: &JobContext) -> Result<RestoreOutcome> {
    let clock = std::time::Instant::now();
    let planned_aside = plan
        .aside
        .as_deref()
        .map(|a| moves_for(&plan.destination, a));
    for m in planned_aside.iter().flatten() {
        if m.to.symlink_metadata().is_ok() {
            return Err(Error::Failed(format!(
                "{} already exists; make a new plan",
                m.to.display()
            )));
        }
    }
    if !plan.in_place && plan.destination.symlink_metadata().is_ok() {
        return Err(Error::Failed(format!(
            "{} appeared since the plan was made; make a new plan",
            plan.destination.display()
        )));
    }
    if let Some(parent) = plan.destination.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    remove_staging(&plan.staging)?;
    let staged = stage(app, plan, ctx);
    if let Err(e) = staged {
        let _ = remove_staging(&plan.staging);
        return Err(match e {
            Error::Cancelled => Error::Cancelled,
            other => Error::Failed(format!("{other}; nothing was changed")),
        });
    }
    ctx.progress.phase("moving into place");
    // Journal files may have come or gone since the plan was made: move what is there now.
    let moves = plan
        .aside
        .as_deref()
        .map(|a| moves_for(&plan.destination, a))
        .unwrap_or_default();
    for m in &moves {
        std::fs::rename(&m.from, &m.to).map_err(|e| {
            Error::io(
                format!("moving {} aside to {}", m.from.display(), m.to.display()),
                e,
            )
        })?;
    }
    std::fs::rename(&plan.staging, &plan.destination).map_err(|e| {
        Error::io(
            format!(
                "renaming the restored copy to {}",
                plan.destination.display()
            ),
            e,
        )
    })?;
    if let Some(parent) = plan.destination.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    let mut done = plan.clone();
    done.move_aside = moves;
    Ok(RestoreOutcome {
        plan: done,
        ok: true,
        duration_seconds: clock.elapsed().as_secs_f64(),
    })
}

/// Our own staging leftovers from an interrupted restore are safe to remove.
fn remove_staging(staging: &Path) -> Result<()> {
    let r = match staging.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(staging),
        Ok(_) => std::fs::remove_file(staging),
        Err(_) => return Ok(()),
    };
    r.map_err(|e| Error::io(format!("removing the leftover {}", staging.display()), e))
}

/// Download, decompress and check the backup into the staging path.
fn stage(app: &App, plan: &RestorePlan, ctx: &JobContext) -> Result<()> {
    let m = &plan.backup;
    stream_content(app, plan, ctx, |content| {
        write_content(m, content, &plan.staging, ctx)
    })?;
    if let Some(facts) = &m.sqlite {
        // The copy's bytes were just proven identical to the backup's content (SHA-256),
        // so its quick_check and row counts are those recorded when the backup was taken;
        // reading 1 GiB again would only repeat them (`verify` and drills do re-run them).
        // A backup whose recorded check found problems still fails here.
        let problems = sqlite::compare("quick_check", &facts.quick_check, &facts.tables, facts);
        failed_checks(m, problems)?;
    }
    Ok(())
}

/// Write a backup's decompressed content to the new path `dest`: the database file, or
/// the tree extracted safely (restores stage with it, drills fill their sandbox).
pub(crate) fn write_content(
    m: &Manifest,
    content: &mut dyn std::io::Read,
    dest: &Path,
    ctx: &JobContext,
) -> Result<()> {
    let read_err = |e| Error::io(format!("backup {} is damaged or unreadable", m.id), e);
    match m.kind.as_str() {
        "sqlite" => {
            let file = std::fs::File::create_new(dest)
                .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
            let mut file = DurableFile::new(file);
            crate::pipe::copy(content, &mut file).map_err(read_err)?;
            file.finish()
                .map_err(|e| Error::io(format!("writing {}", dest.display()), e))
        }
        "directory" => {
            std::fs::create_dir(dest)
                .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
            directory::extract_tar(content, dest, ctx).map(|_| ())
        }
        other => Err(Error::Failed(format!(
            "cannot restore backups of kind {other}"
        ))),
    }
}

/// An error naming the problems a restored copy's checks found, if any.
pub(crate) fn failed_checks(m: &Manifest, problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "the restored copy of backup {} failed its checks ({})",
        m.id,
        problems.join("; ")
    )))
}

/// Hand the backup's content to `consume`, then read whatever it left and
/// check the whole against the manifest's size and checksum.
pub(crate) fn stream_content(
    app: &App,
    plan: &RestorePlan,
    ctx: &JobContext,
    consume: impl FnOnce(&mut dyn std::io::Read) -> Result<()>,
) -> Result<()> {
    let (_, store) = app.store_for(&plan.target)?;
    let m = &plan.backup;
    ctx.progress.phase("downloading and checking");
    ctx.progress.total(Some(m.content_bytes));
    let raw = store.read(m)?;
    let mut content = HashReader::new(ProgressReader::new(
        raw,
        ctx.progress.clone(),
        ctx.cancel.clone(),
    ));
    let read_err = |e| Error::io(format!("backup {} is damaged or unreadable", m.id), e);
    consume(&mut content)?;
    std::io::copy(&mut content, &mut std::io::sink()).map_err(read_err)?;
    let (bytes, sha) = content.finish();
    if bytes != m.content_bytes || sha != m.content_sha256 {
        return Err(Error::Failed(format!(
            "backup {} is damaged: its content does not match the manifest's checksum",
            m.id
        )));
    }
    Ok(())
}
