//! Restore of a gcp-disk target: always a NEW disk made from the snapshot, optionally
//! attached to an instance; the target's own disk is never touched. The plan lists
//! every Compute Engine call `apply` makes, and the command line shows it first.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;

use super::{backups, connect, target_label};
use crate::actions::kind::{PlannedRestore, RestoreDone, pretty_json};
use crate::actions::shared::Selector;
use crate::app::App;
use crate::error::{Error, Result};
use crate::executor::JobOutput;
use crate::progress::JobContext;
use crate::sources::gcp_disk::{LABEL_ID, LABEL_MARK, LABEL_TARGET, gce_name, valid_gce_name};
use crate::stores::manifest::Manifest;
use crate::units::human_age;

/// A restore of a snapshot backup: always a NEW disk, optionally attached to an
/// instance. The existing disk is never touched.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GcpRestorePlan {
    pub target: String,
    pub backup: Manifest,
    pub backup_age_seconds: i64,
    pub project: String,
    pub zone: String,
    pub snapshot: String,
    /// The target's own disk, left as it is.
    pub disk: String,
    pub new_disk: String,
    pub instance: Option<String>,
    pub device_name: Option<String>,
    /// Every Compute Engine API call `apply` makes, in order.
    pub calls: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GcpRestoreOutcome {
    #[serde(flatten)]
    pub plan: GcpRestorePlan,
    pub ok: bool,
    pub disk_url: String,
    pub duration_seconds: f64,
}

impl JobOutput for GcpRestoreOutcome {
    fn backup_id(&self) -> Option<String> {
        Some(self.plan.backup.id.clone())
    }
    fn summary(&self) -> String {
        let attached = match &self.plan.instance {
            Some(i) => format!(", attached to {i}"),
            None => String::new(),
        };
        format!(
            "restored backup {} of {} to the new disk {}{attached}",
            self.plan.backup.id, self.plan.target, self.plan.new_disk
        )
    }
}

impl GcpRestorePlan {
    /// The plan in words, listing every API call.
    pub fn describe(&self) -> String {
        let b = &self.backup;
        let mut out = format!(
            "Restore plan for {}\n  backup:      {} (snapshot {}, taken {}, {} old)\n  new disk:    {} in {}/{} (the disk {} is not touched)\n",
            self.target,
            b.id,
            self.snapshot,
            b.created_at,
            human_age(self.backup_age_seconds),
            self.new_disk,
            self.project,
            self.zone,
            self.disk,
        );
        if let Some(i) = &self.instance {
            out.push_str(&format!("  attach to:   instance {i}\n"));
        }
        out.push_str("  API calls:\n");
        for (n, call) in self.calls.iter().enumerate() {
            out.push_str(&format!("    {}. {call}\n", n + 1));
        }
        for n in &self.notes {
            out.push_str(&format!("  note:        {n}\n"));
        }
        out
    }
}

/// Build the plan. It reads (the snapshot, whether the new disk name is free, whether
/// the instance exists) and writes nothing.
pub fn plan(
    app: &App,
    target: &str,
    selector: &Selector,
    new_disk: Option<&str>,
    instance: Option<&str>,
) -> Result<GcpRestorePlan> {
    let gcp = connect(app, target)?;
    let all = backups(app, target)?;
    let found = match selector {
        Selector::Latest => all.first(),
        Selector::Id(id) => all.iter().find(|m| &m.id == id),
        Selector::At(t) => all.iter().find(|m| m.created() <= *t),
    };
    let backup = found.cloned().ok_or_else(|| {
        let ids: Vec<&str> = all.iter().take(5).map(|m| m.id.as_str()).collect();
        Error::Usage(if ids.is_empty() {
            format!("{target} has no READY snapshot backups")
        } else {
            format!("no such backup of {target}; newest: {}", ids.join(", "))
        })
    })?;
    let new_disk = match new_disk {
        Some(n) => n.to_string(),
        None => gce_name(&format!("{}-restored-{}", gcp.disk, backup.id), 63),
    };
    if !valid_gce_name(&new_disk) {
        return Err(Error::Usage(format!(
            "--to {new_disk:?}: a disk name is 1-63 lowercase letters, digits and '-', starting with a letter"
        )));
    }
    if new_disk == gcp.disk {
        return Err(Error::Usage(format!(
            "--to {new_disk}: that is the target's own disk; a restore always makes a new disk"
        )));
    }
    if gcp.disk_exists(&new_disk)? {
        return Err(Error::Usage(format!(
            "--to {new_disk}: a disk of that name already exists in {}/{}; choose another name",
            gcp.project, gcp.zone
        )));
    }
    if let Some(i) = instance
        && !gcp.instance_exists(i)?
    {
        return Err(Error::Usage(format!(
            "--instance {i}: no such instance in {}/{}",
            gcp.project, gcp.zone
        )));
    }
    let snapshot = backup.artifact.clone();
    let base = format!("projects/{}/zones/{}", gcp.project, gcp.zone);
    let mut calls = vec![
        format!(
            "GET  projects/{}/global/snapshots/{snapshot}  (check it is READY)",
            gcp.project
        ),
        format!("GET  {base}/disks/{new_disk}  (check the name is still free)"),
        format!(
            "POST {base}/disks  {{\"name\": \"{new_disk}\", \"sourceSnapshot\": \"{}\"}}  (then wait for the operation)",
            gcp.snapshot_path(&snapshot)
        ),
    ];
    let device_name = instance.map(|_| new_disk.clone());
    if let Some(i) = instance {
        calls.push(format!(
            "POST {base}/instances/{i}/attachDisk  {{\"source\": \"{}\", \"deviceName\": \"{new_disk}\", \"autoDelete\": false}}  (then wait for the operation)",
            gcp.disk_path(&new_disk)
        ));
    }
    let mut notes = vec![format!(
        "the restored data is on the new disk {new_disk}; the disk {} and its data stay as they are",
        gcp.disk
    )];
    if instance.is_some() {
        notes.push(format!(
            "inside the instance the disk appears as /dev/disk/by-id/google-{new_disk}; mount it to use it"
        ));
    }
    Ok(GcpRestorePlan {
        target: target.to_string(),
        backup_age_seconds: (Utc::now() - backup.created()).num_seconds(),
        backup,
        project: gcp.project.clone(),
        zone: gcp.zone.clone(),
        snapshot,
        disk: gcp.disk.clone(),
        new_disk,
        instance: instance.map(str::to_string),
        device_name,
        calls,
        notes,
    })
}

/// Carry out a restore plan as a job, making exactly the calls it lists.
pub fn apply(
    app: &App,
    plan: &GcpRestorePlan,
    actor: &str,
    ctx: &JobContext,
) -> Result<GcpRestoreOutcome> {
    let done = app
        .executor
        .run("restore", &plan.target, actor, ctx, |_, ctx| {
            // Hooks a stopped process owed for this target run first, under its lock.
            crate::target_hooks::owed::settle(app, &plan.target, ctx);
            let clock = std::time::Instant::now();
            let gcp = connect(app, &plan.target)?;
            ctx.progress.phase("checking the snapshot");
            match gcp.get_snapshot(&plan.snapshot)? {
                Some(s) if s.status == "READY" => {}
                Some(s) => {
                    return Err(Error::Failed(format!(
                        "snapshot {} is {}, not READY; nothing was changed",
                        plan.snapshot, s.status
                    )));
                }
                None => {
                    return Err(Error::Failed(format!(
                        "snapshot {} no longer exists; nothing was changed",
                        plan.snapshot
                    )));
                }
            }
            if gcp.disk_exists(&plan.new_disk)? {
                return Err(Error::Failed(format!(
                    "a disk named {} appeared since the plan was made; make a new plan",
                    plan.new_disk
                )));
            }
            ctx.cancel.check().map_err(|e| Error::io("restoring", e))?;
            ctx.progress
                .phase(&format!("creating disk {}", plan.new_disk));
            let labels = BTreeMap::from([
                (LABEL_MARK.to_string(), "1".to_string()),
                (LABEL_TARGET.to_string(), target_label(&plan.target)),
                (LABEL_ID.to_string(), plan.backup.id.to_lowercase()),
            ]);
            let disk_url =
                gcp.create_disk(&plan.new_disk, &gcp.snapshot_path(&plan.snapshot), labels)?;
            if let (Some(instance), Some(device)) = (&plan.instance, &plan.device_name) {
                ctx.progress.phase(&format!("attaching to {instance}"));
                gcp.attach_disk(instance, &gcp.disk_path(&plan.new_disk), device)
                    .map_err(|e| {
                        Error::Failed(format!(
                            "{e}; the new disk {} was created and is left in place, not attached",
                            plan.new_disk
                        ))
                    })?;
            }
            Ok(GcpRestoreOutcome {
                plan: plan.clone(),
                ok: true,
                disk_url,
                duration_seconds: clock.elapsed().as_secs_f64(),
            })
        })?;
    Ok(done.value)
}

impl PlannedRestore for GcpRestorePlan {
    fn target(&self) -> &str {
        &self.target
    }

    fn describe(&self) -> String {
        GcpRestorePlan::describe(self)
    }

    fn to_json(&self) -> String {
        pretty_json(self)
    }

    fn apply(&self, app: &App, actor: &str, ctx: &JobContext) -> Result<Box<dyn RestoreDone>> {
        Ok(Box::new(apply(app, self, actor, ctx)?))
    }
}

impl RestoreDone for GcpRestoreOutcome {
    fn to_json(&self) -> String {
        pretty_json(self)
    }

    fn report(&self) -> String {
        format!(
            "{} in {}\n",
            self.summary(),
            crate::units::human_duration(self.duration_seconds)
        )
    }
}
