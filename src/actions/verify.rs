//! Verify a backup: re-read the artifact and check every checksum; for SQLite, restore
//! into scratch and run `integrity_check` and compare row counts; for directories, check
//! every file's hash against the manifest.

use std::io::{self, Read};

use serde::Serialize;

use crate::actions::catalog::{Selector, find};
use crate::app::App;
use crate::error::{Error, Result};
use crate::executor::JobOutput;
use crate::pipe::{HashReader, ProgressReader};
use crate::progress::JobContext;
use crate::sources::{directory, sqlite};
use crate::stores::Store;
use crate::stores::manifest::Manifest;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    #[serde(flatten)]
    pub backup: Manifest,
    pub ok: bool,
    pub problems: Vec<String>,
}

impl JobOutput for VerifyReport {
    fn backup_id(&self) -> Option<String> {
        Some(self.backup.id.clone())
    }
    fn summary(&self) -> String {
        if self.ok {
            format!(
                "backup {} of {} verified: all checks passed",
                self.backup.id, self.backup.target
            )
        } else {
            format!(
                "backup {} of {} FAILED verification: {}",
                self.backup.id,
                self.backup.target,
                self.problems.join("; ")
            )
        }
    }
    fn ok(&self) -> bool {
        self.ok
    }
}

pub fn run(
    app: &App,
    target: &str,
    selector: &Selector,
    actor: &str,
    ctx: &JobContext,
) -> Result<VerifyReport> {
    if app.target(target)?.kind == crate::config::TargetKind::GcpDisk {
        return crate::actions::gcp::verify(app, target, selector, actor, ctx);
    }
    let manifest = find(app, target, selector)?;
    let done = app.executor.run("verify", target, actor, ctx, |_, ctx| {
        let (_, store) = app.store_for(target)?;
        check(app, store.as_ref(), &manifest, ctx)
    })?;
    Ok(done.value)
}

/// Read the artifact once, checking everything that can be checked.
pub fn check(
    app: &App,
    store: &dyn Store,
    manifest: &Manifest,
    ctx: &JobContext,
) -> Result<VerifyReport> {
    ctx.progress.phase("verifying");
    let scratch = app.scratch()?;
    let problems = read_checked(store, manifest, ctx, |content| {
        match manifest.kind.as_str() {
            "sqlite" => check_sqlite(content, scratch.path(), manifest),
            "directory" => match &manifest.directory {
                Some(facts) => directory::check_tar(content, facts, ctx),
                None => Ok(vec!["the manifest has no file list".into()]),
            },
            other => Ok(vec![format!("cannot verify backups of kind {other}")]),
        }
    })?;
    Ok(report(manifest, problems))
}

/// Stream a backup's artifact from the store, hand its decompressed content to `consume`
/// (which returns the problems it found), and check the stored bytes and the content
/// against the manifest's sizes and SHA-256. Returns every problem found; a damaged
/// artifact is a problem, not an error. Verify and drill share this.
pub fn read_checked(
    store: &dyn Store,
    manifest: &Manifest,
    ctx: &JobContext,
    consume: impl FnOnce(&mut dyn Read) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    ctx.progress.total(Some(manifest.size_bytes));
    let raw = match store.open(&manifest.artifact) {
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
    let stored = HashReader::new(ProgressReader::new(
        raw,
        ctx.progress.clone(),
        ctx.cancel.clone(),
    ));
    let mut decoder = match zstd::stream::read::Decoder::new(stored) {
        Ok(d) => d,
        Err(e) => return Err(Error::io("starting decompression", e)),
    };
    let content_check = {
        let mut content = HashReader::new(&mut decoder);
        let kind_problems = consume(&mut content);
        // Read whatever the checks left, so the content hash covers every byte.
        let drained = io::copy(&mut content, &mut io::sink());
        (kind_problems, drained, content.finish())
    };
    let (kind_problems, drained, (content_bytes, content_sha)) = content_check;
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
        if !damaged {
            problems.push(format!("the artifact cannot be decompressed: {e}"));
        }
        damaged = true;
    }
    // Hash the rest of the stored bytes even when decompression stopped early.
    let mut rest = decoder.finish();
    let _ = io::copy(&mut rest, &mut io::sink());
    let (stored_bytes, stored_sha) = rest.into_inner().finish();
    ctx.cancel.check().map_err(|e| Error::io("verifying", e))?;
    if stored_bytes != manifest.size_bytes || stored_sha != manifest.sha256 {
        problems.insert(
            0,
            format!(
                "stored bytes differ from the manifest: {stored_bytes} bytes with SHA-256 {}…, expected {} bytes with {}…",
                &stored_sha[..12],
                manifest.size_bytes,
                &manifest.sha256[..12.min(manifest.sha256.len())]
            ),
        );
    }
    if !damaged
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
    }
}

fn check_sqlite(
    content: &mut dyn Read,
    scratch: &std::path::Path,
    manifest: &Manifest,
) -> Result<Vec<String>> {
    let Some(facts) = &manifest.sqlite else {
        return Ok(vec!["the manifest has no database facts".into()]);
    };
    let path = scratch.join("verify.sqlite");
    let mut file =
        std::fs::File::create_new(&path).map_err(|e| Error::io("creating the scratch copy", e))?;
    crate::pipe::copy(content, &mut file).map_err(|e| Error::io("decompressing", e))?;
    drop(file);
    sqlite::check_copy(&path, facts, true)
}
