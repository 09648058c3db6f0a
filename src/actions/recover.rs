//! `lifeboat recover --store NAME`: bring lifeboat back on a new host from the config
//! alone. The newest state backup in the store is fetched and checked (a copy that fails
//! its checksums is refused, naming the next-newest), anything at the state's path is
//! moved aside, the copy renamed in; then the jobs it recorded as running are marked
//! interrupted, requests past their time expired, and the catalog rebuilt from every
//! store, so backups newer than the state backup are listed too.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use crate::actions::rebuild::{self, RebuildReport};
use crate::actions::verify::read_checked;
use crate::app::App;
use crate::config::Config;
use crate::db::Db;
use crate::db::jobs::JobRecord;
use crate::db::recovery::ApprovalBrief;
use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::sources::Move;
use crate::sources::place::local::moves_for;
use crate::sources::place::sibling;
use crate::sources::sqlite;
use crate::stores::manifest::Manifest;
use crate::stores::{BackupStore, open_store};

/// An incident that was open when the state backup was taken.
#[derive(Debug, Clone, Serialize)]
pub struct OpenIncident {
    pub id: i64,
    pub title: String,
    pub opened_at: String,
    pub timeline_events: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecoverReport {
    pub store: String,
    /// The state backup restored.
    pub state_backup: Manifest,
    pub state_backup_age_seconds: i64,
    pub state_path: PathBuf,
    /// What was in the way, and where it went.
    pub moved_aside: Vec<Move>,
    /// State backups skipped because their manifests could not be read.
    pub warnings: Vec<String>,
    /// Jobs the old host was running, now marked interrupted.
    pub interrupted_jobs: Vec<JobRecord>,
    pub catalog: RebuildReport,
    /// Backups in the catalog taken after the state backup (the state knew nothing of them).
    pub newer_than_state: usize,
    pub open_incidents: Vec<OpenIncident>,
    pub pending_approvals: Vec<ApprovalBrief>,
    /// Requests that had expired, or ran out of time while the bot was down.
    pub expired_approvals: usize,
    pub duration_seconds: f64,
}

/// Run the whole recovery; the app over the recovered state is returned beside the report.
pub fn run(
    config: Config,
    store_name: &str,
    backup: Option<&str>,
    actor: &str,
    ctx: &JobContext,
) -> Result<(App, RecoverReport)> {
    let clock = Instant::now();
    let store_cfg = config.stores.get(store_name).ok_or_else(|| {
        Error::Usage(format!(
            "unknown store {store_name:?}; stores: {}",
            config.stores.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let store = open_store(store_name, store_cfg)?;
    let state = config.server.state.clone();
    let state_target = config.state_target_name().to_string();
    let (m, warnings) = fetch_state(
        store.as_ref(),
        store_name,
        &state_target,
        &state,
        backup,
        ctx,
    )?;
    let moved_aside = put_in_place(&state, &m)?;
    let (interrupted, expired) = settle(&state, &state_target, &m)?;
    let (app, _) = App::open(config)?;
    let catalog = rebuild::rebuild(&app.db, &app.config, &app.stores())?;
    refresh_snapshot_targets(&app);
    let newer = app.db.catalog_created_after(&m.created_at)?;
    let open = open_incidents(&app)?;
    let report = RecoverReport {
        store: store_name.to_string(),
        state_backup_age_seconds: (Utc::now() - m.created()).num_seconds(),
        state_backup: m.summary(),
        state_path: state,
        moved_aside,
        warnings,
        interrupted_jobs: interrupted,
        catalog,
        newer_than_state: newer,
        open_incidents: open,
        pending_approvals: app.db.approvals_in("pending")?,
        expired_approvals: expired,
        duration_seconds: clock.elapsed().as_secs_f64(),
    };
    record(&app, &report, actor)?;
    Ok((app, report))
}

/// The state backups in the store, newest first, and the one asked for (or the newest)
/// fetched into a staging file beside the state path and checked.
fn fetch_state(
    store: &dyn BackupStore,
    store_name: &str,
    target: &str,
    state: &Path,
    backup: Option<&str>,
    ctx: &JobContext,
) -> Result<(Manifest, Vec<String>)> {
    let (all, broken) = store.backups(target)?;
    let warnings: Vec<String> = broken
        .into_iter()
        .map(|b| format!("skipped state backup {b}"))
        .collect();
    let index = match backup {
        None => 0,
        Some(id) => all.iter().position(|m| m.id == id).ok_or_else(|| {
            Error::Usage(format!(
                "no state backup {id:?} in store {store_name}; newest: {}",
                newest_ids(&all)
            ))
        })?,
    };
    let Some(m) = all.get(index).cloned() else {
        return Err(Error::Failed(format!(
            "store {store_name} holds no backups of {target} (looked under {target}/); nothing was changed{}",
            if warnings.is_empty() {
                String::new()
            } else {
                format!(" ({})", warnings.join("; "))
            }
        )));
    };
    if let Some(dir) = state.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let staging = staging_path(state, &m.id);
    remove_file_if_any(&staging)?;
    ctx.progress.phase("fetching and checking the state backup");
    let mut problems = match read_checked(store, &m, ctx, |content| {
        sqlite::write_copy(&m, content, &staging).map(|()| Vec::new())
    }) {
        Ok(p) => p,
        Err(Error::Cancelled) => {
            let _ = remove_file_if_any(&staging);
            return Err(Error::Cancelled);
        }
        Err(e) => vec![e.to_string()],
    };
    if problems.is_empty() {
        match &m.sqlite {
            Some(facts) => problems.extend(sqlite::check_copy(&staging, facts, false)?),
            None => problems.push("the manifest is not of an sqlite backup".into()),
        }
    }
    if !problems.is_empty() {
        let _ = remove_file_if_any(&staging);
        let next = match all.get(index + 1) {
            Some(n) => format!(
                "the next-newest is {} (taken {}): lifeboat recover --store {store_name} --backup {}",
                n.id, n.created_at, n.id
            ),
            None => "no older state backup is left in this store".into(),
        };
        return Err(Error::Failed(format!(
            "state backup {} (taken {}) refused: {}; nothing was changed. {next}",
            m.id,
            m.created_at,
            problems.join("; ")
        )));
    }
    Ok((m, warnings))
}

fn newest_ids(all: &[Manifest]) -> String {
    let ids: Vec<&str> = all.iter().take(5).map(|m| m.id.as_str()).collect();
    if ids.is_empty() {
        "none".into()
    } else {
        ids.join(", ")
    }
}

fn staging_path(state: &Path, id: &str) -> PathBuf {
    let name = state
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    state.with_file_name(format!(".{name}.lifeboat-recover-{id}"))
}

fn remove_file_if_any(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

/// Move whatever is at the state path (and its journal files) aside, as every restore
/// does, and rename the checked copy in.
fn put_in_place(state: &Path, m: &Manifest) -> Result<Vec<Move>> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let aside = sibling(state, &format!(".pre-restore-{stamp}"));
    let moves = moves_for(state, &aside);
    for mv in &moves {
        std::fs::rename(&mv.from, &mv.to).map_err(|e| {
            Error::io(
                format!("moving {} aside to {}", mv.from.display(), mv.to.display()),
                e,
            )
        })?;
    }
    std::fs::rename(staging_path(state, &m.id), state).map_err(|e| {
        Error::io(
            format!("renaming the restored state to {}", state.display()),
            e,
        )
    })?;
    if let Some(dir) = state.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(moves)
}

/// On the restored state: the job that took this very backup is recorded as done, every
/// other running job as interrupted, and requests past their time as expired.
fn settle(state: &Path, target: &str, m: &Manifest) -> Result<(Vec<JobRecord>, usize)> {
    let db = Db::open(state)?;
    // The state backup's own job was running when its copy was taken: it is the newest
    // running backup of the state target that started no later than the copy.
    if let Some(own) = db
        .jobs_running(Some(target))?
        .into_iter()
        .filter(|j| j.kind == "backup" && j.started_at <= m.finished_at)
        .max_by_key(|j| j.id)
    {
        db.job_mark_succeeded(
            own.id,
            &m.finished_at,
            &m.id,
            &format!(
                "backup {} of {target} complete (the state recovered from)",
                m.id
            ),
        )?;
    }
    let interrupted = db.jobs_interrupt_all(
        "the host running this job was lost; lifeboat was recovered on a new host",
    )?;
    let already = db.approvals_in("expired")?.len();
    let now_expired = db.approvals_expire_due()?;
    Ok((interrupted, already + now_expired))
}

/// Targets whose kind keeps backups outside every store (gcp-disk: Compute Engine
/// snapshots) are missed by the rebuild from the stores: list them so the catalog has
/// them too (a failure is only a warning: `list` tries again).
fn refresh_snapshot_targets(app: &App) {
    for (name, t) in &app.config.targets {
        let snapshots = crate::sources::choose(name, t)
            .is_ok_and(|s| s.kept() == crate::sources::Kept::AsSnapshots);
        if snapshots && let Err(e) = crate::actions::catalog::backups(app, name) {
            tracing::warn!(target = %name, "listing snapshots after recovery: {e}");
        }
    }
}

fn open_incidents(app: &App) -> Result<Vec<OpenIncident>> {
    let mut out = Vec::new();
    for i in app.db.incidents()? {
        if i.closed_at.is_none() {
            out.push(OpenIncident {
                timeline_events: app.db.incident_timeline(i.id)?.len(),
                id: i.id,
                title: i.title,
                opened_at: i.opened_at,
            });
        }
    }
    out.reverse(); // oldest first
    Ok(out)
}

/// The recovery in the audit log, and so on the timeline of every open incident.
fn record(app: &App, r: &RecoverReport, actor: &str) -> Result<()> {
    let detail = format!(
        "state backup {} (taken {}) from store {}; {} backups in the catalog ({} newer than the state); {} jobs marked interrupted",
        r.state_backup.id,
        r.state_backup.created_at,
        r.store,
        r.catalog.total(),
        r.newer_than_state,
        r.interrupted_jobs.len()
    );
    app.db.audit(actor, "recover", None, "ok", Some(&detail))?;
    Ok(())
}
