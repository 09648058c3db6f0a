//! Copies that changed while read, for a tree on this host: the walk notes each entry's
//! size, mtime, ctime and inode as it stats it (before a file is read, before a directory
//! is listed), and at the end of the copy every entry is stat-ed once more. A file whose
//! stamp moved was written meanwhile; one that is gone vanished; a directory whose stamp
//! moved is listed again to name what appeared in it after it was listed (a new `.wal`).
//! Entries the target's globs leave out never count.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Filter;

/// What an entry looked like when the copy read it (kept for every entry of the tree,
/// so kept small: nanoseconds fit in 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: i64,
    ctime: i64,
    ino: u64,
    mtime_nsec: u32,
    ctime_nsec: u32,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            size: meta.len(),
            mtime: meta.mtime(),
            ctime: meta.ctime(),
            ino: meta.ino(),
            mtime_nsec: meta.mtime_nsec() as u32,
            ctime_nsec: meta.ctime_nsec() as u32,
        }
    }
}

/// The walk's notes, compared with the tree by [`ReadNotes::changed`].
#[derive(Default)]
pub(crate) struct ReadNotes {
    /// The root, stat-ed before it was listed (following a symlink, as the walk does).
    root: Option<Stamp>,
    /// Every entry the copy stat-ed, with whether it is a directory.
    seen: Vec<(Box<str>, Stamp, bool)>,
    /// Names listed but not backed up as entries (sockets, devices): not new at the end.
    other: Vec<String>,
    /// Names listed that were gone by the time the copy stat-ed or opened them, and
    /// files that ended before their stat-ed size while read.
    noticed: Vec<String>,
}

impl ReadNotes {
    /// The entry's own metadata (links not followed), or `None` when it was listed and
    /// then deleted before it could be read: noted as vanished when the filter keeps it.
    pub(crate) fn stat(
        &mut self,
        full: &Path,
        rel: &str,
        filter: &Filter,
    ) -> crate::error::Result<Option<Metadata>> {
        match fs::symlink_metadata(full) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if filter.included(rel) {
                    self.vanished(rel);
                }
                Ok(None)
            }
            Err(e) => Err(crate::error::Error::Failed(format!(
                "cannot read {}: {e}",
                full.display()
            ))),
        }
    }

    pub(crate) fn root(&mut self, meta: &Metadata) {
        self.root = Some(Stamp::of(meta));
    }

    /// An entry as stat-ed just before it was read (a file) or listed (a directory).
    pub(crate) fn read(&mut self, rel: &str, meta: &Metadata) {
        self.seen.push((rel.into(), Stamp::of(meta), meta.is_dir()));
    }

    /// The walk is over: no room kept for more entries.
    pub(crate) fn walked(&mut self) {
        self.seen.shrink_to_fit();
    }

    pub(crate) fn other(&mut self, rel: &str) {
        self.other.push(rel.to_string());
    }

    pub(crate) fn vanished(&mut self, rel: &str) {
        self.noticed.push(rel.to_string());
    }

    /// A file that ended sooner than its size while read (its copy is padded).
    pub(crate) fn cut_short(&mut self, rel: &str) {
        self.noticed.push(rel.to_string());
    }

    /// Stat everything again: the paths (relative to `root`) that changed, vanished or
    /// appeared since they were read, sorted.
    pub(crate) fn changed(&self, root: &Path, filter: &Filter) -> Vec<String> {
        tracing::debug!(
            entries = self.seen.len(),
            "every entry read; looking at each again for changes"
        );
        let mut found: Vec<String> = self.noticed.clone();
        let mut moved_dirs: Vec<&str> = Vec::new();
        if let Some(was) = self.root {
            match fs::metadata(root) {
                Ok(now) if Stamp::of(&now) == was => {}
                Ok(_) => moved_dirs.push(""),
                Err(_) => found.push(".".into()),
            }
        }
        for (rel, was, is_dir) in &self.seen {
            match fs::symlink_metadata(root.join(&**rel)) {
                Ok(now) if Stamp::of(&now) == *was => {}
                Ok(_) if *is_dir => moved_dirs.push(rel),
                Ok(_) => found.push(rel.to_string()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => found.push(rel.to_string()),
                // Unreadable now (permissions changed): not the same as when read.
                Err(_) => found.push(rel.to_string()),
            }
        }
        if !moved_dirs.is_empty() {
            found.extend(self.appeared(root, filter, &moved_dirs));
        }
        found.sort();
        found.dedup();
        found
    }

    /// The names in `dirs` the copy did not list, that the globs would have backed up.
    fn appeared(&self, root: &Path, filter: &Filter, dirs: &[&str]) -> Vec<String> {
        let known: HashSet<&str> = self
            .seen
            .iter()
            .map(|(rel, _, _)| &**rel)
            .chain(self.other.iter().map(String::as_str))
            .chain(self.noticed.iter().map(String::as_str))
            .collect();
        let mut out = Vec::new();
        for dir in dirs {
            let Ok(names) = fs::read_dir(root.join(dir)) else {
                continue; // gone or unreadable: its entries say so themselves
            };
            for name in names.flatten() {
                let rel = Path::new(dir).join(name.file_name());
                let rel = rel.to_string_lossy();
                if !known.contains(rel.as_ref()) && !filter.excluded(&rel) && filter.included(&rel)
                {
                    out.push(rel.into_owned());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noted(root: &Path) -> ReadNotes {
        let mut notes = ReadNotes::default();
        notes.root(&fs::metadata(root).unwrap());
        for rel in ["a.txt", "sub", "sub/b.txt"] {
            notes.read(rel, &fs::symlink_metadata(root.join(rel)).unwrap());
        }
        notes
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "a").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/b.txt"), "b").unwrap();
        dir
    }

    #[test]
    fn an_untouched_tree_has_nothing_changed() {
        let dir = tree();
        let all = Filter::new(&[], &[]).unwrap();
        assert!(noted(dir.path()).changed(dir.path(), &all).is_empty());
    }

    #[test]
    fn written_vanished_and_appeared_entries_are_named() {
        let dir = tree();
        let notes = noted(dir.path());
        let all = Filter::new(&[], &["*.tmp".into()]).unwrap();
        fs::write(dir.path().join("a.txt"), "rewritten").unwrap();
        fs::remove_file(dir.path().join("sub/b.txt")).unwrap();
        fs::write(dir.path().join("sub/new.wal"), "w").unwrap();
        fs::write(dir.path().join("scratch.tmp"), "excluded").unwrap();
        assert_eq!(
            notes.changed(dir.path(), &all),
            ["a.txt", "sub/b.txt", "sub/new.wal"]
        );
    }

    #[test]
    fn a_rewrite_of_the_same_size_is_seen() {
        let dir = tree();
        let notes = noted(dir.path());
        fs::write(dir.path().join("a.txt"), "z").unwrap();
        let all = Filter::new(&[], &[]).unwrap();
        assert_eq!(notes.changed(dir.path(), &all), ["a.txt"]);
    }

    #[test]
    fn a_file_replaced_by_rename_is_seen() {
        let dir = tree();
        let notes = noted(dir.path());
        fs::write(dir.path().join("a.txt.new"), "a").unwrap();
        fs::rename(dir.path().join("a.txt.new"), dir.path().join("a.txt")).unwrap();
        let all = Filter::new(&[], &[]).unwrap();
        assert_eq!(notes.changed(dir.path(), &all), ["a.txt"]);
    }

    #[test]
    fn names_listed_then_gone_count_as_vanished() {
        let dir = tree();
        let mut notes = noted(dir.path());
        notes.vanished("gone.txt");
        let all = Filter::new(&[], &[]).unwrap();
        assert_eq!(notes.changed(dir.path(), &all), ["gone.txt"]);
    }
}
