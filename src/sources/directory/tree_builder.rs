//! A tree's entries and its manifest facts built from a walk in tree order (a directory,
//! then everything under it, siblings by name), the same for a tree walked on this host
//! and one listed by another host: a directory the `include` globs leave out is kept
//! only as the way to what is under it that is backed up. The manifest's per-file list
//! is not built here: it is made from the entries once the store has them (each file's
//! SHA-256 is known only then), so a tree of many files is not held twice meanwhile.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use crate::stores::manifest::DirectoryFacts;
use crate::stores::{TreeEntry, TreeEntryKind};

/// An entry's metadata, from a local stat or a host's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stat {
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Seconds and nanoseconds since the epoch.
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub inode: u64,
    pub device: u64,
    pub links: u64,
}

impl Stat {
    pub(crate) fn of(meta: &Metadata) -> Stat {
        Stat {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            device: meta.dev(),
            links: meta.nlink(),
        }
    }
}

/// A directory entered and not left yet.
struct OpenDir {
    /// Where its node is in the entries.
    node_at: usize,
    included: bool,
}

pub(crate) struct TreeBuilder {
    entries: Vec<TreeEntry>,
    facts: DirectoryFacts,
    open: Vec<OpenDir>,
}

impl TreeBuilder {
    /// A tree whose root has `root`'s metadata.
    pub(crate) fn new(root: &Stat) -> TreeBuilder {
        TreeBuilder {
            entries: vec![tree_entry(String::new(), TreeEntryKind::Dir, root)],
            facts: DirectoryFacts::default(),
            open: Vec::new(),
        }
    }

    /// A directory; what follows until [`leave_dir`](Self::leave_dir) is under it.
    /// `included`: the globs choose the directory itself.
    pub(crate) fn enter_dir(&mut self, rel: String, stat: &Stat, included: bool) {
        self.open.push(OpenDir {
            node_at: self.entries.len(),
            included,
        });
        self.entries.push(tree_entry(rel, TreeEntryKind::Dir, stat));
    }

    /// The innermost directory entered is complete.
    pub(crate) fn leave_dir(&mut self) {
        let dir = self.open.pop().expect("a directory was entered");
        if !dir.included && self.entries.len() == dir.node_at + 1 {
            // Left out, and nothing under it is backed up: no node for it either.
            self.entries.pop();
            return;
        }
        // Chosen, or kept as the way to what is under it.
        self.facts.directories += 1;
    }

    pub(crate) fn file(&mut self, rel: String, stat: &Stat) {
        self.facts.files += 1;
        self.entries
            .push(tree_entry(rel, TreeEntryKind::File, stat));
    }

    pub(crate) fn symlink(&mut self, rel: String, stat: &Stat, link: String) {
        self.facts.symlinks += 1;
        self.entries
            .push(tree_entry(rel, TreeEntryKind::Symlink(link), stat));
    }

    /// An entry that is neither a file, a directory nor a link (a socket, a device).
    pub(crate) fn other(&mut self, rel: &str) {
        self.skip(rel, "not a regular file, directory or link");
    }

    /// An entry left out of the backup, with why.
    pub(crate) fn skip(&mut self, rel: &str, why: &str) {
        self.facts.skipped.push(format!("{rel}: {why}"));
    }

    /// The tree's entries (the root first) and the manifest's facts (counts and what was
    /// skipped; the per-file list is made once the tree is stored); every directory
    /// entered must have been left.
    pub(crate) fn finish(mut self) -> (Vec<TreeEntry>, DirectoryFacts) {
        while !self.open.is_empty() {
            self.leave_dir();
        }
        self.entries.shrink_to_fit();
        (self.entries, self.facts)
    }
}

fn tree_entry(rel: String, kind: TreeEntryKind, stat: &Stat) -> TreeEntry {
    TreeEntry {
        rel,
        size: if kind == TreeEntryKind::File {
            stat.size
        } else {
            0
        },
        kind,
        mode: stat.mode,
        uid: stat.uid,
        gid: stat.gid,
        mtime: stat.mtime,
        ctime: stat.ctime,
        inode: stat.inode,
        device: stat.device,
        links: stat.links,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_left_out_stays_only_as_the_way_to_what_is_in() {
        let s = Stat::default();
        let mut b = TreeBuilder::new(&s);
        b.enter_dir("docs".into(), &s, false);
        b.file("docs/z.md".into(), &s);
        b.leave_dir();
        b.enter_dir("empty".into(), &s, false);
        b.leave_dir();
        b.enter_dir("kept".into(), &s, true);
        b.leave_dir();
        b.other("fifo");
        let (entries, facts) = b.finish();
        let rels: Vec<&str> = entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, ["", "docs", "docs/z.md", "kept"]);
        assert!(
            facts.entries.is_empty(),
            "the list is made once the tree is stored"
        );
        assert_eq!((facts.files, facts.directories), (1, 2));
        assert_eq!(
            facts.skipped,
            ["fifo: not a regular file, directory or link"]
        );
    }
}
