//! Compaction of shipped history, so a day of it is not a million objects: the segments
//! of a generation seen committed in one span (`continuous_compact`, 1h by default,
//! aligned to the epoch) are merged into one object once the whole span is older than
//! the span itself. Every transaction's page images are kept, and the merged segment's
//! marks say when each of its parts was seen committed, so a restore to any moment
//! inside a compacted span stops at the very transaction the parts gave: only the
//! object count shrinks.
//!
//! Crash safety: the merged object is written whole (committed under its key) before
//! any part is deleted. A crash in between leaves both; a restore then takes each
//! transaction once from whichever it reaches first (see [`point`](super::point)), and
//! the next pass merges again and deletes the parts. A restore that planned with the
//! parts and finds one gone reads the merged object instead.
//!
//! Only the replicator holding the lease compacts, between its rounds: one writer.

use std::cmp::Reverse;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::record::{Generation, generations, prefix};
use super::segment::{
    MERGED_FORMAT, Mark, SegmentHeader, SegmentName, SegmentReader, SegmentWriter,
};
use crate::error::{Error, Result};
use crate::stores::Store;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub merged: usize,
    pub removed: usize,
}

/// A segment in a generation's chain and the transactions it gives (`from..=last`).
struct Link {
    name: SegmentName,
    from: u64,
}

/// Merge every complete span older than `now - span` in each generation of `target`.
pub fn compact(
    store: &dyn Store,
    target: &str,
    span: Duration,
    now: DateTime<Utc>,
) -> Result<Compacted> {
    let mut done = Compacted::default();
    for g in generations(store, target)? {
        let pass = compact_generation(store, target, &g, span, now)?;
        done.merged += pass.merged;
        done.removed += pass.removed;
    }
    Ok(done)
}

fn compact_generation(
    store: &dyn Store,
    target: &str,
    g: &Generation,
    span: Duration,
    now: DateTime<Utc>,
) -> Result<Compacted> {
    let span_ms = (span.as_millis() as i64).max(1);
    let cutoff = now.timestamp_millis() - span_ms;
    let bucket = |seen_ms: i64| seen_ms.div_euclid(span_ms);
    let ready = |seen_ms: i64| (bucket(seen_ms) + 1) * span_ms <= cutoff;
    let mut names = SegmentName::list(store, &format!("{}{}/", prefix(target), g.generation))?;
    // The widest segment starting at a transaction first: a merged one is preferred.
    names.sort_by_key(|n| (n.first_txid, Reverse(n.last_txid)));
    let mut chain: Vec<Link> = Vec::new();
    let mut covered: Vec<SegmentName> = Vec::new();
    let mut txid = g.base_txid;
    for n in names {
        if n.last_txid <= txid {
            covered.push(n);
            continue;
        }
        if n.first_txid > txid + 1 || !ready(n.seen_ms) {
            break; // a gap (verify names it) or not old enough: nothing past it is merged
        }
        txid = n.last_txid;
        chain.push(Link {
            from: n
                .first_txid
                .max(chain.last().map_or(0, |l| l.name.last_txid + 1)),
            name: n,
        });
    }
    let mut done = Compacted::default();
    let mut start = 0;
    while start < chain.len() {
        let b = bucket(chain[start].name.seen_ms);
        let end = chain[start..]
            .iter()
            .position(|l| bucket(l.name.seen_ms) != b)
            .map_or(chain.len(), |i| start + i);
        let group = &chain[start..end];
        let (lo, hi) = (group[0].from, group[group.len() - 1].name.last_txid);
        let extras: Vec<&SegmentName> = covered
            .iter()
            .filter(|c| c.last_txid >= lo && c.last_txid <= hi)
            .collect();
        if group.len() > 1 || !extras.is_empty() {
            done.removed += merge(store, target, g, group, &extras, lo, hi)?;
            done.merged += 1;
        }
        start = end;
    }
    Ok(done)
}

fn damaged(key: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(format!("segment {key} is damaged or unreadable"), e)
}

/// Write the merged segment of `group` (transactions `lo..=hi`), then delete the parts
/// and the `extras` it covers; how many objects were deleted.
fn merge(
    store: &dyn Store,
    target: &str,
    g: &Generation,
    group: &[Link],
    extras: &[&SegmentName],
    lo: u64,
    hi: u64,
) -> Result<usize> {
    let mut marks: Vec<Mark> = Vec::new();
    for n in group.iter().map(|l| &l.name).chain(extras.iter().copied()) {
        let header = SegmentReader::new(store.open(&n.key)?)
            .map_err(damaged(&n.key))?
            .header;
        marks.extend(header.all_marks().into_iter().filter(|m| m.last_txid >= lo));
    }
    let marks = normalized(marks);
    let seen_ms = marks
        .last()
        .map_or(group[group.len() - 1].name.seen_ms, |m| m.seen_ms);
    let key = SegmentName::merged_key_for(target, &g.generation, lo, hi, seen_ms);
    let first =
        SegmentReader::new(store.open(&group[0].name.key)?).map_err(damaged(&group[0].name.key))?;
    let header = SegmentHeader {
        format: MERGED_FORMAT,
        generation: g.generation.clone(),
        first_txid: lo,
        last_txid: hi,
        page_size: first.header.page_size,
        seen_ms,
        marks,
    };
    drop(first);
    let write_err = |e| Error::io(format!("writing {key} to {}", store.describe()), e);
    let mut out = SegmentWriter::new(store.create(&key)?, &header).map_err(write_err)?;
    for link in group {
        let key = &link.name.key;
        let mut part = SegmentReader::new(store.open(key)?).map_err(damaged(key))?;
        if part.header.page_size != header.page_size {
            return Err(Error::Failed(format!(
                "segment {key} has pages of {} bytes, the generation {}",
                part.header.page_size, header.page_size
            )));
        }
        let mut txid = part.header.first_txid;
        // Read to the end mark even past what is taken: a damaged part is never merged.
        while let Some(f) = part.next_frame().map_err(damaged(key))? {
            if txid >= link.from && txid <= link.name.last_txid {
                out.frame(f.page_no, f.commit_pages, f.page)
                    .map_err(write_err)?;
            }
            if f.commit_pages > 0 {
                txid += 1;
            }
        }
        if txid <= link.name.last_txid {
            return Err(Error::Failed(format!(
                "segment {key} ends at transaction {}, before {}",
                txid - 1,
                link.name.last_txid
            )));
        }
    }
    out.finish().map_err(write_err)?.commit()?;
    let mut removed = 0;
    for n in group.iter().map(|l| &l.name).chain(extras.iter().copied()) {
        if n.key != key {
            store.delete(&n.key)?;
            removed += 1;
        }
    }
    tracing::info!(target = target, "compacted {removed} segments into {key}");
    Ok(removed)
}

/// Marks by transaction, each with the earliest time it was seen, keeping only those a
/// later mark does not make redundant (a later transaction seen no later).
fn normalized(mut marks: Vec<Mark>) -> Vec<Mark> {
    marks.sort_by_key(|m| (m.last_txid, m.seen_ms));
    marks.dedup_by_key(|m| m.last_txid);
    let mut out: Vec<Mark> = Vec::new();
    for m in marks.into_iter().rev() {
        if out.last().is_none_or(|later| later.seen_ms > m.seen_ms) {
            out.push(m);
        }
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::point::{PointInTime, plan};
    use crate::replicate::record::{Position, generation_key, position_key, write};
    use crate::stores::memory::MemoryStore;
    use crate::units::time_text;

    const T0: i64 = 1_800_000_000_000;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(T0 + ms).unwrap()
    }

    /// A segment whose transaction n writes page 1 filled with n.
    fn segment(store: &MemoryStore, first: u64, last: u64, seen_ms: i64) {
        let key = SegmentName::key_for("db", "g", first, last, T0 + seen_ms);
        let header = SegmentHeader {
            format: 1,
            generation: "g".into(),
            first_txid: first,
            last_txid: last,
            page_size: 512,
            seen_ms: T0 + seen_ms,
            marks: Vec::new(),
        };
        let mut w = SegmentWriter::new(store.create(&key).unwrap(), &header).unwrap();
        for n in first..=last {
            w.frame(1, 1, &[n as u8; 512]).unwrap();
        }
        w.finish().unwrap().commit().unwrap();
    }

    fn setup() -> MemoryStore {
        let store = MemoryStore::new();
        let g = Generation {
            generation: "g".into(),
            started_at: time_text(t(0)),
            reason: "test".into(),
            page_size: 512,
            base_backup: "base".into(),
            base_txid: 0,
            base_at: time_text(t(0)),
            previous: None,
            ended: None,
        };
        write(&store, &generation_key("db", "g"), &g).unwrap();
        let p = Position {
            generation: "g".into(),
            txid: 9,
            wal: None,
            replicated_to: time_text(t(50_000)),
            holder: "test".into(),
            stuck: None,
        };
        write(&store, &position_key("db"), &p).unwrap();
        segment(&store, 1, 2, 1_000);
        segment(&store, 3, 5, 2_000);
        segment(&store, 1, 6, 3_000); // shipped again after a crash, with one more
        segment(&store, 7, 8, 4_000);
        segment(&store, 9, 9, 12_000); // the next span
        store
    }

    fn segments(store: &MemoryStore) -> Vec<String> {
        store
            .list("db.wal/g/")
            .unwrap()
            .into_iter()
            .filter(|o| o.key.ends_with(".seg.zst"))
            .map(|o| o.key.rsplit('/').next().unwrap().to_string())
            .collect()
    }

    fn upto(store: &MemoryStore, ms: i64) -> (u64, Vec<u8>) {
        let (_, p): (String, PointInTime) = plan(store, "db", t(ms), &|_| None).unwrap();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, &[0; 512]).unwrap();
        super::super::point::replay(store, &p, file.path(), 512).unwrap();
        (p.up_to_txid, std::fs::read(file.path()).unwrap())
    }

    #[test]
    fn a_span_becomes_one_object_and_every_moment_restores_the_same() {
        let store = setup();
        let moments = [500, 1_000, 1_500, 2_000, 2_500, 3_000, 4_000, 13_000];
        let before: Vec<_> = moments.iter().map(|&m| upto(&store, m)).collect();
        // The 10 s span holding 1..8 is complete by 20 s + 10 s; the one with 9 is not.
        let span = Duration::from_secs(10);
        let first_span_end = (T0 + 4_000).div_euclid(10_000) * 10_000 + 10_000 - T0;
        let early = compact(&store, "db", span, t(first_span_end + 9_999)).unwrap();
        assert_eq!(
            early,
            Compacted::default(),
            "a span is merged only once it is over"
        );
        let done = compact(&store, "db", span, t(first_span_end + 10_000)).unwrap();
        assert_eq!(
            (done.merged, done.removed),
            (1, 4),
            "{:?}",
            segments(&store)
        );
        assert_eq!(segments(&store).len(), 2, "{:?}", segments(&store));
        let after: Vec<_> = moments.iter().map(|&m| upto(&store, m)).collect();
        assert_eq!(before, after, "every moment restores the same transactions");
        assert_eq!(after[1].0, 2);
        assert_eq!(after[2].0, 2);
        assert_eq!(after[3].0, 5);
        // Again: nothing left to do.
        let again = compact(&store, "db", span, t(first_span_end + 10_000)).unwrap();
        assert_eq!(again, Compacted::default());
    }

    #[test]
    fn a_crash_between_writing_the_merged_object_and_deleting_the_parts_restores_the_same() {
        let store = setup();
        let moments = [1_000, 2_500, 3_000, 4_000, 13_000];
        let before: Vec<_> = moments.iter().map(|&m| upto(&store, m)).collect();
        // The merged object of a pass that stopped before deleting: a copy of the parts.
        let parts = MemoryStore::new();
        for o in store.list("db.wal/").unwrap() {
            parts
                .put_bytes(&o.key, &store.get_bytes(&o.key).unwrap())
                .unwrap();
        }
        compact(&parts, "db", Duration::from_secs(10), t(60_000)).unwrap();
        for o in parts.list("db.wal/g/").unwrap() {
            if o.key.ends_with("-m.seg.zst") {
                store
                    .put_bytes(&o.key, &parts.get_bytes(&o.key).unwrap())
                    .unwrap();
            }
        }
        assert_eq!(segments(&store).len(), 6);
        let after: Vec<_> = moments.iter().map(|&m| upto(&store, m)).collect();
        assert_eq!(
            before, after,
            "parts and merged object both there: each once"
        );
        // A plan made with the parts, replayed after they went, reads the merged object.
        let (_, p) = plan(&store, "db", t(13_000), &|_| None).unwrap();
        let done = compact(&store, "db", Duration::from_secs(10), t(60_000)).unwrap();
        assert_eq!(done.merged, 1);
        assert_eq!(segments(&store).len(), 2, "{:?}", segments(&store));
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, &[0; 512]).unwrap();
        super::super::point::replay(&store, &p, file.path(), 512).unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap(), before[4].1);
    }
}
