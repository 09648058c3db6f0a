//! A generation's base copy: the database exactly as of one shipped transaction, taken
//! while the file is pinned (the write lock was held while every frame was checkpointed
//! and the pinning read began), published as an ordinary backup of the target.

use chrono::Utc;

use crate::app::App;
use crate::error::{Error, Result};
use crate::pipe::HashWriter;
use crate::progress::JobContext;
use crate::sources::sqlite::Pinned;
use crate::stores::NewBackup;
use crate::stores::manifest::{FORMAT_VERSION, Manifest};

/// Stream the pinned database into a new backup of `target`; its manifest.
pub fn publish(app: &App, target: &str, pinned: Pinned, db: &std::path::Path) -> Result<Manifest> {
    let ctx = JobContext::silent();
    let (store_name, store) = app.store_for(target)?;
    let started = Utc::now();
    let clock = std::time::Instant::now();
    let id = crate::actions::backup::new_id(store.as_ref(), target, started)?;
    let new = NewBackup {
        target: target.to_string(),
        id: id.clone(),
        kind: crate::config::TargetKind::Sqlite,
        file_name: db
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{target}.sqlite")),
        artifact_ext: "sqlite",
    };
    let mut content = HashWriter::new(store.begin(&new)?);
    let write_err = |e| Error::io(format!("writing base copy {id} to {}", store.describe()), e);
    let facts = pinned.stream(db, &mut content, &write_err, &ctx)?;
    let (mut writer, content_bytes, content_sha256) = content.finish();
    std::io::Write::flush(&mut writer).map_err(write_err)?;
    let manifest = Manifest {
        format: FORMAT_VERSION,
        id,
        target: target.to_string(),
        kind: crate::config::TargetKind::Sqlite,
        store: store_name,
        created_at: crate::units::time_text(started),
        finished_at: crate::units::now_text(),
        duration_seconds: clock.elapsed().as_secs_f64(),
        status: "complete".into(),
        artifact: String::new(),
        compression: String::new(),
        size_bytes: 0,
        sha256: String::new(),
        content_bytes,
        content_sha256,
        lifeboat_version: env!("CARGO_PKG_VERSION").into(),
        sqlite: Some(facts),
        directory: None,
        gcp: None,
        consistent: None,
        changed_while_read: None,
    };
    let manifest = writer.publish(manifest, &ctx)?;
    app.db.catalog_put(&manifest)?;
    Ok(manifest)
}
