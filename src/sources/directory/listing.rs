//! A tree on this host handed over as a tree (to a store that keeps native trees): one
//! walk lists every entry with its metadata (include/exclude applied, the order a restic
//! tree needs), the store reads only the files it does not already have, and the
//! manifest takes each file's SHA-256 from what the store read or from the parent backup.
//! Files the store did not read and whose SHA-256 it could not give are hashed here.
//! Handing a tree over ([`hand_tree_over`]) is the same for a tree listed on another host.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use super::Filter;
use super::changes::ReadNotes;
use super::tree_builder::{Stat, TreeBuilder};
use crate::error::{Error, Result};
use crate::pipe::HashReader;
use crate::progress::JobContext;
use crate::stores::manifest::DirectoryFacts;
use crate::stores::{Tree, TreeEntryKind, TreeWriter};

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
        built: TreeBuilder::new(&Stat::of(&meta)),
        notes: ReadNotes::default(),
        ctx,
    };
    walk.notes.root(&meta);
    walk.walk(Path::new(""))?;
    walk.notes.walked();
    let root = read_root.to_path_buf();
    let (entries, facts) = walk.built.finish();
    Ok(Listing {
        tree: Tree {
            root: shown_root.to_path_buf(),
            entries,
            open: Arc::new(move |rel: &str| {
                File::open(root.join(rel)).map(|f| Box::new(f) as Box<dyn Read + Send>)
            }),
        },
        facts,
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
        facts,
        mut notes,
    } = listing;
    let handed = hand_tree_over(tree, facts, into, ctx, &|rel: &str| {
        hash_file(&read_root.join(rel), ctx)
    })?;
    for rel in &handed.vanished {
        notes.vanished(rel);
    }
    for rel in &handed.cut_short {
        notes.cut_short(rel);
    }
    ctx.progress
        .phase("looking for files that changed while read");
    let changed = notes.changed(read_root, filter);
    Ok((handed.facts, changed))
}

/// What handing a tree over made of its manifest facts.
pub(crate) struct HandedOver {
    /// The facts with every file's SHA-256 and the store's tree facts; files gone before
    /// they were read are left out.
    pub facts: DirectoryFacts,
    /// Files gone when they were to be read.
    pub vanished: Vec<String>,
    /// Files that ended before their listed size while read.
    pub cut_short: Vec<String>,
}

/// Hand `tree` to `into`, wherever it was listed: the store reads the files it does not
/// already have; each file's SHA-256 comes from what the store read, else from the
/// parent backup, else from `hash_unread`.
pub(crate) fn hand_tree_over(
    tree: Tree,
    mut facts: DirectoryFacts,
    into: &mut dyn TreeWriter,
    ctx: &JobContext,
    hash_unread: &dyn Fn(&str) -> Result<String>,
) -> Result<HandedOver> {
    let written = into.write_tree(tree, ctx)?;
    let gone: std::collections::HashSet<&str> =
        written.vanished.iter().map(String::as_str).collect();
    // The manifest's list, made from the entries the store hands back (moved, the root
    // left out) now that the tree is stored: never held twice while it was.
    let mut entries = Vec::with_capacity(written.entries.len().saturating_sub(1));
    for e in written.entries.into_iter().skip(1) {
        if gone.contains(e.rel.as_str()) {
            continue;
        }
        let sha = match e.kind {
            TreeEntryKind::File => Some(match written.sha256.get(&e.rel) {
                Some(sha) => sha,
                None => hash_unread(&e.rel)?,
            }),
            _ => None,
        };
        entries.push(e.into_listed(sha));
    }
    facts.entries = entries;
    facts.files = facts.entries.iter().filter(|e| e.kind == "file").count() as u64;
    facts.tree = Some(written.facts);
    Ok(HandedOver {
        facts,
        vanished: written.vanished,
        cut_short: written.cut_short,
    })
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
    built: TreeBuilder,
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
                let included = self.filter.included(&rel_text);
                self.built.enter_dir(rel_text, &Stat::of(&meta), included);
                self.walk(&rel_path)?;
                self.built.leave_dir();
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
                self.built.symlink(rel_text, &Stat::of(&meta), link);
            } else if ty.is_file() {
                self.notes.read(&rel_text, &meta);
                self.built.file(rel_text, &Stat::of(&meta));
            } else {
                self.notes.other(&rel_text);
                self.built.other(&rel_text);
            }
        }
        Ok(())
    }
}
