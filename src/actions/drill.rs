//! Drill: a real restore of a backup into a sandbox (a fresh directory under the scratch
//! directory, removed afterwards whatever happens), verified as `verify` does but on the
//! extracted copy, plus the target's own `checks`; RTO and RPO measured against the
//! target's objectives, a timeline of every step, and a Markdown report kept in the state
//! database. The live data is never touched.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::actions::catalog::{Selector, find_noted};
pub use crate::actions::drill_steps::Step;
use crate::actions::drill_steps::{Drill, Sandboxed, age};
use crate::actions::{drill_report, drill_state, verify};
use crate::app::App;
use crate::config::{TargetConfig, TargetKind};
use crate::db::drills::DrillRecord;
use crate::error::{Error, Result};
use crate::executor::JobOutput;
use crate::progress::JobContext;
use crate::sources::{self, Source};
use crate::stores::manifest::Manifest;

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub drill_id: Option<i64>,
    pub target: String,
    pub kind: TargetKind,
    pub backup_id: Option<String>,
    /// The backup restored (absent when none could be found).
    pub backup: Option<Manifest>,
    pub actor: String,
    pub started_at: String,
    pub finished_at: String,
    /// Restored, verified, checks passed, and every objective that is set was met.
    pub ok: bool,
    /// Restored, verified and checks passed (objectives aside).
    pub restore_ok: bool,
    pub objectives_met: bool,
    /// Drill start → verified restore (absent when the restore did not pass).
    pub rto_seconds: Option<f64>,
    /// Age of the restored data at drill start: the backup's age, or for a continuous
    /// target restored to a moment, the replication lag then (`drill_point::lag_at`).
    pub rpo_seconds: Option<f64>,
    /// A continuous target restored to a moment: which, from which base copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_to: Option<crate::actions::drill_steps::RestoredTo>,
    pub rto_objective_seconds: Option<f64>,
    pub rpo_objective_seconds: Option<f64>,
    /// Where the copy was restored, removed at the end of the drill: a directory, or for
    /// a gcp-disk target the drill disk's path (`projects/…/zones/…/disks/…`).
    pub sandbox: PathBuf,
    /// Whether the sandbox is a cloud disk (deleted afterwards) rather than a directory
    /// (removed afterwards).
    #[serde(skip)]
    pub sandbox_is_disk: bool,
    /// Whether the sandbox was made (a gcp-disk drill stops before it when the snapshot
    /// is unusable or the disk name is taken).
    pub sandbox_created: bool,
    pub sandbox_removed: bool,
    pub steps: Vec<Step>,
    pub problems: Vec<String>,
    /// What the drill found worth saying that is not a failure: a restored backup that
    /// changed while it was read, and the newest consistent one.
    pub notes: Vec<String>,
    pub action_items: Vec<String>,
    /// The drill report, Markdown.
    pub report: String,
}

impl DrillReport {
    /// One line for chat and the job record: result, RTO and RPO against objectives.
    pub fn headline(&self) -> String {
        let verdict = if self.ok { "PASSED" } else { "FAILED" };
        let measure = |v: Option<f64>, o: Option<f64>| {
            let v = v.map_or("not reached".to_string(), drill_report::human);
            match o {
                Some(o) => format!("{v} (objective {})", drill_report::human(o)),
                None => format!("{v} (no objective set)"),
            }
        };
        format!(
            "drill of {} {verdict}: RTO {}, RPO {}",
            self.target,
            measure(self.rto_seconds, self.rto_objective_seconds),
            measure(self.rpo_seconds, self.rpo_objective_seconds)
        )
    }

    /// The report's file name: `drill-<target>-<UTC start>.md`.
    pub fn filename(&self) -> String {
        let stamp = crate::units::parse_time(&self.started_at)
            .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_default();
        format!("drill-{}-{stamp}.md", self.target)
    }
}

impl JobOutput for DrillReport {
    fn backup_id(&self) -> Option<String> {
        self.backup_id.clone()
    }
    fn summary(&self) -> String {
        let mut s = self.headline();
        if !self.problems.is_empty() {
            s.push_str(&format!("; {}", self.problems.join("; ")));
        }
        s
    }
    fn ok(&self) -> bool {
        self.ok
    }
}

/// Run a drill of `target` as one job (it takes the target's lock and gets a job record).
/// A drill that fails or misses an objective is an `Ok` report with `ok == false`; `Err`
/// is for a drill that could not run at all (busy target, unsupported kind, cancelled).
pub fn run(
    app: &App,
    target: &str,
    selector: &Selector,
    actor: &str,
    ctx: &JobContext,
) -> Result<DrillReport> {
    let cfg = app.target(target)?;
    refuse_unsupported(target, cfg)?;
    match selector {
        // A mistyped id, or a moment nothing reaches, is the caller's mistake, not a drill.
        Selector::Id(_) => {
            find_backup(app, target, selector)?;
        }
        Selector::At(at) => {
            crate::actions::drill_point::reachable(app, target, cfg, *at)?;
        }
        Selector::Latest => {}
    }
    let done = app.executor.run("drill", target, actor, ctx, |_, ctx| {
        // Hooks a stopped process owed for this target run first, under its lock.
        crate::target_hooks::owed::settle(app, target, ctx);
        let mut report = drill_locked(app, target, cfg, selector, actor, ctx)?;
        report.drill_id = Some(app.db.drill_insert(&record(&report))?);
        Ok(report)
    })?;
    Ok(done.value)
}

/// Drills restore what their target's source can write into a sandbox (a sqlite or
/// directory target on any host: the backup comes from the store onto this host) or make
/// into a new disk (gcp-disk); other kinds are refused with why.
pub fn refuse_unsupported(target: &str, cfg: &TargetConfig) -> Result<()> {
    let source = sources::choose(target, cfg)?;
    match source.drill_refusal() {
        None => Ok(()),
        Some(why) => Err(Error::Usage(format!(
            "cannot drill {target} ({}): {why}",
            source.kind()
        ))),
    }
}

/// The backup a drill of `target` would restore, or a usage error saying what exists.
/// For gcp-disk targets this is `verify`'s choice: a snapshot the catalog recorded is
/// picked even when it was deleted, so the drill names it.
pub fn find_backup(app: &App, target: &str, selector: &Selector) -> Result<Manifest> {
    crate::actions::kind::for_target(app, target)?.drill_backup(app, target, selector)
}

fn record(r: &DrillReport) -> DrillRecord {
    DrillRecord {
        id: 0,
        target: r.target.clone(),
        backup_id: r.backup_id.clone(),
        actor: r.actor.clone(),
        started_at: r.started_at.clone(),
        finished_at: r.finished_at.clone(),
        ok: r.ok,
        rto_seconds: r.rto_seconds,
        rpo_seconds: r.rpo_seconds,
        rto_objective_seconds: r.rto_objective_seconds,
        rpo_objective_seconds: r.rpo_objective_seconds,
        problems: r.problems.clone(),
        report: r.report.clone(),
    }
}

fn drill_locked(
    app: &App,
    target: &str,
    cfg: &TargetConfig,
    selector: &Selector,
    actor: &str,
    ctx: &JobContext,
) -> Result<DrillReport> {
    let mut d = Drill::new(app, target, cfg, ctx);
    let done = crate::actions::kind::for_target(app, target)?.drill_restore(&mut d, selector)?;
    let mut report = DrillReport {
        drill_id: None,
        target: target.to_string(),
        kind: cfg.kind,
        backup_id: done.backup.as_ref().map(|m| m.id.clone()),
        rpo_seconds: done
            .rpo_seconds
            .or_else(|| done.backup.as_ref().map(|m| age(m, d.started))),
        backup: done.backup.map(|m| m.summary()),
        restored_to: d.restored_to.take(),
        actor: actor.to_string(),
        started_at: crate::units::time_text(d.started),
        finished_at: crate::units::now_text(),
        ok: false,
        restore_ok: d.problems.is_empty(),
        objectives_met: false,
        rto_seconds: done.rto_seconds,
        rto_objective_seconds: cfg.rto.map(|d| d.0.as_secs_f64()),
        rpo_objective_seconds: cfg.rpo.map(|d| d.0.as_secs_f64()),
        sandbox: done.sandbox,
        sandbox_is_disk: done.is_disk,
        sandbox_created: done.created,
        sandbox_removed: done.removed,
        steps: d.steps,
        problems: d.problems,
        notes: d.notes,
        action_items: Vec::new(),
        report: String::new(),
    };
    let missed = drill_report::missed_objectives(&report);
    report.objectives_met = missed.is_empty();
    report.problems.extend(missed);
    report.ok = report.restore_ok && report.objectives_met;
    report.action_items = drill_report::action_items(&report, cfg);
    report.report = drill_report::render(&report);
    Ok(report)
}

/// Targets whose backups are in a store: the backup into a fresh directory on this host
/// (whatever host the target is on), verified, checked, and the directory removed.
pub(crate) fn restore_in_sandbox(d: &mut Drill, selector: &Selector) -> Result<Sandboxed> {
    let (app, target, started) = (d.app, d.target, d.started);
    let source = sources::choose(target, d.cfg)?;
    let mut backup = None;
    let mut note = None;
    let point = crate::actions::drill_point::of(d, selector)?;
    let selector = point.as_ref().map_or(selector, |p| &p.base);
    d.step("find the backup", || {
        let (m, inconsistent) = find_noted(app, target, selector)?;
        let mut detail = format!(
            "backup {} taken {} ({} before the drill)",
            m.id,
            m.created_at,
            drill_report::human(age(&m, started))
        );
        if let Some(p) = &point {
            let which = if p.asked {
                "the moment asked for"
            } else {
                "the newest moment replicated when the drill started"
            };
            let base = if p.point.first_base {
                "its generation's first base copy".to_string()
            } else {
                format!(
                    "the newest base copy at or before it (the database after transaction {})",
                    p.point.base_txid
                )
            };
            detail.push_str(&format!(
                ", {base}, for a restore to {}, {which} (lag {}): transactions {} to {} of generation {}",
                p.point.at,
                drill_report::human(p.rpo_seconds),
                p.point.base_txid + 1,
                p.point.up_to_txid,
                p.point.generation
            ));
        }
        if let Some(n) = &inconsistent {
            detail.push_str(&format!("; {n}"));
        }
        backup = Some(m);
        note = inconsistent;
        Ok(Ok(detail))
    })?;
    d.notes.extend(note);
    if let Some(p) = &point {
        d.restored_to = Some(p.restored_to());
        // A later base copy that could not be used: the drill replays from an older one.
        d.notes.extend(
            p.point
                .passed_over
                .iter()
                .map(|why| format!("passed over {why}")),
        );
    }
    let sandbox = new_sandbox(app, target)?;
    let sandbox_path = sandbox.path().to_path_buf();
    let mut rto_seconds = None;
    if let Some(m) = &backup {
        let copy = sandbox_path.join(copy_name(d.cfg));
        let before = d.problems.len();
        restore_and_check(d, source.as_ref(), m, &copy, point.as_ref())?;
        if d.problems.len() == before {
            rto_seconds = Some(d.elapsed());
        }
    }
    let mut removed = false;
    d.step("remove the sandbox", || {
        Ok(match sandbox.close() {
            Ok(()) => {
                removed = true;
                Ok(format!("{} removed", sandbox_path.display()))
            }
            Err(e) => Err(vec![format!(
                "the sandbox {} could not be removed: {e}",
                sandbox_path.display()
            )]),
        })
    })?;
    Ok(Sandboxed {
        backup,
        sandbox: sandbox_path,
        is_disk: false,
        created: true,
        removed,
        rto_seconds,
        rpo_seconds: point.map(|p| p.rpo_seconds),
    })
}

/// Restore into the sandbox, verify the copy, run the checks: one timeline step each.
/// A restore to a moment replays the shipped transactions and checks the copy whole in
/// place of the backup's own check.
fn restore_and_check(
    d: &mut Drill,
    source: &dyn Source,
    m: &Manifest,
    copy: &Path,
    point: Option<&crate::actions::drill_point::DrillPoint>,
) -> Result<()> {
    let (app, ctx) = (d.app, d.ctx);
    let restored = d.step("fetch, decompress and restore into the sandbox", || {
        let (_, store) = app.store_for(&m.target)?;
        let found = verify::read_checked(store.as_ref(), m, ctx, |content| {
            source
                .write_copy(m, content, copy, ctx)
                .map(|()| Vec::new())
        })?;
        Ok(if found.is_empty() {
            Ok(format!(
                "{} stored, {} restored to {}; stored and content SHA-256 match the manifest",
                crate::units::human_bytes(m.size_bytes),
                crate::units::human_bytes(m.content_bytes),
                copy.display()
            ))
        } else {
            Err(found)
        })
    })?;
    if !restored {
        return Ok(());
    }
    match point {
        Some(p) => crate::actions::drill_point::replay_and_check(d, m, &p.point, copy)?,
        None => {
            d.step(source.copy_check_name(), || source.check_copy(m, copy, ctx))?;
        }
    }
    d.run_checks(copy)?;
    if drill_state::is_state_target(app, d.target) {
        // The rest of a recovery, on the copy: RTO then covers bringing lifeboat back.
        d.step(
            "recover the copy: mark running jobs interrupted, rebuild the catalog from the stores, count it against the live one",
            || drill_state::recover_copy(app, copy),
        )?;
    }
    Ok(())
}

/// A private, fresh directory for this drill under the scratch directory; removed when
/// dropped (an error or a panic on the way still removes it).
fn new_sandbox(app: &App, target: &str) -> Result<tempfile::TempDir> {
    let dir = app.config.scratch_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    tempfile::Builder::new()
        .prefix(&format!("drill-{target}-"))
        .tempdir_in(&dir)
        .map_err(|e| Error::io(format!("creating a sandbox in {}", dir.display()), e))
}

/// The restored copy's name in the sandbox: the live data's own file or directory name.
fn copy_name(cfg: &TargetConfig) -> String {
    cfg.path
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "restored".into())
}
