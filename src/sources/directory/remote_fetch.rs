//! The new and changed files of a tree on another host, fetched in one stream: the host's
//! tar archives exactly the list it is given (NUL-separated on its stdin), and each file
//! is handed to whoever opens it (the store's archiver, on its own threads) as it passes,
//! never a connection per file. The archiver opens files in about the order of the list;
//! a file that passes before it is opened (two files opened at once, or one the store
//! turned out not to need) is kept in an unnamed temporary file until it is. A file that
//! is not in the list at all is fetched alone over the same connection, and a file the
//! stream skipped (gone before tar reached it) opens as not found. Every byte of the
//! stream is counted: it is what the file content cost the connection.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tar::EntryType;

use crate::error::{Error, Result};
use crate::progress::{Cancel, JobContext};
use crate::ssh::{RemoteChild, Session};
use crate::stores::backups::OpenFile;

/// A piece of a file on its way to its reader; an error ends the file.
type Piece = io::Result<Vec<u8>>;

const PIECE: usize = 256 << 10;
const PIECES_WAITING: usize = 4;

/// The stream of the listed files, as it is read.
pub(super) struct Fetch {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<Result<()>>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a file is asked for, passes, or the fetch ends.
    moved: Condvar,
    /// Where each listed file is in the list.
    order: HashMap<String, usize>,
    list: Vec<String>,
    /// The bytes that came through the connection for file content.
    bytes: Arc<AtomicU64>,
    /// A file fetched alone.
    alone: OpenFile,
}

#[derive(Default)]
struct State {
    /// How far down the list the stream is: the files before have passed.
    next: usize,
    /// Files asked for that have not passed yet, with where their pieces go.
    waiting: HashMap<String, SyncSender<Piece>>,
    /// Files that passed before they were asked for.
    kept: HashMap<String, File>,
    /// The file being kept right now.
    keeping: Option<String>,
    /// Listed files the stream did not carry (gone before tar reached them).
    missing: HashSet<String>,
    /// The store needs nothing more: the stream may stop.
    done: bool,
    /// Why the stream broke.
    broken: Option<String>,
}

impl Fetch {
    /// Start fetching `list` (relative paths under `root` on the session's host, in the
    /// order they will be asked for); `alone` fetches a file that is not in it. Bytes
    /// received are added to `bytes`.
    pub(super) fn start(
        session: &Session,
        root: &str,
        list: Vec<String>,
        alone: OpenFile,
        bytes: Arc<AtomicU64>,
        ctx: &JobContext,
    ) -> Result<Fetch> {
        if list.is_empty() {
            return Ok(Fetch::over(None, list, alone, bytes, ctx.cancel.clone()));
        }
        let mut child = session.spawn(
            &super::remote::script(super::remote::ARCHIVE),
            &[root],
            true,
            "fetching the new and changed files",
            ctx,
        )?;
        let mut stdin = child.take_stdin().expect("spawned with stdin");
        let names = list.clone();
        // tar reads names while it writes the archive: fed from a thread of its own,
        // which ends when the list is sent or the stream is stopped.
        std::thread::spawn(move || -> io::Result<()> {
            for p in names {
                stdin.write_all(p.as_bytes())?;
                stdin.write_all(b"\0")?;
            }
            stdin.flush()
        });
        let tar = TarOnHost {
            child,
            host: session.remote().host.to_string(),
        };
        let stream: Box<dyn Stream> = Box::new(tar);
        Ok(Fetch::over(
            Some(stream),
            list,
            alone,
            bytes,
            ctx.cancel.clone(),
        ))
    }

    /// Hand out the files of `list` as `stream` carries them (nothing without one).
    fn over(
        stream: Option<Box<dyn Stream>>,
        list: Vec<String>,
        alone: OpenFile,
        bytes: Arc<AtomicU64>,
        cancel: Cancel,
    ) -> Fetch {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            moved: Condvar::new(),
            order: list
                .iter()
                .enumerate()
                .map(|(i, p)| (p.clone(), i))
                .collect(),
            list,
            bytes,
            alone,
        });
        let Some(mut stream) = stream else {
            shared
                .state
                .lock()
                .unwrap()
                .missing
                .extend(shared.list.clone());
            return Fetch {
                shared,
                reader: None,
            };
        };
        let s = shared.clone();
        let reader = std::thread::spawn(move || {
            let read = s.read(stream.reader(), &cancel);
            let mut state = s.state.lock().unwrap();
            let stopped = state.done;
            let why = match &read {
                Ok(()) => "it was not in the stream".to_string(),
                Err(e) => e.to_string(),
            };
            if read.is_err() {
                state.broken = Some(why.clone());
            }
            // Whoever still waits learns the file will not come.
            for (_, to) in state.waiting.drain() {
                let _ = to.send(Err(if read.is_ok() {
                    io::Error::new(io::ErrorKind::NotFound, why.clone())
                } else {
                    io::Error::other(why.clone())
                }));
            }
            let next = state.next;
            state.next = s.list.len();
            let rest: Vec<String> = s.list[next..].to_vec();
            state.missing.extend(rest);
            s.moved.notify_all();
            drop(state);
            read?;
            stream.end(stopped)
        });
        Fetch {
            shared,
            reader: Some(reader),
        }
    }

    /// How the store opens a file of the tree.
    pub(super) fn opener(&self) -> OpenFile {
        let shared = self.shared.clone();
        Arc::new(move |rel: &str| shared.open(rel))
    }

    /// The store needs nothing more: stop the stream; how it went.
    pub(super) fn finish(mut self) -> Result<()> {
        {
            let mut state = self.shared.state.lock().unwrap();
            state.done = true;
            self.shared.moved.notify_all();
        }
        match self.reader.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(Error::Failed("the fetch stopped unexpectedly".into()))),
            None => Ok(()),
        }
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        if let Some(h) = self.reader.take() {
            self.shared.state.lock().unwrap().done = true;
            self.shared.moved.notify_all();
            let _ = h.join();
        }
    }
}

impl Shared {
    fn open(&self, rel: &str) -> io::Result<Box<dyn Read + Send>> {
        let mut state = self.state.lock().unwrap();
        while state.keeping.as_deref() == Some(rel) {
            state = self.moved.wait(state).unwrap();
        }
        if let Some(mut kept) = state.kept.remove(rel) {
            kept.rewind()?;
            return Ok(Box::new(kept));
        }
        if state.missing.remove(rel) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{rel} was gone when it was fetched"),
            ));
        }
        if let Some(why) = &state.broken {
            return Err(io::Error::other(why.clone()));
        }
        match self.order.get(rel) {
            Some(&i) if i >= state.next => {}
            // Not in the list (or asked for twice): fetched alone.
            _ => {
                drop(state);
                tracing::info!(
                    file = rel,
                    "a file the stream did not carry is fetched alone"
                );
                return (self.alone)(rel);
            }
        }
        let (to, pieces) = sync_channel(PIECES_WAITING);
        state.waiting.insert(rel.to_string(), to);
        self.moved.notify_all();
        drop(state);
        // Wait for the file to begin, so one that is gone opens as not found.
        match pieces.recv() {
            Ok(Ok(first)) => Ok(Box::new(Pieces {
                pieces,
                piece: first,
                at: 0,
            })),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(Box::new(io::empty())), // it passed empty
        }
    }

    /// Read the stream to its end (or until the store needs nothing more).
    fn read(&self, stream: &mut dyn Read, cancel: &Cancel) -> Result<()> {
        let err = |e| Error::io("receiving the new and changed files", e);
        let counted = Counted {
            inner: stream,
            bytes: &self.bytes,
            cancel,
        };
        let mut archive = tar::Archive::new(counted);
        for entry in archive.entries().map_err(err)? {
            let mut entry = entry.map_err(err)?;
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let regular = matches!(
                entry.header().entry_type(),
                EntryType::Regular | EntryType::Continuous
            );
            let Some(&i) = self.order.get(&path).filter(|_| regular) else {
                // Not a file of the list (it became something else meanwhile).
                continue;
            };
            let mut state = self.state.lock().unwrap();
            for skipped in state.next..i {
                let rel = &self.list[skipped];
                match state.waiting.remove(rel) {
                    Some(to) => {
                        let gone = format!("{rel} was gone when it was fetched");
                        let _ = to.send(Err(io::Error::new(io::ErrorKind::NotFound, gone)));
                    }
                    None => {
                        state.missing.insert(rel.clone());
                    }
                }
            }
            // `next` stays at this file until it is handed on or being kept.
            state.next = state.next.max(i);
            loop {
                if state.done {
                    return Ok(());
                }
                if let Some(to) = state.waiting.remove(&path) {
                    state.next = i + 1;
                    drop(state);
                    send(&mut entry, &to).map_err(err)?;
                    break;
                }
                if !state.waiting.is_empty() {
                    // A later file is asked for first: keep this one until it is.
                    state.next = i + 1;
                    state.keeping = Some(path.clone());
                    drop(state);
                    let kept = keep(&mut entry);
                    state = self.state.lock().unwrap();
                    state.keeping = None;
                    self.moved.notify_all();
                    state.kept.insert(path, kept?);
                    break;
                }
                state = self.moved.wait(state).unwrap();
            }
        }
        Ok(())
    }
}

/// Where the archive comes from.
trait Stream: Send {
    fn reader(&mut self) -> &mut dyn Read;
    /// The archive was read to its end, or (`stopped`) no further than the store needed.
    fn end(self: Box<Self>, stopped: bool) -> Result<()>;
}

/// The host's tar, over the session.
struct TarOnHost {
    child: RemoteChild,
    host: String,
}

impl Stream for TarOnHost {
    fn reader(&mut self) -> &mut dyn Read {
        self.child.stdout()
    }

    fn end(self: Box<Self>, stopped: bool) -> Result<()> {
        if stopped {
            return Ok(()); // dropping the child ends tar: its exit says nothing
        }
        let (code, stderr) = self.child.finish_with_code()?;
        super::remote::judge_tar(&self.host, code, &stderr)
    }
}

/// A file's content in an unnamed temporary file.
fn keep(entry: &mut impl Read) -> Result<File> {
    let mut kept =
        tempfile::tempfile().map_err(|e| Error::io("keeping a fetched file (in TMPDIR)", e))?;
    io::copy(entry, &mut kept).map_err(|e| Error::io("receiving the new and changed files", e))?;
    Ok(kept)
}

/// Send a file's content in pieces; a reader that stopped early (the file grew after it
/// was listed) is fine: the rest is skipped with the entry.
fn send(entry: &mut impl Read, to: &SyncSender<Piece>) -> io::Result<()> {
    loop {
        let mut piece = vec![0u8; PIECE];
        let n = match entry.read(&mut piece) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) => {
                let _ = to.send(Err(io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        piece.truncate(n);
        if to.send(Ok(piece)).is_err() {
            return Ok(());
        }
    }
}

/// A file as its pieces arrive.
struct Pieces {
    pieces: Receiver<Piece>,
    piece: Vec<u8>,
    at: usize,
}

impl Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.piece.len() {
            match self.pieces.recv() {
                Ok(piece) => {
                    self.piece = piece?;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.piece.len() - self.at);
        out[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The connection's bytes, counted; stops when the job is cancelled.
pub(super) struct Counted<'a, R: Read + ?Sized> {
    pub inner: &'a mut R,
    pub bytes: &'a AtomicU64,
    pub cancel: &'a Cancel,
}

impl<R: Read + ?Sized> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.cancel.check()?;
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct InMemory(io::Cursor<Vec<u8>>);

    impl Stream for InMemory {
        fn reader(&mut self) -> &mut dyn Read {
            &mut self.0
        }
        fn end(self: Box<Self>, _: bool) -> Result<()> {
            Ok(())
        }
    }

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn read_all(mut r: Box<dyn Read + Send>) -> Vec<u8> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    /// Files opened out of order, one the stream skipped, one not listed, one asked for
    /// while an earlier one is kept: each gets its own bytes, in any order of asking.
    #[test]
    fn every_file_reaches_whoever_asks_whatever_the_order() {
        let big = vec![5u8; 3 * PIECE + 17];
        let stream = archive(&[("a", b"first"), ("b b\nb", &big), ("d", b"fourth")]);
        let size = stream.len() as u64;
        let list: Vec<String> = ["a", "b b\nb", "c", "d"].map(String::from).to_vec();
        let alone: OpenFile = Arc::new(|rel: &str| {
            Ok(
                Box::new(io::Cursor::new(format!("alone {rel}").into_bytes()))
                    as Box<dyn Read + Send>,
            )
        });
        let bytes = Arc::new(AtomicU64::new(0));
        let fetch = Fetch::over(
            Some(Box::new(InMemory(io::Cursor::new(stream)))),
            list,
            alone,
            bytes.clone(),
            Cancel::new(),
        );
        let open = fetch.opener();
        // The second file first: the first passes and is kept.
        assert_eq!(read_all(open("b b\nb").unwrap()), big);
        assert_eq!(read_all(open("a").unwrap()), b"first");
        let gone = open("c").map(|_| ()).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        assert_eq!(read_all(open("x").unwrap()), b"alone x");
        // Asked for from another thread while this one waits for nothing.
        let o = open.clone();
        let d = std::thread::spawn(move || read_all(o("d").unwrap()));
        assert_eq!(d.join().unwrap(), b"fourth");
        fetch.finish().unwrap();
        // Every file's bytes were counted (the archive's end blocks may not be read).
        let counted = bytes.load(Ordering::Relaxed);
        assert!(
            counted + 1024 >= size && counted <= size,
            "{counted} of {size}"
        );
    }

    /// The store needing nothing more stops the stream, even with files not asked for.
    #[test]
    fn files_never_asked_for_do_not_hold_the_end() {
        let stream = archive(&[("a", b"1"), ("b", b"2")]);
        let fetch = Fetch::over(
            Some(Box::new(InMemory(io::Cursor::new(stream)))),
            vec!["a".into(), "b".into()],
            Arc::new(|_: &str| Err(io::Error::other("not expected"))),
            Arc::new(AtomicU64::new(0)),
            Cancel::new(),
        );
        fetch.finish().unwrap();
    }
}
