//! Reading a tree back from a tar stream: extraction that refuses anything escaping the
//! destination, and the checks of a stream or an extracted tree against the manifest.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tar::{EntryType, Header};

use super::{safe_link, safe_relative};
use crate::error::{Error, Result};
use crate::pipe::HashReader;
use crate::progress::JobContext;
use crate::stores::manifest::{DirectoryFacts, FileEntry};

/// Extract a tar stream into the empty directory `dest`, refusing unsafe entries.
/// Returns the SHA-256 of each regular file, by path.
pub fn extract_tar(
    input: &mut dyn Read,
    dest: &Path,
    ctx: &JobContext,
) -> Result<BTreeMap<String, String>> {
    let mut archive = tar::Archive::new(input);
    let as_root = unsafe { libc::geteuid() } == 0;
    let mut hashes = BTreeMap::new();
    let mut dir_times = Vec::new();
    let dest_real =
        fs::canonicalize(dest).map_err(|e| Error::io(format!("opening {}", dest.display()), e))?;
    let entries = archive
        .entries()
        .map_err(|e| Error::io("reading the archive", e))?;
    for entry in entries {
        ctx.cancel.check().map_err(|e| Error::io("extracting", e))?;
        let mut entry = entry.map_err(|e| Error::io("reading the archive", e))?;
        let raw = entry
            .path()
            .map_err(|e| Error::io("reading the archive", e))?
            .into_owned();
        let rel = safe_relative(&raw)?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::Symlink | EntryType::Link) {
            let link = entry
                .link_name()
                .map_err(|e| Error::io("reading the archive", e))?
                .ok_or_else(|| Error::Failed(format!("link {} has no target", raw.display())))?;
            if kind == EntryType::Link {
                safe_relative(&link)?; // hard links name a path from the archive root
            } else {
                safe_link(&rel, &link)?;
            }
        } else if !matches!(
            kind,
            EntryType::Regular | EntryType::Directory | EntryType::GNULongName | EntryType::XHeader
        ) {
            return Err(Error::Failed(format!(
                "the backup holds an unsupported entry: {}",
                raw.display()
            )));
        }
        let mtime = entry.header().mtime().unwrap_or(0);
        entry.set_preserve_permissions(true);
        entry.set_preserve_mtime(true);
        entry.set_unpack_xattrs(false);
        let target = dest.join(&rel);
        if kind == EntryType::Regular {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
                // Links extracted earlier must not carry a write outside the destination.
                let real = fs::canonicalize(parent)
                    .map_err(|e| Error::io(format!("opening {}", parent.display()), e))?;
                if !real.starts_with(&dest_real) {
                    return Err(Error::Failed(format!(
                        "the backup holds an entry that would escape the destination: {}",
                        raw.display()
                    )));
                }
            }
            let mut reader = HashReader::new(crate::pipe::ProgressReader::new(
                &mut entry,
                ctx.progress.clone(),
                ctx.cancel.clone(),
            ));
            let mut file = File::create_new(&target)
                .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
            crate::pipe::copy(&mut reader, &mut file)
                .map_err(|e| Error::io(format!("writing {}", target.display()), e))?;
            let (_, sha) = reader.finish();
            drop(file);
            apply_metadata(&target, entry.header(), as_root)?;
            hashes.insert(rel.to_string_lossy().to_string(), sha);
        } else {
            let ok = entry
                .unpack_in(dest)
                .map_err(|e| Error::io(format!("extracting {}", raw.display()), e))?;
            if !ok {
                return Err(Error::Failed(format!(
                    "the backup holds an entry that would escape the destination: {}",
                    raw.display()
                )));
            }
            if as_root && let (Ok(uid), Ok(gid)) = (entry.header().uid(), entry.header().gid()) {
                std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32)).map_err(
                    |e| Error::io(format!("setting the owner of {}", target.display()), e),
                )?;
            }
            if kind == EntryType::Directory {
                dir_times.push((target, mtime));
            }
        }
    }
    // Children change their directory's mtime; set directories' times last, deepest first.
    for (dir, mtime) in dir_times.into_iter().rev() {
        let t = filetime::FileTime::from_unix_time(mtime as i64, 0);
        let _ = filetime::set_file_mtime(&dir, t);
    }
    Ok(hashes)
}

fn apply_metadata(path: &Path, header: &Header, as_root: bool) -> Result<()> {
    let err = |e| Error::io(format!("setting attributes of {}", path.display()), e);
    if as_root && let (Ok(uid), Ok(gid)) = (header.uid(), header.gid()) {
        std::os::unix::fs::chown(path, Some(uid as u32), Some(gid as u32)).map_err(err)?;
    }
    if let Ok(mode) = header.mode() {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777)).map_err(err)?;
    }
    if let Ok(mtime) = header.mtime() {
        filetime::set_file_mtime(path, filetime::FileTime::from_unix_time(mtime as i64, 0))
            .map_err(err)?;
    }
    Ok(())
}

/// Compare a restored tree on disk with the manifest: every file's SHA-256 (read back from
/// disk), every directory and link. Returns the problems.
pub fn check_tree(root: &Path, expected: &DirectoryFacts, ctx: &JobContext) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for e in &expected.entries {
        ctx.cancel
            .check()
            .map_err(|e| Error::io("checking files", e))?;
        let path = root.join(&e.path);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(_) => {
                problems.push(format!("{}: missing from the restored copy", e.path));
                continue;
            }
        };
        match e.kind.as_str() {
            "file" if !meta.is_file() => problems.push(format!("{}: not a regular file", e.path)),
            "file" => {
                let file = File::open(&path)
                    .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
                let mut reader = HashReader::new(crate::pipe::ProgressReader::new(
                    file,
                    ctx.progress.clone(),
                    ctx.cancel.clone(),
                ));
                io::copy(&mut reader, &mut io::sink())
                    .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
                if Some(reader.finish().1) != e.sha256 {
                    problems.push(format!(
                        "{}: restored content differs from the manifest (SHA-256 mismatch)",
                        e.path
                    ));
                }
            }
            "dir" if !meta.is_dir() => problems.push(format!("{}: not a directory", e.path)),
            "symlink" => {
                let link = fs::read_link(&path)
                    .ok()
                    .map(|l| l.to_string_lossy().to_string());
                if link != e.link {
                    problems.push(format!("{}: link target differs from the manifest", e.path));
                }
            }
            _ => {}
        }
    }
    Ok(problems)
}

/// Read a tar stream and compare it with the manifest's entries; returns the problems.
pub fn check_tar(
    input: &mut dyn Read,
    expected: &DirectoryFacts,
    ctx: &JobContext,
) -> Result<Vec<String>> {
    let mut want: BTreeMap<&str, &FileEntry> = expected
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    let mut problems = Vec::new();
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| Error::io("reading the archive", e))?;
    for entry in entries {
        ctx.cancel.check().map_err(|e| Error::io("verifying", e))?;
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("the archive is damaged: {e}"));
                return Ok(problems);
            }
        };
        let path = entry
            .path()
            .map(|p| p.to_string_lossy().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let Some(expected) = want.remove(path.as_str()) else {
            problems.push(format!("{path}: in the archive but not in the manifest"));
            continue;
        };
        if expected.kind == "file" {
            let mut reader = HashReader::new(crate::pipe::ProgressReader::new(
                &mut entry,
                ctx.progress.clone(),
                ctx.cancel.clone(),
            ));
            if let Err(e) = io::copy(&mut reader, &mut io::sink()) {
                problems.push(format!("{path}: cannot be read: {e}"));
                return Ok(problems);
            }
            let (_, sha) = reader.finish();
            if Some(&sha) != expected.sha256.as_ref() {
                problems.push(format!(
                    "{path}: content differs from the manifest (SHA-256 mismatch)"
                ));
            }
        } else if expected.kind == "symlink" {
            let link = entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.to_string_lossy().to_string());
            if link != expected.link {
                problems.push(format!("{path}: link target differs from the manifest"));
            }
        }
    }
    for missing in want.keys() {
        problems.push(format!(
            "{missing}: in the manifest but missing from the archive"
        ));
    }
    Ok(problems)
}
