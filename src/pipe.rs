//! Streaming building blocks for the data paths: readers and writers that count, hash,
//! report progress and honour cancellation as bytes flow through, so nothing is read twice
//! and memory stays bounded.

use std::io::{self, Read, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::progress::{Cancel, Progress};

/// Copy buffer size for the data paths.
pub const CHUNK: usize = 1 << 20;

/// Counts and hashes what passes through a writer. The SHA-256 runs on a thread of its
/// own, fed copies of the bytes in `CHUNK`-sized buffers: the writing thread pays a memcpy
/// instead of the hash, so a backup hashes its content and its stored bytes beside reading
/// and compressing rather than in series with them. Memory: `HASH_QUEUE_DEPTH` + 4 chunks.
pub struct HashWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
    chunks: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    reuse: std::sync::mpsc::Receiver<Vec<u8>>,
    hashing: Option<std::thread::JoinHandle<String>>,
    bytes: u64,
}

/// Chunks queued for a [`HashWriter`]'s hashing thread, and their size: small enough that
/// two writers add about 3 MiB, large enough that handing one over costs nothing.
const HASH_QUEUE_DEPTH: usize = 4;
const HASH_CHUNK: usize = 256 << 10;

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        let (chunks, incoming) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_QUEUE_DEPTH);
        let (recycle, reuse) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        // Ends when the writer finishes or is dropped (its sender goes away).
        let hashing = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            for mut chunk in incoming {
                hasher.update(&chunk);
                chunk.clear();
                let _ = recycle.try_send(chunk);
            }
            hex::encode(hasher.finalize())
        });
        HashWriter {
            inner,
            pending: Vec::with_capacity(HASH_CHUNK),
            chunks: Some(chunks),
            reuse,
            hashing: Some(hashing),
            bytes: 0,
        }
    }

    /// Hand the pending bytes to the hashing thread.
    fn send_pending(&mut self) {
        let next = self
            .reuse
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(HASH_CHUNK));
        let full = std::mem::replace(&mut self.pending, next);
        if let Some(chunks) = &self.chunks {
            // The thread only stops receiving by panicking; `finish` reports that.
            let _ = chunks.send(full);
        }
    }

    /// The inner writer, the byte count and the hex SHA-256.
    pub fn finish(mut self) -> (W, u64, String) {
        if !self.pending.is_empty() {
            self.send_pending();
        }
        self.chunks = None;
        let sha = self
            .hashing
            .take()
            .expect("finished once")
            .join()
            .expect("the hashing thread does not panic");
        (self.inner, self.bytes, sha)
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let room = HASH_CHUNK - self.pending.len();
            let take = room.min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == HASH_CHUNK {
                self.send_pending();
            }
        }
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts and hashes what passes through a reader.
pub struct HashReader<R: Read> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    /// The byte count and the hex SHA-256 of everything read so far.
    pub fn finish(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Reports progress and checks for cancellation on every read.
pub struct ProgressReader<R: Read> {
    inner: R,
    progress: Arc<dyn Progress>,
    cancel: Cancel,
}

impl<R: Read> ProgressReader<R> {
    pub fn new(inner: R, progress: Arc<dyn Progress>, cancel: Cancel) -> Self {
        ProgressReader {
            inner,
            progress,
            cancel,
        }
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.cancel.check()?;
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// `io::copy` with a large buffer (fewer syscalls and hasher calls per byte).
pub fn copy(reader: &mut dyn Read, writer: &mut dyn Write) -> io::Result<u64> {
    copy_using(reader, writer, &mut vec![0u8; CHUNK])
}

/// [`copy`] through the caller's buffer.
pub fn copy_using(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    buf: &mut [u8],
) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                continue;
            }
            Err(e) => return Err(e),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// A zstd encoder using every core, at `level`.
pub fn zstd_encoder<W: Write>(
    inner: W,
    level: i32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(inner, level)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    if workers > 1 {
        enc.multithread(workers)?;
    }
    enc.include_checksum(true)?;
    Ok(enc)
}

/// zstd level of a store that sets none. Level 2 keeps zstd's fast match finder: on
/// SQLite pages its output is within 0.5 % of level 3's and on mixed files about 5 %
/// larger, for about a third less CPU; a backup then takes about the time of reading
/// the data once, and the host's CPU stays free for its real work. Decompression speed
/// does not depend on the level. Stores set `compression_level` to trade otherwise.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 2;

/// Whether an I/O error means the disk (or the store) is full.
pub fn is_storage_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::ENOSPC)
}

/// Buffers in flight between a [`ReadAhead`] thread and its reader.
const READ_AHEAD_DEPTH: usize = 4;

/// Reads `inner` on a thread of its own, a few chunks ahead of the caller, so that
/// fetching and hashing stored bytes overlap with decompressing them. Memory stays at
/// `READ_AHEAD_DEPTH` + 2 chunks.
pub struct ReadAhead {
    chunks: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    recycle: std::sync::mpsc::SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ReadAhead {
    pub fn new<R: Read + Send + 'static>(mut inner: R) -> Self {
        let (send, chunks) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(READ_AHEAD_DEPTH);
        let (recycle, reuse) = std::sync::mpsc::sync_channel::<Vec<u8>>(READ_AHEAD_DEPTH + 2);
        // The thread ends by itself once the stream ends or this reader is dropped.
        std::thread::spawn(move || {
            loop {
                let mut buf = reuse.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
                buf.resize(CHUNK, 0);
                let read = read_full(&mut inner, &mut buf);
                let end = !matches!(read, Ok(n) if n > 0);
                let chunk = read.map(|n| {
                    buf.truncate(n);
                    buf
                });
                // The reader went away (it failed or was dropped): stop reading.
                if send.send(chunk).is_err() || end {
                    return;
                }
            }
        });
        ReadAhead {
            chunks,
            recycle,
            current: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            let next = self.chunks.recv().ok();
            let chunk = match next {
                Some(chunk) => chunk?,
                None => return Err(io::Error::other("the reading thread stopped")),
            };
            let used = std::mem::replace(&mut self.current, chunk);
            let _ = self.recycle.try_send(used);
            self.pos = 0;
            if self.current.is_empty() {
                self.done = true;
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Fill `buf` as far as the reader allows; fewer bytes only at the end of the stream.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Write-back is started every this many bytes, and waited for one window later.
const WRITEBACK_WINDOW: u64 = 16 << 20;

/// A new file written on a thread of its own whose pages go to disk while it is still
/// being written, so the final `fsync` has little left to do and dirty memory stays
/// bounded (Linux `sync_file_range`; elsewhere only the final `fsync` counts).
pub struct DurableFile {
    chunks: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl DurableFile {
    pub fn new(file: std::fs::File) -> Self {
        let (send, chunks) = std::sync::mpsc::sync_channel::<Vec<u8>>(READ_AHEAD_DEPTH);
        let thread = std::thread::spawn(move || -> io::Result<()> {
            let mut file = file;
            let mut written = 0u64;
            let mut started = 0u64; // write-back requested up to here
            for chunk in chunks {
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
                if written - started >= WRITEBACK_WINDOW {
                    start_writeback(
                        &file,
                        started,
                        written - started,
                        started >= WRITEBACK_WINDOW,
                    );
                    started = written;
                }
            }
            file.sync_all()
        });
        DurableFile {
            chunks: Some(send),
            buf: Vec::with_capacity(CHUNK),
            thread: Some(thread),
        }
    }

    /// Write what is buffered, wait for the thread, and `fsync` the file.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush_chunk()?;
        self.chunks = None;
        self.join()
    }

    fn join(&mut self) -> io::Result<()> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Ok(()),
        }
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let sent = self.chunks.as_ref().map(|c| c.send(chunk));
        if matches!(sent, Some(Ok(()))) {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.chunks = None;
        match self.join() {
            Err(e) => Err(e),
            Ok(()) => Err(io::Error::other("the writing thread stopped")),
        }
    }
}

impl Write for DurableFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush_chunk()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flush_chunk()
    }
}

impl Drop for DurableFile {
    fn drop(&mut self) {
        self.chunks = None;
        let _ = self.join();
    }
}

/// Ask the kernel to write `len` bytes at `offset` to disk now, first waiting for the
/// previous window (`wait_previous`) so that at most two windows are ever dirty.
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64, wait_previous: bool) {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // Errors here only cost speed: the final fsync reports any real write failure.
    unsafe {
        if wait_previous {
            let previous = offset.saturating_sub(WRITEBACK_WINDOW);
            libc::sync_file_range(
                fd,
                previous as libc::off64_t,
                WRITEBACK_WINDOW as libc::off64_t,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            );
        }
        libc::sync_file_range(
            fd,
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &std::fs::File, _: u64, _: u64, _: bool) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `max` bytes per write, as pipes and sockets may.
    struct Trickle {
        got: Vec<u8>,
        max: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn hash_writer_hashes_exactly_what_the_inner_writer_took() {
        // 2.5 chunks in writes of odd sizes, through an inner writer that takes short writes.
        let data: Vec<u8> = (0..CHUNK * 5 / 2).map(|i| (i * 7 % 253) as u8).collect();
        let mut w = HashWriter::new(Trickle {
            got: Vec::new(),
            max: 300_001,
        });
        for piece in data.chunks(777_777) {
            w.write_all(piece).unwrap();
        }
        let (inner, bytes, sha) = w.finish();
        assert_eq!(inner.got, data);
        assert_eq!(bytes, data.len() as u64);
        assert_eq!(sha, hex::encode(Sha256::digest(&data)));
    }

    #[test]
    fn hash_writer_of_nothing_is_the_empty_hash() {
        let (_, bytes, sha) = HashWriter::new(Vec::new()).finish();
        assert_eq!(bytes, 0);
        assert_eq!(
            sha,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
