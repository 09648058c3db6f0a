//! Writing a tree as a tar stream: the walk (include/exclude, modes, mtimes, symlinks as
//! links, ownership, per-file SHA-256, the notes that tell what changed while it was read)
//! and the read-ahead that keeps the disk busy while the stream is compressed and stored.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tar::Header;

use super::Filter;
use super::changes::ReadNotes;
use crate::error::{Error, Result};
use crate::pipe::HashReader;
use crate::progress::JobContext;
use crate::stores::manifest::{DirectoryFacts, FileEntry};

/// Write the tree under `root` as a tar stream into `out`; returns what was written, and
/// the notes of how every entry looked when read (for [`ReadNotes::changed`]).
pub(crate) fn write_tar(
    root: &Path,
    filter: &Filter,
    out: &mut dyn Write,
    ctx: &JobContext,
) -> Result<(DirectoryFacts, ReadNotes)> {
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
    let mut notes = ReadNotes::default();
    notes.root(&meta);
    let mut facts = DirectoryFacts::default();
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let prefetch = Prefetch::default();
    std::thread::scope(|scope| {
        scope.spawn(|| prefetch.run(root, filter));
        let _stop = StopOnDrop(&prefetch); // also when archiving fails or panics
        let mut walker = Walker {
            root,
            filter,
            builder: &mut builder,
            facts: &mut facts,
            notes: &mut notes,
            prefetch: &prefetch,
            ctx,
        };
        walker.walk(Path::new(""))
    })?;
    builder
        .into_inner()
        .and_then(|w| w.flush())
        .map_err(|e| Error::io("finishing the archive", e))?;
    Ok((facts, notes))
}

/// One walk of the tree into the archive.
struct Walker<'a, 'w> {
    root: &'a Path,
    filter: &'a Filter,
    builder: &'a mut tar::Builder<&'w mut dyn Write>,
    facts: &'a mut DirectoryFacts,
    notes: &'a mut ReadNotes,
    prefetch: &'a Prefetch,
    ctx: &'a JobContext,
}

impl Walker<'_, '_> {
    fn walk(&mut self, rel: &Path) -> Result<()> {
        let (root, filter, ctx) = (self.root, self.filter, self.ctx);
        let dir = root.join(rel);
        for name in super::sorted_names(&dir)? {
            ctx.cancel.check().map_err(|e| Error::io("archiving", e))?;
            let rel_path = rel.join(&name);
            let rel_text = rel_path.to_string_lossy().to_string();
            if filter.excluded(&rel_text) {
                continue;
            }
            let full = root.join(&rel_path);
            // Listed, then deleted before it could be read: noted, and skipped.
            let Some(meta) = self.notes.stat(&full, &rel_text, filter)? else {
                continue;
            };
            let ty = meta.file_type();
            let mut header = Header::new_gnu();
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            if ty.is_dir() {
                self.notes.read(&rel_text, &meta);
                if filter.included(&rel_text) {
                    header.set_size(0);
                    self.builder
                        .append_data(&mut header, &rel_path, io::empty())
                        .map_err(|e| Error::io("writing the archive", e))?;
                    self.facts.directories += 1;
                    self.facts
                        .entries
                        .push(entry(&rel_text, "dir", &meta, None, None, None));
                }
                self.walk(&rel_path)?;
            } else if !filter.included(&rel_text) {
                continue;
            } else if ty.is_symlink() {
                self.notes.read(&rel_text, &meta);
                let link = fs::read_link(&full).map_err(|e| {
                    Error::Failed(format!("cannot read link {}: {e}", full.display()))
                })?;
                self.builder
                    .append_link(&mut header, &rel_path, &link)
                    .map_err(|e| Error::io("writing the archive", e))?;
                self.facts.symlinks += 1;
                let link = link.to_string_lossy().to_string();
                self.facts
                    .entries
                    .push(entry(&rel_text, "symlink", &meta, None, None, Some(link)));
            } else if ty.is_file() {
                let file = match File::open(&full) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        // Deleted between its stat and its reading: not in the backup.
                        self.notes.vanished(&rel_text);
                        continue;
                    }
                    Err(e) => {
                        return Err(Error::Failed(format!(
                            "cannot read {}: {e}",
                            full.display()
                        )));
                    }
                };
                self.notes.read(&rel_text, &meta);
                let (sha, short) = append_file(
                    self.builder,
                    &mut header,
                    file,
                    &full,
                    &rel_path,
                    meta.len(),
                    ctx,
                )?;
                if short {
                    self.notes.cut_short(&rel_text);
                }
                self.prefetch.consumed(meta.len());
                self.facts.files += 1;
                self.facts.entries.push(entry(
                    &rel_text,
                    "file",
                    &meta,
                    Some(meta.len()),
                    Some(sha),
                    None,
                ));
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

/// Append one file's entry; its SHA-256, and whether it was cut short while read.
fn append_file(
    builder: &mut tar::Builder<&mut dyn Write>,
    header: &mut Header,
    file: File,
    full: &Path,
    rel: &Path,
    size: u64,
    ctx: &JobContext,
) -> Result<(String, bool)> {
    // A file that grows while read is cut at the size in its header; one that shrinks
    // (a database truncated by its checkpoint) is padded with zeros to that size, so the
    // archive stays whole, and counts as changed while read.
    let short = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut reader = HashReader::new(crate::pipe::ProgressReader::new(
        Padded {
            file: file.take(size),
            left: size,
            short: short.clone(),
        },
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
    debug_assert_eq!(read, size);
    Ok((sha, short.get()))
}

/// A file's first `left` bytes, and zeros after its end if it ends sooner.
struct Padded {
    file: io::Take<File>,
    left: u64,
    /// Set once the file ended before `left` did.
    short: std::rc::Rc<std::cell::Cell<bool>>,
}

impl Read for Padded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let mut n = if self.short.get() {
            0
        } else {
            self.file.read(buf)?
        };
        if n == 0 {
            self.short.set(true);
            n = buf.len().min(self.left as usize);
            buf[..n].fill(0);
        }
        self.left -= n as u64;
        Ok(n)
    }
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
