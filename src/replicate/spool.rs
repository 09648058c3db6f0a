//! The spool: each round's segment is first made durable on the replicator's own disk
//! (`continuous_spool`, by default `spool/<target>/` beside the state database), then
//! uploaded to the store in order. While the store is unreachable rounds go on into the
//! spool, and lifeboat's checkpoints go on too: a frame is checkpointed only once the
//! segment holding it is durable here, so the WAL stays small and nothing is lost.
//!
//! Layout: `<generation>/<first>-<last>-<seen ms>.seg.zst`, the segment's bytes exactly as
//! they go to the store, and beside it `….position.json`, the position the store gets
//! once that segment is in it. Both are written as `.tmp` files, synced and renamed (the
//! position first), so a segment under its own name always has its position; what a
//! killed replicator left half-written is removed when the spool is opened.
//!
//! Bounds: before each segment the spool's size is compared with `continuous_spool_max`
//! (so it can pass it by one round's segment); at the bound, or when the disk is full,
//! the round fails without advancing: the frames stay in the WAL under the read
//! transaction, and the next round tries again. `state.json` says what the spool holds
//! and why it is stuck, for `status` and the watchdog on this host.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::record::{Position, position_key, prefix, write};
use crate::error::{Error, Result};
use crate::stores::Store;

const SEGMENT: &str = ".seg.zst";
const POSITION: &str = ".position.json";
const TEMP: &str = ".tmp";

/// One target's spool directory (a clone is the same spool: the uploader's).
#[derive(Clone)]
pub struct Spool {
    pub dir: PathBuf,
    target: String,
    max: u64,
    /// What the segments in it take, kept as they come (the rounds) and go (the uploads).
    bytes: Arc<AtomicU64>,
}

/// A segment waiting in the spool for the store.
#[derive(Debug)]
pub struct Spooled {
    /// Its key in the store.
    pub key: String,
    path: PathBuf,
    position_path: PathBuf,
    bytes: u64,
}

impl Spooled {
    /// When its transactions were seen committed, as its name says.
    pub fn seen_ms(&self) -> Option<i64> {
        super::segment::SegmentName::parse(&self.key).map(|n| n.seen_ms)
    }
}

fn position_path_of(segment: &Path) -> PathBuf {
    let name = segment.file_name().unwrap_or_default().to_string_lossy();
    segment.with_file_name(format!(
        "{}{POSITION}",
        name.strip_suffix(SEGMENT).unwrap_or(&name)
    ))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// The spool of a continuous target of this config.
    pub fn for_target(app: &crate::app::App, target: &str) -> Result<Spool> {
        let max = app.target(target)?.spool_max();
        Spool::open(&app.config.spool_dir(target), target, max)
    }

    /// Open (creating) the spool in `dir`, removing what a killed round left half-written.
    pub fn open(dir: &Path, target: &str, max: u64) -> Result<Spool> {
        let context = || format!("opening the spool {}", dir.display());
        fs::create_dir_all(dir).map_err(|e| Error::io(context(), e))?;
        let spool = Spool {
            dir: dir.to_path_buf(),
            target: target.to_string(),
            max,
            bytes: Arc::new(AtomicU64::new(0)),
        };
        for entry in spool.files().map_err(|e| Error::io(context(), e))? {
            let name = entry.file_name().unwrap_or_default().to_string_lossy();
            // A position whose segment never got its name: the round was killed between.
            let orphan = name
                .strip_suffix(POSITION)
                .is_some_and(|stem| !entry.with_file_name(format!("{stem}{SEGMENT}")).exists());
            if name.ends_with(TEMP) || orphan {
                fs::remove_file(&entry).map_err(|e| Error::io(context(), e))?;
            }
        }
        let bytes = spool.pending()?.iter().map(|s| s.bytes).sum();
        spool.bytes.store(bytes, Ordering::SeqCst);
        Ok(spool)
    }

    /// Every file under the spool's generations.
    fn files(&self) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for dir in fs::read_dir(&self.dir)? {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(dir.path())? {
                out.push(f?.path());
            }
        }
        Ok(out)
    }

    /// The segments waiting, oldest first (generation, then transaction number).
    pub fn pending(&self) -> Result<Vec<Spooled>> {
        let context = || format!("reading the spool {}", self.dir.display());
        let mut out = Vec::new();
        for path in self.files().map_err(|e| Error::io(context(), e))? {
            let rel = path.strip_prefix(&self.dir).unwrap_or(&path);
            let rel = rel.to_string_lossy().into_owned();
            if !rel.ends_with(SEGMENT) {
                continue;
            }
            let bytes = fs::metadata(&path)
                .map_err(|e| Error::io(context(), e))?
                .len();
            out.push(Spooled {
                key: format!("{}{rel}", prefix(&self.target)),
                position_path: position_path_of(&path),
                path,
                bytes,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// What the spooled segments take.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// A file for the segment with store key `key`; refused when the spool is at its
    /// bound. Nothing is spooled until [`SpoolWriter::commit`].
    pub fn writer(&self, key: &str) -> Result<SpoolWriter> {
        let bytes = self.bytes();
        if bytes >= self.max {
            return Err(Error::Failed(format!(
                "the spool {} holds {}, its bound (continuous_spool_max {}): no more is spooled until the store takes what is in it; the WAL keeps the rest meanwhile (nothing is lost, but it grows)",
                self.dir.display(),
                crate::units::human_bytes(bytes),
                crate::units::human_bytes(self.max)
            )));
        }
        let rel = key.strip_prefix(&prefix(&self.target)).unwrap_or(key);
        let path = self.dir.join(rel);
        let context = || format!("spooling {key} into {}", self.dir.display());
        let dir = path.parent().expect("a segment key has a generation");
        fs::create_dir_all(dir).map_err(|e| Error::io(context(), e))?;
        let temp = PathBuf::from(format!("{}{TEMP}", path.display()));
        let file = File::create(&temp).map_err(|e| Error::io(context(), e))?;
        Ok(SpoolWriter {
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            committed: false,
            temp,
            path,
            key: key.to_string(),
        })
    }

    /// Count a committed segment in.
    pub fn added(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
    }

    /// Upload every spooled segment in order, each followed by the position it reaches,
    /// removing it here once the store has it. The last position written, if any.
    pub fn upload(&self, objects: &dyn Store) -> Result<Option<Position>> {
        let mut last = None;
        for s in self.pending()? {
            let context = |what: &str| format!("{what} the spooled {}", s.path.display());
            let text = fs::read(&s.position_path).map_err(|e| Error::io(context("reading"), e))?;
            let position: Position = serde_json::from_slice(&text).map_err(|e| {
                Error::Failed(format!(
                    "{}: not a position lifeboat wrote ({e}); move it away to go on",
                    s.position_path.display()
                ))
            })?;
            let mut from = File::open(&s.path).map_err(|e| Error::io(context("reading"), e))?;
            let mut object = objects.create(&s.key)?;
            io::copy(&mut from, &mut object).map_err(|e| {
                Error::io(format!("uploading {} to {}", s.key, objects.describe()), e)
            })?;
            object.commit()?;
            write(objects, &position_key(&self.target), &position)?;
            fs::remove_file(&s.path).map_err(|e| Error::io(context("removing"), e))?;
            fs::remove_file(&s.position_path).map_err(|e| Error::io(context("removing"), e))?;
            self.bytes
                .fetch_sub(s.bytes.min(self.bytes()), Ordering::SeqCst);
            last = Some(position);
        }
        if last.is_some() {
            self.remove_empty_generations();
        }
        Ok(last)
    }

    fn remove_empty_generations(&self) {
        if let Ok(dirs) = fs::read_dir(&self.dir) {
            for d in dirs.flatten() {
                // Only an empty folder goes (remove_dir refuses any other).
                let _ = fs::remove_dir(d.path());
            }
        }
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Say what the spool holds (`None`: nothing, and nothing wrong: the file goes).
    /// Written in place, so a full disk that already holds the file can still take it.
    pub fn note(&self, state: Option<&SpoolState>) {
        let path = self.state_path();
        let Some(state) = state else {
            let _ = fs::remove_file(&path);
            return;
        };
        let text = serde_json::to_vec_pretty(state).expect("states serialize");
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(&text)?;
                f.set_len(text.len() as u64)
            });
        if let Err(e) = written {
            tracing::debug!(target = %self.target, "cannot write {}: {e}", path.display());
        }
    }
}

/// What a target's spool holds and why it is stuck, as the replicator last said.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpoolState {
    pub holder: String,
    /// When the replicator wrote this.
    pub at: String,
    pub segments: usize,
    pub bytes: u64,
    pub max_bytes: u64,
    /// Everything committed before this is in the store (the store's `replicated_to`
    /// as this replicator last wrote it).
    pub stored_to: Option<String>,
    /// Everything committed before this is in the store or the spool.
    pub spooled_to: String,
    /// Why uploads fail, since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_failing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_failing_since: Option<String>,
    /// Why nothing more could be spooled (the bound, a full disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<String>,
}

impl SpoolState {
    /// The spool state of `target` on this host, if its replicator left one.
    pub fn read(dir: &Path) -> Option<SpoolState> {
        let text = fs::read(dir.join("state.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Whether it says something is wrong: uploads failing, the replicator stuck, or
    /// segments waiting in a state no replicator has written for a minute (it writes one
    /// every round while anything waits). A segment on its way, spooled and being
    /// uploaded, is how every round goes: status would flap if that were a problem.
    pub fn troubled(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let written = crate::units::parse_time(&self.at);
        self.upload_failing.is_some()
            || self.stuck.is_some()
            || written.is_none_or(|at| now - at > chrono::Duration::minutes(1))
    }

    /// In words, for status.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} segment{} ({}) spooled on {} up to {}, not in the store yet",
            self.segments,
            if self.segments == 1 { "" } else { "s" },
            crate::units::human_bytes(self.bytes),
            self.holder,
            self.spooled_to
        );
        if let Some(why) = &self.upload_failing {
            s.push_str(&format!(
                "; uploads fail since {}: {why}",
                self.upload_failing_since.as_deref().unwrap_or("?")
            ));
        }
        if let Some(why) = &self.stuck {
            s.push_str(&format!("; the replicator is stuck: {why}"));
        }
        s
    }
}

/// A segment being written into the spool; removed unless committed.
pub struct SpoolWriter {
    file: Option<BufWriter<File>>,
    committed: bool,
    temp: PathBuf,
    path: PathBuf,
    key: String,
}

impl Write for SpoolWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open until committed").write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until committed").flush()
    }
}

impl SpoolWriter {
    /// Make the segment durable with the position the store gets after it; its size.
    pub fn commit(mut self, position: &Position) -> Result<u64> {
        let context = || format!("spooling {} into {}", self.key, self.temp.display());
        let file = self.file.take().expect("open until committed");
        let file = file
            .into_inner()
            .map_err(|e| Error::io(context(), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(context(), e))?;
        let bytes = file.metadata().map_err(|e| Error::io(context(), e))?.len();
        drop(file);
        let position_path = position_path_of(&self.path);
        let position_temp = PathBuf::from(format!("{}{TEMP}", position_path.display()));
        let text = serde_json::to_vec_pretty(position).expect("positions serialize");
        let written = (|| {
            let mut f = File::create(&position_temp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&position_temp, &position_path)?;
            fs::rename(&self.temp, &self.path)?;
            sync_dir(self.path.parent().expect("in a generation folder"))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&position_temp);
            let _ = fs::remove_file(&position_path);
            let _ = fs::remove_file(&self.path);
            return Err(Error::io(context(), e));
        }
        self.committed = true;
        Ok(bytes)
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        if !self.committed {
            self.file = None;
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::memory::MemoryStore;

    fn position(txid: u64) -> Position {
        Position {
            generation: "g".into(),
            txid,
            wal: None,
            replicated_to: format!("2026-12-05T10:00:{txid:02}Z"),
            holder: "test".into(),
            stuck: None,
        }
    }

    fn spool_one(spool: &Spool, first: u64, last: u64, bytes: &[u8]) {
        let key = super::super::segment::SegmentName::key_for("db", "g", first, last, 1000);
        let mut w = spool.writer(&key).unwrap();
        w.write_all(bytes).unwrap();
        let n = w.commit(&position(last)).unwrap();
        spool.added(n);
    }

    #[test]
    fn a_segment_on_its_way_is_no_problem_until_uploads_fail_or_nobody_writes_the_state() {
        let now = chrono::Utc::now();
        let state = SpoolState {
            holder: "vm pid 1".into(),
            at: crate::units::time_text(now),
            segments: 1,
            bytes: 4096,
            max_bytes: 1 << 30,
            stored_to: None,
            spooled_to: crate::units::time_text(now),
            upload_failing: None,
            upload_failing_since: None,
            stuck: None,
        };
        assert!(!state.troubled(now));
        let later = now + chrono::Duration::seconds(61);
        assert!(state.troubled(later), "no replicator wrote it for a minute");
        let failing = SpoolState {
            upload_failing: Some("connection refused".into()),
            ..state.clone()
        };
        assert!(failing.troubled(now));
        let stuck = SpoolState {
            stuck: Some("no space left on device".into()),
            ..state
        };
        assert!(stuck.troubled(now));
    }

    #[test]
    fn segments_go_up_in_order_each_with_its_position_and_leave_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("db"), "db", 1 << 20).unwrap();
        // Out of order on purpose: the upload order is the transactions', not the files'.
        spool_one(&spool, 11, 20, b"second");
        spool_one(&spool, 1, 10, b"first");
        assert_eq!(spool.bytes(), 11);
        let store = MemoryStore::new();
        let last = spool.upload(&store).unwrap().unwrap();
        assert_eq!(last.txid, 20);
        let keys: Vec<String> = store
            .list("db.wal/")
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert!(
            keys.iter()
                .any(|k| k.contains("0000000000000001-000000000000000a")),
            "{keys:?}"
        );
        let stored: Position = super::super::record::read(&store, &position_key("db"))
            .unwrap()
            .unwrap();
        assert_eq!(stored.txid, 20);
        assert_eq!(spool.bytes(), 0);
        assert!(spool.pending().unwrap().is_empty());
    }

    #[test]
    fn what_a_killed_round_left_goes_and_the_bound_refuses_the_next_segment() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("db");
        let spool = Spool::open(&at, "db", 8).unwrap();
        spool_one(&spool, 1, 1, b"0123456789");
        // Half-written: a segment never renamed, a position whose segment never got its name.
        fs::write(at.join("g/x.seg.zst.tmp"), b"half").unwrap();
        fs::write(
            at.join("g/0000000000000002-0000000000000002-0000000001000.position.json"),
            b"{}",
        )
        .unwrap();
        // Dropped uncommitted: nothing left behind.
        drop(spool.writer("db.wal/g/0000000000000003-0000000000000003-0000000001000.seg.zst"));
        let again = Spool::open(&at, "db", 8).unwrap();
        let left: Vec<String> = again
            .files()
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(again.bytes(), 10);
        let e = again
            .writer("db.wal/g/x.seg.zst")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("its bound") && e.contains("continuous_spool_max"),
            "{e}"
        );
    }
}
