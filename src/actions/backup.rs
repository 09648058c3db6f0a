//! Back up a target now: a consistent copy streamed through hashing into the store, which
//! keeps it its own way (a zstd artifact, a repository snapshot) and publishes it last.

use std::io::Write;
use std::time::Instant;

use chrono::Utc;

use crate::app::App;
use crate::config::OnChange;
use crate::error::{Error, Result};
use crate::executor::JobOutput;
use crate::monitor::pings::BackupPings;
use crate::pipe::HashWriter;
use crate::progress::JobContext;
use crate::sources::CopyContext;
use crate::stores::manifest::{FORMAT_VERSION, Manifest};
use crate::stores::{BackupStore, NewBackup};
use crate::target_hooks::ActionHooks;
use crate::units::human_bytes;

impl JobOutput for Manifest {
    fn backup_id(&self) -> Option<String> {
        Some(self.id.clone())
    }
    fn summary(&self) -> String {
        let mut text = format!(
            "backup {} of {}: {} stored ({} before compression)",
            self.id,
            self.target,
            human_bytes(self.size_bytes),
            human_bytes(self.content_bytes)
        );
        if !self.is_consistent() {
            text.push_str(&format!(
                "; INCONSISTENT: {}",
                changed_files(self.changed_paths())
            ));
        }
        text
    }
}

/// How many names are shown of a longer list of files that changed while read.
const NAMED: usize = 3;

/// "2 files changed while read (a, b)": the count and the first few names.
pub fn changed_files(paths: &[String]) -> String {
    let mut names: Vec<&str> = paths.iter().take(NAMED).map(String::as_str).collect();
    if paths.len() > NAMED {
        names.push("…");
    }
    format!(
        "{} {} changed while read ({})",
        paths.len(),
        if paths.len() == 1 { "file" } else { "files" },
        names.join(", ")
    )
}

/// The two ways to a consistent copy, as every message about one that changed says them.
pub const WAYS_OUT: &str = "quiet the writer during backups with a `before_backup`/`after_backup` hook, or `exclude` files that need not be consistent";

/// The warning a kept backup that changed while read carries (CLI, chat, job record),
/// or `None` for a consistent one.
pub fn inconsistency_warning(m: &Manifest) -> Option<String> {
    (!m.is_consistent()).then(|| {
        format!(
            "⚠️ backup {} of {} is INCONSISTENT: {}; a restore may not open. To get consistent copies, {WAYS_OUT}.",
            m.id,
            m.target,
            changed_files(m.changed_paths())
        )
    })
}

/// Back up `target` as a job of `actor`. Every backup (CLI, chat, schedule, runbook)
/// passes here, so this is where the target's monitor (`ping_url`) hears of it: the
/// start once the job holds the target, then how it ended. The pings go out from a
/// thread of their own and never change the job's outcome. Here too, under the lock,
/// hooks a crashed process still owed run first, and the target's `after_backup` hooks
/// run whatever happened once a `before_backup` started.
pub fn run(app: &App, target: &str, actor: &str, ctx: &JobContext) -> Result<Manifest> {
    let kind = crate::actions::kind::for_target(app, target)?;
    let pings = BackupPings::new(target, app.target(target)?.ping_url.as_ref());
    let done = app.executor.run("backup", target, actor, ctx, |job, ctx| {
        pings.started();
        crate::target_hooks::owed::settle(app, target, ctx);
        let hooks = ActionHooks::for_backup(app, target, job.id, ctx)?;
        hooks.finish(kind.backup(app, target, ctx, &hooks))
    });
    match &done {
        Ok(_) => pings.finished(Ok(())),
        // Refused before it started (the target busy): the monitor heard no start.
        Err(Error::Busy(_)) => {}
        Err(e) => pings.finished(Err(e.to_string())),
    }
    Ok(done?.value)
}

/// The backup itself, into the target's store; the caller holds the target's lock.
/// `before_backup` runs once the data is reached and before anything is written;
/// `after_backup` as soon as the source has finished reading (the store may still be
/// compressing and uploading).
pub(crate) fn backup_locked(
    app: &App,
    target: &str,
    ctx: &JobContext,
    hooks: &ActionHooks<'_>,
) -> Result<Manifest> {
    let source = crate::actions::kind::source(app, target)?;
    let (store_name, store) = app.store_for(target)?;
    // Reach the data first: a host that cannot be reached leaves not even a partial write.
    let mut copier = source.connect(ctx)?;
    clean_leftovers(store.as_ref(), target)?;
    let started = Utc::now();
    let clock = Instant::now();
    let id = new_id(store.as_ref(), target, started)?;
    hooks.before(Some(&id))?;
    let new = NewBackup {
        target: target.to_string(),
        id: id.clone(),
        kind: source.kind(),
        file_name: source.content_name(),
        artifact_ext: source.artifact_ext(),
    };
    let mut content = HashWriter::new(store.begin(&new)?);
    let write_err = |e| Error::io(format!("writing backup {id} to {}", store.describe()), e);
    let cx = CopyContext {
        job: ctx,
        scratch: &|| app.scratch(),
        write_err: &write_err,
        finished_reading: &|| hooks.reading_ended(),
    };
    // A store keeping native trees takes the tree from a source that can hand one over;
    // otherwise (and for every other pair) the copy is one stream.
    let as_tree = match content.get_mut().as_tree() {
        Some(tree) => copier.copy_tree(tree, &cx),
        None => None,
    };
    let copied = match as_tree {
        Some(copied) => copied?,
        None => copier.copy(&mut content, &cx)?,
    };
    // Sources that know better say so earlier; at the latest, reading ends here.
    hooks.reading_ended();
    drop(copier);
    let changed = copied.changed_while_read;
    let replicated = copied.replicated;
    if let Some(paths) = changed.as_ref().filter(|p| !p.is_empty())
        && app.target(target)?.on_change == Some(OnChange::Fail)
    {
        // Dropping the unpublished writer leaves nothing a listing would show.
        return Err(Error::Failed(format!(
            "backup of {target} not kept (on_change = \"fail\"): {}; nothing was published. To get consistent copies, {WAYS_OUT}",
            changed_files(paths)
        )));
    }
    let (mut writer, content_bytes, content_sha256) = content.finish();
    writer.flush().map_err(write_err)?;
    ctx.cancel.check().map_err(|e| Error::io("storing", e))?;
    ctx.progress.phase("publishing");

    let finished = Utc::now();
    let manifest = Manifest {
        format: FORMAT_VERSION,
        id: id.clone(),
        target: target.to_string(),
        kind: source.kind(),
        store: store_name,
        created_at: crate::units::time_text(started),
        finished_at: crate::units::time_text(finished),
        duration_seconds: clock.elapsed().as_secs_f64(),
        status: "complete".into(),
        // The store fills in how it keeps the backup when it publishes it.
        artifact: String::new(),
        compression: String::new(),
        size_bytes: 0,
        sha256: String::new(),
        content_bytes,
        content_sha256,
        lifeboat_version: env!("CARGO_PKG_VERSION").into(),
        sqlite: copied.sqlite,
        directory: copied.directory,
        gcp: None,
        consistent: changed.as_ref().map(|p| p.is_empty()),
        changed_while_read: changed,
    };
    let manifest = match writer.publish(manifest, ctx) {
        Ok(m) => m,
        Err(_) if ctx.cancel.is_cancelled() => return Err(Error::Cancelled),
        Err(e) => return Err(e.into()),
    };
    let clock = Instant::now();
    app.db.catalog_put(&manifest)?;
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "backup recorded in the catalog"
    );
    if let Some(mark) = replicated {
        crate::replicate::scheduled::record_backup(app, &manifest, mark);
    }
    Ok(manifest)
}

/// Remove what interrupted backups and prunes left: partial writes and artifacts without
/// a manifest. Safe only under the target's lock.
fn clean_leftovers(store: &dyn BackupStore, target: &str) -> Result<()> {
    let removed = store.clean_leftovers(target)?;
    if removed > 0 {
        tracing::info!(
            target = target,
            removed,
            "removed leftovers of interrupted jobs"
        );
    }
    Ok(())
}

/// Backup ids are the UTC start time, sortable and readable: `20261122T083000Z`, with a
/// `-2`, `-3`... suffix in the rare case two start within one second.
pub(crate) fn new_id(
    store: &dyn BackupStore,
    target: &str,
    at: chrono::DateTime<Utc>,
) -> Result<String> {
    let base = at.format("%Y%m%dT%H%M%SZ").to_string();
    let (existing, _) = store.backups(target)?;
    let taken = |id: &str| existing.iter().any(|m| m.id == id);
    if !taken(&base) {
        return Ok(base);
    }
    Ok((2..)
        .map(|n| format!("{base}-{n}"))
        .find(|id| !taken(id))
        .expect("some suffix is free"))
}
