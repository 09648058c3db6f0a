//! Apply a target's retention rules: a plan of what stays (and which rule keeps it) and
//! what goes, which dry-run prints and apply executes. The newest backup always stays.

use serde::Serialize;

use crate::actions::catalog::backups;
use crate::actions::retention;
use crate::app::App;
use crate::error::Result;
use crate::executor::JobOutput;
use crate::progress::JobContext;
use crate::stores::manifest::Manifest;
use crate::units::human_bytes;

#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub id: String,
    pub created_at: String,
    pub reasons: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    pub target: String,
    pub keep: Vec<Kept>,
    pub remove: Vec<Manifest>,
    /// What removing them gives back: the store's estimate in the plan, what it freed
    /// once applied.
    pub bytes_freed: u64,
}

impl JobOutput for PrunePlan {
    fn summary(&self) -> String {
        format!(
            "pruned {} backups of {}, kept {}, freed {}",
            self.remove.len(),
            self.target,
            self.keep.len(),
            human_bytes(self.bytes_freed)
        )
    }
}

impl PrunePlan {
    pub fn describe(&self) -> String {
        let mut out = format!(
            "{}: keep {}, remove {} (frees {})\n",
            self.target,
            self.keep.len(),
            self.remove.len(),
            human_bytes(self.bytes_freed)
        );
        for k in &self.keep {
            out.push_str(&format!("  keep    {}  ({})\n", k.id, k.reasons.join(", ")));
        }
        for m in &self.remove {
            out.push_str(&format!("  remove  {}\n", m.id));
        }
        out
    }
}

pub fn plan(app: &App, target: &str) -> Result<PrunePlan> {
    let cfg = app.target(target)?;
    let all = backups(app, target)?;
    let times: Vec<_> = all.iter().map(Manifest::created).collect();
    let mut reasons = match cfg.timezone {
        Some(tz) => retention::apply(&cfg.retention, &times, &tz.0),
        None => retention::apply(&cfg.retention, &times, &chrono::Utc),
    };
    if let Some(newest) = reasons.first_mut()
        && newest.is_empty()
    {
        newest.push("newest");
    }
    let mut plan = PrunePlan {
        target: target.to_string(),
        keep: Vec::new(),
        remove: Vec::new(),
        bytes_freed: 0,
    };
    for (m, why) in all.into_iter().zip(reasons) {
        if why.is_empty() {
            plan.remove.push(m.summary());
        } else {
            plan.keep.push(Kept {
                id: m.id,
                created_at: m.created_at,
                reasons: why,
            });
        }
    }
    // Only stores know what removing shares of deduplicated data gives back.
    if cfg.store.is_some() && !plan.remove.is_empty() {
        let (_, store) = app.store_for(target)?;
        plan.bytes_freed = store.bytes_freed(&plan.remove)?;
    } else {
        plan.bytes_freed = plan.remove.iter().map(|m| m.size_bytes).sum();
    }
    Ok(plan)
}

/// Prune as a job. Each backup is forgotten before its data goes, so an interrupted prune
/// never leaves a listed backup without its data; leftovers go at the next backup.
pub fn run(app: &App, target: &str, actor: &str, ctx: &JobContext) -> Result<PrunePlan> {
    let kind = crate::actions::kind::for_target(app, target)?;
    let done = app.executor.run("prune", target, actor, ctx, |_, ctx| {
        // Hooks a stopped process owed for this target run first, under its lock.
        crate::target_hooks::owed::settle(app, target, ctx);
        let mut plan = plan(app, target)?;
        if let Some(freed) = kind.remove(app, target, &plan.remove, ctx)? {
            plan.bytes_freed = freed;
        }
        Ok(plan)
    })?;
    Ok(done.value)
}

/// Remove backups from the target's store, then reclaim the space they held. The bytes
/// reclaimed, when the store measured any.
pub(crate) fn remove_from_store(
    app: &App,
    target: &str,
    remove: &[Manifest],
    ctx: &JobContext,
) -> Result<Option<u64>> {
    let (_, store) = app.store_for(target)?;
    ctx.progress.phase("pruning");
    for m in remove {
        store.remove(m)?;
        app.db.catalog_remove(target, &m.id)?;
        tracing::info!(target = target, backup = %m.id, "pruned");
    }
    if remove.is_empty() {
        return Ok(None);
    }
    ctx.progress.phase("reclaiming space");
    let reclaimed = store.reclaim(ctx)?;
    Ok((reclaimed > 0).then_some(reclaimed))
}
