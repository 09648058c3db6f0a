//! Streaming building blocks for the data paths: readers and writers that count, hash,
//! report progress and honour cancellation as bytes flow through, so nothing is read twice
//! and memory stays bounded.

use std::io::{self, Read, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::progress::{Cancel, Progress};

/// Copy buffer size for the data paths.
pub const CHUNK: usize = 1 << 20;

/// Counts and hashes what passes through a writer.
pub struct HashWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
    /// The inner writer, the byte count and the hex SHA-256.
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
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
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted && e.to_string() != "cancelled" => {
                continue;
            }
            Err(e) => return Err(e),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// A zstd encoder using every core, at the level lifeboat stores with.
pub fn zstd_encoder<W: Write>(inner: W) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(inner, COMPRESSION_LEVEL)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    if workers > 1 {
        enc.multithread(workers)?;
    }
    enc.include_checksum(true)?;
    Ok(enc)
}

/// zstd level: 3 is zstd's own default, a good balance of speed and size.
pub const COMPRESSION_LEVEL: i32 = 3;

/// Whether an I/O error means the disk (or the store) is full.
pub fn is_storage_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::ENOSPC)
}
