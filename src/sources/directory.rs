//! Directory trees as tar streams: include/exclude globs, modes, mtimes, symlinks (as
//! links), ownership, per-file SHA-256; and extraction that refuses anything escaping the
//! destination.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use tar::{EntryType, Header};

use crate::error::{Error, Result};
use crate::pipe::HashReader;
use crate::progress::JobContext;
use crate::stores::manifest::{DirectoryFacts, FileEntry};

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

/// Write the tree under `root` as a tar stream into `out`; returns what was written.
pub fn write_tar(
    root: &Path,
    filter: &Filter,
    out: &mut dyn Write,
    ctx: &JobContext,
) -> Result<DirectoryFacts> {
    let meta = fs::metadata(root).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            Error::Failed(format!("the directory {} does not exist", root.display()))
        }
        _ => Error::Failed(format!("cannot read {}: {e}", root.display())),
    })?;
    if !meta.is_dir() {
        return Err(Error::Failed(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    ctx.progress.phase("archiving files");
    let mut facts = DirectoryFacts {
        files: 0,
        directories: 0,
        symlinks: 0,
        skipped: Vec::new(),
        entries: Vec::new(),
    };
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let prefetch = Prefetch::default();
    std::thread::scope(|scope| {
        scope.spawn(|| prefetch.run(root, filter));
        let _stop = StopOnDrop(&prefetch); // also when archiving fails or panics
        walk(
            root,
            Path::new(""),
            filter,
            &mut builder,
            &mut facts,
            &prefetch,
            ctx,
        )
    })?;
    builder
        .into_inner()
        .and_then(|w| w.flush())
        .map_err(|e| Error::io("finishing the archive", e))?;
    Ok(facts)
}

fn walk(
    root: &Path,
    rel: &Path,
    filter: &Filter,
    builder: &mut tar::Builder<&mut dyn Write>,
    facts: &mut DirectoryFacts,
    prefetch: &Prefetch,
    ctx: &JobContext,
) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| Error::Failed(format!("cannot list {}: {e}", dir.display())))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(|e| Error::Failed(format!("cannot list {}: {e}", dir.display())))?;
    names.sort();
    for name in names {
        ctx.cancel.check().map_err(|e| Error::io("archiving", e))?;
        let rel_path = rel.join(&name);
        let rel_text = rel_path.to_string_lossy().to_string();
        if filter.excluded(&rel_text) {
            continue;
        }
        let full = root.join(&rel_path);
        let meta = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // deleted meanwhile
            Err(e) => {
                return Err(Error::Failed(format!(
                    "cannot read {}: {e}",
                    full.display()
                )));
            }
        };
        let ty = meta.file_type();
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        if ty.is_dir() {
            if filter.included(&rel_text) {
                header.set_size(0);
                builder
                    .append_data(&mut header, &rel_path, io::empty())
                    .map_err(|e| Error::io("writing the archive", e))?;
                facts.directories += 1;
                facts
                    .entries
                    .push(entry(&rel_text, "dir", &meta, None, None, None));
            }
            walk(root, &rel_path, filter, builder, facts, prefetch, ctx)?;
        } else if !filter.included(&rel_text) {
            continue;
        } else if ty.is_symlink() {
            let link = fs::read_link(&full)
                .map_err(|e| Error::Failed(format!("cannot read link {}: {e}", full.display())))?;
            builder
                .append_link(&mut header, &rel_path, &link)
                .map_err(|e| Error::io("writing the archive", e))?;
            facts.symlinks += 1;
            let link = link.to_string_lossy().to_string();
            facts
                .entries
                .push(entry(&rel_text, "symlink", &meta, None, None, Some(link)));
        } else if ty.is_file() {
            let sha = append_file(builder, &mut header, &full, &rel_path, meta.len(), ctx)?;
            prefetch.consumed(meta.len());
            facts.files += 1;
            facts.entries.push(entry(
                &rel_text,
                "file",
                &meta,
                Some(meta.len()),
                Some(sha),
                None,
            ));
        } else {
            facts
                .skipped
                .push(format!("{rel_text}: not a regular file, directory or link"));
        }
    }
    Ok(())
}

/// Reads ahead of the archiver: a second walk of the tree, in the same order, that asks
/// the kernel to start reading the next files' directories, inodes and data while the
/// current one is archived. Backing up many small files from a cold cache is otherwise
/// one synchronous disk read after another. It stays at most `PREFETCH_AHEAD` bytes ahead.
#[derive(Default)]
struct Prefetch {
    consumed: std::sync::atomic::AtomicU64,
    stopped: std::sync::atomic::AtomicBool,
}

const PREFETCH_AHEAD: u64 = 64 << 20;

struct StopOnDrop<'a>(&'a Prefetch);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl Prefetch {
    fn consumed(&self, bytes: u64) {
        self.consumed
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn run(&self, root: &Path, filter: &Filter) {
        let mut issued = 0u64;
        self.walk(root, Path::new(""), filter, &mut issued);
    }

    /// Errors are the archiver's business: the prefetcher skips whatever it cannot read.
    fn walk(&self, root: &Path, rel: &Path, filter: &Filter, issued: &mut u64) -> bool {
        let Ok(entries) = fs::read_dir(root.join(rel)) else {
            return true;
        };
        let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let rel_path = rel.join(&name);
            let rel_text = rel_path.to_string_lossy();
            if filter.excluded(&rel_text) {
                continue;
            }
            let full = root.join(&rel_path);
            let Ok(meta) = fs::symlink_metadata(&full) else {
                continue;
            };
            if meta.is_dir() {
                if !self.walk(root, &rel_path, filter, issued) {
                    return false;
                }
            } else if meta.is_file() && filter.included(&rel_text) {
                // Wait while far enough ahead; give up when the archiver is done.
                while *issued
                    > self.consumed.load(std::sync::atomic::Ordering::Relaxed) + PREFETCH_AHEAD
                {
                    if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
                        return false;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    return false;
                }
                let ahead = meta.len().min(PREFETCH_AHEAD);
                if let Ok(file) = File::open(&full) {
                    will_need(&file, ahead);
                }
                *issued += meta.len();
            }
        }
        true
    }
}

/// Ask the kernel to start reading the first `len` bytes of `file` into the cache.
fn will_need(file: &File, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // Only a hint: failure changes nothing but speed.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                0,
                len as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            );
        }
    }
}

fn append_file(
    builder: &mut tar::Builder<&mut dyn Write>,
    header: &mut Header,
    full: &Path,
    rel: &Path,
    size: u64,
    ctx: &JobContext,
) -> Result<String> {
    let file = File::open(full)
        .map_err(|e| Error::Failed(format!("cannot read {}: {e}", full.display())))?;
    // A file that grows while read is cut at the size in its header; one that shrinks
    // would corrupt the archive, so that is an error.
    let mut reader = HashReader::new(crate::pipe::ProgressReader::new(
        file.take(size),
        ctx.progress.clone(),
        ctx.cancel.clone(),
    ));
    let archived = if header.set_path(rel).is_ok() {
        // The path fits the header: write the entry here, moving the body in large chunks.
        // (The tar crate copies bodies 8 KiB at a time: a read syscall and a trip through
        // hashing and compression per 8 KiB.)
        header.set_cksum();
        append_body(builder.get_mut(), header, &mut reader)
    } else {
        // Long paths take the tar crate's GNU long-name entries.
        builder.append_data(header, rel, &mut reader)
    };
    archived.map_err(|e| Error::io(format!("archiving {}", full.display()), e))?;
    let (read, sha) = reader.finish();
    if read != size {
        return Err(Error::Failed(format!(
            "{} shrank from {size} to {read} bytes while being read; run the backup again",
            full.display()
        )));
    }
    Ok(sha)
}

/// One tar entry: the prepared header, the body, zeros up to the next 512-byte block.
fn append_body(out: &mut dyn Write, header: &Header, body: &mut dyn Read) -> io::Result<()> {
    thread_local! {
        // One copy buffer per archiving thread, not one per file.
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; crate::pipe::CHUNK]);
    }
    out.write_all(header.as_bytes())?;
    let written = BUF.with_borrow_mut(|buf| crate::pipe::copy_using(body, out, buf))?;
    let tail = (512 - written % 512) % 512;
    out.write_all(&[0u8; 512][..tail as usize])
}

fn entry(
    path: &str,
    kind: &str,
    meta: &fs::Metadata,
    size: Option<u64>,
    sha256: Option<String>,
    link: Option<String>,
) -> FileEntry {
    FileEntry {
        path: path.to_string(),
        kind: kind.to_string(),
        mode: meta.permissions().mode() & 0o7777,
        size,
        sha256,
        link,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_stays_ahead_by_a_bounded_amount_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4 {
            let f = File::create(dir.path().join(format!("big-{i}"))).unwrap();
            f.set_len(PREFETCH_AHEAD).unwrap(); // sparse: nothing is really read
        }
        let filter = Filter::new(&[], &[]).unwrap();
        let prefetch = Prefetch::default();
        std::thread::scope(|scope| {
            let running = scope.spawn(|| prefetch.run(dir.path(), &filter));
            std::thread::sleep(std::time::Duration::from_millis(100));
            // Nothing archived yet: it waits after the first file or two instead of racing on.
            assert!(!running.is_finished());
            prefetch.stop();
            let started = std::time::Instant::now();
            running.join().unwrap();
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        });
    }
}
