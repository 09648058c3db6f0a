//! How a lifeboat backup looks as a restic snapshot: tags name it (`lifeboat`,
//! `target=<t>`, `id=<id>`), the description carries its manifest as JSON, and its tree
//! is the content: one file (the database file, or a directory's tar in older backups)
//! or a directory target's native tree under the target's path.

use rustic_core::repofile::SnapshotFile;

use crate::stores::Rejected;
use crate::stores::manifest::Manifest;

/// Every snapshot lifeboat writes carries this tag.
pub const TAG: &str = "lifeboat";
/// What `compression` says in a repository backup's manifest.
pub const COMPRESSION: &str = "restic";

pub fn target_tag(target: &str) -> String {
    format!("target={target}")
}

pub fn id_tag(id: &str) -> String {
    format!("id={id}")
}

pub fn is_ours(snap: &SnapshotFile) -> bool {
    snap.tags.contains(TAG)
}

pub fn target_of(snap: &SnapshotFile) -> Option<String> {
    snap.tags
        .iter()
        .find_map(|t| t.strip_prefix("target="))
        .map(str::to_string)
}

/// A saved snapshot's manifest, with the facts only the snapshot knows filled in: its
/// id, the bytes it added, when it ended. `Err` says why a snapshot tagged as lifeboat's
/// is not a whole backup (its summary must show the one file its manifest describes).
pub fn manifest_of(snap: &SnapshotFile) -> Result<Manifest, Rejected> {
    let text = snap
        .description
        .as_deref()
        .ok_or("tagged lifeboat but carries no manifest")?;
    let mut m: Manifest = serde_json::from_str(text).map_err(|source| Rejected::Unreadable {
        what: "unreadable manifest".into(),
        source,
    })?;
    if target_of(snap).as_deref() != Some(m.target.as_str()) || !snap.tags.contains(&id_tag(&m.id))
    {
        return Err(format!(
            "its tags do not match its manifest (backup {} of {})",
            m.id, m.target
        )
        .into());
    }
    let summary = snap.summary.as_ref().ok_or("it has no summary")?;
    // One content file, or a native tree's files and links (and its file list's shards).
    let list = m
        .directory
        .as_ref()
        .and_then(|d| d.tree.as_ref()?.file_list.as_ref())
        .map_or((0, 0), |l| (l.shards, l.bytes));
    let nodes = m
        .directory
        .as_ref()
        .filter(|_| m.is_native_tree())
        .map_or(1, |d| d.files + d.symlinks + list.0);
    if summary.total_files_processed != nodes
        || summary.total_bytes_processed != m.content_bytes + list.1
    {
        return Err(format!(
            "it holds {} file(s) of {} bytes, not the {} bytes of backup {}: an interrupted save",
            summary.total_files_processed, summary.total_bytes_processed, m.content_bytes, m.id
        )
        .into());
    }
    let id = snap.id.to_hex().as_str().to_string();
    m.artifact = id.clone();
    // The snapshot id is the SHA-256 of the stored snapshot file.
    m.sha256 = id;
    m.compression = COMPRESSION.into();
    m.size_bytes = summary.data_added_packed;
    let ended =
        chrono::DateTime::from_timestamp_millis(summary.backup_end.timestamp().as_millisecond())
            .unwrap_or_else(|| m.created());
    m.finished_at = crate::units::time_text(ended);
    // Chunking, encrypting and storing are most of a repository backup's time.
    m.duration_seconds = (ended - m.created()).as_seconds_f64().max(0.0);
    Ok(m)
}

/// The manifest as kept in the description: the snapshot's own id cannot be inside it.
pub fn description_of(m: &Manifest) -> String {
    if m.artifact.is_empty() && m.sha256.is_empty() {
        // Nothing to leave out: no copy of a manifest that may list many files.
        return serde_json::to_string(m).expect("manifest serializes");
    }
    let mut kept = m.clone();
    kept.artifact = String::new();
    kept.sha256 = String::new();
    serde_json::to_string(&kept).expect("manifest serializes")
}

/// The machine name restic groups snapshots by.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lifeboat".into())
}
