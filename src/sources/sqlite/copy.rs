//! An online, consistent copy of a SQLite database on this host: the file's own bytes
//! while a read transaction pins them, or SQLite's backup API; never a plain unguarded
//! file copy.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::describe;
use crate::error::{Error, Result};
use crate::pipe::ProgressReader;
use crate::progress::JobContext;
use crate::stores::manifest::SqliteFacts;

/// How a backup read the database (reported in the job's phases and kept for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The database file itself, read while a read transaction kept it unchanged.
    Pinned,
    /// A copy made with the backup API into scratch space (when pinning was not possible).
    Copied,
}

/// Write the live database at `src` into `content` as of one transaction and return the
/// facts of exactly those bytes. The application may keep reading and writing meanwhile.
///
/// The fast way needs no copy: a read transaction pins the file (see [`pin`]) and its bytes
/// stream straight into `content` while `quick_check` and the row counts run beside them
/// on the pinning connection. When the file cannot be pinned, the backup API copies the
/// database into `scratch` first.
pub fn backup(
    src: &Path,
    scratch: &Path,
    content: &mut dyn Write,
    write_err: &dyn Fn(std::io::Error) -> Error,
    ctx: &JobContext,
) -> Result<(SqliteFacts, Method)> {
    check_source(src)?;
    if let Some(pinned) = pin(src)? {
        ctx.progress
            .phase("reading the database (pinned at one transaction)");
        let facts = stream_and_describe(pinned.conn, src, pinned.bytes, content, write_err, ctx)?;
        return Ok((facts, Method::Pinned));
    }
    let copy = scratch.join("copy.sqlite");
    let bytes = copy_with_backup_api(src, &copy, ctx)?;
    let conn = Connection::open_with_flags(&copy, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| Error::sqlite("opening the copy", e))?;
    ctx.progress.phase("compressing and storing");
    let facts = stream_and_describe(conn, &copy, bytes, content, write_err, ctx)?;
    Ok((facts, Method::Copied))
}

/// A read transaction under which the database file holds exactly the snapshot it reads,
/// and will not change until the transaction ends.
pub struct Pinned {
    conn: Connection,
    /// page_size × page_count of the snapshot: the prefix of the file that is the database.
    bytes: u64,
}

impl Pinned {
    /// Pin through `conn` now. Only a pin when every WAL frame is already in the file and
    /// no writer can add one before the read starts: the caller holds the write lock and
    /// has just checkpointed the whole log (continuous replication's base copies).
    pub fn begin(conn: Connection, src: &Path) -> Result<Option<Pinned>> {
        Ok(begin_read(&conn, src)?.map(|bytes| Pinned { conn, bytes }))
    }

    /// Stream the pinned file into `content` and return the facts of those bytes; the
    /// read transaction ends when it is done.
    pub fn stream(
        self,
        src: &Path,
        content: &mut dyn Write,
        write_err: &dyn Fn(std::io::Error) -> Error,
        ctx: &JobContext,
    ) -> Result<SqliteFacts> {
        stream_and_describe(self.conn, src, self.bytes, content, write_err, ctx)
    }
}

/// How often to try to bring a WAL database's file up to date before giving up on pinning.
const PIN_ATTEMPTS: u32 = 20;

/// Pin the database file, or say why not with `None` (then copy it another way).
///
/// Rollback-journal databases: a read transaction's shared lock keeps every writer out of
/// the file until it ends (as a backup-API copy does for its whole length).
/// WAL databases: writers never touch the file, only checkpoints do, and SQLite lets no
/// checkpoint write into the file while a reader reads from the file alone, which a
/// reader does when it starts with every WAL frame already checkpointed. So: take the
/// write lock for a moment (no new frames), checkpoint the rest, start the read, release
/// the write lock. Writers wait only for that one checkpoint; afterwards they append to
/// the WAL as usual while the file stays as it was. A reader elsewhere that still needs
/// old frames keeps the checkpoint from finishing; after a few tries `None` is returned.
pub fn pin(src: &Path) -> Result<Option<Pinned>> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // No write access (needed to checkpoint, and to lock a WAL database): copy instead.
    let Ok(conn) = Connection::open_with_flags(src, flags) else {
        return Ok(None);
    };
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(|e| Error::sqlite("setting a busy timeout", e))?;
    let mode: String = match conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)) {
        Ok(mode) => mode,
        Err(e) if is_read_only(&e) => return Ok(None),
        Err(e) => return Err(not_a_database(src, e)),
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Ok(begin_read(&conn, src)?.map(|bytes| Pinned { conn, bytes }));
    }
    // Most of the checkpointing happens here, before anyone is made to wait.
    if checkpoint(&conn) == Checkpoint::Impossible {
        return Ok(None);
    }
    let Ok(locker) = Connection::open_with_flags(src, flags) else {
        return Ok(None);
    };
    locker
        .busy_timeout(Duration::from_secs(5))
        .map_err(|e| Error::sqlite("setting a busy timeout", e))?;
    for attempt in 0..PIN_ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        // A write transaction of the application that outlasts the timeout: copy instead.
        if locker.execute_batch("BEGIN IMMEDIATE").is_err() {
            return Ok(None);
        }
        // With the write lock held no checkpoint can start, so one that is running (the
        // application's automatic one, after its last commit) is about to end: wait it out,
        // up to a second (longer on a loaded machine than on a quiet one; the application's
        // writers wait that long at most, within their busy timeout).
        let mut state = checkpoint(&conn);
        for _ in 0..200 {
            if state != Checkpoint::Busy {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            state = checkpoint(&conn);
        }
        let read = (state == Checkpoint::Complete).then(|| begin_read(&conn, src));
        let _ = locker.execute_batch("ROLLBACK");
        match (read, state) {
            (Some(read), _) => return Ok(read?.map(|bytes| Pinned { conn, bytes })),
            (None, Checkpoint::Impossible) => return Ok(None),
            // A reader still needs frames the file would lose: perhaps it ends soon.
            (None, _) => {}
        }
    }
    Ok(None)
}

/// What a passive checkpoint of a WAL database achieved.
#[derive(Debug, PartialEq, Eq)]
enum Checkpoint {
    /// Every frame of the WAL is now in the database file.
    Complete,
    /// Another connection's checkpoint was running.
    Busy,
    /// Some frames are still needed by a reader and could not be copied.
    Behind,
    /// Checkpointing is not possible at all (a read-only file, say).
    Impossible,
}

fn checkpoint(conn: &Connection) -> Checkpoint {
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match result {
        Ok((0, log, done)) if log == done => Checkpoint::Complete,
        Ok((0, _, _)) => Checkpoint::Behind,
        Ok(_) => Checkpoint::Busy,
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            Checkpoint::Busy
        }
        Err(_) => Checkpoint::Impossible,
    }
}

/// Start the read transaction that pins the file; its database size in bytes (`None`, and
/// no transaction, when the file is read-only).
fn begin_read(conn: &Connection, src: &Path) -> Result<Option<u64>> {
    let read = || -> rusqlite::Result<(u64, u64)> {
        conn.execute_batch("BEGIN")?;
        // The first read starts the transaction and its snapshot.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        let size = conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))?;
        let count = conn.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))?;
        Ok((size as u64, count as u64))
    };
    let (page_size, page_count) = match read() {
        Ok(v) => v,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return if is_read_only(&e) {
                Ok(None)
            } else {
                Err(not_a_database(src, e))
            };
        }
    };
    Ok(Some(page_size * page_count))
}

fn is_read_only(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly)
            | Some(rusqlite::ErrorCode::CannotOpen)
            | Some(rusqlite::ErrorCode::PermissionDenied)
    )
}

/// Stream the first `bytes` bytes of `file` into `content` while `conn`, whose read
/// transaction keeps those bytes fixed, gathers their facts on a thread of its own.
fn stream_and_describe(
    conn: Connection,
    file: &Path,
    bytes: u64,
    content: &mut dyn Write,
    write_err: &dyn Fn(std::io::Error) -> Error,
    ctx: &JobContext,
) -> Result<SqliteFacts> {
    ctx.progress.total(Some(bytes));
    let interrupt = conn.get_interrupt_handle();
    std::thread::scope(|scope| {
        let describing = scope.spawn(move || {
            let facts = describe(&conn);
            (conn, facts) // the connection, and so the pin, lives until the stream is done
        });
        let streamed = stream_file(file, bytes, content, write_err, ctx);
        if streamed.is_err() {
            interrupt.interrupt(); // no point checking bytes that will not be kept
        }
        let described = describing.join();
        streamed?;
        let (conn, facts) =
            described.map_err(|_| Error::Failed("checking the database copy crashed".into()))?;
        drop(conn); // ends the read transaction
        let facts = facts?;
        if facts.page_size * facts.page_count != bytes {
            return Err(Error::Failed(format!(
                "the database changed size while it was read ({} bytes expected, {} found)",
                bytes,
                facts.page_size * facts.page_count
            )));
        }
        Ok(facts)
    })
}

fn stream_file(
    file: &Path,
    bytes: u64,
    content: &mut dyn Write,
    write_err: &dyn Fn(std::io::Error) -> Error,
    ctx: &JobContext,
) -> Result<()> {
    // The file may end before the database's last pages when those are free pages SQLite
    // never wrote; SQLite reads them as zeros, and so does the backup.
    let held = super::held::open_here(file);
    let reader: Box<dyn Read + Send + '_> = match held.as_deref() {
        Some(held) => {
            advise_sequential(held);
            Box::new(ReadAt { file: held, at: 0 })
        }
        None => {
            let opened = std::fs::File::open(file)
                .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
            advise_sequential(&opened);
            Box::new(opened)
        }
    };
    let reader = reader.chain(std::io::repeat(0)).take(bytes);
    let mut reader = ProgressReader::new(reader, ctx.progress.clone(), ctx.cancel.clone());
    let mut buf = vec![0u8; crate::pipe::CHUNK];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
        if n == 0 {
            return Ok(());
        }
        content.write_all(&buf[..n]).map_err(write_err)?;
    }
}

/// Reads a file from the start by position, through a descriptor it does not own.
struct ReadAt<'a> {
    file: &'a std::fs::File,
    at: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Tell the kernel the file is read once from start to end: larger read-ahead, and its
/// pages need not crowd the application's out of the cache.
fn advise_sequential(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // Only a hint: failure changes nothing but speed.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
        }
    }
}

/// Copy the live database at `src` into the new file `dest` with the backup API; the
/// copy's size in bytes.
fn copy_with_backup_api(src: &Path, dest: &Path, ctx: &JobContext) -> Result<u64> {
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::sqlite(format!("cannot open {}", src.display()), e))?;
    source
        .busy_timeout(Duration::from_secs(30))
        .map_err(|e| Error::sqlite("setting a busy timeout", e))?;
    let pages = source
        .query_row("PRAGMA page_count", [], |r| {
            r.get::<_, i64>(0).map(|v| v as u64)
        })
        .map_err(|e| not_a_database(src, e))?;
    let page_size = source
        .query_row("PRAGMA page_size", [], |r| {
            r.get::<_, i64>(0).map(|v| v as u64)
        })
        .map_err(|e| not_a_database(src, e))?;
    ctx.progress.phase("copying database");
    ctx.progress.total(Some(pages * page_size));

    let mut copy = Connection::open(dest)
        .map_err(|e| Error::sqlite(format!("cannot create {}", dest.display()), e))?;
    // The copy is scratch: durability of this file does not matter, speed does.
    copy.pragma_update(None, "journal_mode", "OFF")?;
    copy.pragma_update(None, "synchronous", "OFF")?;
    run_backup(&source, &mut copy, ctx)?;
    drop(source);
    ctx.progress.advance(pages * page_size);
    ctx.cancel.check().map_err(|e| Error::io("copying", e))?;
    let bytes = copy.query_row(
        "SELECT page_size * page_count FROM pragma_page_size, pragma_page_count",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    Ok(bytes)
}

/// One backup step of all pages: stepping in slices restarts whenever the application
/// writes, which never finishes on a busy database; a single step reads one snapshot.
fn run_backup(source: &Connection, copy: &mut Connection, _ctx: &JobContext) -> Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let backup = Backup::new(source, copy).map_err(|e| Error::sqlite("starting the copy", e))?;
    for _ in 0..600 {
        match backup.step(-1) {
            Ok(StepResult::Done) => return Ok(()),
            Ok(StepResult::More) => continue,
            Ok(StepResult::Busy) | Ok(StepResult::Locked) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(_) => continue,
            Err(e) => return Err(Error::sqlite("copying the database", e)),
        }
    }
    Err(Error::Failed(
        "copying the database: it stayed locked for a minute; is a long write transaction open?"
            .into(),
    ))
}

fn check_source(src: &Path) -> Result<()> {
    if super::held::open_here(src).is_some() {
        return Ok(()); // open here already; opening and closing it again drops the locks
    }
    match std::fs::File::open(src) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Failed(format!(
            "the database {} does not exist",
            src.display()
        ))),
        Err(e) => Err(Error::Failed(format!(
            "cannot read the database {}: {e}",
            src.display()
        ))),
    }
}

fn not_a_database(path: &Path, e: rusqlite::Error) -> Error {
    Error::Failed(format!(
        "{} is not a usable SQLite database: {e}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::sqlite::check_copy;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A database whose two tables always hold the same number of rows (both grow in one
    /// transaction), so any copy that mixes two moments shows.
    fn create(path: &Path, wal: bool) {
        let conn = Connection::open(path).unwrap();
        if wal {
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, body BLOB);
             CREATE TABLE b (id INTEGER PRIMARY KEY, body BLOB);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 20000)
             INSERT INTO a SELECT x, randomblob(300) FROM c;
             INSERT INTO b SELECT id, body FROM a;",
        )
        .unwrap();
    }

    /// Keeps adding a row to both tables until told to stop; returns how many it added.
    fn writer(path: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let mut conn = Connection::open(&path).unwrap();
            conn.busy_timeout(Duration::from_secs(30)).unwrap();
            let mut added = 0;
            while !stop.load(Ordering::Relaxed) {
                let tx = conn.transaction().unwrap();
                tx.execute_batch(
                    "INSERT INTO a (body) VALUES (randomblob(3000));
                     INSERT INTO b (body) VALUES (randomblob(3000));",
                )
                .unwrap();
                tx.commit().unwrap();
                added += 1;
            }
            added
        })
    }

    /// Back up `src`, write the bytes to `out` and check them against their own facts.
    fn backup_and_check(src: &Path, scratch: &Path, out: &Path) -> (SqliteFacts, Method) {
        let mut bytes = Vec::new();
        let write_err = |e| Error::io("test", e);
        let (facts, method) =
            backup(src, scratch, &mut bytes, &write_err, &JobContext::silent()).unwrap();
        assert_eq!(bytes.len() as u64, facts.page_size * facts.page_count);
        std::fs::write(out, &bytes).unwrap();
        assert_eq!(facts.quick_check, "ok");
        assert_eq!(check_copy(out, &facts, true).unwrap(), Vec::<String>::new());
        assert_eq!(facts.tables["a"], facts.tables["b"], "a copy of one moment");
        (facts, method)
    }

    #[test]
    fn a_busy_wal_database_is_read_in_place_as_of_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        create(&db, true);
        let stop = Arc::new(AtomicBool::new(false));
        let writing = writer(&db, stop.clone());
        // The backup starts once the writer has committed, so it meets a busy database.
        let look = Connection::open(&db).unwrap();
        while look
            .query_row("SELECT count(*) FROM a", [], |r| r.get::<_, i64>(0))
            .unwrap()
            <= 20000
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (facts, method) = backup_and_check(&db, dir.path(), &dir.path().join("copy.db"));
        stop.store(true, Ordering::Relaxed);
        let added = writing.join().unwrap();
        assert_eq!(method, Method::Pinned);
        assert!(
            facts.tables["a"] > 20000,
            "rows written before the backup are in it"
        );
        assert!(added > 0);
        // Nothing was left behind next to the database but SQLite's own files.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with("live.db"))
            .collect();
        names.sort();
        assert_eq!(names, ["copy.db"], "no scratch copy was made");
    }

    #[test]
    fn writers_go_on_while_a_wal_database_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        create(&db, true);
        let pinned = pin(&db)
            .unwrap()
            .expect("an idle WAL database can be pinned");
        let before = std::fs::read(&db).unwrap();
        let writer = Connection::open(&db).unwrap();
        writer.busy_timeout(Duration::from_millis(500)).unwrap();
        for _ in 0..50 {
            writer
                .execute("INSERT INTO a (body) VALUES (randomblob(50000))", [])
                .unwrap();
        }
        // An automatic checkpoint would have run by now; it must not have touched the file.
        writer
            .execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
            .unwrap();
        assert!(
            std::fs::read(&db).unwrap() == before,
            "the pinned file changed"
        );
        assert_eq!(pinned.bytes, before.len() as u64);
        drop(pinned);
        writer
            .execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
            .unwrap();
        assert!(
            std::fs::read(&db).unwrap() != before,
            "checkpoints resume afterwards"
        );
    }

    #[test]
    fn a_reader_holding_old_frames_makes_the_backup_copy_instead() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        create(&db, true);
        // An application reader keeps an old snapshot open while newer rows are written:
        // the WAL cannot be checkpointed completely, so the file cannot be pinned.
        let reader = Connection::open(&db).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM a;")
            .unwrap();
        let writer = Connection::open(&db).unwrap();
        writer
            .execute_batch(
                "INSERT INTO a (body) VALUES (randomblob(100));
                 INSERT INTO b (body) VALUES (randomblob(100));",
            )
            .unwrap();
        let (facts, method) = backup_and_check(&db, dir.path(), &dir.path().join("copy.db"));
        assert_eq!(method, Method::Copied);
        assert_eq!(
            facts.tables["a"], 20001,
            "the newest committed rows are in the copy"
        );
        drop(reader);
    }

    #[test]
    fn a_rollback_journal_database_is_pinned_by_its_shared_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        create(&db, false);
        let (facts, method) = backup_and_check(&db, dir.path(), &dir.path().join("copy.db"));
        assert_eq!(method, Method::Pinned);
        assert_eq!(facts.tables["a"], 20000);
    }
}
