//! The manifest written beside every artifact, and how backups are found in a store:
//! a backup exists exactly when its manifest does (the manifest is written last).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::config::TargetKind;

pub const MANIFEST_SUFFIX: &str = ".manifest.json";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub target: String,
    /// The target kind: sqlite, directory, gcp-disk (the names the config uses).
    pub kind: TargetKind,
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
    /// Whether every file was the same at the end of the copy as when it was read:
    /// `Some(false)` for a copy that changed while read (kept with `on_change = "warn"`);
    /// absent where nothing was compared (other kinds, backups older than the check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent: Option<bool>,
    /// The paths (relative to the target's root) that changed, vanished or appeared
    /// while the copy was read; present whenever `consistent` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_while_read: Option<Vec<String>>,
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct DirectoryFacts {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Entries that were not backed up (sockets, devices) and why.
    #[serde(default)]
    pub skipped: Vec<String>,
    pub entries: Vec<FileEntry>,
    /// Kept as a native tree (a repository store: one node per entry), not as one tar
    /// stream; absent for tar backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeFacts>,
}

/// How a native-tree backup was made: which earlier backup it compared against, and how
/// many files it read rather than took unchanged from that one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TreeFacts {
    /// The backup whose tree was the parent (files whose size, mtime, ctime and inode
    /// matched were not read again); `None` for a first backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Files whose content was read for this backup.
    pub files_read: u64,
    /// Files taken unchanged from the parent without reading them.
    pub files_unchanged: u64,
    /// A tree on another host: the bytes that came through the connection for file
    /// content (the one stream of the new and changed files, its archive framing
    /// included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_bytes_fetched: Option<u64>,
    /// A tree on another host: the bytes of the metadata listings (the tree is listed
    /// before the files are fetched and once more after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing_bytes_fetched: Option<u64>,
    /// Where the per-file list is when it is not in `entries`: a repository store keeps
    /// it as a file of the backup's own tree, where the parts that did not change are
    /// shared with earlier backups. `entries` is empty until it is read from there.
    /// Absent when `entries` is the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_list: Option<FileListApart>,
}

/// A per-file list kept apart from its manifest: where, and what it must be when read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileListApart {
    /// The list's path in the backup's tree.
    pub path: String,
    /// How many entries it holds, its size and the SHA-256 of its lines (the padding of
    /// files that vanished while read left out).
    pub entries: u64,
    pub bytes: u64,
    pub sha256: String,
    /// How many shards the list is cut into (a folder of them at `path`).
    pub shards: u64,
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

/// Whether the entry path `path` is `under` or lies below it (`a/b` is under `a`, `ab`
/// is not).
pub fn at_or_under(path: &str, under: &str) -> bool {
    path == under
        || path
            .strip_prefix(under)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Manifest {
    pub fn key(target: &str, id: &str) -> String {
        format!("{target}/{id}{MANIFEST_SUFFIX}")
    }

    pub fn created(&self) -> chrono::DateTime<chrono::Utc> {
        crate::units::parse_time(&self.created_at).unwrap_or_default()
    }

    /// Whether the content is a native tree: read back as a tar stream made from the tree
    /// (each file checked against its SHA-256 as it is read), not the bytes hashed at
    /// backup, so `content_sha256` does not apply.
    pub fn is_native_tree(&self) -> bool {
        self.directory.as_ref().is_some_and(|d| d.tree.is_some())
    }

    /// Whether the content read back must hash to `content_bytes`/`content_sha256`.
    pub fn whole_content_hashed(&self) -> bool {
        !self.is_native_tree()
    }

    /// False only for a backup known to have changed while it was read.
    pub fn is_consistent(&self) -> bool {
        self.consistent != Some(false)
    }

    /// The paths that changed while the backup was read (none when consistent).
    pub fn changed_paths(&self) -> &[String] {
        self.changed_while_read.as_deref().unwrap_or_default()
    }

    /// The per-file list's place when it is kept apart and not read into `entries` yet.
    pub fn file_list_apart(&self) -> Option<&FileListApart> {
        let d = self.directory.as_ref()?;
        d.tree
            .as_ref()?
            .file_list
            .as_ref()
            .filter(|_| d.entries.is_empty())
    }

    /// The manifest without the per-file list, for listings (the list is not copied).
    pub fn summary(&self) -> Manifest {
        let directory = self.directory.as_ref().map(|d| DirectoryFacts {
            files: d.files,
            directories: d.directories,
            symlinks: d.symlinks,
            skipped: d.skipped.clone(),
            entries: Vec::new(),
            tree: d.tree.clone(),
        });
        Manifest {
            format: self.format,
            id: self.id.clone(),
            target: self.target.clone(),
            kind: self.kind,
            store: self.store.clone(),
            created_at: self.created_at.clone(),
            finished_at: self.finished_at.clone(),
            duration_seconds: self.duration_seconds,
            status: self.status.clone(),
            artifact: self.artifact.clone(),
            compression: self.compression.clone(),
            size_bytes: self.size_bytes,
            sha256: self.sha256.clone(),
            content_bytes: self.content_bytes,
            content_sha256: self.content_sha256.clone(),
            lifeboat_version: self.lifeboat_version.clone(),
            sqlite: self.sqlite.clone(),
            directory,
            gcp: self.gcp.clone(),
            consistent: self.consistent,
            changed_while_read: self.changed_while_read.clone(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Manifests as releases before the kind became an enum wrote them keep reading, and
    /// are written back with the same words.
    #[test]
    fn manifests_written_with_kind_words_read_back() {
        let sqlite = r#"{"format":1,"id":"20261122T083000Z","target":"app-db","kind":"sqlite",
            "store":"local","created_at":"2026-11-22T08:30:00.000Z","finished_at":"2026-11-22T08:30:02.000Z",
            "duration_seconds":2.1,"status":"complete","artifact":"app-db/20261122T083000Z.sqlite.zst",
            "compression":"zstd","size_bytes":10,"sha256":"ab","content_bytes":20,"content_sha256":"cd",
            "lifeboat_version":"0.2.0","sqlite":{"sqlite_version":"3.45.1","page_size":4096,"page_count":5,
            "quick_check":"ok","tables":{"users":3}}}"#;
        let directory = r#"{"format":1,"id":"20261122T083000Z","target":"volume","kind":"directory",
            "store":"local","created_at":"2026-11-22T08:30:00.000Z","finished_at":"2026-11-22T08:30:02.000Z",
            "duration_seconds":2.1,"status":"complete","artifact":"volume/20261122T083000Z.tar.zst",
            "compression":"zstd","size_bytes":10,"sha256":"ab","content_bytes":20,"content_sha256":"cd",
            "lifeboat_version":"0.2.0","directory":{"files":1,"directories":0,"symlinks":0,"skipped":[],
            "entries":[{"path":"a.txt","type":"file","mode":420,"size":2,"sha256":"ef"}]}}"#;
        let gcp = r#"{"format":1,"id":"20261122T083000Z","target":"disk","kind":"gcp-disk",
            "store":"gcp-snapshots:p","created_at":"2026-11-22T08:30:00.000Z","finished_at":"2026-11-22T08:31:00.000Z",
            "duration_seconds":60.0,"status":"complete","artifact":"lifeboat-disk-20261122t083000z",
            "compression":"none","size_bytes":10,"sha256":"","content_bytes":1073741824,"content_sha256":"",
            "lifeboat_version":"0.2.0","gcp":{"project":"p","zone":"z","disk":"d","snapshot":"s",
            "snapshot_status":"READY","source_disk":"projects/p/zones/z/disks/d","disk_size_gb":1}}"#;
        for (text, kind) in [
            (sqlite, TargetKind::Sqlite),
            (directory, TargetKind::Directory),
            (gcp, TargetKind::GcpDisk),
        ] {
            let m: Manifest = serde_json::from_str(text).unwrap();
            assert_eq!(m.kind, kind);
            let again = serde_json::to_value(&m).unwrap();
            assert_eq!(again["kind"], serde_json::json!(kind.as_str()));
            let original: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(again, original, "written back as it was read");
            assert!(m.is_consistent() && m.changed_paths().is_empty());
        }
    }

    #[test]
    fn a_copy_that_changed_while_read_says_so_and_reads_back() {
        let text = r#"{"format":1,"id":"20261122T083000Z","target":"volume","kind":"directory",
            "store":"local","created_at":"2026-11-22T08:30:00.000Z","finished_at":"2026-11-22T08:30:02.000Z",
            "duration_seconds":2.1,"status":"complete","artifact":"volume/20261122T083000Z.tar.zst",
            "compression":"zstd","size_bytes":10,"sha256":"ab","content_bytes":20,"content_sha256":"cd",
            "lifeboat_version":"0.4.0","directory":{"files":1,"directories":0,"symlinks":0,"skipped":[],
            "entries":[]},"consistent":false,"changed_while_read":["state/system.duckdb"]}"#;
        let m: Manifest = serde_json::from_str(text).unwrap();
        assert!(!m.is_consistent());
        assert_eq!(m.status, "complete");
        assert_eq!(m.changed_paths(), ["state/system.duckdb"]);
        let again = serde_json::to_value(m.summary()).unwrap();
        assert_eq!(again["consistent"], serde_json::json!(false));
        assert_eq!(
            again["changed_while_read"],
            serde_json::json!(["state/system.duckdb"])
        );
    }
}
