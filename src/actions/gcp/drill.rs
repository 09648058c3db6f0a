//! The restore half of a drill of a gcp-disk target. Its sandbox is a NEW disk made
//! from the snapshot in the target's zone (`lifeboat-drill-<target>-<UTC start>`, labelled
//! `lifeboat=1`, `lifeboat-target`, `lifeboat-drill=1`), read back and checked (READY, the
//! snapshot's size, made from that snapshot), and deleted again whatever happened after
//! it was made. An existing disk is never touched: the drill refuses a name that is taken
//! and deletes only a disk that carries its own labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::actions::drill_steps::{Drill, Sandboxed, age, human};
use crate::actions::gcp;
use crate::actions::shared::Selector;
use crate::error::{Error, Result};
use crate::sources::gcp_disk::{
    DiskInfo, Gcp, LABEL_DRILL, LABEL_ID, LABEL_MARK, LABEL_TARGET, SnapshotInfo, gce_name,
    valid_gce_name,
};

/// How long a new disk may stay CREATING or RESTORING after its operation is done.
const SETTLE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Find the snapshot, make the drill disk, check it, run the checks, delete the disk.
pub(crate) fn restore(d: &mut Drill, selector: &Selector) -> Result<Sandboxed> {
    let (app, target, started) = (d.app, d.target, d.started);
    let project = d.cfg.project.clone().unwrap_or_default();
    let zone = d.cfg.zone.clone().unwrap_or_default();
    let name = drill_disk_name(target, started);
    let sandbox = PathBuf::from(format!("projects/{project}/zones/{zone}/disks/{name}"));
    let mut api: Option<Gcp> = None;
    let mut found: Option<gcp::CheckedSnapshot> = None;
    d.step("find the snapshot", || {
        let g = api.insert(gcp::connect(app, target)?);
        let c = found.insert(gcp::checked_snapshot(app, g, target, selector)?);
        let m = &c.backup;
        Ok(if c.problems.is_empty() {
            Ok(format!(
                "backup {} is snapshot {} ({} GB disk), taken {} ({} before the drill)",
                m.id,
                m.artifact,
                m.gcp.as_ref().map_or(0, |f| f.disk_size_gb),
                m.created_at,
                human(age(m, started))
            ))
        } else {
            Err(c.problems.clone())
        })
    })?;
    let mut done = Sandboxed {
        backup: found.as_ref().map(|c| c.backup.clone()),
        sandbox,
        is_disk: true,
        created: false,
        removed: false,
        rto_seconds: None,
        rpo_seconds: None,
    };
    // A snapshot that is gone or not READY cannot be made into a disk; one that is only
    // unknown to the catalog (a state database restored elsewhere) still can.
    let (Some(api), Some(snap)) = (
        api,
        found
            .and_then(|c| c.snapshot)
            .filter(|s| s.status == "READY"),
    ) else {
        return Ok(done);
    };
    let before = d.problems.len();
    let ctx = d.ctx;
    let mut sent = false;
    let made = d.step(
        format!("create disk {name} from snapshot {}", snap.name),
        || {
            create(
                &api,
                ctx,
                target,
                &name,
                &snap,
                done.backup.as_ref(),
                &mut sent,
            )
        },
    )?;
    // Whatever follows the create call, the delete step runs: a cancel or an error in
    // between is kept until the disk is gone.
    let checked = if made {
        done.created = true;
        check_and_run_checks(d, &api, &name, &snap, &done.sandbox)
    } else {
        Ok(())
    };
    if made && d.problems.len() == before {
        done.rto_seconds = Some(d.elapsed());
    }
    // The create call may have left a disk even when its operation failed.
    if made || (sent && api.get_disk(&name).ok().flatten().is_some()) {
        done.created = true;
        done.removed = d.step(format!("delete disk {name}"), || {
            Ok(remove(&api, target, &name).map_err(|e| {
                vec![format!(
                    "the drill disk {name} could not be deleted: {e}; delete it by hand: `gcloud compute disks delete {name} --project {} --zone {}`",
                    api.project, api.zone
                )]
            }))
        })?;
    }
    checked?;
    Ok(done)
}

/// The create step: refuse a taken name, then `disks.insert` and wait for it.
fn create(
    api: &Gcp,
    ctx: &crate::progress::JobContext,
    target: &str,
    name: &str,
    snap: &SnapshotInfo,
    backup: Option<&crate::stores::manifest::Manifest>,
    sent: &mut bool,
) -> Result<std::result::Result<String, Vec<String>>> {
    if !valid_gce_name(name) {
        return Ok(Err(vec![format!(
            "cannot name the drill disk {name:?}: not a valid disk name"
        )]));
    }
    if api.get_disk(name)?.is_some() {
        return Ok(Err(vec![format!(
            "a disk named {name} already exists in {}/{}; the drill leaves it alone and made no disk",
            api.project, api.zone
        )]));
    }
    ctx.cancel.check().map_err(|e| Error::io("drilling", e))?;
    let mut labels = drill_labels(target);
    if let Some(m) = backup {
        labels.insert(LABEL_ID.to_string(), m.id.to_lowercase());
    }
    *sent = true;
    api.create_disk(name, &api.snapshot_path(&snap.name), labels)?;
    Ok(Ok(format!(
        "disk {name} created in {}/{} from snapshot {}, labelled {LABEL_DRILL}=1",
        api.project, api.zone, snap.name
    )))
}

/// Read the new disk back and check it against the snapshot, then the target's checks
/// with `LIFEBOAT_SANDBOX` set to the disk's path.
fn check_and_run_checks(
    d: &mut Drill,
    api: &Gcp,
    name: &str,
    snap: &SnapshotInfo,
    sandbox: &Path,
) -> Result<()> {
    let verified = d.step(
        format!("verify disk {name}: READY, the snapshot's size, made from it"),
        || {
            let disk = api.settled_disk(name, SETTLE_LIMIT)?;
            let found = disk_problems(name, disk.as_ref(), snap, &api.project);
            Ok(match (found.is_empty(), disk) {
                (true, Some(disk)) => Ok(format!(
                    "READY, {} GB as the snapshot's disk, made from snapshot {}",
                    disk.size_gb, snap.name
                )),
                _ => Err(found),
            })
        },
    )?;
    if verified {
        d.run_checks(sandbox)?;
    }
    Ok(())
}

/// Delete the drill disk, but only one that carries this drill's labels.
fn remove(api: &Gcp, target: &str, name: &str) -> Result<String> {
    let Some(disk) = api.get_disk(name)? else {
        return Ok(format!("no disk {name} was left to delete"));
    };
    if !is_drill_disk(&disk, target) {
        return Err(Error::Failed(format!(
            "disk {name} does not carry this drill's labels, so lifeboat leaves it alone"
        )));
    }
    api.delete_disk(name)?;
    Ok(format!("disk {name} deleted"))
}

/// `lifeboat-drill-<target>-<UTC start>`: a valid disk name, at most 63 characters.
pub fn drill_disk_name(target: &str, started: DateTime<Utc>) -> String {
    let stamp = started.format("%Y%m%dt%H%M%Sz").to_string();
    let room = 63 - "lifeboat-drill-".len() - 1 - stamp.len();
    let t = gce_name(target, room);
    let t = t.trim_start_matches('-');
    if t.is_empty() {
        format!("lifeboat-drill-{stamp}")
    } else {
        format!("lifeboat-drill-{t}-{stamp}")
    }
}

/// The labels of a drill disk.
pub fn drill_labels(target: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MARK.to_string(), "1".to_string()),
        (LABEL_TARGET.to_string(), gcp::target_label(target)),
        (LABEL_DRILL.to_string(), "1".to_string()),
    ])
}

/// Whether a disk is a drill disk of this target (by its labels).
fn is_drill_disk(disk: &DiskInfo, target: &str) -> bool {
    drill_labels(target)
        .iter()
        .all(|(k, v)| disk.labels.get(k) == Some(v))
}

/// What is wrong with the drill disk, in words: gone, not READY, another size than the
/// snapshot's disk, or made from something else.
pub fn disk_problems(
    name: &str,
    disk: Option<&DiskInfo>,
    snap: &SnapshotInfo,
    project: &str,
) -> Vec<String> {
    let Some(disk) = disk else {
        return vec![format!("disk {name} is gone right after it was made")];
    };
    let mut out = Vec::new();
    if disk.status != "READY" {
        out.push(format!("disk {name} is {}, not READY", disk.status));
    }
    if disk.size_gb != snap.disk_size_gb {
        out.push(format!(
            "disk {name} is {} GB, the snapshot {} is of a {} GB disk",
            disk.size_gb, snap.name, snap.disk_size_gb
        ));
    }
    let want = format!("projects/{project}/global/snapshots/{}", snap.name);
    let same_path = disk.source_snapshot == want
        || disk.source_snapshot.ends_with(&format!("/{want}"))
        || (!snap.self_link.is_empty() && disk.source_snapshot == snap.self_link);
    if !same_path {
        out.push(format!(
            "disk {name} was made from {:?}, not from snapshot {}",
            disk.source_snapshot, snap.name
        ));
    } else if let (Some(made_from), Some(id)) = (disk.source_snapshot_id, snap.id)
        && made_from != id
    {
        out.push(format!(
            "disk {name} was made from snapshot id {made_from}, snapshot {} has id {id}",
            snap.name
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> SnapshotInfo {
        SnapshotInfo {
            name: "lifeboat-data-disk-20261122t083000z".into(),
            id: Some(7),
            status: "READY".into(),
            storage_bytes: 10,
            disk_size_gb: 10,
            source_disk: "projects/p/zones/z/disks/data-disk".into(),
            creation_timestamp: String::new(),
            self_link: "https://compute.googleapis.com/compute/v1/projects/p/global/snapshots/lifeboat-data-disk-20261122t083000z".into(),
            labels: BTreeMap::new(),
        }
    }

    fn disk() -> DiskInfo {
        DiskInfo {
            name: "d".into(),
            status: "READY".into(),
            size_gb: 10,
            source_snapshot: "https://www.googleapis.com/compute/v1/projects/p/global/snapshots/lifeboat-data-disk-20261122t083000z".into(),
            source_snapshot_id: Some(7),
            labels: drill_labels("data-disk"),
        }
    }

    #[test]
    fn drill_disk_names_are_valid_and_carry_target_and_start() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T08:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            drill_disk_name("data-disk", at),
            "lifeboat-drill-data-disk-20261122t083000z"
        );
        for target in ["Data_Disk", "x".repeat(80).as_str(), "--", "9"] {
            let n = drill_disk_name(target, at);
            assert!(valid_gce_name(&n), "{n}");
            assert!(n.ends_with("-20261122t083000z"), "{n}");
        }
    }

    #[test]
    fn the_drill_disk_must_be_ready_the_snapshots_size_and_made_from_it() {
        let s = snap();
        assert!(disk_problems("d", Some(&disk()), &s, "p").is_empty());
        let partial = DiskInfo {
            source_snapshot: "projects/p/global/snapshots/lifeboat-data-disk-20261122t083000z"
                .into(),
            ..disk()
        };
        assert!(disk_problems("d", Some(&partial), &s, "p").is_empty());
        assert!(disk_problems("d", None, &s, "p")[0].contains("gone"));
        let creating = DiskInfo {
            status: "FAILED".into(),
            ..disk()
        };
        assert_eq!(
            disk_problems("d", Some(&creating), &s, "p"),
            ["disk d is FAILED, not READY"]
        );
        let bigger = DiskInfo {
            size_gb: 20,
            ..disk()
        };
        assert!(disk_problems("d", Some(&bigger), &s, "p")[0].contains("20 GB"));
        let other = DiskInfo {
            source_snapshot: "projects/p/global/snapshots/other".into(),
            ..disk()
        };
        assert!(disk_problems("d", Some(&other), &s, "p")[0].contains("not from snapshot"));
        let remade = DiskInfo {
            source_snapshot_id: Some(8),
            ..disk()
        };
        assert!(disk_problems("d", Some(&remade), &s, "p")[0].contains("id 8"));
    }

    #[test]
    fn only_a_disk_with_this_drills_labels_is_deleted() {
        assert!(is_drill_disk(&disk(), "data-disk"));
        assert!(!is_drill_disk(&disk(), "home-disk"));
        let restored = DiskInfo {
            labels: BTreeMap::from([("lifeboat".to_string(), "1".to_string())]),
            ..disk()
        };
        assert!(!is_drill_disk(&restored, "data-disk"));
    }
}
