//! Reading a SQLite write-ahead log as SQLite itself trusts it: the header's magic and
//! checksum, then frame after frame while each carries the header's salts and continues
//! the cumulative checksum, and only up to the last commit frame (frames after it belong
//! to a transaction still being written). Nothing here holds more than one page.
//!
//! The format (sqlite.org/fileformat2.html#walformat): a 32-byte header (magic, version,
//! page size, checkpoint sequence, two salts, checksum of the first 24 bytes), then frames
//! of a 24-byte header (page number, database size in pages for a commit frame else 0,
//! the salts, the cumulative checksum) and one page.

mod frames;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

pub use frames::{Frame, Frames, Scan, scan};

pub const HEADER_BYTES: u64 = 32;
pub const FRAME_HEADER_BYTES: u64 = 24;
/// Magic numbers: the low bit says whether checksums read words big-endian.
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;

/// A WAL's header: what identifies this incarnation of the log (the salts change every
/// time SQLite restarts the log from its beginning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalHeader {
    pub big_endian: bool,
    pub page_size: u32,
    pub checkpoint_seq: u32,
    pub salt1: u32,
    pub salt2: u32,
    /// The header's checksum: where the frames' cumulative checksum starts.
    pub checksum: [u32; 2],
}

impl WalHeader {
    /// The same incarnation of the log (a restart changes the salts).
    pub fn same_log(&self, other: &WalHeader) -> bool {
        self.salt1 == other.salt1
            && self.salt2 == other.salt2
            && self.page_size == other.page_size
            && self.big_endian == other.big_endian
    }

    /// How many whole frames a log file of `bytes` holds.
    pub fn frames_in(&self, bytes: u64) -> u64 {
        bytes.saturating_sub(HEADER_BYTES) / (FRAME_HEADER_BYTES + u64::from(self.page_size))
    }

    /// Where frame `index` (from 0) starts in the file.
    pub fn frame_offset(&self, index: u64) -> u64 {
        HEADER_BYTES + index * (FRAME_HEADER_BYTES + u64::from(self.page_size))
    }
}

/// The header of the WAL file, or `None` when there is none yet (an empty or missing
/// file, a log SQLite truncated) or it does not check out (being rewritten this moment).
pub fn read_header(file: &File) -> io::Result<Option<WalHeader>> {
    let mut buf = [0u8; HEADER_BYTES as usize];
    match file.read_exact_at(&mut buf, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok(parse_header(&buf))
}

fn parse_header(buf: &[u8; HEADER_BYTES as usize]) -> Option<WalHeader> {
    let word = |i: usize| u32::from_be_bytes(buf[i..i + 4].try_into().expect("4 bytes"));
    let big_endian = match word(0) {
        MAGIC_LE => false,
        MAGIC_BE => true,
        _ => return None,
    };
    let page_size = word(8);
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return None;
    }
    let checksum = [word(24), word(28)];
    if checksum_of(big_endian, &buf[..24], [0, 0]) != checksum {
        return None;
    }
    Some(WalHeader {
        big_endian,
        page_size,
        checkpoint_seq: word(12),
        salt1: word(16),
        salt2: word(20),
        checksum,
    })
}

/// SQLite's WAL checksum: over 32-bit words taken two at a time, continuing `seed`.
pub fn checksum_of(big_endian: bool, data: &[u8], seed: [u32; 2]) -> [u32; 2] {
    let [mut s0, mut s1] = seed;
    for pair in data.chunks_exact(8) {
        let (a, b) = if big_endian {
            (
                u32::from_be_bytes(pair[..4].try_into().expect("4 bytes")),
                u32::from_be_bytes(pair[4..].try_into().expect("4 bytes")),
            )
        } else {
            (
                u32::from_le_bytes(pair[..4].try_into().expect("4 bytes")),
                u32::from_le_bytes(pair[4..].try_into().expect("4 bytes")),
            )
        };
        s0 = s0.wrapping_add(a).wrapping_add(s1);
        s1 = s1.wrapping_add(b).wrapping_add(s0);
    }
    [s0, s1]
}

/// A place in one incarnation of the log: the frames before it, and the cumulative
/// checksum after the last of them (the header's when none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub header: WalHeader,
    pub frames: u64,
    pub checksum: [u32; 2],
}

impl Cursor {
    /// The start of a log: no frame read yet.
    pub fn start(header: WalHeader) -> Cursor {
        Cursor {
            header,
            frames: 0,
            checksum: header.checksum,
        }
    }
}

/// How many frames of the log SQLite's shared index (`-shm`) counts as committed, when
/// its header is settled (both copies equal) and describes the log `header` is of; `None`
/// otherwise. `shm` must be a descriptor kept open for as long as the process holds
/// connections: SQLite's WAL locks are POSIX locks on that file, which any close drops.
pub fn committed_in_index(shm: &File, header: &WalHeader) -> Option<u64> {
    let mut buf = [0u8; 96];
    shm.read_exact_at(&mut buf, 0).ok()?;
    let (first, second) = buf.split_at(48);
    if first != second || first[12] == 0 {
        return None;
    }
    let salts_match =
        first[32..36] == header.salt1.to_be_bytes() && first[36..40] == header.salt2.to_be_bytes();
    salts_match.then(|| {
        u64::from(u32::from_ne_bytes(
            first[16..20].try_into().expect("4 bytes"),
        ))
    })
}

/// The path of a database's WAL.
pub fn wal_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    std::path::PathBuf::from(p)
}

#[cfg(test)]
mod tests;
