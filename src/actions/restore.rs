//! Restore: build a plan (which backup, where, what is moved aside) that dry-run prints,
//! approvals bind to, and `apply` executes: stage next to the destination, check, move the
//! current data aside, rename the restored copy in. Current data is never deleted.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actions::catalog::{Selector, find_noted};
use crate::app::App;
use crate::error::{Error, Result};
use crate::executor::JobOutput;
use crate::pipe::{HashReader, ProgressReader};
use crate::progress::JobContext;
pub use crate::sources::Move;
use crate::sources::Placement;
use crate::stores::manifest::Manifest;
use crate::target_hooks::ActionHooks;
pub use crate::units::human_age;

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
    /// In place only: the target's restore hooks, as the plan shows them and the restore
    /// runs them (what was approved is what runs).
    #[serde(default, skip_serializing_if = "PlanHooks::is_empty")]
    pub hooks: PlanHooks,
    /// A partial restore: only these paths of the tree, under a new destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<crate::actions::browse::AskedPath>,
    /// A continuous target restored to a moment: the shipped transactions replayed onto
    /// the backup (its base copy) before the copy is checked and put in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<crate::replicate::point::PointInTime>,
}

/// The commands an in-place restore runs around putting the copy in place.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PlanHooks {
    pub before_restore: Vec<Vec<String>>,
    pub after_restore: Vec<Vec<String>>,
    /// Where they run, in words ("on this host", "on root@vm1:22").
    pub run: String,
}

impl PlanHooks {
    pub fn is_empty(&self) -> bool {
        self.before_restore.is_empty() && self.after_restore.is_empty()
    }

    /// The target's restore hooks (none for a restore that does not replace its data).
    fn of(app: &App, target: &str, in_place: bool) -> Result<PlanHooks> {
        let cfg = app.target(target)?;
        let Some(h) = cfg.hooks.as_ref().filter(|_| in_place) else {
            return Ok(PlanHooks::default());
        };
        let hooks = PlanHooks {
            before_restore: h.before_restore.clone(),
            after_restore: h.after_restore.clone(),
            run: String::new(),
        };
        if hooks.is_empty() {
            return Ok(hooks);
        }
        Ok(PlanHooks {
            run: crate::target_hooks::Place::of(cfg)?.describe(),
            ..hooks
        })
    }

    fn describe(&self, out: &mut String) {
        for (when, list) in [
            ("before", &self.before_restore),
            ("after", &self.after_restore),
        ] {
            for argv in list {
                out.push_str(&format!(
                    "  hook:        {when} putting it in place, {}: {}\n",
                    self.run,
                    crate::target_hooks::shown(argv)
                ));
            }
        }
    }
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
        let what = crate::actions::partial::summary(&self.plan.paths);
        format!(
            "restored {what}backup {} of {} to {}",
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
            } else if self.paths.is_empty() {
                " (new copy)"
            } else {
                " (new folder holding only the paths below)"
            },
        );
        if let Some(point) = &self.point {
            out.push_str(&point.describe(&b.id));
        }
        crate::actions::partial::describe(&self.paths, &mut out);
        if self.move_aside.is_empty() && self.paths.is_empty() {
            out.push_str("  move aside:  nothing (no current data at the destination)\n");
        }
        for m in &self.move_aside {
            out.push_str(&format!(
                "  move aside:  {} -> {}\n",
                m.from.display(),
                m.to.display()
            ));
        }
        let steps = if self.paths.is_empty() {
            "download and check"
        } else {
            "stream the backup, extract only these paths (each file's SHA-256 checked against the manifest)"
        };
        out.push_str(&format!(
            "  steps:       {steps} into {}, then rename it to {}\n",
            self.staging.display(),
            self.destination.display()
        ));
        self.hooks.describe(&mut out);
        for n in &self.notes {
            out.push_str(&format!("  note:        {n}\n"));
        }
        out
    }
}

impl RestorePlan {
    /// The part of the plan the target's source carries out.
    pub(crate) fn placement(&self) -> Placement {
        Placement {
            destination: self.destination.clone(),
            in_place: self.in_place,
            move_aside: self.move_aside.clone(),
            aside: self.aside.clone(),
            staging: self.staging.clone(),
            notes: self.notes.clone(),
            host: self.host.clone(),
        }
    }
}

/// Build the restore plan. Nothing is written.
pub fn plan(
    app: &App,
    target: &str,
    selector: &Selector,
    to: Option<&Path>,
) -> Result<RestorePlan> {
    let source = crate::actions::kind::source(app, target)?;
    // A kind restored otherwise (gcp-disk: a new disk) says how, before any lookup.
    source.restores_to_a_path()?;
    let (selector, point) = match selector {
        Selector::At(t) if app.target(target)?.continuous.is_some() => {
            let objects = crate::replicate::objects_for(app, target)?;
            let usable = crate::replicate::base_choice::usable_in_store(app, target)?;
            let (base, point) =
                crate::replicate::point::plan(objects.as_ref(), target, *t, &usable)?;
            (Selector::Id(base), Some(point))
        }
        other => (other.clone(), None),
    };
    let (backup, inconsistent) = find_noted(app, target, &selector)?;
    let at = source.plan_restore(&backup, to)?;
    let hooks = PlanHooks::of(app, target, at.in_place)?;
    let mut notes = at.notes;
    if !hooks.before_restore.is_empty() {
        // The hooks stop it: asking a person to is no longer the plan.
        notes.retain(|n| n != crate::sources::place::STOP_THE_APP);
    }
    notes.extend(inconsistent);
    if point.is_none() && app.target(target)?.continuous.is_some() {
        notes.extend(later_replicated(app, target, backup.created()));
    }
    Ok(RestorePlan {
        target: target.to_string(),
        backup_age_seconds: (Utc::now() - backup.created()).num_seconds(),
        backup: backup.summary(),
        destination: at.destination,
        in_place: at.in_place,
        move_aside: at.move_aside,
        aside: at.aside,
        staging: at.staging,
        notes,
        host: at.host,
        hooks,
        paths: Vec::new(),
        point,
    })
}

/// A continuous target restored from a backup alone: the transactions shipped since it
/// would be left out, so the plan says how far replication reaches and how to include them.
fn later_replicated(app: &App, target: &str, backup_at: DateTime<Utc>) -> Option<String> {
    let reached = crate::replicate::lag::of(app, target, Utc::now()).replicated_to?;
    (reached > backup_at).then(|| {
        let to = crate::units::time_text(reached);
        format!(
            "replication of {target} reaches {to}, later than this backup: this restore leaves out every transaction since the backup; restore with `--at {to}` (chat: `at {to}`) to include them"
        )
    })
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
        .run("restore", &plan.target, actor, ctx, |job, ctx| {
            crate::target_hooks::owed::settle(app, &plan.target, ctx);
            let hooks = ActionHooks::for_restore(
                app,
                &plan.target,
                job.id,
                plan.hooks.before_restore.clone(),
                plan.hooks.after_restore.clone(),
                ctx,
            );
            hooks.finish(apply_locked(app, plan, ctx, &hooks))
        })?;
    Ok(done.value)
}

/// Stage the copy, prove it is the backup's content and check it, then (with the
/// `before_restore` hooks run, when in place) put it in place; the caller holds the
/// target's lock. The app is stopped only for the rename, not the download.
fn apply_locked(
    app: &App,
    plan: &RestorePlan,
    ctx: &JobContext,
    hooks: &ActionHooks<'_>,
) -> Result<RestoreOutcome> {
    let clock = std::time::Instant::now();
    let source = crate::actions::kind::source(app, &plan.target)?;
    let m = &plan.backup;
    let nothing_changed = |e| match e {
        Error::Cancelled => Error::Cancelled,
        other => Error::Failed(format!("{other}; nothing was changed")),
    };
    let mut restoring = match (&plan.point, &plan.host) {
        // Another host: replayed and checked here, then staged there (see restore_point).
        (Some(point), Some(_)) => {
            crate::actions::restore_point::staged_on_host(app, plan, point, source.as_ref(), ctx)
                .map_err(nothing_changed)?
        }
        _ => {
            let mut restoring = source.restore(m, &plan.placement(), ctx)?;
            let staged = if plan.paths.is_empty() {
                stream_content(app, plan, ctx, |content| restoring.stage(content, ctx))
            } else {
                crate::actions::partial::stage(app, plan, source.as_ref(), restoring.as_mut(), ctx)
            }
            .and_then(|()| match &plan.point {
                // The replayed copy is no longer the backup's recorded facts: check it whole.
                Some(point) => crate::actions::restore_point::replay_checked(
                    app,
                    plan,
                    point,
                    &plan.staging,
                    ctx,
                ),
                None => failed_checks(m, restoring.check(ctx)?),
            });
            if let Err(e) = staged {
                restoring.discard();
                return Err(nothing_changed(e));
            }
            restoring
        }
    };
    if let Err(e) = hooks.before(Some(&m.id)) {
        restoring.discard();
        return Err(e);
    }
    ctx.progress.phase("moving into place");
    let moves = restoring.put_in_place(ctx)?;
    let mut done = plan.clone();
    done.move_aside = moves;
    Ok(RestoreOutcome {
        plan: done,
        ok: true,
        duration_seconds: clock.elapsed().as_secs_f64(),
    })
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
    if m.whole_content_hashed() && (bytes != m.content_bytes || sha != m.content_sha256) {
        return Err(Error::Failed(format!(
            "backup {} is damaged: its content does not match the manifest's checksum",
            m.id
        )));
    }
    Ok(())
}
