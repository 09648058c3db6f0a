//! A tree entry as a restic node: the type, Go's `fs.FileMode` bits as restic writes
//! them, times, owners and the inode facts a parent match compares.

use std::ffi::OsStr;
use std::path::Path;

use rustic_core::repofile::{Metadata, Node, NodeType};

use crate::stores::{TreeEntry, TreeEntryKind};

/// A restic node for an entry: Go's file mode bits, as restic writes them.
pub fn node_of(name: &OsStr, e: &TreeEntry) -> Node {
    let stamp = |(s, ns): (i64, i64)| rustic_core::jiff::Timestamp::new(s, ns as i32).ok();
    let (node_type, type_bit) = match &e.kind {
        TreeEntryKind::Dir => (NodeType::Dir, GO_DIR),
        TreeEntryKind::File => (NodeType::File, 0),
        TreeEntryKind::Symlink(to) => (NodeType::from_link(Path::new(to)), GO_SYMLINK),
    };
    let meta = Metadata {
        mode: Some(mode_to_go(e.mode) | type_bit),
        mtime: stamp(e.mtime),
        atime: stamp(e.mtime),
        ctime: stamp(e.ctime),
        uid: Some(e.uid),
        gid: Some(e.gid),
        user: None,
        group: None,
        inode: e.inode,
        device_id: e.device,
        size: e.size,
        links: e.links,
        extended_attributes: Vec::new(),
    };
    Node::new_node(name, node_type, meta)
}

pub(super) const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;

/// Unix permission bits (with setuid, setgid, sticky) as Go's `fs.FileMode`.
pub fn mode_to_go(mode: u32) -> u32 {
    let mut go = mode & 0o777;
    for (unix, bit) in [
        (0o4000, GO_SETUID),
        (0o2000, GO_SETGID),
        (0o1000, GO_STICKY),
    ] {
        if mode & unix != 0 {
            go |= bit;
        }
    }
    go
}

/// Go's `fs.FileMode` back as unix permission bits (with setuid, setgid, sticky).
pub fn mode_from_go(go: u32) -> u32 {
    let mut mode = go & 0o777;
    for (unix, bit) in [
        (0o4000, GO_SETUID),
        (0o2000, GO_SETGID),
        (0o1000, GO_STICKY),
    ] {
        if go & bit != 0 {
            mode |= unix;
        }
    }
    mode
}
