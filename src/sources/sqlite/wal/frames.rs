//! Frames of one WAL incarnation from a [`Cursor`]: a scan that finds how far the log is
//! committed and valid, then the frames up to there, one page at a time.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::{Cursor, FRAME_HEADER_BYTES, checksum_of};

/// How far the log is committed beyond a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// The cursor after the last valid commit frame (the given one when there is none).
    pub committed: Cursor,
    /// Transactions committed between the two.
    pub transactions: u64,
    /// The database size in pages after the last of them.
    pub db_pages: u32,
}

/// Find the last commit frame after `from`, before frame `limit`, whose frames all carry
/// the header's salts and continue the checksum. Reads every frame once, keeps none.
pub fn scan(file: &File, from: Cursor, limit: u64) -> io::Result<Scan> {
    let mut frames = Frames::new(file, from, limit)?;
    let mut found = Scan {
        committed: from,
        transactions: 0,
        db_pages: 0,
    };
    while let Some(frame) = frames.next_frame()? {
        let commit_pages = frame.commit_pages;
        if commit_pages > 0 {
            found.committed = frames.cursor();
            found.transactions += 1;
            found.db_pages = commit_pages;
        }
    }
    Ok(found)
}

/// One frame: its page number, the database size when it commits a transaction (else 0),
/// and its page (borrowed until the next frame is read).
pub struct Frame<'a> {
    pub page_no: u32,
    pub commit_pages: u32,
    pub page: &'a [u8],
}

/// Valid frames from a cursor up to a limit (a frame count), one at a time.
pub struct Frames {
    reader: BufReader<File>,
    cursor: Cursor,
    limit: u64,
    head: [u8; FRAME_HEADER_BYTES as usize],
    page: Vec<u8>,
}

impl Frames {
    /// Frames from `from` up to (not including) frame `limit`.
    pub fn new(file: &File, from: Cursor, limit: u64) -> io::Result<Frames> {
        let mut reader = BufReader::with_capacity(1 << 20, file.try_clone()?);
        reader.seek(SeekFrom::Start(from.header.frame_offset(from.frames)))?;
        Ok(Frames {
            reader,
            cursor: from,
            limit,
            head: [0; FRAME_HEADER_BYTES as usize],
            page: vec![0; from.header.page_size as usize],
        })
    }

    /// Where the frames read so far end.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// The next valid frame, or `None` at the limit, the end of the file, or the first
    /// frame that is not part of this log (other salts, a checksum that does not follow).
    pub fn next_frame(&mut self) -> io::Result<Option<Frame<'_>>> {
        if self.cursor.frames >= self.limit {
            return Ok(None);
        }
        if !read_full(&mut self.reader, &mut self.head)?
            || !read_full(&mut self.reader, &mut self.page)?
        {
            return Ok(None);
        }
        let h = &self.cursor.header;
        let word = |i: usize| u32::from_be_bytes(self.head[i..i + 4].try_into().expect("4 bytes"));
        if word(8) != h.salt1 || word(12) != h.salt2 {
            return Ok(None);
        }
        let sum = checksum_of(h.big_endian, &self.head[..8], self.cursor.checksum);
        let sum = checksum_of(h.big_endian, &self.page, sum);
        if sum != [word(16), word(20)] {
            return Ok(None);
        }
        let (page_no, commit_pages) = (word(0), word(4));
        if page_no == 0 {
            return Ok(None);
        }
        self.cursor.frames += 1;
        self.cursor.checksum = sum;
        Ok(Some(Frame {
            page_no,
            commit_pages,
            page: &self.page,
        }))
    }
}

/// Fill `buf` whole: false at the end of the file (a frame still being written).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
