//! Verify a backup: re-read the artifact and check every checksum, and have the target's
//! source check the content (a database: `integrity_check` and row counts on a scratch
//! copy; a tree: every file's hash against the manifest). A continuous target's shipped
//! history is proved too ([`crate::replicate::chain`]).

use std::io::{self, Read};

use crate::actions::catalog::{Selector, find_to_check};
use crate::app::App;
use crate::error::{Error, Result};
use crate::pipe::{HashReader, ProgressReader};
use crate::progress::JobContext;
use crate::sources::Source;
use crate::stores::BackupStore;
use crate::stores::manifest::Manifest;

pub use crate::actions::shared::VerifyReport;

pub fn run(
    app: &App,
    target: &str,
    selector: &Selector,
    actor: &str,
    ctx: &JobContext,
) -> Result<VerifyReport> {
    run_reading(app, target, selector, false, actor, ctx)
}

/// Verify, and with `read_data` have the store read every byte it holds (a repository
/// reads and authenticates every pack, not only those of this backup).
pub fn run_reading(
    app: &App,
    target: &str,
    selector: &Selector,
    read_data: bool,
    actor: &str,
    ctx: &JobContext,
) -> Result<VerifyReport> {
    crate::actions::kind::for_target(app, target)?
        .verify(app, target, selector, read_data, actor, ctx)
}

/// Verify a backup kept in a store, picked before the job starts.
pub(crate) fn in_store(
    app: &App,
    target: &str,
    selector: &Selector,
    read_data: bool,
    actor: &str,
    ctx: &JobContext,
) -> Result<VerifyReport> {
    let manifest = find_to_check(app, target, selector)?;
    let source = crate::actions::kind::source(app, target)?;
    let done = app.executor.run("verify", target, actor, ctx, |_, ctx| {
        // Hooks a stopped process owed for this target run first, under its lock.
        crate::target_hooks::owed::settle(app, target, ctx);
        let (_, store) = app.store_for(target)?;
        let mut report = check(
            app,
            source.as_ref(),
            store.as_ref(),
            &manifest,
            read_data,
            ctx,
        )?;
        if app.target(target)?.continuous.is_some() {
            ctx.progress.phase("proving the shipped history");
            let scratch = app.scratch()?;
            let proof = crate::replicate::chain::prove(app, target, scratch.path(), ctx)?;
            report.problems.extend(proof.problems.iter().cloned());
            report.ok = report.problems.is_empty();
            report.chain = Some(proof);
        }
        Ok(report)
    })?;
    Ok(done.value)
}

/// Read the artifact once, checking everything that can be checked, then run the store's
/// own check (a repository's structure; every pack with `read_data`).
pub fn check(
    app: &App,
    source: &dyn Source,
    store: &dyn BackupStore,
    manifest: &Manifest,
    read_data: bool,
    ctx: &JobContext,
) -> Result<VerifyReport> {
    ctx.progress.phase("verifying");
    let scratch = app.scratch()?;
    let problems = read_checked(store, manifest, ctx, |content| {
        source.check_content(manifest, content, scratch.path(), ctx)
    })?;
    let mut problems = problems;
    problems.extend(store.check(read_data, ctx)?);
    Ok(report(manifest, problems))
}

/// Stream a backup's content from the store, hand it to `consume` (which returns the
/// problems it found), and check the whole against the manifest's size and SHA-256; the
/// store checks its own stored bytes as they pass. Returns every problem found: a
/// damaged backup is a problem, not an error. Verify, drills and recovery share this.
pub fn read_checked(
    store: &dyn BackupStore,
    manifest: &Manifest,
    ctx: &JobContext,
    consume: impl FnOnce(&mut dyn Read) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    ctx.progress.total(Some(manifest.content_bytes));
    let raw = match store.read(manifest) {
        Ok(r) => r,
        Err(e) if e.is_not_found() => {
            problems.push(format!(
                "the artifact {} is missing from the store",
                manifest.artifact
            ));
            return Ok(problems);
        }
        Err(e) => return Err(e.into()),
    };
    let mut content = HashReader::new(ProgressReader::new(
        raw,
        ctx.progress.clone(),
        ctx.cancel.clone(),
    ));
    let kind_problems = consume(&mut content);
    // Read whatever the checks left, so the content hash covers every byte.
    let drained = io::copy(&mut content, &mut io::sink());
    let (content_bytes, content_sha) = content.finish();
    let mut damaged = false;
    match kind_problems {
        Ok(p) => problems.extend(p),
        Err(Error::Cancelled) => return Err(Error::Cancelled),
        Err(e) => {
            damaged = true;
            problems.push(format!("the artifact cannot be read back: {e}"));
        }
    }
    if let Err(e) = drained {
        if crate::progress::is_cancellation(&e) {
            return Err(Error::Cancelled);
        }
        if !damaged {
            problems.push(format!("the artifact cannot be read back: {e}"));
        }
        damaged = true;
    }
    ctx.cancel.check().map_err(|e| Error::io("verifying", e))?;
    if !damaged
        && manifest.whole_content_hashed()
        && (content_bytes != manifest.content_bytes || content_sha != manifest.content_sha256)
    {
        problems.push("decompressed content differs from the manifest (SHA-256 mismatch)".into());
    }
    Ok(problems)
}

fn report(manifest: &Manifest, problems: Vec<String>) -> VerifyReport {
    VerifyReport {
        backup: manifest.summary(),
        ok: problems.is_empty(),
        problems,
        chain: None,
    }
}
