//! Which files of a tree a re-backup will take from its parent without reading them,
//! known before the tree is handed over: a source that must fetch every file it hands
//! over (a tree on another host) fetches only the others. The parent is the one chosen
//! for the backup ([`choose_parent`](super::parent::choose_parent)), which
//! [`store`](super::tree_write::store) is then handed, and a file counts as unchanged by
//! the comparison rustic_core's archiver makes on the nodes `store` hands it (type, size,
//! mtime, ctime, and the inode as `store` has it compared), so the two agree.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::Path;

use rustic_core::repofile::{Node, NodeType};
use rustic_core::{IndexedTree, Repository, RusticResult, TreeId};

use super::node::node_of;
use crate::stores::{TreeEntry, TreeEntryKind};

/// The relative paths of the files among `entries` (under `root`) whose node matches the
/// node at the same path in the parent's tree `tree` (its snapshot's root tree).
pub fn unchanged<S: IndexedTree>(
    repo: &Repository<S>,
    tree: TreeId,
    root: &Path,
    entries: &[TreeEntry],
) -> RusticResult<HashSet<String>> {
    let root_node = repo.node_from_path(tree, root)?;
    let mut before = HashMap::new();
    if let Some(subtree) = root_node.subtree {
        files_of(repo, subtree, "", &mut before)?;
    }
    Ok(entries
        .iter()
        .filter(|e| e.kind == TreeEntryKind::File)
        .filter(|e| {
            let name = Path::new(&e.rel).file_name().unwrap_or(OsStr::new(""));
            before
                .get(e.rel.as_str())
                .is_some_and(|old| same(&node_of(name, e), old))
        })
        .map(|e| e.rel.clone())
        .collect())
}

/// Every file node under the tree `id`, by its path relative to that tree.
fn files_of<S: IndexedTree>(
    repo: &Repository<S>,
    id: TreeId,
    prefix: &str,
    into: &mut HashMap<String, Node>,
) -> RusticResult<()> {
    for node in repo.get_tree(&id)?.nodes {
        let rel = match prefix {
            "" => node.name().to_string_lossy().into_owned(),
            _ => format!("{prefix}/{}", node.name().to_string_lossy()),
        };
        match (&node.node_type, node.subtree) {
            (NodeType::Dir, Some(sub)) => files_of(repo, sub, &rel, into)?,
            (NodeType::File, _) => {
                into.insert(rel, node);
            }
            _ => {}
        }
    }
    Ok(())
}

/// rustic_core 0.13's parent match (`archiver/parent.rs`) with ctime compared and the
/// inode compared (`ignore_inode` set, which in that version turns the comparison on).
fn same(new: &Node, old: &Node) -> bool {
    let (n, o) = (&new.meta, &old.meta);
    old.node_type == new.node_type
        && o.size == n.size
        && o.mtime == n.mtime
        && o.ctime.zip(n.ctime).is_none_or(|(a, b)| a == b)
        && (o.inode == 0 || n.inode == 0 || o.inode == n.inode)
}
