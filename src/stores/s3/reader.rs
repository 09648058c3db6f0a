//! Reading an object: ranged GETs a few ranges ahead of the caller, held to the object's
//! ETag, with bodies that break off asked for again from where they stopped.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::super::StoreError;
use super::shared::Shared;

/// A download asks for ranges of this size first, with as many in flight as fit in
/// `READ_AHEAD_BYTES` (4): several connections, each of which S3 serves at a fraction of
/// what a restore can take in.
const FIRST_RANGE: u64 = 16 << 20;
/// When a range waited longer for its first byte than it then took to arrive, requests
/// cost the server more than bytes do (S3 answers in tens of milliseconds and a range
/// takes hundreds; a server that reads or assembles the whole object for every range
/// takes longer the bigger the object): later ranges double, up to this size, so the
/// object is read in fewer of them within the same memory.
const MAX_RANGE: u64 = 32 << 20;
/// Bytes asked for and not yet read by the caller: the memory bound of a reader.
const READ_AHEAD_BYTES: u64 = 64 << 20;
// However big ranges grow, two of them fit in the read-ahead, so one is always on its way
// while the caller reads the other.
const _: () = assert!(FIRST_RANGE <= MAX_RANGE && 2 * MAX_RANGE <= READ_AHEAD_BYTES);
/// The body of a ranged GET can break after its headers (outside the SDK's retries).
const BODY_ATTEMPTS: u32 = 3;

/// Reads an object by ranged GETs, a few ranges ahead of the caller. Each range streams
/// into memory as the server sends it, so the caller starts on a range at its first bytes.
pub(super) struct S3Reader {
    shared: Arc<Shared>,
    handle: Handle,
    key: String,
    etag: Option<String>,
    size: u64,
    /// Where the next range to ask for starts.
    next: u64,
    /// Bytes taken off the ranges so far.
    taken: u64,
    /// The size of the next range to ask for.
    range_size: u64,
    /// Ranges asked for and not yet read to their end, in order.
    ahead: VecDeque<Range>,
    current: Bytes,
    /// An error met after some bytes of a read; returned by the next one.
    failed: Option<io::Error>,
}

/// One ranged GET: its bytes arrive on `rx` as the server sends them.
struct Range {
    start: u64,
    len: u64,
    got: u64,
    rx: std_mpsc::Receiver<Piece>,
    task: JoinHandle<()>,
}

enum Piece {
    Bytes(Bytes),
    /// The whole range arrived: how long its first byte took after the request, and the
    /// rest after that.
    Done {
        first_byte: Duration,
        transfer: Duration,
    },
    Failed(StoreError),
}

impl S3Reader {
    /// A reader of `key` (of `size` bytes, as `etag` when known) that asks for nothing
    /// until it is first read.
    pub(super) fn new(
        shared: Arc<Shared>,
        handle: Handle,
        key: &str,
        etag: Option<String>,
        size: u64,
    ) -> S3Reader {
        S3Reader {
            shared,
            handle,
            key: key.into(),
            etag,
            size,
            next: 0,
            taken: 0,
            range_size: FIRST_RANGE,
            ahead: VecDeque::new(),
            current: Bytes::new(),
            failed: None,
        }
    }

    /// Ask for more ranges while they fit in `READ_AHEAD_BYTES` (at least one).
    fn fill(&mut self) {
        while self.next < self.size {
            let len = self.range_size.min(self.size - self.next);
            let unread = self.next - self.taken;
            if !self.ahead.is_empty() && unread + len > READ_AHEAD_BYTES {
                break;
            }
            let start = self.next;
            self.next += len;
            let (tx, rx) = std_mpsc::channel();
            let (shared, key, etag) = (self.shared.clone(), self.key.clone(), self.etag.clone());
            let task = self.handle.spawn(async move {
                let last = stream_range(&shared, &key, etag, start, start + len, &tx).await;
                let _ = tx.send(last);
            });
            self.ahead.push_back(Range {
                start,
                len,
                got: 0,
                rx,
                task,
            });
        }
    }

    /// The next piece of the object, waiting for it only when `wait` is set; `None` at the
    /// end (or, without `wait`, when nothing has arrived yet).
    fn next_piece(&mut self, wait: bool) -> io::Result<Option<Bytes>> {
        loop {
            self.fill();
            let Some(range) = self.ahead.front_mut() else {
                return Ok(None);
            };
            let piece = match range.rx.try_recv() {
                Ok(piece) => Some(piece),
                Err(std_mpsc::TryRecvError::Empty) if !wait => return Ok(None),
                Err(std_mpsc::TryRecvError::Empty) => range.rx.recv().ok(),
                Err(std_mpsc::TryRecvError::Disconnected) => None,
            };
            match piece {
                Some(Piece::Bytes(bytes)) => {
                    range.got += bytes.len() as u64;
                    self.taken += bytes.len() as u64;
                    return Ok(Some(bytes));
                }
                Some(Piece::Done {
                    first_byte,
                    transfer,
                }) if range.got == range.len => {
                    self.range_size = next_range_size(self.range_size, first_byte, transfer);
                    self.ahead.pop_front();
                }
                Some(Piece::Failed(e)) => return Err(io::Error::other(e)),
                // Ended without all its bytes and without saying why (the task panicked).
                Some(Piece::Done { .. }) | None => {
                    let e = short_read(&self.shared, &self.key, range.start, range.len, range.got);
                    return Err(io::Error::other(e));
                }
            }
        }
    }
}

/// The size of the ranges to ask for after one that waited `first_byte` for its first
/// byte and took `transfer` for the rest: twice as big (up to `MAX_RANGE`) when the wait
/// was the longer of the two.
fn next_range_size(size: u64, first_byte: Duration, transfer: Duration) -> u64 {
    if first_byte > transfer {
        (size * 2).min(MAX_RANGE).max(size)
    } else {
        size
    }
}

fn short_read(shared: &Shared, key: &str, start: u64, len: u64, got: u64) -> StoreError {
    StoreError::Other(format!(
        "{}: reading {}: asked for {len} bytes at {start}, got {got}",
        shared.describe,
        shared.url(key)
    ))
}

/// GET bytes `start..end` of the object and pass them on as they arrive. A body that
/// breaks off after its headers (outside the SDK's retries) is asked for again from where
/// it stopped, with the same ETag, so nothing is missed or passed on twice.
async fn stream_range(
    shared: &Shared,
    key: &str,
    etag: Option<String>,
    start: u64,
    end: u64,
    tx: &std_mpsc::Sender<Piece>,
) -> Piece {
    let mut pos = start;
    let mut attempt = 0;
    'attempts: loop {
        attempt += 1;
        let asked = Instant::now();
        let sent = shared
            .client
            .get_object()
            .bucket(&shared.bucket)
            .key(shared.full_key(key))
            .range(format!("bytes={pos}-{}", end - 1))
            // The object must not change under a reader that is half way through it.
            .set_if_match(etag.clone())
            .send()
            .await;
        let mut body = match sent {
            Ok(out) => out.body,
            Err(e) => return Piece::Failed(shared.error("reading", key, e)),
        };
        let answered = Instant::now();
        loop {
            match body.next().await {
                Some(Ok(bytes)) if pos + bytes.len() as u64 <= end => {
                    pos += bytes.len() as u64;
                    if tx.send(Piece::Bytes(bytes)).is_err() {
                        // The reader is gone; nobody reads what this returns.
                        return Piece::Failed(StoreError::Other("reader dropped".into()));
                    }
                }
                Some(Ok(bytes)) => {
                    let got = pos + bytes.len() as u64 - start;
                    return Piece::Failed(short_read(shared, key, start, end - start, got));
                }
                None if pos == end => {
                    return Piece::Done {
                        first_byte: answered - asked,
                        transfer: answered.elapsed(),
                    };
                }
                None => {
                    return Piece::Failed(short_read(shared, key, start, end - start, pos - start));
                }
                Some(Err(e)) if attempt < BODY_ATTEMPTS => {
                    tracing::warn!(
                        "{}: reading {} broke off ({e}); retrying",
                        shared.describe,
                        shared.url(key)
                    );
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    continue 'attempts;
                }
                Some(Err(e)) => {
                    return Piece::Failed(StoreError::Other(format!(
                        "{}: reading {}: the download broke off: {e}",
                        shared.describe,
                        shared.url(key)
                    )));
                }
            }
        }
    }
}

impl Read for S3Reader {
    /// Fills `buf` from what has arrived, waiting only for its first bytes.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut n = 0;
        while n < buf.len() {
            if !self.current.has_remaining() {
                match self.next_piece(n == 0) {
                    Ok(Some(piece)) => self.current = piece,
                    Ok(None) => break,
                    Err(e) if n == 0 => return Err(e),
                    // The bytes already in `buf` are returned; the error comes next time.
                    Err(e) => {
                        self.failed = Some(e);
                        break;
                    }
                }
            }
            let take = (buf.len() - n).min(self.current.remaining());
            self.current.copy_to_slice(&mut buf[n..n + take]);
            n += take;
        }
        Ok(n)
    }
}

impl Drop for S3Reader {
    fn drop(&mut self) {
        for range in &self.ahead {
            range.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::S3Store;
    use super::super::tests::offline_store;
    use super::*;

    #[test]
    fn ranges_grow_only_while_requests_cost_more_than_bytes() {
        let ms = Duration::from_millis;
        // S3: tens of milliseconds to the first byte, hundreds for the rest.
        assert_eq!(next_range_size(FIRST_RANGE, ms(40), ms(300)), FIRST_RANGE);
        // A server that does per-request work in proportion to the object.
        assert_eq!(
            next_range_size(FIRST_RANGE, ms(900), ms(60)),
            2 * FIRST_RANGE
        );
        assert_eq!(next_range_size(MAX_RANGE, ms(900), ms(60)), MAX_RANGE);
    }

    /// A reader over ranges whose pieces the test sends itself: (start, len) each.
    fn fake_reader(
        store: &S3Store,
        ranges: &[(u64, u64)],
    ) -> (S3Reader, Vec<std_mpsc::Sender<Piece>>) {
        let mut senders = Vec::new();
        let ahead = ranges
            .iter()
            .map(|&(start, len)| {
                let (tx, rx) = std_mpsc::channel();
                senders.push(tx);
                Range {
                    start,
                    len,
                    got: 0,
                    rx,
                    task: store.handle.spawn(async {}),
                }
            })
            .collect();
        let size = ranges.iter().map(|r| r.1).sum();
        let reader = S3Reader {
            shared: store.shared.clone(),
            handle: store.handle.clone(),
            key: "t/x".into(),
            etag: None,
            size,
            next: size, // everything asked for already
            taken: 0,
            range_size: FIRST_RANGE,
            ahead,
            current: Bytes::new(),
            failed: None,
        };
        (reader, senders)
    }

    fn done(first_byte: u64, transfer: u64) -> Piece {
        Piece::Done {
            first_byte: Duration::from_millis(first_byte),
            transfer: Duration::from_millis(transfer),
        }
    }

    #[test]
    fn a_reader_passes_ranges_on_in_order_and_fills_reads_from_what_has_arrived() {
        let store = offline_store();
        let (mut reader, tx) = fake_reader(&store, &[(0, 4), (4, 3)]);
        // The second range arrives first; nothing of it is read before the first.
        tx[1]
            .send(Piece::Bytes(Bytes::from_static(b"efg")))
            .unwrap();
        tx[1].send(done(1, 1)).unwrap();
        tx[0].send(Piece::Bytes(Bytes::from_static(b"ab"))).unwrap();
        tx[0].send(Piece::Bytes(Bytes::from_static(b"cd"))).unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(reader.read(&mut buf).unwrap(), 3, "two pieces in one read");
        assert_eq!(&buf, b"abc");
        // A slow first byte makes the next ranges bigger.
        tx[0].send(done(900, 50)).unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"defg");
        assert_eq!(reader.range_size, 2 * FIRST_RANGE);
    }

    #[test]
    fn a_reader_returns_the_bytes_it_has_before_an_error_and_the_error_next() {
        let store = offline_store();
        let (mut reader, tx) = fake_reader(&store, &[(0, 4)]);
        tx[0].send(Piece::Bytes(Bytes::from_static(b"ab"))).unwrap();
        tx[0]
            .send(Piece::Failed(StoreError::Other(
                "the download broke off".into(),
            )))
            .unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 2);
        let err = reader.read(&mut buf).unwrap_err();
        assert!(err.to_string().contains("broke off"), "{err}");
    }

    #[test]
    fn a_range_that_ends_short_without_saying_why_is_an_error() {
        let store = offline_store();
        let (mut reader, mut tx) = fake_reader(&store, &[(0, 4)]);
        tx[0].send(Piece::Bytes(Bytes::from_static(b"ab"))).unwrap();
        tx.clear(); // the task is gone
        let mut all = Vec::new();
        let err = reader.read_to_end(&mut all).unwrap_err();
        assert_eq!(all, b"ab");
        assert!(
            err.to_string()
                .contains("s3://b/p/t/x: asked for 4 bytes at 0, got 2"),
            "{err}"
        );
    }
}
