//! A tree on this host handed over as a tree (to a store that keeps native trees): one
//! walk lists every entry with its metadata (include/exclude applied, the order a restic
//! tree needs), the store reads only the files it does not already have, and the
//! manifest takes each file's SHA-256 from what the store read or from the parent backup.
//! Files the store did not read and whose SHA-256 it could not give are hashed here.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use super::Filter;
use super::changes::ReadNotes;
use crate::error::{Error, Result};
use crate::pipe::HashReader;
use crate::progress::JobContext;
use crate::stores::manifest::{DirectoryFacts, FileEntry};
use crate::stores::{Tree, TreeEntry, TreeEntryKind, TreeWriter};

/// The walk's result: the tree to hand over, the manifest's entries (files without their
/// SHA-256 yet), and the notes for the change check.
pub(crate) struct Listing {
    pub tree: Tree,
    pub facts: DirectoryFacts,
    pub notes: ReadNotes,
}

/// List the tree under `read_root` (the live tree or a snapshot of it); `shown_root` is
/// the root as the backup names it.
pub(crate) fn list(
    read_root: &Path,
    shown_root: &Path,
    filter: &Filter,
    ctx: &JobContext,
) -> Result<Listing> {
    let meta = fs::metadata(read_root).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::Failed(format!(
            "the directory {} does not exist",
            read_root.display()
        )),
        _ => Error::Failed(format!("cannot read {}: {e}", read_root.display())),
    })?;
    if !meta.is_dir() {
        return Err(Error::Failed(format!(
            "{} is not a directory",
            read_root.display()
        )));
    }
    ctx.progress.phase("listing files");
    let mut walk = Walk {
        root: read_root,
        filter,
        entries: vec![tree_entry(String::new(), TreeEntryKind::Dir, &meta)],
        facts: DirectoryFacts {
            files: 0,
            directories: 0,
            symlinks: 0,
            skipped: Vec::new(),
            entries: Vec::new(),
            tree: None,
        },
        notes: ReadNotes::default(),
        ctx,
    };
    walk.notes.root(&meta);
    walk.walk(Path::new(""))?;
    let root = read_root.to_path_buf();
    Ok(Listing {
        tree: Tree {
            root: shown_root.to_path_buf(),
            entries: walk.entries,
            open: Arc::new(move |rel: &str| {
                File::open(root.join(rel)).map(|f| Box::new(f) as Box<dyn Read + Send>)
            }),
        },
        facts: walk.facts,
        notes: walk.notes,
    })
}

/// Hand `listing` to `into`; the manifest's facts with every file's SHA-256, and the
/// paths that changed while read (the change check included).
pub(crate) fn hand_over(
    listing: Listing,
    read_root: &Path,
    filter: &Filter,
    into: &mut dyn TreeWriter,
    ctx: &JobContext,
) -> Result<(DirectoryFacts, Vec<String>)> {
    let Listing {
        tree,
        mut facts,
        mut notes,
    } = listing;
    let mut written = into.write_tree(tree, ctx)?;
    for rel in &written.vanished {
        notes.vanished(rel);
    }
    for rel in &written.cut_short {
        notes.cut_short(rel);
    }
    let gone: std::collections::HashSet<&str> =
        written.vanished.iter().map(String::as_str).collect();
    facts.entries.retain(|e| !gone.contains(e.path.as_str()));
    facts.files = facts.entries.iter().filter(|e| e.kind == "file").count() as u64;
    for e in facts.entries.iter_mut().filter(|e| e.kind == "file") {
        e.sha256 = Some(match written.sha256.remove(&e.path) {
            Some(sha) => sha,
            None => hash_file(&read_root.join(&e.path), ctx)?,
        });
    }
    facts.tree = Some(written.facts);
    ctx.progress
        .phase("looking for files that changed while read");
    let changed = notes.changed(read_root, filter);
    Ok((facts, changed))
}

fn hash_file(path: &Path, ctx: &JobContext) -> Result<String> {
    let file = File::open(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut reader = HashReader::new(crate::pipe::ProgressReader::new(
        file,
        ctx.progress.clone(),
        ctx.cancel.clone(),
    ));
    io::copy(&mut reader, &mut io::sink())
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(reader.finish().1)
}

struct Walk<'a> {
    root: &'a Path,
    filter: &'a Filter,
    entries: Vec<TreeEntry>,
    facts: DirectoryFacts,
    notes: ReadNotes,
    ctx: &'a JobContext,
}

impl Walk<'_> {
    /// Siblings in byte order, each directory's entries right after it: the order the
    /// tar walk uses and a restic tree needs.
    fn walk(&mut self, rel: &Path) -> Result<()> {
        let dir = self.root.join(rel);
        for name in super::sorted_names(&dir)? {
            self.ctx
                .cancel
                .check()
                .map_err(|e| Error::io("listing", e))?;
            let rel_path = rel.join(&name);
            let rel_text = rel_path.to_string_lossy().to_string();
            if self.filter.excluded(&rel_text) {
                continue;
            }
            let full = self.root.join(&rel_path);
            let Some(meta) = self.notes.stat(&full, &rel_text, self.filter)? else {
                continue;
            };
            let ty = meta.file_type();
            if ty.is_dir() {
                self.notes.read(&rel_text, &meta);
                // A directory left out by `include` still holds entries that may be in.
                let included = self.filter.included(&rel_text);
                let at = self.entries.len();
                self.entries
                    .push(tree_entry(rel_text.clone(), TreeEntryKind::Dir, &meta));
                let listed = self.facts.entries.len();
                self.walk(&rel_path)?;
                if included {
                    self.facts.directories += 1;
                    self.facts
                        .entries
                        .insert(listed, entry(&rel_text, "dir", &meta, None, None));
                } else if self.entries.len() == at + 1 {
                    // Nothing under it is backed up: no node for it either.
                    self.entries.pop();
                } else {
                    // Kept as the way to what is under it.
                    self.facts.directories += 1;
                    self.facts
                        .entries
                        .insert(listed, entry(&rel_text, "dir", &meta, None, None));
                }
            } else if !self.filter.included(&rel_text) {
                continue;
            } else if ty.is_symlink() {
                self.notes.read(&rel_text, &meta);
                let link = fs::read_link(&full)
                    .map_err(|e| {
                        Error::Failed(format!("cannot read link {}: {e}", full.display()))
                    })?
                    .to_string_lossy()
                    .to_string();
                self.entries.push(tree_entry(
                    rel_text.clone(),
                    TreeEntryKind::Symlink(link.clone()),
                    &meta,
                ));
                self.facts.symlinks += 1;
                self.facts
                    .entries
                    .push(entry(&rel_text, "symlink", &meta, None, Some(link)));
            } else if ty.is_file() {
                self.notes.read(&rel_text, &meta);
                self.entries
                    .push(tree_entry(rel_text.clone(), TreeEntryKind::File, &meta));
                self.facts.files += 1;
                self.facts
                    .entries
                    .push(entry(&rel_text, "file", &meta, Some(meta.len()), None));
            } else {
                self.notes.other(&rel_text);
                self.facts
                    .skipped
                    .push(format!("{rel_text}: not a regular file, directory or link"));
            }
        }
        Ok(())
    }
}

fn tree_entry(rel: String, kind: TreeEntryKind, meta: &fs::Metadata) -> TreeEntry {
    TreeEntry {
        rel,
        size: if kind == TreeEntryKind::File {
            meta.len()
        } else {
            0
        },
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        ctime: (meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        device: meta.dev(),
        links: meta.nlink(),
    }
}

fn entry(
    path: &str,
    kind: &str,
    meta: &fs::Metadata,
    size: Option<u64>,
    link: Option<String>,
) -> FileEntry {
    FileEntry {
        path: path.to_string(),
        kind: kind.to_string(),
        mode: meta.mode() & 0o7777,
        size,
        sha256: None,
        link,
    }
}
