//! Backup, list, verify, restore and prune for gcp-disk targets, whose backups are
//! Compute Engine snapshots rather than objects in a store.
//!
//! The snapshots are the source of truth: each carries the labels `lifeboat=1`,
//! `lifeboat-target=<target>` and `lifeboat-id=<backup id>`, so `list` asks the API.
//! The state database's catalog keeps what lifeboat recorded when it took each one, and
//! verify compares the two (a snapshot deleted or replaced behind lifeboat's back shows).
//!
//! This is the keeper of actions::kind for the gcp-disk source ([`Snapshots`]); restores (a new disk from
//! a snapshot) are in `restore`, drills (a disk made, checked and deleted) in `drill`.
//! Like every kind's code it uses the shared vocabulary, never the actions calling it.

pub mod drill;
pub mod restore;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::actions::drill_steps::{Drill, Sandboxed};
use crate::actions::kind::{PlannedRestore, TargetBackups};
use crate::actions::shared::{Selector, VerifyReport};
use crate::app::App;
use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::sources::gcp_disk::{
    self, Gcp, LABEL_ID, LABEL_MARK, LABEL_TARGET, SnapshotInfo, gce_name,
};
use crate::stores::manifest::{FORMAT_VERSION, GcpFacts, Manifest};
use crate::target_hooks::ActionHooks;

/// gcp-disk targets, whose backups are the snapshots of their disk.
pub struct Snapshots;

impl TargetBackups for Snapshots {
    fn backup(
        &self,
        app: &App,
        target: &str,
        ctx: &JobContext,
        hooks: &ActionHooks<'_>,
    ) -> Result<Manifest> {
        backup(app, target, ctx, hooks)
    }

    fn backups(&self, app: &App, target: &str) -> Result<Vec<Manifest>> {
        backups(app, target)
    }

    fn verify(
        &self,
        app: &App,
        target: &str,
        selector: &Selector,
        // A snapshot's bytes are Compute Engine's: there is nothing more to read.
        _read_data: bool,
        actor: &str,
        ctx: &JobContext,
    ) -> Result<VerifyReport> {
        verify(app, target, selector, actor, ctx)
    }

    fn remove(
        &self,
        app: &App,
        target: &str,
        remove: &[Manifest],
        ctx: &JobContext,
    ) -> Result<Option<u64>> {
        delete_snapshots(app, target, remove, ctx)?;
        Ok(None) // the plan's sum of snapshot sizes stands
    }

    /// `verify`'s choice: a snapshot the catalog recorded is picked even when it was
    /// deleted, so the drill names it.
    fn drill_backup(&self, app: &App, target: &str, selector: &Selector) -> Result<Manifest> {
        let gcp = connect(app, target)?;
        Ok(checked_snapshot(app, &gcp, target, selector)?.backup)
    }

    fn drill_restore(&self, d: &mut Drill, selector: &Selector) -> Result<Sandboxed> {
        drill::restore(d, selector)
    }

    /// `--to` names the new disk.
    fn cli_restore_plan(
        &self,
        app: &App,
        target: &str,
        selector: &Selector,
        to: Option<&Path>,
        instance: Option<&str>,
    ) -> Result<Box<dyn PlannedRestore>> {
        let to = to.map(|p| p.to_string_lossy().to_string());
        let plan = restore::plan(app, target, selector, to.as_deref(), instance)?;
        Ok(Box::new(plan))
    }
}

pub fn connect(app: &App, target: &str) -> Result<Gcp> {
    Gcp::connect(target, app.target(target)?)
}

/// The value of the `lifeboat-target` label for a target name.
pub fn target_label(target: &str) -> String {
    gce_name(target, 63)
}

/// Whether a snapshot is one of lifeboat's of this target's disk.
fn is_ours(gcp: &Gcp, target: &str, s: &SnapshotInfo) -> bool {
    let disk_suffix = format!("zones/{}/disks/{}", gcp.zone, gcp.disk);
    s.labels.get(LABEL_MARK).is_some_and(|v| v == "1")
        && s.labels.get(LABEL_TARGET) == Some(&target_label(target))
        && s.labels.contains_key(LABEL_ID)
        && s.source_disk.ends_with(&disk_suffix)
}

/// Backup ids are stored lowercased in a label (label values allow no capitals).
fn id_of(s: &SnapshotInfo) -> Option<String> {
    s.labels.get(LABEL_ID).map(|v| v.to_uppercase())
}

/// When the backup started: from its id (the UTC start time), else the snapshot's own.
fn created_of(id: &str, s: &SnapshotInfo) -> DateTime<Utc> {
    let stem = id.split('-').next().unwrap_or(id);
    NaiveDateTime::parse_from_str(stem, "%Y%m%dT%H%M%SZ")
        .map(|t| t.and_utc())
        .ok()
        .or_else(|| crate::units::parse_time(&s.creation_timestamp))
        .unwrap_or_default()
}

/// A snapshot as a backup, completed from the catalog's record when there is one.
fn manifest_of(gcp: &Gcp, target: &str, s: &SnapshotInfo, recorded: Option<&Manifest>) -> Manifest {
    let id = id_of(s).unwrap_or_else(|| s.name.clone());
    let created = crate::units::time_text(created_of(&id, s));
    let facts = GcpFacts {
        project: gcp.project.clone(),
        zone: gcp.zone.clone(),
        disk: gcp.disk.clone(),
        snapshot: s.name.clone(),
        snapshot_id: s.id,
        snapshot_status: s.status.clone(),
        source_disk: s.source_disk.clone(),
        disk_size_gb: s.disk_size_gb,
    };
    let (finished_at, duration_seconds) = match recorded {
        Some(m) => (m.finished_at.clone(), m.duration_seconds),
        None => (created.clone(), 0.0),
    };
    Manifest {
        format: FORMAT_VERSION,
        id,
        target: target.to_string(),
        kind: gcp_disk::KIND,
        store: store_label(gcp),
        created_at: created,
        finished_at,
        duration_seconds,
        status: "complete".into(),
        artifact: s.name.clone(),
        compression: "none".into(),
        size_bytes: s.storage_bytes,
        // Compute Engine keeps its own checksums; there is no byte stream to hash.
        sha256: String::new(),
        content_bytes: s.disk_size_gb << 30,
        content_sha256: String::new(),
        lifeboat_version: recorded
            .map(|m| m.lifeboat_version.clone())
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
        sqlite: None,
        directory: None,
        gcp: Some(facts),
        consistent: None,
        changed_while_read: None,
    }
}

/// What `store` says for a snapshot backup.
fn store_label(gcp: &Gcp) -> String {
    format!("gcp-snapshots:{}", gcp.project)
}

/// Every READY snapshot lifeboat took of the target, newest first.
pub fn backups(app: &App, target: &str) -> Result<Vec<Manifest>> {
    let gcp = connect(app, target)?;
    let recorded = app.db.catalog_list(target)?;
    let mut out: Vec<Manifest> = gcp
        .list_snapshots(&target_label(target))?
        .iter()
        .filter(|s| is_ours(&gcp, target, s) && s.status == "READY")
        .map(|s| {
            let id = id_of(s).unwrap_or_default();
            manifest_of(&gcp, target, s, recorded.iter().find(|m| m.id == id))
        })
        .collect();
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(out)
}

/// Take a snapshot now; the caller holds the target's lock. The disk needs to be quiet
/// (e.g. `fsfreeze -f` in `before_backup`) only until the snapshot has left CREATING: the
/// `after_backup` hooks run then, not after its upload.
fn backup(app: &App, target: &str, ctx: &JobContext, hooks: &ActionHooks<'_>) -> Result<Manifest> {
    let gcp = connect(app, target)?;
    let started = Utc::now();
    let clock = std::time::Instant::now();
    let taken: Vec<String> = gcp
        .list_snapshots(&target_label(target))?
        .iter()
        .filter_map(id_of)
        .collect();
    let base = started.format("%Y%m%dT%H%M%SZ").to_string();
    let id = std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|id| !taken.contains(id))
        .expect("some suffix is free");
    let name = format!("lifeboat-{}-{}", gce_name(target, 36), id.to_lowercase());
    let labels = BTreeMap::from([
        (LABEL_MARK.to_string(), "1".to_string()),
        (LABEL_TARGET.to_string(), target_label(target)),
        (LABEL_ID.to_string(), id.to_lowercase()),
    ]);
    ctx.cancel
        .check()
        .map_err(|e| Error::io("snapshotting", e))?;
    hooks.before(Some(&id))?;
    ctx.progress
        .phase(&format!("snapshotting disk {}", gcp.disk));
    let description = format!(
        "lifeboat backup {id} of target {target} (disk {})",
        gcp.disk
    );
    let snap = gcp.create_snapshot(&name, &description, labels, &|| hooks.reading_ended())?;
    let mut m = manifest_of(&gcp, target, &snap, None);
    m.finished_at = crate::units::now_text();
    m.duration_seconds = clock.elapsed().as_secs_f64();
    app.db.catalog_put(&m)?;
    Ok(m)
}

/// Verify a snapshot backup as a job: it exists, is READY, and is the one the catalog
/// recorded.
fn verify(
    app: &App,
    target: &str,
    selector: &Selector,
    actor: &str,
    ctx: &JobContext,
) -> Result<VerifyReport> {
    let done = app.executor.run("verify", target, actor, ctx, |_, ctx| {
        // Hooks a stopped process owed for this target run first, under its lock.
        crate::target_hooks::owed::settle(app, target, ctx);
        ctx.progress.phase("checking the snapshot");
        let gcp = connect(app, target)?;
        let found = checked_snapshot(app, &gcp, target, selector)?;
        Ok(VerifyReport {
            ok: found.problems.is_empty(),
            backup: found.backup,
            problems: found.problems,
            chain: None,
        })
    })?;
    Ok(done.value)
}

/// A snapshot backup as `verify` and drills pick it, and what is wrong with it.
#[derive(Debug, Clone)]
pub struct CheckedSnapshot {
    pub backup: Manifest,
    /// The snapshot as the API has it now; `None` when it no longer exists.
    pub snapshot: Option<SnapshotInfo>,
    /// Missing, not READY, replaced, not in the catalog: empty when all is well.
    pub problems: Vec<String>,
}

/// Pick a backup among every snapshot of the target found and every one the catalog
/// recorded that is not found (so a snapshot deleted behind lifeboat's back is still
/// picked, and named), and check it against the catalog's record.
pub fn checked_snapshot(
    app: &App,
    gcp: &Gcp,
    target: &str,
    selector: &Selector,
) -> Result<CheckedSnapshot> {
    let recorded = app.db.catalog_list(target)?;
    let live: Vec<SnapshotInfo> = gcp
        .list_snapshots(&target_label(target))?
        .into_iter()
        .filter(|s| is_ours(gcp, target, s))
        .collect();
    let mut all: Vec<(Manifest, Option<&SnapshotInfo>)> = live
        .iter()
        .map(|s| {
            let id = id_of(s).unwrap_or_default();
            let rec = recorded.iter().find(|m| m.id == id);
            (manifest_of(gcp, target, s, rec), Some(s))
        })
        .collect();
    for m in &recorded {
        if !all.iter().any(|(a, _)| a.id == m.id) {
            all.push((m.clone(), None));
        }
    }
    all.sort_by(|a, b| {
        b.0.created_at
            .cmp(&a.0.created_at)
            .then(b.0.id.cmp(&a.0.id))
    });
    let (backup, found) = select(&all, selector, target)?;
    let rec = recorded.iter().find(|m| m.id == backup.id);
    let problems = check(&backup, found, rec);
    Ok(CheckedSnapshot {
        backup,
        snapshot: found.cloned(),
        problems,
    })
}

fn select<'a>(
    all: &'a [(Manifest, Option<&'a SnapshotInfo>)],
    selector: &Selector,
    target: &str,
) -> Result<(Manifest, Option<&'a SnapshotInfo>)> {
    let found = match selector {
        Selector::Latest => all.first(),
        Selector::Id(id) => all.iter().find(|(m, _)| &m.id == id),
        Selector::At(t) => all.iter().find(|(m, _)| m.created() <= *t),
    };
    found.map(|(m, s)| (m.clone(), *s)).ok_or_else(|| {
        let ids: Vec<&str> = all.iter().take(5).map(|(m, _)| m.id.as_str()).collect();
        Error::Usage(if ids.is_empty() {
            format!("{target} has no backups yet; take one with `lifeboat backup {target}`")
        } else {
            format!("no such backup of {target}; newest: {}", ids.join(", "))
        })
    })
}

/// Problems of one snapshot backup against the catalog's record of it.
fn check(
    backup: &Manifest,
    live: Option<&SnapshotInfo>,
    recorded: Option<&Manifest>,
) -> Vec<String> {
    let name = &backup.artifact;
    let Some(s) = live else {
        return vec![format!(
            "snapshot {name} no longer exists: it was deleted outside lifeboat"
        )];
    };
    let mut problems = Vec::new();
    if s.status != "READY" {
        problems.push(format!("snapshot {name} is {}, not READY", s.status));
    }
    let Some(rec) = recorded.and_then(|r| r.gcp.as_ref()) else {
        problems.push(format!(
            "snapshot {name} is not in lifeboat's catalog (taken by another lifeboat, or the state database was replaced)"
        ));
        return problems;
    };
    if rec.snapshot != s.name {
        problems.push(format!(
            "the catalog recorded snapshot {} for this backup, the project has {}",
            rec.snapshot, s.name
        ));
    }
    if rec.snapshot_id.is_some() && rec.snapshot_id != s.id {
        problems.push(format!(
            "snapshot {name} was replaced: its id is {}, the catalog recorded {}",
            s.id.map_or("none".into(), |i| i.to_string()),
            rec.snapshot_id.map_or("none".into(), |i| i.to_string())
        ));
    }
    if rec.source_disk != s.source_disk {
        problems.push(format!(
            "snapshot {name} is of {}, the catalog recorded {}",
            s.source_disk, rec.source_disk
        ));
    }
    problems
}

/// Delete the snapshots a prune plan removes, each then leaving the catalog; the caller
/// holds the target's lock.
fn delete_snapshots(app: &App, target: &str, remove: &[Manifest], ctx: &JobContext) -> Result<()> {
    let gcp = connect(app, target)?;
    ctx.progress.phase("deleting snapshots");
    for m in remove {
        gcp.delete_snapshot(&m.artifact)?;
        app.db.catalog_remove(target, &m.id)?;
        tracing::info!(target = target, backup = %m.id, snapshot = %m.artifact, "pruned");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(status: &str) -> SnapshotInfo {
        SnapshotInfo {
            name: "lifeboat-d-20261122t083000z".into(),
            id: Some(7),
            status: status.into(),
            storage_bytes: 10,
            disk_size_gb: 1,
            source_disk: "projects/p/zones/z/disks/d".into(),
            creation_timestamp: String::new(),
            self_link: String::new(),
            labels: BTreeMap::from([(LABEL_ID.to_string(), "20261122t083000z".to_string())]),
        }
    }

    #[test]
    fn ids_come_back_from_labels_and_give_the_start_time() {
        let s = snap("READY");
        let id = id_of(&s).unwrap();
        assert_eq!(id, "20261122T083000Z");
        assert_eq!(
            crate::units::time_text(created_of(&id, &s)),
            "2026-11-22T08:30:00.000Z"
        );
        assert_eq!(
            crate::units::time_text(created_of("20261122T083000Z-2", &s)),
            "2026-11-22T08:30:00.000Z"
        );
    }

    #[test]
    fn verify_reports_missing_unready_and_replaced_snapshots() {
        let s = snap("READY");
        let mut rec = Manifest {
            format: 1,
            id: "20261122T083000Z".into(),
            target: "t".into(),
            kind: gcp_disk::KIND,
            store: "gcp-snapshots:p".into(),
            created_at: String::new(),
            finished_at: String::new(),
            duration_seconds: 0.0,
            status: "complete".into(),
            artifact: s.name.clone(),
            compression: "none".into(),
            size_bytes: 0,
            sha256: String::new(),
            content_bytes: 0,
            content_sha256: String::new(),
            lifeboat_version: String::new(),
            sqlite: None,
            directory: None,
            consistent: None,
            changed_while_read: None,
            gcp: Some(GcpFacts {
                project: "p".into(),
                zone: "z".into(),
                disk: "d".into(),
                snapshot: s.name.clone(),
                snapshot_id: Some(7),
                snapshot_status: "READY".into(),
                source_disk: s.source_disk.clone(),
                disk_size_gb: 1,
            }),
        };
        assert!(check(&rec, Some(&s), Some(&rec)).is_empty());
        assert!(check(&rec, None, Some(&rec))[0].contains("deleted outside lifeboat"));
        assert!(check(&rec, Some(&snap("FAILED")), Some(&rec))[0].contains("not READY"));
        rec.gcp.as_mut().unwrap().snapshot_id = Some(8);
        assert!(check(&rec, Some(&s), Some(&rec))[0].contains("replaced"));
        assert!(check(&rec, Some(&s), None)[0].contains("catalog"));
    }
}
