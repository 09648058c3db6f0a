//! A tree on another host handed over as a tree (to a store that keeps native trees):
//! the host lists every entry's metadata, lifeboat applies the target's globs and builds
//! the tree as for a local one ([`tree_builder`](super::tree_builder)), asks the store
//! which files it will take unchanged from the parent backup, and fetches only the others
//! in one stream ([`remote_fetch`](super::remote_fetch)) as the store reads them. A second
//! listing, compared with the first, tells what changed while it was read. The bytes of
//! file content and of the listings that came through the connection are counted apart.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Filter;
use super::listing::hand_tree_over;
use super::remote::{LIST, Record, changed, list_again, parse, script};
use super::remote_fetch::{Counted, Fetch};
use super::tree_builder::{Stat, TreeBuilder};
use crate::error::{Error, Result};
use crate::pipe::HashReader;
use crate::progress::JobContext;
use crate::ssh::{RemoteChild, Session};
use crate::stores::backups::OpenFile;
use crate::stores::manifest::DirectoryFacts;
use crate::stores::{Tree, TreeEntryKind, TreeWriter};

/// `$1`: the root, `$2`: one file under it, to send as it is.
const ONE_FILE: &str = r#"
cd -- "$1" 2>/dev/null || say "$(id -un) may not enter $1"
exec cat -- "./$2"
"#;

/// Back up the tree at `root` on the session's host into `into`; returns what was
/// written (with the bytes fetched) and the paths that changed while it was read.
pub fn backup(
    session: &Arc<Session>,
    root: &Path,
    filter: &Filter,
    into: &mut dyn TreeWriter,
    ctx: &JobContext,
) -> Result<(DirectoryFacts, Vec<String>)> {
    let host = session.remote().host.to_string();
    let root_text = root.to_string_lossy().into_owned();
    ctx.progress.phase(&format!("listing files on {host}"));
    let listing = session.output(&script(LIST), &[&root_text], "listing the directory", ctx)?;
    let (entries, facts) = build(&listing, filter)?;
    ctx.progress
        .phase("comparing with the previous backup's tree");
    let unchanged = into.unchanged(root, &entries, ctx)?;
    // Empty files need no fetching: their content is known.
    let (empty, list): (HashSet<String>, Vec<String>) = entries
        .iter()
        .filter(|e| e.kind == TreeEntryKind::File && !unchanged.contains(&e.rel))
        .map(|e| (e.size == 0, e.rel.clone()))
        .fold(
            Default::default(),
            |(mut empty, mut list), (is_empty, rel)| {
                if is_empty {
                    empty.insert(rel);
                } else {
                    list.push(rel);
                }
                (empty, list)
            },
        );
    let fetched = Arc::new(AtomicU64::new(0));
    let alone = one_file(session, &root_text, &fetched, ctx);
    ctx.progress.phase(&format!(
        "archiving {} new and changed file(s) fetched from {host}: chunking, encrypting, storing",
        list.len()
    ));
    let fetch = Fetch::start(
        session,
        &root_text,
        list,
        alone.clone(),
        fetched.clone(),
        ctx,
    )?;
    let streamed = fetch.opener();
    let tree = Tree {
        root: root.to_path_buf(),
        entries,
        open: Arc::new(move |rel: &str| match empty.contains(rel) {
            true => Ok(Box::new(io::empty()) as Box<dyn Read + Send>),
            false => streamed(rel),
        }),
    };
    let handed = hand_tree_over(tree, facts, into, ctx, &|rel: &str| {
        // Neither read by the store nor known from the parent: hashed as fetched alone.
        let mut file =
            HashReader::new(alone(rel).map_err(|e| Error::io(format!("reading {rel}"), e))?);
        io::copy(&mut file, &mut io::sink()).map_err(|e| Error::io(format!("reading {rel}"), e))?;
        Ok(file.finish().1)
    });
    // The stream's own failure says more than the store's "cannot read" of a file.
    let streamed = fetch.finish();
    let mut handed = match (handed, streamed) {
        (Ok(h), Ok(())) => h,
        (_, Err(e)) | (Err(e), Ok(())) => return Err(e),
    };
    let after = list_again(session, &root_text, &host, ctx)?;
    let mut found = changed(&listing, &after, filter);
    found.extend(handed.vanished.iter().cloned());
    found.extend(handed.cut_short.iter().cloned());
    found.sort();
    found.dedup();
    if let Some(tree) = handed.facts.tree.as_mut() {
        tree.content_bytes_fetched = Some(fetched.load(Ordering::Relaxed));
        tree.listing_bytes_fetched = Some((listing.len() + after.len()) as u64);
    }
    Ok((handed.facts, found))
}

/// The tree (its root first, in tree order) and the manifest's facts from the host's
/// listing, with the target's globs applied as a local walk applies them.
fn build(
    listing: &[u8],
    filter: &Filter,
) -> Result<(Vec<crate::stores::TreeEntry>, DirectoryFacts)> {
    let mut records: Vec<Record> = parse(listing).collect();
    let root = records
        .iter()
        .position(|r| r.path.is_empty())
        .map(|i| records.swap_remove(i))
        .ok_or_else(|| Error::Failed("the host's listing names no root".into()))?;
    // Siblings by name, each directory's entries right after it.
    records.sort_by(|a, b| {
        a.path
            .split(|c| *c == b'/')
            .cmp(b.path.split(|c| *c == b'/'))
    });
    let mut built = TreeBuilder::new(&stat_of(&root)?);
    let mut entered: Vec<&[u8]> = Vec::new();
    let mut left_out: Option<&[u8]> = None;
    for r in &records {
        if left_out.is_some_and(|dir| under(r.path, dir)) {
            continue;
        }
        while entered.last().is_some_and(|dir| !under(r.path, dir)) {
            entered.pop();
            built.leave_dir();
        }
        let Ok(rel) = std::str::from_utf8(r.path) else {
            let shown = String::from_utf8_lossy(r.path);
            built.skip(&shown, "the name is not valid UTF-8");
            left_out = (r.kind == b'd').then_some(r.path);
            continue;
        };
        if filter.excluded(rel) {
            // A local walk never descends into an excluded directory.
            left_out = (r.kind == b'd').then_some(r.path);
            continue;
        }
        let stat = stat_of(r)?;
        match r.kind {
            b'd' => {
                built.enter_dir(rel.to_string(), &stat, filter.included(rel));
                entered.push(r.path);
            }
            _ if !filter.included(rel) => {}
            b'f' => built.file(rel.to_string(), &stat),
            b'l' => built.symlink(
                rel.to_string(),
                &stat,
                String::from_utf8_lossy(r.link).into_owned(),
            ),
            _ => built.other(rel),
        }
    }
    Ok(built.finish())
}

/// Whether `path` is under the directory `dir`.
fn under(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

fn stat_of(r: &Record) -> Result<Stat> {
    let bad = || {
        Error::Failed(format!(
            "the host's listing is not understood at {}",
            String::from_utf8_lossy(r.path)
        ))
    };
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map_err(|_| bad())
            .map(str::to_string)
    };
    let num = |b: &[u8]| text(b)?.parse::<u64>().map_err(|_| bad());
    let stamp: Vec<&[u8]> = r.stamp.split(|c| *c == b' ').collect();
    let [size, mtime, ctime, inode] = stamp[..] else {
        return Err(bad());
    };
    let [mode, uid, gid, links, device] = r.rest;
    Ok(Stat {
        mode: u32::from_str_radix(&text(mode)?, 8).map_err(|_| bad())? & 0o7777,
        uid: num(uid)? as u32,
        gid: num(gid)? as u32,
        size: num(size)?,
        mtime: time(&text(mtime)?).ok_or_else(bad)?,
        ctime: time(&text(ctime)?).ok_or_else(bad)?,
        inode: num(inode)?,
        device: num(device)?,
        links: num(links)?,
    })
}

/// `find`'s `%T@`: seconds since the epoch with their fraction (`1701234567.1234567890`)
/// as seconds and nanoseconds.
fn time(text: &str) -> Option<(i64, i64)> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let secs: i64 = whole.parse().ok()?;
    let mut nanos = 0i64;
    for (i, d) in fraction.bytes().take(9).enumerate() {
        if !d.is_ascii_digit() {
            return None;
        }
        nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
    }
    Some(match (negative, nanos) {
        (false, _) => (secs, nanos),
        (true, 0) => (-secs, 0),
        (true, _) => (-secs - 1, 1_000_000_000 - nanos),
    })
}

/// Fetch one file alone over the session (a file the stream did not carry), counting its
/// bytes with the stream's.
fn one_file(
    session: &Arc<Session>,
    root: &str,
    fetched: &Arc<AtomicU64>,
    ctx: &JobContext,
) -> OpenFile {
    let (session, root, fetched, ctx) = (
        session.clone(),
        root.to_string(),
        fetched.clone(),
        ctx.clone(),
    );
    Arc::new(move |rel: &str| {
        let child = session
            .spawn(
                &script(ONE_FILE),
                &[&root, rel],
                false,
                "fetching a file",
                &ctx,
            )
            .map_err(io::Error::other)?;
        Ok(Box::new(Alone {
            child: Some(child),
            fetched: fetched.clone(),
            ctx: ctx.clone(),
        }) as Box<dyn Read + Send>)
    })
}

/// One file's content as `cat` sends it; its exit judged at the end.
struct Alone {
    child: Option<RemoteChild>,
    fetched: Arc<AtomicU64>,
    ctx: JobContext,
}

impl Read for Alone {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(child) = self.child.as_mut() else {
            return Ok(0);
        };
        let n = Counted {
            inner: child.stdout(),
            bytes: &self.fetched,
            cancel: &self.ctx.cancel,
        }
        .read(buf)?;
        if n == 0 {
            let child = self.child.take().expect("still running");
            child.finish().map_err(io::Error::other)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(out: &mut Vec<u8>, kind: &str, path: &str, link: &str) {
        out.extend_from_slice(
            format!(
                "{kind} 5 1700000000.2500000000 1700000001.0000000000 9 4755 1000 100 1 2049 {path}"
            )
            .as_bytes(),
        );
        out.push(0);
        out.extend_from_slice(link.as_bytes());
        out.push(0);
    }

    #[test]
    fn times_keep_their_nanoseconds() {
        assert_eq!(
            time("1700000000.1234567890"),
            Some((1_700_000_000, 123_456_789))
        );
        assert_eq!(time("12"), Some((12, 0)));
        assert_eq!(time("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(time("x.1"), None);
    }

    #[test]
    fn a_listing_becomes_the_tree_a_local_walk_makes() {
        let mut l = Vec::new();
        record(&mut l, "d", "", "");
        record(&mut l, "f", "b c\nd.txt", "");
        record(&mut l, "d", "cache", "");
        record(&mut l, "f", "cache/x", "");
        record(&mut l, "d", "a", "");
        record(&mut l, "l", "a/link", "../b c\nd.txt");
        record(&mut l, "f", "a/z.tmp", "");
        record(&mut l, "p", "fifo", "");
        let filter = Filter::new(&[], &["cache".into(), "*.tmp".into()]).unwrap();
        let (entries, facts) = build(&l, &filter).unwrap();
        let rels: Vec<&str> = entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, ["", "a", "a/link", "b c\nd.txt"]);
        assert_eq!(
            entries[2].kind,
            TreeEntryKind::Symlink("../b c\nd.txt".into())
        );
        let f = &entries[3];
        assert_eq!(
            (f.mode, f.uid, f.gid, f.size, f.inode),
            (0o4755, 1000, 100, 5, 9)
        );
        assert_eq!(f.mtime, (1_700_000_000, 250_000_000));
        assert_eq!(f.ctime, (1_700_000_001, 0));
        assert_eq!((facts.files, facts.directories, facts.symlinks), (1, 1, 1));
        assert_eq!(
            facts.skipped,
            ["fifo: not a regular file, directory or link"]
        );
    }

    #[test]
    fn the_one_file_script_is_valid_sh() {
        crate::ssh::assert_valid_sh(&script(ONE_FILE));
    }
}
