//! The manifest written beside every artifact, and how backups are found in a store:
//! a backup exists exactly when its manifest does (the manifest is written last).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

pub const MANIFEST_SUFFIX: &str = ".manifest.json";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub target: String,
    /// The target kind: sqlite, directory, ...
    pub kind: String,
    pub store: String,
    /// When the backup started (RFC 3339, UTC): the point in time the data is from.
    pub created_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    /// Always "complete": an incomplete backup has no manifest.
    pub status: String,
    /// Key of the artifact in the store.
    pub artifact: String,
    pub compression: String,
    /// Size and SHA-256 of the stored (compressed) bytes.
    pub size_bytes: u64,
    pub sha256: String,
    /// Size and SHA-256 of the content before compression.
    pub content_bytes: u64,
    pub content_sha256: String,
    pub lifeboat_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpFacts>,
}

/// A gcp-disk backup: the snapshot that is the backup, and the disk it was taken of.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GcpFacts {
    pub project: String,
    pub zone: String,
    pub disk: String,
    pub snapshot: String,
    /// The snapshot's numeric id: a snapshot deleted and re-made under the same name
    /// has another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<u64>,
    /// READY, CREATING, UPLOADING, FAILED or DELETING, as last seen.
    pub snapshot_status: String,
    pub source_disk: String,
    pub disk_size_gb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SqliteFacts {
    pub sqlite_version: String,
    pub page_size: u64,
    pub page_count: u64,
    /// Result of `PRAGMA quick_check` on the copy: "ok" or the problems found.
    pub quick_check: String,
    /// Rows per table at the moment of the copy.
    pub tables: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DirectoryFacts {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Entries that were not backed up (sockets, devices) and why.
    #[serde(default)]
    pub skipped: Vec<String>,
    pub entries: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub path: String,
    /// file | dir | symlink
    #[serde(rename = "type")]
    pub kind: String,
    pub mode: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Manifest {
    pub fn key(target: &str, id: &str) -> String {
        format!("{target}/{id}{MANIFEST_SUFFIX}")
    }

    pub fn created(&self) -> chrono::DateTime<chrono::Utc> {
        crate::units::parse_time(&self.created_at).unwrap_or_default()
    }

    /// The manifest without the per-file list, for listings.
    pub fn summary(&self) -> Manifest {
        let mut m = self.clone();
        if let Some(d) = m.directory.as_mut() {
            d.entries.clear();
        }
        m
    }
}

/// Every complete backup of `target` in `store`, newest first. Unreadable manifests are
/// reported in the second list rather than hidden.
pub fn list_backups(
    store: &dyn Store,
    target: &str,
) -> Result<(Vec<Manifest>, Vec<String>), StoreError> {
    let mut found = Vec::new();
    let mut broken = Vec::new();
    for obj in store.list(&format!("{target}/"))? {
        if !obj.key.ends_with(MANIFEST_SUFFIX) {
            continue;
        }
        let bytes = match store.get_bytes(&obj.key) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue, // pruned while we listed
            Err(e) => return Err(e),
        };
        match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) if m.target == target => found.push(m),
            Ok(_) => broken.push(format!("{}: names another target", obj.key)),
            Err(e) => broken.push(format!("{}: unreadable manifest: {e}", obj.key)),
        }
    }
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok((found, broken))
}

/// Artifact keys in the store with no manifest: leftovers of interrupted backups or of
/// interrupted prunes.
pub fn orphan_artifacts(store: &dyn Store, target: &str) -> Result<Vec<String>, StoreError> {
    let objects = store.list(&format!("{target}/"))?;
    let manifests: std::collections::HashSet<&str> = objects
        .iter()
        .filter_map(|o| o.key.strip_suffix(MANIFEST_SUFFIX))
        .collect();
    Ok(objects
        .iter()
        .filter(|o| !o.key.ends_with(MANIFEST_SUFFIX))
        .filter(|o| {
            let stem = o.key.split_once('.').map(|(s, _)| s).unwrap_or(&o.key);
            !manifests.contains(stem)
        })
        .map(|o| o.key.clone())
        .collect())
}
