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
    /// A continuous target's shipped history: what removing backups ended, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<String>,
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
        for line in &self.history {
            out.push_str(&format!("  history {line}\n"));
        }
        out
    }
}

/// Why a base copy of continuous replication is kept past the retention rules.
pub const BASE_REASON: &str = "base of kept continuous history";

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
    // A base copy a kept generation of continuous replication replays from stays.
    if cfg.continuous.is_some() {
        let objects = crate::replicate::objects_for(app, target)?;
        let needed = crate::replicate::history::needed_bases(
            objects.as_ref(),
            target,
            cfg.continuous_history(),
            chrono::Utc::now(),
        )?;
        for (m, why) in all.iter().zip(reasons.iter_mut()) {
            if needed.iter().any(|(base, _)| *base == m.id) && !why.contains(&BASE_REASON) {
                why.push(BASE_REASON);
            }
        }
    }
    let mut plan = PrunePlan {
        target: target.to_string(),
        keep: Vec::new(),
        remove: Vec::new(),
        bytes_freed: 0,
        history: Vec::new(),
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
        plan.history = expire_history(app, target)?;
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

/// A continuous target's generations past `continuous_history`, or whose base copy is no
/// longer among its backups, removed from its store; what went, in words.
fn expire_history(app: &App, target: &str) -> Result<Vec<String>> {
    let cfg = app.target(target)?;
    if cfg.continuous.is_none() {
        return Ok(Vec::new());
    }
    let objects = crate::replicate::objects_for(app, target)?;
    let bases: std::collections::HashSet<String> =
        backups(app, target)?.into_iter().map(|m| m.id).collect();
    crate::replicate::history::expire(
        objects.as_ref(),
        target,
        cfg.continuous_history(),
        chrono::Utc::now(),
        Some(&bases),
    )
}
