//! The parent of a new native tree: the newest published tree of the same target and
//! root whose file list reads back, with its files' hashes and its list's shards as
//! stored, chosen once per backup.

use std::path::Path;

use rustic_core::repofile::SnapshotFile;
use rustic_core::{IndexedFull, Open, Repository, RusticResult};

use super::file_list;
use super::list_shards::ParentShards;
use super::snapshots;
use crate::stores::file_hashes::FileShas;
use crate::stores::manifest::{FileEntry, Manifest};

/// The newest published native-tree backup of `target` with the same root: its snapshot
/// (the parent's id and tree) and its manifest, its file list not read yet when kept
/// apart. Only the manifests of the newest candidates are read (they can be large).
fn parent_of<S: Open>(
    repo: &Repository<S>,
    target: &str,
    root: &Path,
) -> RusticResult<Option<(SnapshotFile, Manifest)>> {
    let root = root.to_string_lossy();
    let mut candidates: Vec<SnapshotFile> = repo.get_matching_snapshots(|s| {
        snapshots::is_ours(s)
            && snapshots::target_of(s).as_deref() == Some(target)
            && s.paths.iter().eq([root.as_ref()].iter().copied())
    })?;
    candidates.sort_by_key(|s| std::cmp::Reverse(s.time.timestamp()));
    Ok(candidates.into_iter().find_map(|s| {
        let m = snapshots::manifest_of(&s).ok()?;
        m.is_native_tree().then_some((s, m))
    }))
}

/// The parent a backup's tree takes unchanged files from: its snapshot, its backup's id,
/// and its files' hashes (from the list in its tree, or its description for older
/// backups).
pub struct Parent {
    pub snap: SnapshotFile,
    pub id: String,
    pub shas: FileShas,
    /// Its list's shards as stored (none for a list kept in the description).
    pub shards: ParentShards,
}

/// The parent of a new tree of `target` at `root`: the newest native tree's backup
/// ([`parent_of`]), when its file list reads back, because a file taken unchanged gets its
/// SHA-256 from that list. A parent whose list cannot be read is no parent: every file
/// is read. Chosen once per backup, and both [`unchanged`](super::unchanged::unchanged)
/// and [`store`](super::tree_write::store) are handed that choice, so the files said to be unchanged beforehand
/// are those the archiver takes from the same parent.
pub fn choose_parent<S: IndexedFull>(
    repo: &Repository<S>,
    target: &str,
    root: &Path,
) -> RusticResult<Option<Parent>> {
    let Some((snap, m)) = parent_of(repo, target, root)? else {
        return Ok(None);
    };
    let shas = match m.file_list_apart() {
        Some(apart) => file_list::read_shas(repo, &snap, apart),
        None => shas_of(m.directory.map(|d| d.entries).unwrap_or_default())
            .map(|shas| (shas, ParentShards::default())),
    };
    match shas {
        Ok((shas, shards)) => Ok(Some(Parent {
            snap,
            id: m.id,
            shas,
            shards,
        })),
        Err(why) => {
            tracing::warn!(target, parent = %snap.id, "the previous backup cannot be the parent: {why}");
            Ok(None)
        }
    }
}

/// The files' hashes of a list held in a manifest.
fn shas_of(entries: Vec<FileEntry>) -> Result<FileShas, String> {
    let mut shas = FileShas::default();
    for e in entries {
        if let (true, Some(sha)) = (e.kind == "file", &e.sha256) {
            shas.push(&e.path, sha)?;
        }
    }
    shas.seal();
    Ok(shas)
}
