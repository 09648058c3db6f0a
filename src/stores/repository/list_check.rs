//! The file list held to the bytes meant for it, around the archive and without reading
//! it back. Before: a shard the archiver would take from the parent (same place, size
//! and stamp) whose stored bytes are not what this backup means to write is stamped
//! anew, so it is made again. After: every shard is either one the archiver opened,
//! holding the bytes it was handed, or the parent's, holding the bytes meant for it now
//! (a file of it read again with other content, or gone, makes that fail). A list that
//! would not read back as the manifest's entries fails the backup; it is never published.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::file_list::{Hashes, shard_bytes};
use super::list_shards::{ParentShards, ShardPlan};
use super::tree_write::LogState;
use crate::stores::TreeEntry;
use crate::stores::file_hashes::FileShas;
use crate::stores::manifest::FileListApart;

/// Stamp anew every shard of `plan` the archiver would take from `parent` as it is
/// stored there while its bytes differ from those `shas` (the parent's files' hashes)
/// make now; how many were.
pub fn restamp_stale(
    plan: &mut ShardPlan,
    entries: &[TreeEntry],
    parent: &ParentShards,
    shas: &FileShas,
    nonce: u64,
) -> usize {
    let (none_read, none_gone) = (HashMap::new(), Default::default());
    let hashes = Hashes {
        read: &none_read,
        parent: shas,
        vanished: &none_gone,
    };
    let mut bytes = Vec::new();
    let mut stale = Vec::new();
    for (i, shard) in plan.shards.iter().enumerate() {
        let Some(stored) = parent.get(&plan.place(i)).filter(|p| p.matches(shard)) else {
            continue;
        };
        let run = &entries[shard.lines.clone()];
        let made = shard_bytes(run, &hashes, shard.size, &mut Sha256::new(), &mut bytes);
        if made.is_err() || !stored.holds(&bytes) {
            stale.push(i);
        }
    }
    for &i in &stale {
        plan.restamp(i, entries, nonce);
    }
    stale.len()
}

/// The list of `plan` as the archiver stored it, checked against the bytes meant for each
/// shard now that every file is read (`log`); its facts.
pub fn check_stored(
    plan: &ShardPlan,
    entries: &[TreeEntry],
    log: &LogState,
    parent: &ParentShards,
) -> Result<FileListApart, String> {
    let hashes = Hashes::of(log);
    let mut lines = Sha256::new();
    let (mut count, mut bytes) = (0u64, Vec::new());
    for (i, shard) in plan.shards.iter().enumerate() {
        let run = &entries[shard.lines.clone()];
        count += shard_bytes(run, &hashes, shard.size, &mut lines, &mut bytes)
            .map_err(|e| e.to_string())?;
        let held = match log.list_handed.get(&i) {
            Some(handed) => handed[..] == Sha256::digest(&bytes)[..],
            None => parent
                .get(&plan.place(i))
                .is_some_and(|p| p.matches(shard) && p.holds(&bytes)),
        };
        if !held {
            return Err(format!(
                "shard {} of its file list was not stored as written",
                plan.dir.join(plan.place(i)).display()
            ));
        }
    }
    Ok(FileListApart {
        path: plan.dir.to_string_lossy().into_owned(),
        entries: count,
        bytes: plan.size(),
        sha256: hex::encode(lines.finalize()),
        shards: plan.shards.len() as u64,
    })
}
