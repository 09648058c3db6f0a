//! The shipping itself, on the replicator's two connections to the database:
//!
//! - `reader` holds a read transaction almost all the time. While it does, no checkpoint
//!   can copy frames it does not see into the database file, and SQLite cannot restart the
//!   log over frames lifeboat has not read (a restart needs every reader off the log).
//! - `locker` takes the write lock for a moment when lifeboat checkpoints: with no
//!   writer, the rest of the log is shipped, the read transaction is ended, a PASSIVE
//!   checkpoint runs, and a new read transaction starts before writers are let go.
//!
//! So the log only changes under lifeboat in one way it can tell apart: when the
//! checkpoint before the current read transaction was complete, a writer may start the
//! log over (new salts) once everything in it is in the database file — and everything in
//! it had been shipped. Any other change of the log (other salts without that, a log cut
//! short) means something happened that lifeboat did not see: a new generation.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};

use super::record::{Position, position_key, write};
use super::segment::{SegmentHeader, SegmentName, SegmentWriter};
use super::spool::Spool;
use crate::error::{Error, Result};
use crate::sources::sqlite::wal::{self, Cursor, Frames, WalHeader, read_header, scan};
use crate::stores::Store;

/// Checkpoint once this many frames of the log were shipped (about 4 MiB of 4 KiB pages).
pub const CHECKPOINT_FRAMES: u64 = 1000;

/// What one round found.
pub enum Round {
    /// Transactions shipped (0: nothing new).
    Shipped(u64),
    /// The log changed in a way lifeboat did not see happen: why.
    Reset(String),
}

pub struct Shipper {
    pub target: String,
    pub db: PathBuf,
    pub objects: Arc<dyn Store>,
    reader: Connection,
    locker: Connection,
    pub generation: String,
    pub txid: u64,
    pub cursor: Option<Cursor>,
    /// Whether the log may have been started over during this read transaction without
    /// anything lost (the checkpoint before it was complete, everything shipped).
    restart_ok: bool,
    pub replicated_to: DateTime<Utc>,
    pub holder: String,
    /// Where each round's segment is made durable before it goes to the store.
    pub spool: Spool,
    /// Why the last round could not spool (the spool's bound, a full disk): said in the
    /// position, so a bot on another host sees it too.
    pub stuck: Option<String>,
    /// The database file kept open for this process's own reads of it as long as the
    /// connections are (declared after them, so dropped after them); see
    /// [`held`](crate::sources::sqlite::held).
    _db_file: crate::sources::sqlite::held::Held,
    /// SQLite's shared index, open for the same reason and as long.
    shm: Option<File>,
}

fn open(db: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::sqlite(format!("opening {}", db.display()), e))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| Error::sqlite("setting a busy timeout", e))?;
    // Never checkpoint from these connections but on purpose: not after commits, and not
    // when closing as the last connection (that would move frames never shipped into the
    // file and delete the log, so the next replicator could not resume).
    conn.execute_batch("PRAGMA wal_autocheckpoint=0")
        .map_err(|e| Error::sqlite(format!("opening {}", db.display()), e))?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map_err(|e| Error::sqlite(format!("opening {}", db.display()), e))?;
    Ok(conn)
}

fn shm_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-shm");
    PathBuf::from(p)
}

/// Refuse a database that is not in WAL mode, saying how to switch; never switches it.
pub fn check_wal_mode(conn: &Connection, db: &Path) -> Result<()> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| Error::sqlite(format!("reading the journal mode of {}", db.display()), e))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} is not in WAL mode (its journal_mode is {mode}); continuous replication ships the write-ahead log, so switch the database with `PRAGMA journal_mode=WAL` (kept in the file; the application's connections then use it too)",
        db.display()
    )))
}

impl Shipper {
    pub fn open(
        target: &str,
        db: &Path,
        objects: Arc<dyn Store>,
        spool: Spool,
        holder: String,
    ) -> Result<Shipper> {
        if !db.is_file() {
            return Err(Error::Usage(format!(
                "{target}: {} does not exist",
                db.display()
            )));
        }
        let reader = open(db)?;
        check_wal_mode(&reader, db)?;
        Ok(Shipper {
            target: target.to_string(),
            db: db.to_path_buf(),
            objects,
            locker: open(db)?,
            reader,
            generation: String::new(),
            txid: 0,
            cursor: None,
            restart_ok: false,
            replicated_to: Utc::now(),
            holder,
            spool,
            stuck: None,
            _db_file: crate::sources::sqlite::held::Held::open(db)
                .map_err(|e| Error::io(format!("opening {}", db.display()), e))?,
            shm: File::open(shm_path(db)).ok(),
        })
    }

    /// Take the write lock: no transaction commits until [`unlock`](Self::unlock).
    pub fn lock_writers(&self) -> Result<()> {
        self.locker
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| Error::sqlite("waiting for the application's write transaction", e))
    }

    pub fn unlock(&self) {
        let _ = self.locker.execute_batch("ROLLBACK");
    }

    fn wal_file(&self) -> Result<Option<File>> {
        match File::open(wal::wal_path(&self.db)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("opening the WAL", e)),
        }
    }

    /// The log's header now (`None`: no log).
    pub fn header(&self) -> Result<Option<WalHeader>> {
        match self.wal_file()? {
            Some(f) => read_header(&f).map_err(|e| Error::io("reading the WAL", e)),
            None => Ok(None),
        }
    }

    /// Whether the log still is the one `at` describes, up to its frames, unchanged.
    pub fn still_at(&self, at: &Cursor) -> Result<bool> {
        let Some(file) = self.wal_file()? else {
            return Ok(false);
        };
        let Some(header) = read_header(&file).map_err(|e| Error::io("reading the WAL", e))? else {
            return Ok(false);
        };
        if !header.same_log(&at.header) {
            return Ok(false);
        }
        if at.frames == 0 {
            return Ok(true);
        }
        let mut last = Cursor {
            header,
            frames: at.frames - 1,
            checksum: [0, 0],
        };
        // The last shipped frame's own checksum fields must be what was recorded.
        use std::os::unix::fs::FileExt;
        let mut head = [0u8; 24];
        if file
            .read_exact_at(&mut head, header.frame_offset(last.frames))
            .is_err()
        {
            return Ok(false);
        }
        let word = |i: usize| u32::from_be_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        last.checksum = [word(16), word(20)];
        Ok(word(8) == header.salt1 && word(12) == header.salt2 && last.checksum == at.checksum)
    }

    /// The end of the committed log now: where a new generation's shipping starts (its
    /// base copy holds everything before it). Call with the write lock held.
    pub fn committed_end(&self) -> Result<Option<Cursor>> {
        let Some(file) = self.wal_file()? else {
            return Ok(None);
        };
        let Some(header) = read_header(&file).map_err(|e| Error::io("reading the WAL", e))? else {
            return Ok(None);
        };
        let found = scan(&file, Cursor::start(header), u64::MAX)
            .map_err(|e| Error::io("reading the WAL", e))?;
        Ok(Some(found.committed))
    }

    /// One round: spool what was committed since the last, as one segment (uploaded to
    /// the store by [`delivery`](super::delivery)). Only frames
    /// SQLite's index counted as committed when the round began are read (or, when the
    /// index cannot be read, those already in the file), so every transaction shipped
    /// was committed by then and every one committed before is shipped: that moment is
    /// the segment's time and `replicated_to`.
    pub fn ship(&mut self) -> Result<Round> {
        let Some(file) = self.wal_file()? else {
            return self.nothing_new(Utc::now(), None);
        };
        let header = read_header(&file).map_err(|e| Error::io("reading the WAL", e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("reading the WAL", e))?
            .len();
        let indexed = header
            .as_ref()
            .zip(self.shm.as_ref())
            .and_then(|(h, shm)| wal::committed_in_index(shm, h));
        let seen_from = Utc::now();
        let from = match (header, self.cursor) {
            (Some(h), Some(c)) if h.same_log(&c.header) => c,
            (Some(h), _) if self.restart_ok => Cursor::start(h),
            (None, None) => return self.nothing_new(seen_from, None),
            (None, _) if self.restart_ok => {
                return self.nothing_new(seen_from, self.cursor);
            }
            (None, Some(_)) => {
                return Ok(Round::Reset(
                    "the WAL was truncated by another process (a TRUNCATE checkpoint) before lifeboat could hold it".into(),
                ));
            }
            (Some(_), _) => {
                return Ok(Round::Reset(
                    "the WAL was started over by another process (its salts changed) while lifeboat did not hold it".into(),
                ));
            }
        };
        let limit = indexed.unwrap_or_else(|| from.header.frames_in(size));
        let found = scan(&file, from, limit).map_err(|e| Error::io("reading the WAL", e))?;
        if found.transactions == 0 {
            return self.nothing_new(seen_from, Some(from));
        }
        let seen = seen_from;
        let (first, last) = (self.txid + 1, self.txid + found.transactions);
        let key = SegmentName::key_for(
            &self.target,
            &self.generation,
            first,
            last,
            seen.timestamp_millis(),
        );
        let header = SegmentHeader {
            format: 1,
            generation: self.generation.clone(),
            first_txid: first,
            last_txid: last,
            page_size: from.header.page_size,
            seen_ms: seen.timestamp_millis(),
            marks: Vec::new(),
        };
        let spool_dir = self.spool.dir.clone();
        let write_err = |e| {
            Error::io(
                format!(
                    "spooling transactions {first} to {last} into {} (nothing after transaction {} is checkpointed; the WAL keeps it until it can be spooled)",
                    spool_dir.display(),
                    first - 1
                ),
                e,
            )
        };
        let object = self.spool.writer(&key)?;
        let mut segment = SegmentWriter::new(object, &header).map_err(write_err)?;
        let mut frames = Frames::new(&file, from, found.committed.frames)
            .map_err(|e| Error::io("reading the WAL", e))?;
        while let Some(f) = frames
            .next_frame()
            .map_err(|e| Error::io("reading the WAL", e))?
        {
            segment
                .frame(f.page_no, f.commit_pages, f.page)
                .map_err(write_err)?;
        }
        if frames.cursor() != found.committed {
            // Committed frames do not change: a log that reads otherwise was replaced.
            return Ok(Round::Reset(
                "the WAL changed under lifeboat while it was read".into(),
            ));
        }
        let spooled = segment.finish().map_err(write_err)?;
        let after = Position {
            generation: self.generation.clone(),
            txid: last,
            wal: Some(found.committed),
            replicated_to: crate::units::time_text(seen_from),
            holder: self.holder.clone(),
            stuck: None,
        };
        let bytes = spooled.commit(&after)?;
        self.spool.added(bytes);
        self.txid = last;
        self.cursor = Some(found.committed);
        self.replicated_to = seen_from;
        Ok(Round::Shipped(found.transactions))
    }

    fn nothing_new(&mut self, seen_from: DateTime<Utc>, at: Option<Cursor>) -> Result<Round> {
        self.cursor = at.or(self.cursor);
        self.replicated_to = seen_from;
        Ok(Round::Shipped(0))
    }

    pub fn position(&self) -> Position {
        Position {
            generation: self.generation.clone(),
            txid: self.txid,
            wal: self.cursor,
            replicated_to: crate::units::time_text(self.replicated_to),
            holder: self.holder.clone(),
            stuck: self.stuck.clone(),
        }
    }

    /// Write the position to the store: only with nothing left in the spool, or the store
    /// would say more is in it than is.
    pub fn save_position(&self) -> Result<()> {
        write(
            self.objects.as_ref(),
            &position_key(&self.target),
            &self.position(),
        )
    }

    /// Whether enough of the log was shipped that lifeboat should checkpoint it.
    pub fn wants_checkpoint(&self) -> bool {
        self.cursor.is_some_and(|c| c.frames >= CHECKPOINT_FRAMES)
    }

    /// With the write lock held: end the read transaction, checkpoint (PASSIVE), start a
    /// new read transaction. Whether the checkpoint was complete.
    pub fn checkpoint_and_hold(&mut self) -> Result<bool> {
        let _ = self.reader.execute_batch("ROLLBACK");
        let done = self
            .reader
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map(|(busy, log, moved)| busy == 0 && log == moved)
            .unwrap_or(false);
        self.hold()?;
        self.restart_ok = done;
        Ok(done)
    }

    /// Start the read transaction that keeps the log from moving on unshipped.
    fn hold(&self) -> Result<()> {
        self.reader
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")
            .map_err(|e| Error::sqlite("starting the read transaction that holds the WAL", e))
    }

    /// Checkpoint on the way: take the write lock, ship the rest, checkpoint, hold again.
    pub fn checkpoint(&mut self) -> Result<Round> {
        self.lock_writers()?;
        let shipped = self.ship();
        let held = match &shipped {
            Ok(Round::Shipped(_)) => self.checkpoint_and_hold().map(|_| ()),
            _ => Ok(()),
        };
        self.unlock();
        held?;
        shipped
    }

    /// A connection for the base copy's pin.
    pub fn another_connection(&self) -> Result<Connection> {
        open(&self.db)
    }

    /// End the read transaction (stopping).
    /// Why the database at this target's path is no longer the file this shipper holds
    /// (a restore put another one in place, or it was removed), if it is not.
    pub fn replaced(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let held = self._db_file.identity().ok()?;
        match std::fs::metadata(&self.db) {
            Ok(m) if (m.dev(), m.ino()) == held => None,
            Ok(_) => Some(format!(
                "{} was replaced by another file (a restore put one in place, or it was moved)",
                self.db.display()
            )),
            Err(e) => Some(format!("{} is gone: {e}", self.db.display())),
        }
    }

    pub fn release(&self) {
        let _ = self.reader.execute_batch("ROLLBACK");
    }
}
