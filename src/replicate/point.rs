//! A restore to a moment: which generation and base copy, and which shipped
//! transactions after it (the plan), then those transactions replayed onto the staged
//! base copy (page images in commit order, the file cut to the size the last commit
//! gives) — nothing here touches the target's data; the restore action checks the staged
//! file and puts it in place.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::base_choice::Usable;
use super::record::{Generation, Position, generations, position_key, read};
use super::segment::{Mark, SegmentName, SegmentReader};
use crate::error::{Error, Result};
use crate::stores::Store;
use crate::units::{parse_time, time_text};

/// The part of a restore plan that goes past the base copy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PointInTime {
    /// The moment asked for.
    pub at: String,
    pub generation: String,
    /// The base copy the replay starts from: the newest of the generation whose state is
    /// at or before the moment (see [`super::base_choice`]).
    #[serde(default)]
    pub base_backup: String,
    /// When the base copy's state was current.
    #[serde(default)]
    pub base_at: String,
    /// Whether the base is the generation's first copy rather than a later one.
    #[serde(default)]
    pub first_base: bool,
    /// Newer base copies at or before the moment that could not be used, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
    /// Transactions after the base's, up to and including `up_to_txid`, are replayed.
    pub base_txid: u64,
    pub up_to_txid: u64,
    /// How many transactions are replayed: `up_to_txid - base_txid`.
    #[serde(default)]
    pub transactions: u64,
    /// When the last replayed transaction was seen committed (at or before `at`).
    pub up_to_committed_by: Option<String>,
    /// How far replication reached when planned.
    pub replicated_to: String,
    /// The segments replayed, in order, with the transactions each contributes.
    pub segments: Vec<Piece>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Piece {
    pub key: String,
    pub from_txid: u64,
    pub to_txid: u64,
}

impl PointInTime {
    pub fn describe(&self, base_id: &str) -> String {
        let upto = match &self.up_to_committed_by {
            Some(t) if self.up_to_txid > self.base_txid => format!(
                "transactions {} to {} of generation {} (the last seen committed by {t})",
                self.base_txid + 1,
                self.up_to_txid,
                self.generation
            ),
            _ => format!(
                "no transaction after base copy {base_id} was committed by then (generation {})",
                self.generation
            ),
        };
        let which = if self.first_base {
            format!("the first of generation {}", self.generation)
        } else {
            format!(
                "the newest at or before the moment: the database after transaction {}, as of {}",
                self.base_txid, self.base_at
            )
        };
        let mut out = format!(
            "  to the moment: {} (replicated to {})\n  base copy:   {base_id} ({which})\n  replay:      {upto}, from {} onto base copy {base_id}, then integrity_check\n",
            self.at,
            self.replicated_to,
            crate::units::count(self.segments.len() as u64, "segment", None)
        );
        for p in &self.passed_over {
            out.push_str(&format!("  passed over: {p}\n"));
        }
        out
    }
}

/// Plan a restore of `target` as of `at`: the base backup's id and the transactions.
/// The base is the newest of the covering generation at or before `at` that `usable`
/// accepts, else the generation's first.
pub fn plan(
    store: &dyn Store,
    target: &str,
    at: DateTime<Utc>,
    usable: Usable<'_>,
) -> Result<(String, PointInTime)> {
    let position: Position = read(store, &position_key(target))?.ok_or_else(|| {
        Error::Usage(format!(
            "{target} has no continuous replication in {} yet; run `lifeboat replicate {target}` (or `serve`), or restore a backup by id",
            store.describe()
        ))
    })?;
    let reached = parse_time(&position.replicated_to).unwrap_or_default();
    if at > reached {
        return Err(Error::Usage(format!(
            "{target} is replicated to {} only; {} is past it (ask for a moment at or before {})",
            position.replicated_to,
            time_text(at),
            position.replicated_to
        )));
    }
    let all = generations(store, target)?;
    // How far each generation's history reaches: its recorded end, the position for the
    // current one; one that neither ended nor is current (cut short while it started)
    // reaches nowhere.
    let reach = |g: &Generation| match &g.ended {
        Some(e) => parse_time(&e.replicated_to).unwrap_or_default(),
        None if g.generation == position.generation => reached,
        None => DateTime::<Utc>::MIN_UTC,
    };
    let candidates: Vec<&Generation> = all
        .iter()
        .rev()
        .filter(|g| parse_time(&g.base_at).is_some_and(|b| b <= at))
        .collect();
    let Some(g) = candidates.iter().copied().find(|g| at <= reach(g)) else {
        return Err(match candidates.first() {
            None if let Some(floor) = super::history::floor(store, target)?
                .filter(|f| parse_time(&f.kept_from).is_some_and(|k| at < k)) =>
            {
                Error::Usage(format!(
                    "{} is past the kept history of {target}: history before {} was removed ({}); continuous_history says how far back it is kept",
                    time_text(at),
                    floor.kept_from,
                    floor.reason
                ))
            }
            None => {
                let oldest = all
                    .first()
                    .map_or("none".to_string(), |g| g.base_at.clone());
                Error::Usage(format!(
                    "no base copy of {target} at or before {}; the oldest moment replication reaches is {oldest}",
                    time_text(at)
                ))
            }
            Some(g) => Error::Usage(format!(
                "history of {target} is missing after {} (generation {} ended there: {}); restore to a moment at or before it, or after the next generation's base copy",
                time_text(reach(g).max(parse_time(&g.base_at).unwrap_or_default())),
                g.generation,
                g.ended
                    .as_ref()
                    .map_or("no end recorded", |e| e.reason.as_str())
            )),
        });
    };
    let base = super::base_choice::choose(store, target, g, at, usable)?;
    for p in &base.passed_over {
        tracing::warn!(target = target, "restore to {}: {p}", time_text(at));
    }
    let (pieces, up_to, seen) = chain(store, target, g, base.txid, at)?;
    Ok((
        base.backup.clone(),
        PointInTime {
            at: time_text(at),
            generation: g.generation.clone(),
            base_backup: base.backup,
            base_at: base.at,
            first_base: base.first,
            passed_over: base.passed_over,
            base_txid: base.txid,
            up_to_txid: up_to,
            transactions: up_to - base.txid,
            up_to_committed_by: seen.map(time_text),
            replicated_to: position.replicated_to,
            segments: pieces,
        },
    ))
}

/// The segments after transaction `from` (the base's), each transaction once, up to the
/// last seen committed by `at`; a gap in the transaction numbers before that is an error
/// naming it.
fn chain(
    store: &dyn Store,
    target: &str,
    g: &Generation,
    from: u64,
    at: DateTime<Utc>,
) -> Result<(Vec<Piece>, u64, Option<DateTime<Utc>>)> {
    let names = SegmentName::of_generation(store, target, &g.generation)?;
    let mut pieces = Vec::new();
    let mut txid = from;
    let mut seen = None;
    // Whether a segment went past the moment: what follows a hole after it is history
    // past the moment too, not a gap before it.
    let mut beyond = false;
    for n in names {
        if n.last_txid <= txid {
            continue; // shipped again after a crash, or merged: already in
        }
        if n.first_txid > txid + 1 {
            if beyond || n.seen() > at {
                break;
            }
            return Err(Error::Failed(format!(
                "the shipped history of {target} has a gap: transactions {} to {} of generation {} are missing from the store",
                txid + 1,
                n.first_txid - 1,
                g.generation
            )));
        }
        // Past the moment: a merged segment gives its runs committed by then; another
        // segment shipped again with more (after a crash) may still give some.
        let reach = if n.seen() <= at {
            Some((n.last_txid, n.seen()))
        } else if n.merged {
            reached_by(store, &n, at)?
                .filter(|m| m.last_txid > txid)
                .map(|m| (m.last_txid, mark_time(m)))
        } else {
            None
        };
        let Some((to, by)) = reach else {
            beyond = true;
            continue;
        };
        pieces.push(Piece {
            key: n.key.clone(),
            from_txid: txid + 1,
            to_txid: to,
        });
        txid = to;
        seen = Some(by);
        beyond |= to < n.last_txid;
    }
    Ok((pieces, txid, seen))
}

/// The last mark of a merged segment seen committed by `at`.
fn reached_by(store: &dyn Store, n: &SegmentName, at: DateTime<Utc>) -> Result<Option<Mark>> {
    let damaged = |e| Error::io(format!("segment {} is damaged or unreadable", n.key), e);
    let segment = SegmentReader::new(store.open(&n.key)?).map_err(damaged)?;
    Ok(segment
        .header
        .all_marks()
        .into_iter()
        .filter(|m| m.seen_ms <= at.timestamp_millis())
        .max_by_key(|m| m.last_txid))
}

fn mark_time(mark: Mark) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(mark.seen_ms).unwrap_or_default()
}

/// A planned piece's segment; when compaction removed it since the plan, the merged
/// segment that holds its transactions (written whole before any part is removed).
fn open_piece(store: &dyn Store, piece: &Piece) -> Result<Box<dyn std::io::Read + Send>> {
    match store.open(&piece.key) {
        Err(crate::stores::StoreError::NotFound { .. }) => open_covering(store, piece),
        other => Ok(other?),
    }
}

/// The merged segment holding a piece's transactions (or the piece's own, to fail with
/// its own name when there is none).
fn open_covering(store: &dyn Store, piece: &Piece) -> Result<Box<dyn std::io::Read + Send>> {
    let dir = piece.key.rsplit_once('/').map_or("", |(d, _)| d);
    let covering = SegmentName::list(store, &format!("{dir}/"))?
        .into_iter()
        .find(|n| n.first_txid <= piece.from_txid && n.last_txid >= piece.to_txid);
    match covering {
        Some(n) => Ok(store.open(&n.key)?),
        None => Ok(store.open(&piece.key)?),
    }
}

/// Whether a piece's own segment is gone from the store (merged away by compaction).
fn vanished(store: &dyn Store, piece: &Piece) -> bool {
    matches!(
        store.open(&piece.key),
        Err(crate::stores::StoreError::NotFound { .. })
    )
}

/// What one piece gave: page images written, and the database's size in pages after its
/// last commit.
struct Applied {
    pages: u64,
    size_pages: Option<u64>,
}

/// Write a piece's transactions from `segment` into the database at `file`.
fn apply(
    piece: &Piece,
    segment: Box<dyn std::io::Read + Send>,
    db: &std::fs::File,
    file: &Path,
    page_size: u64,
) -> Result<Applied> {
    let damaged = |e| Error::io(format!("segment {} is damaged or unreadable", piece.key), e);
    let mut segment = SegmentReader::new(segment).map_err(damaged)?;
    if u64::from(segment.header.page_size) != page_size {
        return Err(Error::Failed(format!(
            "segment {} has pages of {} bytes, the base copy {page_size}",
            piece.key, segment.header.page_size
        )));
    }
    let mut applied = Applied {
        pages: 0,
        size_pages: None,
    };
    let mut txid = segment.header.first_txid;
    while let Some(f) = segment.next_frame().map_err(damaged)? {
        if txid > piece.to_txid {
            break;
        }
        if txid >= piece.from_txid {
            db.write_all_at(f.page, (u64::from(f.page_no) - 1) * page_size)
                .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
            applied.pages += 1;
            if f.commit_pages > 0 {
                applied.size_pages = Some(u64::from(f.commit_pages));
            }
        }
        if f.commit_pages > 0 {
            txid += 1;
        }
    }
    if txid <= piece.to_txid {
        return Err(Error::Failed(format!(
            "segment {} ends at transaction {}, before {}",
            piece.key,
            txid - 1,
            piece.to_txid
        )));
    }
    Ok(applied)
}

/// Replay the planned transactions onto the staged base copy at `file`, then cut it to
/// the size the last of them gives. What was replayed, in words.
pub fn replay(
    store: &dyn Store,
    point: &PointInTime,
    file: &Path,
    page_size: u64,
) -> Result<String> {
    let db = OpenOptions::new()
        .write(true)
        .open(file)
        .map_err(|e| Error::io(format!("opening {}", file.display()), e))?;
    let mut pages_written = 0u64;
    let mut size_pages = None;
    for piece in &point.segments {
        let applied = match apply(piece, open_piece(store, piece)?, &db, file, page_size) {
            // Compaction removed the segment while it was read: the merged segment holds
            // the same transactions, and writing them again from the first gives the
            // same pages.
            Err(_) if vanished(store, piece) => {
                apply(piece, open_covering(store, piece)?, &db, file, page_size)
            }
            other => other,
        }?;
        pages_written += applied.pages;
        size_pages = applied.size_pages.or(size_pages);
    }
    if let Some(pages) = size_pages {
        db.set_len(pages * page_size)
            .map_err(|e| Error::io(format!("resizing {}", file.display()), e))?;
    }
    db.sync_all()
        .map_err(|e| Error::io(format!("syncing {}", file.display()), e))?;
    Ok(format!(
        "{} transactions replayed ({pages_written} page images)",
        point.up_to_txid - point.base_txid
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::record::{Ended, generation_key, write};
    use crate::replicate::segment::{SegmentHeader, SegmentWriter};
    use crate::stores::memory::MemoryStore;

    const T0: i64 = 1_800_000_000_000; // ms

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(T0 + ms).unwrap()
    }

    fn generation(store: &MemoryStore, id: &str, base_ms: i64, ended_ms: Option<i64>) {
        let g = Generation {
            generation: id.into(),
            started_at: time_text(t(base_ms)),
            reason: "test".into(),
            page_size: 512,
            base_backup: format!("base-{id}"),
            base_txid: 0,
            base_at: time_text(t(base_ms)),
            previous: None,
            ended: ended_ms.map(|e| Ended {
                replicated_to: time_text(t(e)),
                reason: "the WAL was reset".into(),
            }),
        };
        write(store, &generation_key("db", id), &g).unwrap();
    }

    fn segment(store: &MemoryStore, g: &str, first: u64, last: u64, seen_ms: i64) {
        let key = SegmentName::key_for("db", g, first, last, T0 + seen_ms);
        let header = SegmentHeader {
            format: 1,
            generation: g.into(),
            first_txid: first,
            last_txid: last,
            page_size: 512,
            seen_ms: T0 + seen_ms,
            marks: Vec::new(),
        };
        let mut w = SegmentWriter::new(store.create(&key).unwrap(), &header).unwrap();
        for _ in first..=last {
            w.frame(1, 1, &[0; 512]).unwrap();
        }
        w.finish().unwrap().commit().unwrap();
    }

    fn position(store: &MemoryStore, g: &str, txid: u64, reached_ms: i64) {
        let p = Position {
            generation: g.into(),
            txid,
            wal: None,
            replicated_to: time_text(t(reached_ms)),
            holder: "test".into(),
            stuck: None,
        };
        write(store, &position_key("db"), &p).unwrap();
    }

    #[test]
    fn transactions_up_to_the_moment_each_once_and_gaps_named() {
        let store = MemoryStore::new();
        generation(&store, "g1", 0, Some(5_000));
        segment(&store, "g1", 1, 5, 1_000);
        // Shipped again after a crash, with more: each transaction counts once.
        segment(&store, "g1", 1, 8, 2_000);
        segment(&store, "g1", 9, 9, 3_000);
        generation(&store, "g2", 10_000, None);
        segment(&store, "g2", 1, 2, 11_000);
        segment(&store, "g2", 5, 6, 13_000); // 3 and 4 are missing
        // A generation cut short while it started, never current: never chosen.
        generation(&store, "g3", 12_000, None);
        position(&store, "g2", 6, 14_000);

        let (base, p) = plan(&store, "db", t(2_500), &|_| None).unwrap();
        assert_eq!(base, "base-g1");
        assert_eq!((p.base_txid, p.up_to_txid), (0, 8));
        let pieces: Vec<(u64, u64)> = p
            .segments
            .iter()
            .map(|s| (s.from_txid, s.to_txid))
            .collect();
        assert_eq!(pieces, [(1, 5), (6, 8)]);
        assert_eq!(
            p.up_to_committed_by.as_deref(),
            Some(time_text(t(2_000)).as_str())
        );

        // Between g1's end and g2's base: missing, and said so.
        let e = plan(&store, "db", t(7_000), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing after") && e.contains("g1"), "{e}");
        // Before any base: named.
        let e = plan(&store, "db", t(-1), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no base copy"), "{e}");
        // Past replicated_to: refused naming it.
        let e = plan(&store, "db", t(20_000), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&time_text(t(14_000))), "{e}");
        // g2 up to 11.5 s: fine; past 13 s the hole in its transactions is an error.
        let (base, p) = plan(&store, "db", t(12_500), &|_| None).unwrap();
        assert_eq!((base.as_str(), p.up_to_txid), ("base-g2", 2));
        let e = plan(&store, "db", t(13_500), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gap") && e.contains("3 to 4"), "{e}");
    }

    #[test]
    fn a_later_base_at_or_before_the_moment_is_replayed_from() {
        let store = MemoryStore::new();
        generation(&store, "g1", 0, None);
        // Transactions 1 to 4 are missing: only a restore from the later base reaches on.
        segment(&store, "g1", 5, 8, 2_000);
        segment(&store, "g1", 9, 9, 3_000);
        segment(&store, "g1", 10, 12, 4_000);
        position(&store, "g1", 12, 5_000);
        let later = crate::replicate::scheduled::LaterBase {
            backup: "later-8".into(),
            generation: "g1".into(),
            txid: 8,
            at: time_text(t(2_500)),
        };
        crate::replicate::scheduled::record(&store, "db", &later).unwrap();

        let (base, p) = plan(&store, "db", t(3_500), &|_| None).unwrap();
        assert_eq!(
            (base.as_str(), p.base_backup.as_str()),
            ("later-8", "later-8")
        );
        assert!(!p.first_base);
        assert_eq!((p.base_txid, p.up_to_txid, p.transactions), (8, 9, 1));
        assert_eq!(p.segments.len(), 1);
        let words = p.describe(&base);
        assert!(words.contains("after transaction 8"), "{words}");

        // Before the later base: the first base, and its hole is a gap.
        let e = plan(&store, "db", t(2_200), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gap") && e.contains("1 to 4"), "{e}");

        // The later base pruned: back to the first, said so (here the gap then shows).
        let pruned = |id: &str| (id == "later-8").then(|| "is no longer in the store".to_string());
        let e = plan(&store, "db", t(4_500), &pruned)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gap"), "{e}");
        segment(&store, "g1", 1, 4, 1_000);
        let (base, p) = plan(&store, "db", t(4_500), &pruned).unwrap();
        assert_eq!((base.as_str(), p.first_base), ("base-g1", true));
        assert_eq!((p.base_txid, p.up_to_txid, p.transactions), (0, 12, 12));
        assert!(p.passed_over[0].contains("later-8"), "{:?}", p.passed_over);
        assert!(p.describe(&base).contains("passed over: base copy later-8"));
    }
}
