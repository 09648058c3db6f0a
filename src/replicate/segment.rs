//! A segment: the transactions one shipping round found committed, as page images in
//! commit order, zstd-compressed and streamed (a transaction of any size passes through
//! one page at a time). Its name says which transactions it holds and when they were
//! seen committed, so a restore picks segments from a listing alone:
//! `<target>.wal/<generation>/<first txid>-<last txid>-<seen ms>.seg.zst`.
//!
//! Content: a header line (JSON: format, generation, first and last txid, page size,
//! the time seen), then per frame a page number, the database size in pages when the
//! frame commits a transaction (else 0) and the page; an end mark of page number 0
//! carrying the count of frames, so a cut-short object never reads as whole.
//!
//! A merged segment ([`compact`](super::compact)) holds the transactions of many, each
//! once, named `<first>-<last>-<seen ms of the last>-m.seg.zst`; its header carries
//! `marks`, when each run of its transactions was seen committed, so a restore into it
//! stops at the same transaction the parts would have given.

use std::io::{self, Read, Write};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::record::prefix;

const FORMAT: u32 = 1;
/// A merged segment: the same frames, with `marks` (a reader of format 1 refuses it).
pub const MERGED_FORMAT: u32 = 2;

/// Every transaction up to `last_txid` was seen committed by `seen_ms`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mark {
    pub last_txid: u64,
    pub seen_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentHeader {
    pub format: u32,
    pub generation: String,
    pub first_txid: u64,
    pub last_txid: u64,
    pub page_size: u32,
    /// Every transaction in it was committed at or before this time (ms since the epoch).
    pub seen_ms: i64,
    /// A merged segment's marks, oldest first (empty: one mark, `last_txid` by `seen_ms`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
}

impl SegmentHeader {
    /// When its transactions were seen committed, as marks.
    pub fn all_marks(&self) -> Vec<Mark> {
        if self.marks.is_empty() {
            vec![Mark {
                last_txid: self.last_txid,
                seen_ms: self.seen_ms,
            }]
        } else {
            self.marks.clone()
        }
    }
}

/// A segment as its key names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    pub key: String,
    pub first_txid: u64,
    pub last_txid: u64,
    pub seen_ms: i64,
    /// A merged segment (its header's marks say when each of its runs was committed).
    pub merged: bool,
}

impl SegmentName {
    /// The segments in the store under `dir` (a generation's folder, ending in `/`), in
    /// the store's order; anything else there is passed over.
    pub fn list(
        store: &dyn crate::stores::Store,
        dir: &str,
    ) -> crate::error::Result<Vec<SegmentName>> {
        Ok(store
            .list(dir)?
            .iter()
            .filter_map(|o| SegmentName::parse(&o.key))
            .collect())
    }

    /// A generation's segments in transaction order.
    pub fn of_generation(
        store: &dyn crate::stores::Store,
        target: &str,
        generation: &str,
    ) -> crate::error::Result<Vec<SegmentName>> {
        let mut names = SegmentName::list(store, &format!("{}{generation}/", prefix(target)))?;
        names.sort_by_key(|n| (n.first_txid, n.last_txid));
        Ok(names)
    }

    pub fn key_for(target: &str, generation: &str, first: u64, last: u64, seen_ms: i64) -> String {
        format!(
            "{}{generation}/{first:016x}-{last:016x}-{seen_ms:013}.seg.zst",
            prefix(target)
        )
    }

    pub fn merged_key_for(
        target: &str,
        generation: &str,
        first: u64,
        last: u64,
        seen_ms: i64,
    ) -> String {
        format!(
            "{}{generation}/{first:016x}-{last:016x}-{seen_ms:013}-m.seg.zst",
            prefix(target)
        )
    }

    /// The segment a key names, or `None` for other objects.
    pub fn parse(key: &str) -> Option<SegmentName> {
        let file = key.rsplit('/').next()?.strip_suffix(".seg.zst")?;
        let mut parts = file.split('-');
        let first = u64::from_str_radix(parts.next()?, 16).ok()?;
        let last = u64::from_str_radix(parts.next()?, 16).ok()?;
        let seen_ms = parts.next()?.parse().ok()?;
        let merged = match parts.next() {
            None => false,
            Some("m") => true,
            Some(_) => return None,
        };
        Some(SegmentName {
            key: key.to_string(),
            first_txid: first,
            last_txid: last,
            seen_ms,
            merged,
        })
    }

    pub fn seen(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.seen_ms)
            .single()
            .unwrap_or_default()
    }
}

/// Writes one segment's frames into an object writer, compressing as it goes.
pub struct SegmentWriter<W: Write> {
    encoder: zstd::stream::write::Encoder<'static, W>,
    frames: u64,
}

impl<W: Write> SegmentWriter<W> {
    pub fn new(into: W, header: &SegmentHeader) -> io::Result<SegmentWriter<W>> {
        let mut encoder = zstd::stream::write::Encoder::new(into, 3)?;
        encoder.include_checksum(true)?;
        let mut line = serde_json::to_vec(header).expect("headers serialize");
        line.push(b'\n');
        encoder.write_all(&line)?;
        Ok(SegmentWriter { encoder, frames: 0 })
    }

    pub fn frame(&mut self, page_no: u32, commit_pages: u32, page: &[u8]) -> io::Result<()> {
        self.encoder.write_all(&page_no.to_be_bytes())?;
        self.encoder.write_all(&commit_pages.to_be_bytes())?;
        self.encoder.write_all(page)?;
        self.frames += 1;
        Ok(())
    }

    /// Write the end mark and finish compressing; the object writer back, to commit.
    pub fn finish(mut self) -> io::Result<W> {
        self.encoder.write_all(&0u32.to_be_bytes())?;
        self.encoder.write_all(&self.frames.to_be_bytes())?;
        self.encoder.finish()
    }
}

/// One frame read back.
pub struct SegmentFrame<'a> {
    pub page_no: u32,
    pub commit_pages: u32,
    pub page: &'a [u8],
}

/// Reads a segment back frame by frame, checking the end mark.
pub struct SegmentReader<R: Read> {
    decoder: io::BufReader<zstd::stream::read::Decoder<'static, io::BufReader<R>>>,
    pub header: SegmentHeader,
    page: Vec<u8>,
    frames: u64,
    ended: bool,
}

fn damaged(why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("damaged segment: {why}"),
    )
}

impl<R: Read> SegmentReader<R> {
    pub fn new(from: R) -> io::Result<SegmentReader<R>> {
        let mut decoder = io::BufReader::new(zstd::stream::read::Decoder::new(from)?);
        let mut line = Vec::new();
        io::BufRead::read_until(&mut decoder, b'\n', &mut line)?;
        let header: SegmentHeader = serde_json::from_slice(&line).map_err(damaged)?;
        if header.format != FORMAT && header.format != MERGED_FORMAT {
            return Err(damaged(format!("format {} is not known", header.format)));
        }
        Ok(SegmentReader {
            page: vec![0; header.page_size as usize],
            header,
            decoder,
            frames: 0,
            ended: false,
        })
    }

    /// The next frame, `None` after the end mark (which must be there and count right).
    pub fn next_frame(&mut self) -> io::Result<Option<SegmentFrame<'_>>> {
        if self.ended {
            return Ok(None);
        }
        let mut word = [0u8; 4];
        self.decoder.read_exact(&mut word).map_err(damaged)?;
        let page_no = u32::from_be_bytes(word);
        if page_no == 0 {
            let mut count = [0u8; 8];
            self.decoder.read_exact(&mut count).map_err(damaged)?;
            if u64::from_be_bytes(count) != self.frames {
                return Err(damaged("its frame count does not match"));
            }
            // Read on to the end of the compressed frame: zstd checks the content's
            // checksum only there, so a flipped byte inside a page is found.
            let mut rest = Vec::new();
            self.decoder.read_to_end(&mut rest).map_err(damaged)?;
            if !rest.is_empty() {
                return Err(damaged("bytes follow its end mark"));
            }
            self.ended = true;
            return Ok(None);
        }
        self.decoder.read_exact(&mut word).map_err(damaged)?;
        self.decoder.read_exact(&mut self.page).map_err(damaged)?;
        self.frames += 1;
        Ok(Some(SegmentFrame {
            page_no,
            commit_pages: u32::from_be_bytes(word),
            page: &self.page,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_and_a_cut_short_segment_is_damaged() {
        let header = SegmentHeader {
            format: FORMAT,
            generation: "g".into(),
            first_txid: 3,
            last_txid: 4,
            page_size: 512,
            seen_ms: 1_700_000_000_000,
            marks: Vec::new(),
        };
        let mut w = SegmentWriter::new(Vec::new(), &header).unwrap();
        w.frame(1, 0, &[1; 512]).unwrap();
        w.frame(2, 2, &[2; 512]).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = SegmentReader::new(&bytes[..]).unwrap();
        assert_eq!(r.header, header);
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.page_no, f.commit_pages, f.page[0]), (1, 0, 1));
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.page_no, f.commit_pages, f.page[0]), (2, 2, 2));
        assert!(r.next_frame().unwrap().is_none());
        let cut = (|| {
            let mut r = SegmentReader::new(&bytes[..bytes.len() - 20])?;
            while r.next_frame()?.is_some() {}
            Ok::<_, io::Error>(())
        })();
        assert!(cut.is_err(), "a cut-short segment must not read as whole");
        // A flipped byte anywhere in the compressed bytes is found by the end.
        for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 6] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            let read = (|| {
                let mut r = SegmentReader::new(&flipped[..])?;
                while r.next_frame()?.is_some() {}
                Ok::<_, io::Error>(())
            })();
            assert!(read.is_err(), "a byte flipped at {at} must be found");
        }
        let key = SegmentName::key_for("db", "g", 3, 4, 1_700_000_000_000);
        let name = SegmentName::parse(&key).unwrap();
        assert_eq!((name.first_txid, name.last_txid), (3, 4));
        assert_eq!(name.seen_ms, 1_700_000_000_000);
        assert!(!name.merged);
        let merged = SegmentName::parse(&SegmentName::merged_key_for("db", "g", 3, 9, 5)).unwrap();
        assert_eq!(
            (merged.first_txid, merged.last_txid, merged.merged),
            (3, 9, true)
        );
    }
}
