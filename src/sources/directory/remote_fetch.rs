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
        if shared.list.is_empty() {
            return Ok(Fetch {
                shared,
                reader: None,
            });
        }
        let mut child = session.spawn(
            &super::remote::script(super::remote::ARCHIVE),
            &[root],
            true,
            "fetching the new and changed files",
            ctx,
        )?;
        let mut stdin = child.take_stdin().expect("spawned with stdin");
        let names = shared.list.clone();
        // tar reads names while it writes the archive: fed from a thread of its own,
        // which ends when the list is sent or the stream is stopped.
        std::thread::spawn(move || -> io::Result<()> {
            for p in names {
                stdin.write_all(p.as_bytes())?;
                stdin.write_all(b"\0")?;
            }
            stdin.flush()
        });
        let host = session.remote().host.to_string();
        let (s, cancel) = (shared.clone(), ctx.cancel.clone());
        let reader = std::thread::spawn(move || {
            let read = s.read(&mut child, &cancel);
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
            if stopped {
                return Ok(()); // dropping the child ends tar: its exit says nothing
            }
            let (code, stderr) = child.finish_with_code()?;
            super::remote::judge_tar(&host, code, &stderr)
        });
        Ok(Fetch {
            shared,
            reader: Some(reader),
        })
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
    fn read(&self, child: &mut RemoteChild, cancel: &Cancel) -> Result<()> {
        let err = |e| Error::io("receiving the new and changed files", e);
        let counted = Counted {
            inner: child.stdout(),
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
