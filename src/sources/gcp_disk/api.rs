//! GCP persistent disks through the Compute Engine API: snapshots taken, listed, checked
//! and deleted, and new disks made from them (optionally attached to an instance), read
//! back and, for drills, deleted again.
//!
//! Only the API calls live here, each waiting for its long-running operation and turning
//! failures into plain words; what a backup or a restore is belongs to `actions::gcp`.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use google_cloud_compute_v1::client::{Disks, Instances, Snapshots};
use google_cloud_compute_v1::model::{AttachedDisk, Disk, Operation, Snapshot};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::paginator::ItemPaginator;
use google_cloud_lro::Poller;
use serde::Serialize;

use crate::config::TargetConfig;
use crate::error::{Error, Result};

/// Labels every lifeboat snapshot carries; the snapshots are found again by them.
pub const LABEL_MARK: &str = "lifeboat";
pub const LABEL_TARGET: &str = "lifeboat-target";
pub const LABEL_ID: &str = "lifeboat-id";
/// Marks a disk a drill made (and deletes again).
pub const LABEL_DRILL: &str = "lifeboat-drill";

/// A snapshot as lifeboat needs it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapshotInfo {
    pub name: String,
    pub id: Option<u64>,
    /// CREATING, UPLOADING, READY, FAILED or DELETING.
    pub status: String,
    pub storage_bytes: u64,
    pub disk_size_gb: u64,
    pub source_disk: String,
    pub creation_timestamp: String,
    pub self_link: String,
    pub labels: BTreeMap<String, String>,
}

impl From<Snapshot> for SnapshotInfo {
    fn from(s: Snapshot) -> Self {
        SnapshotInfo {
            name: s.name.unwrap_or_default(),
            id: s.id,
            status: s
                .status
                .as_ref()
                .and_then(|st| st.name())
                .unwrap_or("UNKNOWN")
                .to_string(),
            storage_bytes: s.storage_bytes.unwrap_or(0).max(0) as u64,
            disk_size_gb: s.disk_size_gb.unwrap_or(0).max(0) as u64,
            source_disk: s.source_disk.unwrap_or_default(),
            creation_timestamp: s.creation_timestamp.unwrap_or_default(),
            self_link: s.self_link.unwrap_or_default(),
            labels: s.labels.into_iter().collect(),
        }
    }
}

/// A disk as a drill checks it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiskInfo {
    pub name: String,
    /// CREATING, RESTORING, FAILED, READY or DELETING.
    pub status: String,
    pub size_gb: u64,
    /// The snapshot it was made from, as the API gives it (a full or partial URL).
    pub source_snapshot: String,
    /// The id of that snapshot, which tells a snapshot deleted and remade under the same
    /// name from the one the disk was made from.
    pub source_snapshot_id: Option<u64>,
    pub labels: BTreeMap<String, String>,
}

impl From<Disk> for DiskInfo {
    fn from(d: Disk) -> Self {
        DiskInfo {
            name: d.name.unwrap_or_default(),
            status: d
                .status
                .as_ref()
                .and_then(|st| st.name())
                .unwrap_or("UNKNOWN")
                .to_string(),
            size_gb: d.size_gb.unwrap_or(0).max(0) as u64,
            source_snapshot: d.source_snapshot.unwrap_or_default(),
            source_snapshot_id: d.source_snapshot_id.and_then(|i| i.parse().ok()),
            labels: d.labels.into_iter().collect(),
        }
    }
}

/// Clients for one target's project and zone, on a runtime of their own (actions run on
/// blocking threads; each call blocks on this runtime until its operation is done).
pub struct Gcp {
    rt: tokio::runtime::Runtime,
    disks: Disks,
    snapshots: Snapshots,
    instances: Instances,
    pub project: String,
    pub zone: String,
    pub disk: String,
    poll: Duration,
}

impl Gcp {
    /// Build the clients for a gcp-disk target. With `credentials = "default"` this looks
    /// up Application Default Credentials and fails in plain words when there are none.
    pub fn connect(target: &str, cfg: &TargetConfig) -> Result<Gcp> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the GCP runtime", e))?;
        let poll = cfg.poll_interval.map_or(Duration::from_secs(1), |d| d.0);
        let anonymous = cfg.credentials.as_deref() == Some("anonymous");
        let endpoint = cfg.endpoint.clone();
        let (disks, snapshots, instances) = rt
            .block_on(async {
                macro_rules! build {
                    ($client:ty) => {{
                        let mut b = <$client>::builder().with_polling_backoff_policy(
                            ExponentialBackoffBuilder::new()
                                .with_initial_delay(poll)
                                .with_maximum_delay(poll * 10)
                                .build()
                                .map_err(|e| e.to_string())?,
                        );
                        if let Some(url) = &endpoint {
                            b = b.with_endpoint(url.trim_end_matches('/'));
                        }
                        if anonymous {
                            b = b.with_credentials(
                                google_cloud_auth::credentials::anonymous::Builder::new().build(),
                            );
                        }
                        b.build().await.map_err(|e| e.to_string())?
                    }};
                }
                Ok::<_, String>((build!(Disks), build!(Snapshots), build!(Instances)))
            })
            .map_err(|e| {
                Error::Failed(format!(
                    "{target}: cannot set up the Compute Engine client: {e} (with credentials = \"default\", lifeboat uses Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, or the VM's service account)"
                ))
            })?;
        Ok(Gcp {
            rt,
            disks,
            snapshots,
            instances,
            project: cfg.project.clone().unwrap_or_default(),
            zone: cfg.zone.clone().unwrap_or_default(),
            disk: cfg.disk.clone().unwrap_or_default(),
            poll,
        })
    }

    fn block<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// `disks.createSnapshot` of the target's disk, waiting until the snapshot is READY;
    /// `left_creating` is called once the snapshot has left CREATING (the disk's content
    /// is captured; the rest is the upload), before the wait for READY.
    pub fn create_snapshot(
        &self,
        name: &str,
        description: &str,
        labels: BTreeMap<String, String>,
        left_creating: &dyn Fn(),
    ) -> Result<SnapshotInfo> {
        let what = format!(
            "creating snapshot {name} of disk {} in {}/{}",
            self.disk, self.project, self.zone
        );
        let body = Snapshot::new()
            .set_name(name)
            .set_description(description)
            .set_labels(labels);
        let op = self.block(
            self.disks
                .create_snapshot()
                .set_project(&self.project)
                .set_zone(&self.zone)
                .set_disk(&self.disk)
                .set_body(body)
                .poller()
                .until_done(),
        );
        check_operation(&what, op)?;
        // The operation ends when the snapshot exists; it may still be uploading.
        let deadline = std::time::Instant::now() + Duration::from_secs(6 * 3600);
        let mut wait = self.poll;
        loop {
            let snap = self.get_snapshot(name)?.ok_or_else(|| {
                Error::Failed(format!("{what}: the snapshot is gone after it was made"))
            })?;
            if matches!(snap.status.as_str(), "UPLOADING" | "READY") {
                left_creating();
            }
            match snap.status.as_str() {
                "READY" => return Ok(snap),
                "FAILED" | "DELETING" => {
                    return Err(Error::Failed(format!(
                        "{what}: the snapshot ended {}",
                        snap.status
                    )));
                }
                _ if std::time::Instant::now() > deadline => {
                    return Err(Error::Failed(format!(
                        "{what}: still {} after 6 hours",
                        snap.status
                    )));
                }
                _ => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(self.poll * 10);
                }
            }
        }
    }

    /// lifeboat's snapshots of this target (by label), in any status.
    pub fn list_snapshots(&self, target_label: &str) -> Result<Vec<SnapshotInfo>> {
        let filter = format!("labels.{LABEL_TARGET} = \"{target_label}\"");
        let found: std::result::Result<Vec<Snapshot>, google_cloud_compute_v1::Error> =
            self.block(async {
                let mut items = self
                    .snapshots
                    .list()
                    .set_project(&self.project)
                    .set_filter(filter)
                    .by_item();
                let mut out = Vec::new();
                while let Some(item) = items.next().await {
                    out.push(item?);
                }
                Ok(out)
            });
        let found = found.map_err(|e| {
            api_error(
                &format!("listing the snapshots of project {}", self.project),
                e,
            )
        })?;
        Ok(found.into_iter().map(SnapshotInfo::from).collect())
    }

    /// One snapshot by name; `None` when it does not exist.
    pub fn get_snapshot(&self, name: &str) -> Result<Option<SnapshotInfo>> {
        let got = self.block(
            self.snapshots
                .get()
                .set_project(&self.project)
                .set_snapshot(name)
                .send(),
        );
        match got {
            Ok(s) => Ok(Some(s.into())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api_error(&format!("reading snapshot {name}"), e)),
        }
    }

    pub fn delete_snapshot(&self, name: &str) -> Result<()> {
        let what = format!("deleting snapshot {name}");
        let op = self.block(
            self.snapshots
                .delete()
                .set_project(&self.project)
                .set_snapshot(name)
                .poller()
                .until_done(),
        );
        match op {
            Err(e) if is_not_found(&e) => Ok(()), // already gone: what we wanted
            other => check_operation(&what, other).map(|_| ()),
        }
    }

    /// Whether a disk of this name exists in the target's zone.
    pub fn disk_exists(&self, name: &str) -> Result<bool> {
        self.get_disk(name).map(|d| d.is_some())
    }

    /// One disk of the target's zone by name; `None` when it does not exist.
    pub fn get_disk(&self, name: &str) -> Result<Option<DiskInfo>> {
        let got = self.block(
            self.disks
                .get()
                .set_project(&self.project)
                .set_zone(&self.zone)
                .set_disk(name)
                .send(),
        );
        match got {
            Ok(d) => Ok(Some(d.into())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api_error(&format!("reading disk {name}"), e)),
        }
    }

    /// A disk once it has left CREATING and RESTORING (or `None` if it is gone), polling
    /// for up to `limit`.
    pub fn settled_disk(&self, name: &str, limit: Duration) -> Result<Option<DiskInfo>> {
        let deadline = std::time::Instant::now() + limit;
        let mut wait = self.poll;
        loop {
            let disk = self.get_disk(name)?;
            match &disk {
                Some(d)
                    if matches!(d.status.as_str(), "CREATING" | "RESTORING")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(self.poll * 10);
                }
                _ => return Ok(disk),
            }
        }
    }

    /// `disks.delete`, waiting for the operation. A disk that is already gone is fine.
    pub fn delete_disk(&self, name: &str) -> Result<()> {
        let what = format!("deleting disk {name} in {}/{}", self.project, self.zone);
        let op = self.block(
            self.disks
                .delete()
                .set_project(&self.project)
                .set_zone(&self.zone)
                .set_disk(name)
                .poller()
                .until_done(),
        );
        match op {
            Err(e) if is_not_found(&e) => Ok(()), // already gone: what we wanted
            other => check_operation(&what, other).map(|_| ()),
        }
    }

    pub fn instance_exists(&self, name: &str) -> Result<bool> {
        let got = self.block(
            self.instances
                .get()
                .set_project(&self.project)
                .set_zone(&self.zone)
                .set_instance(name)
                .send(),
        );
        match got {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api_error(&format!("reading instance {name}"), e)),
        }
    }

    /// `disks.insert` of a new disk from a snapshot; returns the new disk's URL.
    pub fn create_disk(
        &self,
        name: &str,
        source_snapshot: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<String> {
        let what = format!(
            "creating disk {name} in {}/{} from snapshot {source_snapshot}",
            self.project, self.zone
        );
        let body = Disk::new()
            .set_name(name)
            .set_source_snapshot(source_snapshot)
            .set_labels(labels);
        let op = self.block(
            self.disks
                .insert()
                .set_project(&self.project)
                .set_zone(&self.zone)
                .set_body(body)
                .poller()
                .until_done(),
        );
        let op = check_operation(&what, op)?;
        Ok(op.target_link.unwrap_or_else(|| self.disk_path(name)))
    }

    /// `instances.attachDisk` of a disk to an instance, read-write, not auto-deleted.
    pub fn attach_disk(&self, instance: &str, disk_url: &str, device_name: &str) -> Result<()> {
        let what = format!("attaching {device_name} to instance {instance}");
        let body = AttachedDisk::new()
            .set_source(disk_url)
            .set_device_name(device_name)
            .set_auto_delete(false);
        let op = self.block(
            self.instances
                .attach_disk()
                .set_project(&self.project)
                .set_zone(&self.zone)
                .set_instance(instance)
                .set_body(body)
                .poller()
                .until_done(),
        );
        check_operation(&what, op).map(|_| ())
    }

    /// The partial URL of a disk in this zone, as the API accepts it.
    pub fn disk_path(&self, name: &str) -> String {
        format!("projects/{}/zones/{}/disks/{name}", self.project, self.zone)
    }

    pub fn snapshot_path(&self, name: &str) -> String {
        format!("projects/{}/global/snapshots/{name}", self.project)
    }
}

/// The outcome of a finished operation: a failed call or an operation that ended in
/// error both become a plain-words `Error::Failed`.
fn check_operation(
    what: &str,
    op: std::result::Result<Operation, google_cloud_compute_v1::Error>,
) -> Result<Operation> {
    let op = op.map_err(|e| api_error(what, e))?;
    match operation_problem(&op) {
        Some(problem) => Err(Error::Failed(format!("{what}: {problem}"))),
        None => Ok(op),
    }
}

/// What went wrong in a finished operation, in words, or `None` if it succeeded.
pub fn operation_problem(op: &Operation) -> Option<String> {
    let first = op.error.as_ref().and_then(|e| e.errors.first());
    if first.is_none() && op.http_error_status_code.is_none_or(|c| c < 400) {
        return None;
    }
    let code = first.and_then(|e| e.code.clone()).unwrap_or_default();
    let message = first
        .and_then(|e| e.message.clone())
        .or_else(|| op.http_error_message.clone())
        .unwrap_or_else(|| "the operation failed".into());
    Some(match code.as_str() {
        "QUOTA_EXCEEDED" => format!("quota exceeded: {message}"),
        "RESOURCE_NOT_FOUND" | "NOT_FOUND" => format!("not found: {message}"),
        "PERMISSION_DENIED" | "FORBIDDEN" => format!("permission denied: {message}"),
        "" => message,
        other => format!("{message} ({other})"),
    })
}

fn is_not_found(e: &google_cloud_compute_v1::Error) -> bool {
    e.http_status_code() == Some(404) || e.status().is_some_and(|s| s.code == Code::NotFound)
}

/// A failed API call in plain words: what was being done and why it failed.
pub fn api_error(what: &str, e: google_cloud_compute_v1::Error) -> Error {
    if e.is_authentication() {
        return Error::Failed(format!(
            "{what}: no usable Google credentials: {e} (set GOOGLE_APPLICATION_CREDENTIALS, run `gcloud auth application-default login`, or give the VM a service account)"
        ));
    }
    let message = e
        .status()
        .map(|s| s.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| e.to_string());
    let why = match (e.http_status_code(), e.status().map(|s| s.code)) {
        (Some(403), _) | (_, Some(Code::PermissionDenied)) => {
            format!("permission denied: {message}")
        }
        (Some(404), _) | (_, Some(Code::NotFound)) => format!("not found: {message}"),
        (Some(429), _) | (_, Some(Code::ResourceExhausted)) => {
            format!("quota exceeded or rate limited: {message}")
        }
        (Some(401), _) | (_, Some(Code::Unauthenticated)) => {
            format!("the credentials were refused: {message}")
        }
        _ if e.is_connect() || e.is_io() || e.is_timeout() => {
            format!("cannot reach the Compute Engine API: {e}")
        }
        _ => message,
    };
    Error::Failed(format!("{what}: {why}"))
}

/// A name or label value GCE accepts: lowercase letters, digits and '-', starting with
/// a letter, at most `max` characters.
pub fn gce_name(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    out.truncate(max);
    out.trim_end_matches('-').to_string()
}

/// Whether `name` is a valid GCE resource name.
pub fn valid_gce_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_compute_v1::model::operation;

    #[test]
    fn names_are_made_acceptable() {
        assert_eq!(gce_name("Data_Disk", 63), "data-disk");
        assert!(valid_gce_name("lifeboat-data-disk-20261122t083000z"));
        assert!(!valid_gce_name("9lives"));
        assert!(!valid_gce_name("Upper"));
        assert!(!valid_gce_name("trailing-"));
    }

    #[test]
    fn operation_errors_read_in_plain_words() {
        let op = Operation::new().set_error(
            operation::Error::new().set_errors([operation::error::Errors::new()
                .set_code("QUOTA_EXCEEDED")
                .set_message("Quota 'SNAPSHOTS' exceeded. Limit: 10.0 globally.")]),
        );
        assert_eq!(
            operation_problem(&op).unwrap(),
            "quota exceeded: Quota 'SNAPSHOTS' exceeded. Limit: 10.0 globally."
        );
        assert_eq!(operation_problem(&Operation::new()), None);
    }
}
