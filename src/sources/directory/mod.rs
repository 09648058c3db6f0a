//! Directory targets: a tree of files, directories and symlinks under a root, kept as a
//! tar stream with a manifest of every entry (mode, size, SHA-256, link). What both
//! places a tree can be (this host: `local`, another host: `ssh`) share lives here: the
//! include/exclude filter, the checks on names a backup holds, and what a backup's
//! content is on this host (a tree extracted safely, checked file by file). A local tree
//! may be read from a btrfs snapshot of itself (`snapshot`).
//!
//! The end of a copy compares each entry's size, mtime and ctime with what they were when
//! it was read (`changes` on this host; the host's second listing in `remote`), so a copy
//! that changed while read is flagged or refused.
//!
//! A partial restore narrows the tar stream to the paths asked for (`pick`) before it is
//! staged as any restore is.
//!
//! To a store that keeps native trees (a repository), a tree on this host is handed over
//! entry by entry instead (`listing`): listed first, then only the files the store does
//! not already have are read. A tree over SSH is still one tar stream.

mod archive;
mod btrfs;
mod changes;
mod extract;
mod listing;
pub mod local;
mod pick;
mod remote;
mod remote_fetch;
mod remote_tree;
pub mod snapshot;
pub mod ssh;
mod tree_builder;

use std::ffi::OsString;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::stores::manifest::Manifest;

pub(crate) use archive::write_tar;
pub use extract::{check_tar, check_tree, extract_tar};
pub use pick::TreePaths;

/// Which paths (relative to the root, `/`-separated) go into the backup.
pub struct Filter {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl Filter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Filter> {
        let build = |globs: &[String]| -> Result<GlobSet> {
            let mut b = GlobSetBuilder::new();
            for g in globs {
                b.add(Glob::new(g).map_err(|e| Error::Usage(format!("bad glob {g:?}: {e}")))?);
            }
            b.build().map_err(|e| Error::Usage(e.to_string()))
        };
        Ok(Filter {
            include: if include.is_empty() {
                None
            } else {
                Some(build(include)?)
            },
            exclude: build(exclude)?,
        })
    }
    pub(crate) fn excluded(&self, rel: &str) -> bool {
        self.exclude.is_match(rel)
    }
    pub(crate) fn included(&self, rel: &str) -> bool {
        self.include.as_ref().is_none_or(|i| i.is_match(rel))
    }
}
/// Refuse archive paths that are absolute or climb out with `..`.
pub(crate) fn safe_relative(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => {
                return Err(Error::Failed(format!(
                    "the backup holds an entry that would escape the destination: {}",
                    path.display()
                )));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::Failed(
            "the backup holds an entry with an empty path".into(),
        ));
    }
    Ok(out)
}

/// Refuse links whose target, seen from the link's directory, leaves the destination.
pub(crate) fn safe_link(entry_path: &Path, link: &Path) -> Result<()> {
    let escape = || {
        Error::Failed(format!(
            "the backup holds a link that points outside the destination: {} -> {}",
            entry_path.display(),
            link.display()
        ))
    };
    if link.is_absolute() {
        return Err(escape());
    }
    let mut depth: i64 = entry_path.components().count() as i64 - 1;
    for c in link.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return Err(escape()),
        }
        if depth < 0 {
            return Err(escape());
        }
    }
    Ok(())
}

/// A backup's content written as a new tree at `dest` on this host (a drill's sandbox).
pub(crate) fn write_copy(content: &mut dyn Read, dest: &Path, ctx: &JobContext) -> Result<()> {
    std::fs::create_dir(dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    extract_tar(content, dest, ctx).map(|_| ())
}

/// A backup's content checked as it streams (verify): every entry against the manifest.
pub(crate) fn check_content(
    m: &Manifest,
    content: &mut dyn Read,
    ctx: &JobContext,
) -> Result<Vec<String>> {
    match &m.directory {
        Some(facts) => check_tar(content, facts, ctx),
        None => Ok(vec!["the manifest has no file list".into()]),
    }
}

/// What checking a restored tree is called on a drill's timeline.
pub(crate) const COPY_CHECK: &str = "every file's SHA-256 on the restored copy";

/// A restored tree on this host checked against its manifest: `Ok(what was seen)` or
/// `Err(problems)`.
pub(crate) fn check_copy(
    m: &Manifest,
    copy: &Path,
    ctx: &JobContext,
) -> Result<std::result::Result<String, Vec<String>>> {
    let Some(facts) = &m.directory else {
        return Ok(Err(vec![
            "the manifest has nothing to check the copy against".into(),
        ]));
    };
    let found = check_tree(copy, facts, ctx)?;
    Ok(if found.is_empty() {
        Ok(format!("{} files match the manifest", facts.files))
    } else {
        Err(found)
    })
}

/// The name a tree has inside a backup: one tar stream named after the target.
pub(crate) fn content_name(target: &str) -> String {
    format!("{target}.tar")
}

/// A directory tree (a tar stream) as backup content: every file checked against the
/// manifest's list, written out as the tree.
pub struct TreeContent;

impl super::Content for TreeContent {
    fn check_content(
        &self,
        m: &Manifest,
        content: &mut dyn Read,
        _scratch: &Path,
        ctx: &JobContext,
    ) -> Result<Vec<String>> {
        check_content(m, content, ctx)
    }

    fn write_copy(
        &self,
        _m: &Manifest,
        content: &mut dyn Read,
        dest: &Path,
        ctx: &JobContext,
    ) -> Result<()> {
        write_copy(content, dest, ctx)
    }

    fn copy_check_name(&self) -> &'static str {
        COPY_CHECK
    }

    fn check_copy(&self, m: &Manifest, copy: &Path, ctx: &JobContext) -> Result<super::Checked> {
        check_copy(m, copy, ctx)
    }
}

/// The names in a directory, sorted, so every walk of a tree visits it in one order.
pub(crate) fn sorted_names(dir: &Path) -> Result<Vec<OsString>> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)
        .and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(|e: std::io::Error| {
            Error::Failed(format!("cannot list {}: {e}", dir.display()))
        })?;
    names.sort();
    Ok(names)
}
