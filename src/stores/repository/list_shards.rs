//! A native tree's per-file list cut into small files, so that a re-backup after a few
//! changes stores a few kilobytes of list rather than the chunks around each change.
//!
//! The list is a directory beside the tree's root (`/srv/data.lifeboat-files/` for a
//! root `/srv/data`) of groups (`00000000/`, …) of shards (`00000000`, …), each shard a
//! run of the list's lines in the tree's order. Where a shard or a group starts depends
//! only on the paths (a path whose hash is a multiple of [`SHARD_EVERY`] starts a shard,
//! of [`GROUP_EVERY`] a group), so a change leaves every other shard's lines, and so its
//! bytes, as they were. Every shard is smaller than the chunker's minimum chunk, so it is
//! one blob whose id is the SHA-256 of its bytes: a parent's shard is compared with the
//! bytes meant for it by that id alone, without reading it (`list_check`).
//!
//! A shard's node has the sizes, times and inodes of its entries folded into its mtime:
//! when none of them changed, the archiver finds the shard unchanged in the parent and
//! does not open it, and the group's tree, being the same bytes, is stored once. The
//! directories' nodes carry fixed times for the same reason.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use rustic_core::jiff::Timestamp;
use rustic_core::repofile::{Chunker, ConfigFile, Metadata, Node, NodeType};
use rustic_core::{IndexedTree, Repository, TreeId};
use sha2::{Digest, Sha256};

use super::node::{GO_DIR, mode_to_go};
use crate::stores::{TreeEntry, TreeEntryKind};

/// A path whose hash is a multiple of this starts a shard: about 64 lines (8 KiB) each.
const SHARD_EVERY: u64 = 64;
/// A path whose hash is a multiple of this starts a group: about 32 shards each.
const GROUP_EVERY: u64 = SHARD_EVERY * 32;
/// A shard never grows past this (long paths): half the chunker's usual 512 KiB minimum,
/// less where the repository's chunker would cut a smaller file ([`max_shard_bytes`]).
const MAX_SHARD_BYTES: u64 = 256 * 1024;
/// Changed only with the shards' format: it changes every shard's stamp.
const STAMP_VERSION: &[u8] = b"lifeboat file list shard 1\0";

/// One shard: its group, its place in the group, its lines (indexes into the tree's
/// entries), its size (every file counted) and its stamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    pub group: u32,
    pub index: u32,
    pub lines: Range<usize>,
    pub size: u64,
    stamp: Timestamp,
}

/// Where a tree's list goes and how it is cut.
#[derive(Debug)]
pub struct ShardPlan {
    pub dir: PathBuf,
    pub shards: Vec<Shard>,
    /// The owner the list's nodes are given: the root's.
    owner: (u32, u32),
}

/// A node of the list as the archiver takes it: a directory, or a shard to open.
pub struct ListNode {
    pub path: PathBuf,
    pub node: Node,
    pub shard: Option<usize>,
}

fn name(n: u32) -> String {
    format!("{n:08}")
}

/// The first eight bytes of a path's SHA-256: where shards and groups start.
fn cut_key(rel: &str) -> u64 {
    let sha = Sha256::digest(rel.as_bytes());
    u64::from_le_bytes(sha[..8].try_into().expect("eight bytes"))
}

/// The largest shard the repository's chunker stores as one blob, at most
/// [`MAX_SHARD_BYTES`]: a content-defined chunker cuts nothing shorter than its minimum,
/// a fixed-size one nothing shorter than its size.
pub fn max_shard_bytes(config: &ConfigFile) -> u64 {
    let whole = match config.chunker() {
        Chunker::Rabin => config.chunk_min_size(),
        Chunker::FixedSize => config.chunk_size(),
    };
    (whole as u64).min(MAX_SHARD_BYTES)
}

/// How one backup's list is cut.
pub struct Cut<'a> {
    /// A line's size with its file kept.
    pub line_len: &'a dyn Fn(&TreeEntry) -> u64,
    /// Whether a file's line cannot be known before the archiver reads the file (no
    /// SHA-256 for it in the parent's list, e.g. it vanished while the parent was read):
    /// its shard must be made again even when no entry's metadata changed. Never, when
    /// there is no parent to take a shard from.
    pub unknown: &'a dyn Fn(&TreeEntry) -> bool,
    /// This backup's own number, folded into the stamp of a shard with such a file so it
    /// never matches the parent's.
    pub nonce: u64,
    /// The largest shard ([`max_shard_bytes`]).
    pub max_bytes: u64,
}

/// What the archiver's parent match compares and the line shows, folded into a time
/// (with the backup's `nonce` when a line of the shard cannot be known beforehand).
fn stamp_of(entries: &[TreeEntry], nonce: Option<u64>) -> Timestamp {
    let mut h = Sha256::new();
    h.update(STAMP_VERSION);
    if let Some(n) = nonce {
        h.update(n.to_le_bytes());
    }
    for e in entries {
        h.update(e.rel.as_bytes());
        h.update([0]);
        match &e.kind {
            TreeEntryKind::Dir => h.update(b"d"),
            TreeEntryKind::File => h.update(b"f"),
            TreeEntryKind::Symlink(to) => {
                h.update(b"l");
                h.update(to.as_bytes());
                h.update([0]);
            }
        }
        for n in [
            u64::from(e.mode),
            e.size,
            e.mtime.0 as u64,
            e.mtime.1 as u64,
            e.ctime.0 as u64,
            e.ctime.1 as u64,
            e.inode,
        ] {
            h.update(n.to_le_bytes());
        }
    }
    let v = u64::from_le_bytes(h.finalize()[..8].try_into().expect("eight bytes"));
    let secs = (v & 0x7fff_ffff) as i64;
    let nanos = ((v >> 31) % 1_000_000_000) as i32;
    Timestamp::new(secs, nanos).expect("within 1970..2038")
}

impl ShardPlan {
    /// The plan for `entries` (the root first, then the list's lines).
    pub fn new(dir: PathBuf, entries: &[TreeEntry], cut: &Cut<'_>) -> Self {
        let mut shards: Vec<Shard> = Vec::new();
        for (i, e) in entries.iter().enumerate().skip(1) {
            let len = (cut.line_len)(e);
            let key = cut_key(&e.rel);
            let (group, index) = match shards.last() {
                None => (0, 0),
                Some(s) if key.is_multiple_of(GROUP_EVERY) => (s.group + 1, 0),
                Some(s) if key.is_multiple_of(SHARD_EVERY) || s.size + len > cut.max_bytes => {
                    (s.group, s.index + 1)
                }
                Some(_) => {
                    let s = shards.last_mut().expect("a shard");
                    s.lines.end = i + 1;
                    s.size += len;
                    continue;
                }
            };
            shards.push(Shard {
                group,
                index,
                lines: i..i + 1,
                size: len,
                stamp: Timestamp::UNIX_EPOCH,
            });
        }
        for s in &mut shards {
            let lines = &entries[s.lines.clone()];
            let nonce = lines.iter().any(cut.unknown).then_some(cut.nonce);
            s.stamp = stamp_of(lines, nonce);
        }
        let owner = entries.first().map_or((0, 0), |r| (r.uid, r.gid));
        ShardPlan { dir, shards, owner }
    }

    /// Where shard `i` goes under the list's folder: `GGGGGGGG/SSSSSSSS`.
    pub fn place(&self, i: usize) -> String {
        let s = &self.shards[i];
        format!("{}/{}", name(s.group), name(s.index))
    }

    /// Give shard `i` a stamp of this backup's own (`nonce`), so the archiver makes it
    /// again rather than take the parent's.
    pub fn restamp(&mut self, i: usize, entries: &[TreeEntry], nonce: u64) {
        let s = &mut self.shards[i];
        s.stamp = stamp_of(&entries[s.lines.clone()], Some(nonce));
    }

    /// The list's size: its shards' together.
    pub fn size(&self) -> u64 {
        self.shards.iter().map(|s| s.size).sum()
    }

    /// The list's nodes in the archiver's order: its directory, then each group's
    /// directory followed by its shards.
    pub fn nodes(&self) -> Vec<ListNode> {
        let dir = |path: PathBuf| {
            let meta = Metadata {
                mode: Some(mode_to_go(0o700) | GO_DIR),
                mtime: Some(Timestamp::UNIX_EPOCH),
                atime: Some(Timestamp::UNIX_EPOCH),
                ctime: Some(Timestamp::UNIX_EPOCH),
                uid: Some(self.owner.0),
                gid: Some(self.owner.1),
                links: 1,
                ..Metadata::default()
            };
            let name = path.file_name().expect("a name").to_os_string();
            ListNode {
                node: Node::new_node(&name, NodeType::Dir, meta),
                path,
                shard: None,
            }
        };
        let mut out = vec![dir(self.dir.clone())];
        for (i, s) in self.shards.iter().enumerate() {
            let group = self.dir.join(name(s.group));
            if s.index == 0 {
                out.push(dir(group.clone()));
            }
            let meta = Metadata {
                mode: Some(mode_to_go(0o600)),
                mtime: Some(s.stamp),
                atime: Some(s.stamp),
                ctime: Some(s.stamp),
                uid: Some(self.owner.0),
                gid: Some(self.owner.1),
                size: s.size,
                links: 1,
                ..Metadata::default()
            };
            let n = name(s.index);
            out.push(ListNode {
                node: Node::new_node(n.as_ref(), NodeType::File, meta),
                path: group.join(n),
                shard: Some(i),
            });
        }
        out
    }
}

/// The shards' nodes of the list stored at `dir` in `tree`, in the list's order, each with
/// its place in the list (`GGGGGGGG/SSSSSSSS`, as [`ShardPlan::place`] names it).
pub fn stored_shards<S: IndexedTree>(
    repo: &Repository<S>,
    tree: TreeId,
    dir: &Path,
) -> Result<Vec<(String, Node)>, String> {
    let one_line = |e: Box<rustic_core::RusticError>| super::one_line(&e);
    let top = repo
        .node_from_path(tree, dir)
        .map_err(|e| format!("finding its file list {}: {}", dir.display(), one_line(e)))?;
    let subtree = |n: &Node| {
        let id = n.subtree.ok_or_else(|| {
            format!(
                "its file list {}: {} is not a folder",
                dir.display(),
                n.name().to_string_lossy()
            )
        })?;
        repo.get_tree(&id)
            .map_err(|e| format!("reading its file list {}: {}", dir.display(), one_line(e)))
    };
    let mut shards = Vec::new();
    for group in subtree(&top)?.nodes {
        let folder = group.name().to_string_lossy().into_owned();
        for shard in subtree(&group)?.nodes {
            shards.push((
                format!("{folder}/{}", shard.name().to_string_lossy()),
                shard,
            ));
        }
    }
    Ok(shards)
}

/// A shard of a stored list, as much of it as the next backup compares: the archiver
/// takes a shard from the parent when its place, size and stamp are the same.
#[derive(Debug)]
pub struct StoredShard {
    stamp: Option<Timestamp>,
    size: u64,
    /// Its one blob, in hex; None when it was stored in several.
    blob: Option<String>,
}

/// The parent's list's shards by place.
pub type ParentShards = HashMap<String, StoredShard>;

/// The shards of a stored list ([`stored_shards`]) by place.
pub fn by_place(stored: Vec<(String, Node)>) -> ParentShards {
    stored
        .into_iter()
        .map(|(place, node)| {
            let blob = match node.content.as_deref() {
                Some([one]) => Some(one.to_hex().to_string()),
                _ => None,
            };
            let shard = StoredShard {
                stamp: node.meta.mtime,
                size: node.meta.size,
                blob,
            };
            (place, shard)
        })
        .collect()
}

impl StoredShard {
    /// Whether the archiver would take this shard for `shard` of a plan: same size and
    /// stamp (the place is the map's key).
    pub fn matches(&self, shard: &Shard) -> bool {
        self.stamp == Some(shard.stamp) && self.size == shard.size
    }

    /// Whether it holds exactly `bytes`: one blob, whose id is their SHA-256.
    pub fn holds(&self, bytes: &[u8]) -> bool {
        self.size == bytes.len() as u64
            && self
                .blob
                .as_deref()
                .is_some_and(|b| b == hex::encode(Sha256::digest(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, mtime: i64) -> TreeEntry {
        TreeEntry {
            rel: rel.into(),
            kind: TreeEntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 10,
            mtime: (mtime, 0),
            ctime: (mtime, 0),
            inode: 7,
            device: 1,
            links: 1,
        }
    }

    fn tree(n: usize) -> Vec<TreeEntry> {
        let mut entries = vec![file("", 0)];
        entries.extend((0..n).map(|i| file(&format!("d{:03}/f{i:06}.txt", i / 100), 1)));
        entries
    }

    fn plan_with(entries: &[TreeEntry], unknown: &str, nonce: u64) -> ShardPlan {
        let cut = Cut {
            line_len: &|e| 40 + e.rel.len() as u64,
            unknown: &|e| e.rel == unknown,
            nonce,
            max_bytes: MAX_SHARD_BYTES,
        };
        ShardPlan::new(PathBuf::from("/srv/data.lifeboat-files"), entries, &cut)
    }

    fn plan(entries: &[TreeEntry]) -> ShardPlan {
        plan_with(entries, "", 0)
    }

    /// A shard holding a file whose line cannot be known beforehand gets a stamp of this
    /// backup's own, so the archiver makes it again; the other shards keep theirs.
    #[test]
    fn a_shard_with_a_file_unknown_beforehand_never_matches_the_parent() {
        let entries = tree(5_000);
        let known = plan(&entries);
        let (a, b) = (
            plan_with(&entries, "d012/f001234.txt", 1),
            plan_with(&entries, "d012/f001234.txt", 2),
        );
        let differ = |x: &ShardPlan, y: &ShardPlan| {
            (0..x.shards.len())
                .filter(|i| x.shards[*i].stamp != y.shards[*i].stamp)
                .collect::<Vec<_>>()
        };
        let holding = known
            .shards
            .iter()
            .position(|s| s.lines.contains(&1_235))
            .unwrap();
        assert_eq!(differ(&a, &b), [holding]);
        assert_eq!(differ(&known, &a), [holding]);
    }

    /// Shards are cut by paths alone: one file's new mtime changes only its shard's
    /// stamp; a new file changes only the shard it falls in; the lines are all covered,
    /// in order, once.
    #[test]
    fn a_change_touches_one_shard_and_the_cuts_follow_the_paths() {
        let entries = tree(20_000);
        let a = plan(&entries);
        let covered: Vec<usize> = a.shards.iter().flat_map(|s| s.lines.clone()).collect();
        assert_eq!(covered, (1..entries.len()).collect::<Vec<_>>());
        let avg = 20_000 / a.shards.len();
        assert!((20..200).contains(&avg), "{avg} lines a shard");
        let groups = a.shards.last().unwrap().group + 1;
        assert!((2..40).contains(&groups), "{groups} groups");
        assert!(a.shards.iter().all(|s| s.size <= MAX_SHARD_BYTES));

        let mut touched = entries.clone();
        touched[12_345].mtime.0 = 99;
        let b = plan(&touched);
        let differ: Vec<usize> = (0..a.shards.len())
            .filter(|i| a.shards[*i] != b.shards[*i])
            .collect();
        assert_eq!(differ.len(), 1);
        assert!(a.shards[differ[0]].lines.contains(&12_345));

        let mut grown = entries.clone();
        grown.insert(5_000, file("d049/f004999a.txt", 1));
        let c = plan(&grown);
        let stamps = |p: &ShardPlan| p.shards.iter().map(|s| s.stamp).collect::<Vec<_>>();
        let (old, new) = (stamps(&a), stamps(&c));
        let kept = new.iter().filter(|s| old.contains(s)).count();
        assert!(kept + 2 >= old.len(), "{kept} of {} shards kept", old.len());
    }

    /// The list's nodes come in the archiver's order: sorted paths, each group's folder
    /// before its shards, every shard once.
    #[test]
    fn nodes_come_sorted_with_each_folder_before_its_shards() {
        let entries = tree(5_000);
        let p = plan(&entries);
        let nodes = p.nodes();
        let paths: Vec<&PathBuf> = nodes.iter().map(|n| &n.path).collect();
        assert!(paths.is_sorted());
        assert_eq!(paths[0], &p.dir);
        let shards: Vec<usize> = nodes.iter().filter_map(|n| n.shard).collect();
        assert_eq!(shards, (0..p.shards.len()).collect::<Vec<_>>());
        assert_eq!(
            nodes.iter().map(|n| n.node.meta.size).sum::<u64>(),
            p.size()
        );
    }
}
