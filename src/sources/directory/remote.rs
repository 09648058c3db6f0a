//! Directory trees on another host: the host lists the tree (`find`), lifeboat applies
//! the target's include/exclude globs itself (so they mean exactly what they mean for a
//! local directory), the host's GNU `tar` archives the chosen paths, and lifeboat hashes
//! every file as the tar stream passes through on its way into the store. The listing
//! carries each entry's size, mtime, ctime and inode; one more listing at the end of the
//! copy, compared with the first, tells what changed, vanished or appeared while it was
//! read. Restores check every entry here, then stream a clean archive into `tar -x` in a
//! staging directory.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::path::Path;

use tar::EntryType;

use super::{Filter, safe_link, safe_relative};
use crate::error::{Error, Result};
use crate::pipe::{HashReader, ProgressReader};
use crate::progress::JobContext;
use crate::sources::place::ssh::PRELUDE;
use crate::ssh::Session;
use crate::stores::manifest::{DirectoryFacts, FileEntry};

/// `$1`: the root. The root (with an empty path) and every path below it as `<type
/// letter> <size> <mtime> <ctime> <inode> <mode> <uid> <gid> <links> <device> <path>`
/// NUL-terminated, then the link's target (empty for all but links) NUL-terminated;
/// times in seconds with their fraction, the mode in octal.
pub(super) const LIST: &str = r#"
need find tar
root=$1
[ -e "$root" ] || say "the directory $root does not exist"
[ -d "$root" ] || say "$root is not a directory"
cd -- "$root" 2>/dev/null || say "$(id -un) may not enter $root"
find . -printf '%y %s %T@ %C@ %i %m %U %G %n %D %P\0%l\0' || say "cannot list everything under $root"
"#;

/// `$1`: the root; stdin: the NUL-terminated paths to archive, nothing else.
/// --hard-dereference: hard links are stored as plain files, as local backups store them.
pub(super) const ARCHIVE: &str = r#"
need tar
cd -- "$1" 2>/dev/null || say "$(id -un) may not enter $1"
exec tar --create --file=- --null --verbatim-files-from --no-recursion --hard-dereference --files-from=-
"#;

/// `$1`: the staging directory to create and unpack stdin into.
const UNPACK: &str = r#"
need tar mkdir rm
staging=$1 kept=
cleanup() { [ -n "$kept" ] || rm -rf -- "$staging"; }
trap cleanup EXIT
mkdir -- "$staging" || say "cannot create $staging"
cd -- "$staging" || say "cannot enter $staging"
tar -xpf - || say "tar could not unpack the restored copy into $staging"
kept=1
"#;

pub(super) fn script(body: &str) -> String {
    format!("{PRELUDE}{body}")
}

/// Paths tar may report as gone or changing without the backup being wrong: files
/// deleted or rewritten between the listing and the archiving.
fn harmless_tar_warning(line: &str) -> bool {
    line.contains("No such file or directory")
        || line.contains("file changed as we read it")
        || line.contains("File removed before we read it")
        || line.contains("File shrank by")
        || line.contains("Exiting with failure status due to previous errors")
}

/// Judge how the host's tar ended: fine when it exited 0, or 1 or 2 with only warnings
/// about files that changed or went away meanwhile (the change check names those).
pub(super) fn judge_tar(host: &str, code: i32, stderr: &str) -> Result<()> {
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("tar: ")).collect();
    if code != 0 && !(code <= 2 && warnings.iter().all(|l| harmless_tar_warning(l))) {
        return Err(Error::Failed(format!(
            "archiving the directory on {host}: tar failed (exit code {code}): {}",
            warnings.last().copied().unwrap_or("no message")
        )));
    }
    for w in warnings
        .iter()
        .filter(|l| !l.contains("Exiting with failure"))
    {
        tracing::info!(host = %host, "{w}");
    }
    Ok(())
}

/// Back up the tree at `root` on the session's host into `content`; returns what was
/// written and the paths that changed while it was read.
pub fn backup(
    session: &Session,
    root: &Path,
    filter: &Filter,
    content: &mut dyn Write,
    ctx: &JobContext,
) -> Result<(DirectoryFacts, Vec<String>)> {
    let host = session.remote().host.to_string();
    let root_text = root.to_string_lossy();
    ctx.progress.phase(&format!("listing files on {host}"));
    let listing = session.output(&script(LIST), &[&root_text], "listing the directory", ctx)?;
    let (paths, skipped) = choose(&listing, filter);
    let archived = archive(session, &root_text, paths, content, ctx)?;
    let mut facts = archived?;
    facts.skipped = skipped;
    let after = list_again(session, &root_text, &host, ctx)?;
    Ok((facts, changed(&listing, &after, filter)))
}

/// The second listing of the tree, after its files were read: compared with the first,
/// it tells what changed, vanished or appeared meanwhile.
pub(super) fn list_again(
    session: &Session,
    root_text: &str,
    host: &str,
    ctx: &JobContext,
) -> Result<Vec<u8>> {
    ctx.progress.phase(&format!(
        "looking for files that changed while read on {host}"
    ));
    session.output(
        &script(LIST),
        &[root_text],
        "listing the directory again",
        ctx,
    )
}

/// Archive `paths` under `root` on the host into `content`, hashing every file. The outer
/// `Err`: the archive could not be made; the inner: what was received was not an archive.
fn archive(
    session: &Session,
    root_text: &str,
    paths: Vec<Vec<u8>>,
    content: &mut dyn Write,
    ctx: &JobContext,
) -> Result<Result<DirectoryFacts>> {
    let host = session.remote().host.to_string();
    ctx.progress.phase("archiving, compressing and storing");
    ctx.progress.total(None);
    let mut child = session.spawn(
        &script(ARCHIVE),
        &[root_text],
        true,
        "archiving the directory",
        ctx,
    )?;
    let mut stdin = child.take_stdin().expect("spawned with stdin");
    // tar reads names while it writes the archive: feed it from another thread.
    let feeder = std::thread::spawn(move || -> io::Result<()> {
        for p in paths {
            stdin.write_all(&p)?;
            stdin.write_all(b"\0")?;
        }
        stdin.flush()
    });
    let mut tee = Tee {
        inner: ProgressReader::new(child.stdout(), ctx.progress.clone(), ctx.cancel.clone()),
        out: content,
        failed: None,
    };
    let parsed = read_archive(&mut tee, ctx);
    let store_error = tee.failed.take();
    drop(tee);
    if let Some(e) = store_error {
        return Err(Error::io("storing the archive", e)); // drops (kills) the child
    }
    // Waiting first: if the stream broke, ssh says why, and the feeder is released.
    let (code, stderr) = child.finish_with_code()?;
    let fed = feeder.join();
    judge_tar(&host, code, &stderr)?;
    if let Ok(Err(e)) = fed {
        return Err(Error::io("sending the file list", e));
    }
    Ok(parsed)
}

/// One entry of the host's listing, its fields as the host wrote them.
pub(super) struct Record<'a> {
    /// `find`'s type letter: `f`, `d`, `l`, ...
    pub kind: u8,
    /// Size, mtime, ctime and inode: what moves when the entry changes.
    pub stamp: &'a [u8],
    /// Mode (octal), uid, gid, links, device.
    pub rest: [&'a [u8]; 5],
    /// Relative to the root; empty for the root itself.
    pub path: &'a [u8],
    /// A link's target; empty for anything else.
    pub link: &'a [u8],
}

/// Every entry of a listing, the root first.
pub(super) fn parse(listing: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut fields = listing.split(|b| *b == 0);
    std::iter::from_fn(move || {
        loop {
            let record = fields.next()?;
            let link = fields.next().unwrap_or_default();
            if let Some(r) = record_of(record, link) {
                return Some(r);
            }
        }
    })
}

fn record_of<'a>(record: &'a [u8], link: &'a [u8]) -> Option<Record<'a>> {
    let mut fields = record.splitn(11, |b| *b == b' ');
    let kind = *fields.next()?.first()?;
    let stamp_len: usize = (0..4)
        .map(|_| fields.next().map(|f| f.len() + 1))
        .sum::<Option<usize>>()?;
    let mut rest = [&record[..0]; 5];
    for r in &mut rest {
        *r = fields.next()?;
    }
    Some(Record {
        kind,
        stamp: &record[2..1 + stamp_len],
        rest,
        path: fields.next()?,
        link,
    })
}

/// The entries below the root: type letter, stamp, path.
fn records(listing: &[u8]) -> impl Iterator<Item = (u8, &[u8], &[u8])> {
    parse(listing)
        .filter(|r| !r.path.is_empty())
        .map(|r| (r.kind, r.stamp, r.path))
}

/// The paths the target's globs choose that changed between two listings: a file or link
/// whose stamp moved, an entry gone, an entry new. A directory's own stamp moves with
/// every name made or removed in it, so its entries say what changed, not it.
pub(super) fn changed(before: &[u8], after: &[u8], filter: &Filter) -> Vec<String> {
    let stamps = |listing| -> HashMap<&[u8], (u8, &[u8])> {
        records(listing)
            .map(|(kind, stamp, path)| (path, (kind, stamp)))
            .collect()
    };
    let (was, now) = (stamps(before), stamps(after));
    let mut found = Vec::new();
    for path in choose(before, filter).0 {
        let moved = match (was.get(path.as_slice()), now.get(path.as_slice())) {
            (_, None) => true,
            (Some((k1, s1)), Some((k2, s2))) => k1 != k2 || (*k1 != b'd' && s1 != s2),
            (None, Some(_)) => false,
        };
        if moved {
            found.push(String::from_utf8_lossy(&path).into_owned());
        }
    }
    for path in choose(after, filter).0 {
        if !was.contains_key(path.as_slice()) {
            found.push(String::from_utf8_lossy(&path).into_owned());
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Paths (relative, raw bytes) to archive, in the order a local walk would take them,
/// and the entries left out because they are neither files, directories nor links.
fn choose(listing: &[u8], filter: &Filter) -> (Vec<Vec<u8>>, Vec<String>) {
    let mut excluded_dirs: HashSet<&[u8]> = HashSet::new();
    let mut chosen: Vec<Vec<u8>> = Vec::new();
    let mut skipped = Vec::new();
    for (kind, _, path) in records(listing) {
        // A local walk never descends into an excluded directory.
        let under_excluded = path
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .any(|(i, _)| excluded_dirs.contains(&path[..i]));
        if under_excluded {
            continue;
        }
        let rel = String::from_utf8_lossy(path);
        if filter.excluded(&rel) {
            if kind == b'd' {
                excluded_dirs.insert(path);
            }
            continue;
        }
        if !filter.included(&rel) {
            continue;
        }
        match kind {
            b'f' | b'd' | b'l' => chosen.push(path.to_vec()),
            _ => skipped.push(format!("{rel}: not a regular file, directory or link")),
        }
    }
    chosen.sort_by(|a, b| a.split(|c| *c == b'/').cmp(b.split(|c| *c == b'/')));
    (chosen, skipped)
}

/// Copies everything read into `out` as well; remembers a failed write (the store).
struct Tee<'a, R: Read> {
    inner: R,
    out: &'a mut dyn Write,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let kind = e.kind();
            self.failed = Some(e);
            return Err(io::Error::new(kind, "writing to the store failed"));
        }
        Ok(n)
    }
}

/// Walk the archive as it streams past, hashing every file; then read what follows the
/// last entry (tar's padding) so the stored content is the whole stream.
fn read_archive<R: Read>(tee: &mut Tee<'_, R>, ctx: &JobContext) -> Result<DirectoryFacts> {
    let mut facts = DirectoryFacts::default();
    let err = |e| Error::io("receiving the archive", e);
    let mut archive = tar::Archive::new(&mut *tee);
    for entry in archive.entries().map_err(err)? {
        ctx.cancel.check().map_err(|e| Error::io("archiving", e))?;
        let mut entry = entry.map_err(err)?;
        let path = entry.path().map_err(err)?;
        let path = path.to_string_lossy().trim_end_matches('/').to_string();
        let header = entry.header();
        let mode = header.mode().unwrap_or(0) & 0o7777;
        let mut e = FileEntry {
            path,
            kind: String::new(),
            mode,
            size: None,
            sha256: None,
            link: None,
        };
        match header.entry_type() {
            EntryType::Regular | EntryType::Continuous => {
                let mut reader = HashReader::new(&mut entry);
                io::copy(&mut reader, &mut io::sink()).map_err(err)?;
                let (size, sha) = reader.finish();
                e.kind = "file".into();
                e.size = Some(size);
                e.sha256 = Some(sha);
                facts.files += 1;
            }
            EntryType::Directory => {
                e.kind = "dir".into();
                facts.directories += 1;
            }
            EntryType::Symlink => {
                e.kind = "symlink".into();
                e.link = entry
                    .link_name()
                    .map_err(err)?
                    .map(|l| l.to_string_lossy().to_string());
                facts.symlinks += 1;
            }
            other => {
                return Err(Error::Failed(format!(
                    "the host's tar sent an entry lifeboat does not back up ({other:?}): {}",
                    e.path
                )));
            }
        }
        facts.entries.push(e);
    }
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(err)?;
    Ok(facts)
}

/// Check every entry of the backup's archive in `content` and stream the safe ones into
/// a new staging directory on the host. Anything unsafe stops it before it is sent.
pub fn stage(
    session: &Session,
    content: &mut dyn Read,
    staging: &Path,
    ctx: &JobContext,
) -> Result<()> {
    let staging_text = staging.to_string_lossy();
    let mut child = session.spawn(
        &script(UNPACK),
        &[&staging_text],
        true,
        "unpacking the restored copy",
        ctx,
    )?;
    let stdin = child.take_stdin().expect("spawned with stdin");
    let mut builder = tar::Builder::new(stdin);
    let sent = resend(content, &mut builder, ctx).and_then(|()| {
        builder
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| Error::io("sending the restored copy", e))
    });
    match sent {
        Ok(()) => child.finish().map(|_| ()),
        Err(e) => {
            // The host stopped reading: its reason is the better one.
            child.finish()?;
            Err(e)
        }
    }
}

fn resend(
    content: &mut dyn Read,
    builder: &mut tar::Builder<impl Write>,
    ctx: &JobContext,
) -> Result<()> {
    let read_err = |e| Error::io("reading the backup", e);
    let send_err = |e| Error::io("sending the restored copy", e);
    let mut archive = tar::Archive::new(content);
    for entry in archive.entries().map_err(read_err)? {
        ctx.cancel.check().map_err(|e| Error::io("restoring", e))?;
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path().map_err(read_err)?.into_owned();
        let rel = safe_relative(&raw)?;
        let mut header = entry.header().clone();
        match header.entry_type() {
            EntryType::Regular | EntryType::Directory => {
                builder
                    .append_data(&mut header, &rel, &mut entry)
                    .map_err(send_err)?;
            }
            kind @ (EntryType::Symlink | EntryType::Link) => {
                let link = entry
                    .link_name()
                    .map_err(read_err)?
                    .ok_or_else(|| Error::Failed(format!("link {} has no target", raw.display())))?
                    .into_owned();
                if kind == EntryType::Link {
                    safe_relative(&link)?; // hard links name a path from the archive root
                } else {
                    safe_link(&rel, &link)?;
                }
                builder
                    .append_link(&mut header, &rel, &link)
                    .map_err(send_err)?;
            }
            _ => {
                return Err(Error::Failed(format!(
                    "the backup holds an unsupported entry: {}",
                    raw.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing as the host writes it, from `<type> <path>` records, every entry
    /// stamped alike.
    fn listing(records: &[&str]) -> Vec<u8> {
        stamped(&records.iter().map(|r| (*r, "1")).collect::<Vec<_>>())
    }

    /// A listing from `(<type> <path>, mtime)` pairs.
    fn stamped(records: &[(&str, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (r, mtime) in records {
            let (kind, path) = r.split_once(' ').unwrap();
            v.extend_from_slice(
                format!("{kind} 10 {mtime}.5 {mtime}.5 77 644 0 0 1 2049 {path}").as_bytes(),
            );
            v.push(0);
            v.push(0);
        }
        v
    }

    #[test]
    fn a_second_listing_names_what_changed_vanished_or_appeared() {
        let filter = Filter::new(&[], &["*.tmp".into()]).unwrap();
        let before = stamped(&[
            ("d state", "1"),
            ("f state/system.duckdb", "1"),
            ("f state/old.log", "1"),
            ("f extracts a.parquet", "1"),
            ("f keep.txt", "1"),
        ]);
        let after = stamped(&[
            ("d state", "2"),
            ("f state/system.duckdb", "2"),
            ("f state/system.duckdb.wal", "2"),
            ("f state/x.tmp", "2"),
            ("f extracts a.parquet", "1"),
            ("f keep.txt", "1"),
        ]);
        assert_eq!(
            changed(&before, &after, &filter),
            [
                "state/old.log",
                "state/system.duckdb",
                "state/system.duckdb.wal"
            ]
        );
        assert!(changed(&before, &before, &filter).is_empty());
    }

    #[test]
    fn globs_choose_what_a_local_walk_would() {
        let filter = Filter::new(&[], &["cache".into(), "*.tmp".into()]).unwrap();
        let l = listing(&[
            "d cache",
            "f cache/big.bin",
            "d cache/sub",
            "f cache/sub/x",
            "f b.txt",
            "f a.tmp",
            "d docs",
            "f docs/z.md",
            "l docs/link",
            "p fifo",
            "f a b\nc",
        ]);
        let (paths, skipped) = choose(&l, &filter);
        let shown: Vec<String> = paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        assert_eq!(
            shown,
            vec!["a b\nc", "b.txt", "docs", "docs/link", "docs/z.md"]
        );
        assert_eq!(skipped, vec!["fifo: not a regular file, directory or link"]);
    }

    #[test]
    fn include_keeps_directories_walked_but_unlisted() {
        let filter = Filter::new(&["**/*.md".into()], &[]).unwrap();
        let l = listing(&["d docs", "f docs/z.md", "f docs/y.txt"]);
        let (paths, _) = choose(&l, &filter);
        assert_eq!(paths, vec![b"docs/z.md".to_vec()]);
    }

    #[test]
    fn scripts_are_valid_sh() {
        for body in [LIST, ARCHIVE, UNPACK] {
            crate::ssh::assert_valid_sh(&script(body));
        }
    }
}
