//! The bot's own state in SQLite: opening (WAL, busy timeout), ordered migrations, and
//! one submodule per table group.

pub mod alerts;
pub mod approvals;
pub mod audit;
pub mod catalog;
pub mod chat_channels;
pub mod chat_links;
pub mod damage;
pub mod drills;
pub mod history;
pub mod hooks;
pub mod incidents;
pub mod jobs;
pub mod recovery;
pub mod runbooks;
pub mod watch;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

/// Schema changes, applied in order; `PRAGMA user_version` counts how many have run.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: jobs, backup catalog, audit log
    "CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        actor TEXT NOT NULL,
        state TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        backup_id TEXT,
        message TEXT,
        detail TEXT,
        pid INTEGER NOT NULL
     );
     CREATE INDEX jobs_target ON jobs(target, started_at);
     CREATE INDEX jobs_state ON jobs(state);
     CREATE TABLE catalog (
        target TEXT NOT NULL,
        id TEXT NOT NULL,
        store TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        manifest TEXT NOT NULL,
        PRIMARY KEY (target, id)
     );
     CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL,
        detail TEXT
     );",
    // 2: restore approvals, and Slack events already handled
    "CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        target TEXT NOT NULL,
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        message_ref TEXT,
        requester TEXT NOT NULL,
        required INTEGER NOT NULL,
        plan TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        decided_at TEXT,
        approvers TEXT NOT NULL DEFAULT '[]',
        denied_by TEXT
     );
     CREATE INDEX approvals_status ON approvals(status, expires_at);
     CREATE TABLE chat_events (
        event_id TEXT PRIMARY KEY,
        received_at TEXT NOT NULL
     );",
    // 3: the watchdog's view of each target, so alerts survive restarts
    "CREATE TABLE watch (
        target TEXT PRIMARY KEY,
        conditions TEXT NOT NULL,
        bad_since TEXT,
        alerted_at TEXT
     );",
    // 4: when the watchdog first saw a target: due times before that are not missed
    "ALTER TABLE watch ADD COLUMN first_seen TEXT;",
    // 5: drills and their reports; incidents and their timelines; runbook runs, their
    // manual-step confirmations, and restore approvals a runbook run waits on
    "CREATE TABLE drills (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        backup_id TEXT,
        actor TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        rto_seconds REAL,
        rpo_seconds REAL,
        rto_objective_seconds REAL,
        rpo_objective_seconds REAL,
        problems TEXT NOT NULL DEFAULT '[]',
        report TEXT NOT NULL
     );
     CREATE INDEX drills_target ON drills(target, started_at);
     CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        channel TEXT,
        opened_by TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        closed_by TEXT,
        closed_at TEXT
     );
     CREATE TABLE incident_events (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL
     );
     CREATE INDEX incident_events_order ON incident_events(incident_id, at, id);
     CREATE TABLE runbook_runs (
        id INTEGER PRIMARY KEY,
        runbook TEXT NOT NULL,
        actor TEXT NOT NULL,
        channel TEXT,
        state TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        steps TEXT NOT NULL DEFAULT '[]',
        pid INTEGER NOT NULL
     );
     CREATE TABLE runbook_confirmations (
        run_id INTEGER NOT NULL REFERENCES runbook_runs(id),
        step INTEGER NOT NULL,
        decision TEXT NOT NULL,
        actor TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (run_id, step)
     );
     ALTER TABLE approvals ADD COLUMN runbook_run INTEGER;",
    // 6: the status page reads, for every target at once, its newest jobs of each kind
    // and its backups by time (the charts)
    "CREATE INDEX catalog_target_created ON catalog(target, created_at);
     CREATE INDEX jobs_target_kind ON jobs(target, kind, id);",
    // 7: one alert per target and problem, from opening to its recovery notice; the open
    // problems of the old per-target watch state carry over without being posted again
    "CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        posted_at TEXT,
        repeats INTEGER NOT NULL DEFAULT 0,
        facets TEXT NOT NULL DEFAULT '{}',
        messages TEXT NOT NULL DEFAULT '[]',
        closed_at TEXT,
        closed_by TEXT,
        recovery_posted_at TEXT
     );
     CREATE UNIQUE INDEX alerts_open ON alerts(target, kind) WHERE closed_at IS NULL;
     CREATE INDEX alerts_target ON alerts(target, closed_at);
     INSERT INTO alerts (target, kind, opened_at, posted_at)
        SELECT target, 'backup', coalesce(bad_since, alerted_at), alerted_at FROM watch
        WHERE alerted_at IS NOT NULL
          AND (',' || conditions || ',' LIKE '%,missed,%' OR ',' || conditions || ',' LIKE '%,failed,%');
     INSERT INTO alerts (target, kind, opened_at, posted_at)
        SELECT target, 'verify', coalesce(bad_since, alerted_at), alerted_at FROM watch
        WHERE alerted_at IS NOT NULL AND ',' || conditions || ',' LIKE '%,verify_failed,%';
     INSERT INTO alerts (target, kind, opened_at, posted_at)
        SELECT target, 'drill', coalesce(bad_since, alerted_at), alerted_at FROM watch
        WHERE alerted_at IS NOT NULL AND (conditions LIKE '%drill_failed%' OR conditions LIKE '%drill_stale%');
     INSERT INTO alerts (target, kind, opened_at, posted_at)
        SELECT target, 'too_long', coalesce(bad_since, alerted_at), alerted_at FROM watch
        WHERE alerted_at IS NOT NULL AND conditions LIKE '%too_long%';",
    // 8: the state of serve's outgoing chat connections (Slack Socket Mode, Discord
    // Gateway), for /healthz, /metrics and `lifeboat status`
    "CREATE TABLE chat_links (
        platform TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        state TEXT NOT NULL,
        since TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL
     );",
    // 9: alert channels lifeboat cannot post to, for /healthz and `lifeboat status`
    "CREATE TABLE chat_channels (
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        problem TEXT NOT NULL,
        since TEXT NOT NULL,
        PRIMARY KEY (platform, channel)
     );",
    // 10: target hooks: the after_* commands owed once a before_* started (cleared when
    // they ran, so a crash in between leaves them for the next start), and every hook
    // command's outcome and output tail, kept with its job
    "CREATE TABLE hooks_owed (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        action TEXT NOT NULL,
        job_id INTEGER,
        backup_id TEXT,
        commands TEXT NOT NULL,
        since TEXT NOT NULL,
        pid INTEGER NOT NULL
     );
     CREATE INDEX hooks_owed_target ON hooks_owed(target);
     CREATE TABLE hook_runs (
        id INTEGER PRIMARY KEY,
        job_id INTEGER,
        target TEXT NOT NULL,
        phase TEXT NOT NULL,
        command TEXT NOT NULL,
        outcome TEXT NOT NULL,
        tail TEXT NOT NULL,
        at TEXT NOT NULL,
        owed_since TEXT,
        posted INTEGER NOT NULL DEFAULT 1
     );
     CREATE INDEX hook_runs_job ON hook_runs(job_id);
     CREATE INDEX hook_runs_unposted ON hook_runs(posted) WHERE posted = 0;",
];

/// How often a long-running `serve` checks its whole state database for damage.
const DAMAGE_CHECK_EVERY: Duration = Duration::from_secs(60);

/// A shared handle on the state database. Cheap to clone; one connection per process,
/// serialized by a mutex (statements are short; data paths never hold it).
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("state database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Sql(#[source] rusqlite::Error),
    /// SQLite found the file damaged; the CLI adds how to recover with the config's names.
    #[error("the state database is damaged ({detail})")]
    Damaged {
        detail: String,
        #[source]
        source: Option<rusqlite::Error>,
    },
    #[error("state database {path}: {message}")]
    Io { path: String, message: String },
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        if damage::is_damage(&e) {
            damage::note(&e.to_string());
            return DbError::Damaged {
                detail: e.to_string(),
                source: Some(e),
            };
        }
        DbError::Sql(e)
    }
}

impl DbError {
    pub fn is_damage(&self) -> bool {
        matches!(self, DbError::Damaged { .. })
    }
}

impl Db {
    /// Open (creating if needed) the state database and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Io {
                path: path.display().to_string(),
                message: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let open_err = |source| DbError::Open {
            path: path.display().to_string(),
            source,
        };
        // Processes starting together on a new database (serve and a CLI, two CLIs) meet
        // while one of them switches it to WAL or migrates it; SQLite answers "locked" at
        // once there instead of waiting, so the whole opening is tried again for a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match Db::try_open(path) {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) if damage::is_damage(&e) => return Err(DbError::from(e)),
                other => return other.map_err(open_err),
            }
        }
    }

    fn try_open(path: &Path) -> rusqlite::Result<Db> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let db = Db {
            conn: Arc::new(Mutex::new(conn)),
        };
        db.migrate()?;
        Ok(db)
    }

    /// Move WAL checkpoints off the request path, for a long-running `serve`: the shared
    /// connection stops checkpointing on commit (a checkpoint fsyncs, and a commit that
    /// triggers one holds every other request waiting on the connection), and a thread
    /// with a connection of its own checkpoints every `every` instead. Readers and
    /// writers carry on meanwhile; the WAL is bounded by what one interval writes.
    pub fn checkpoint_in_background(&self, path: &Path, every: Duration) -> Result<(), DbError> {
        let checkpointer = Connection::open(path).map_err(|source| DbError::Open {
            path: path.display().to_string(),
            source,
        })?;
        checkpointer.busy_timeout(Duration::from_secs(10))?;
        self.lock().pragma_update(None, "wal_autocheckpoint", 0)?;
        let state = path.to_path_buf();
        std::thread::Builder::new()
            .name("lifeboat-checkpoint".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    // Damage shows up here even when nothing asks /healthz.
                    damage::check(&state, DAMAGE_CHECK_EVERY);
                    let r = checkpointer
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
                    if let Err(e) = r {
                        tracing::warn!("checkpointing the state database: {e}");
                    }
                }
            })
            .map_err(|e| DbError::Io {
                path: path.display().to_string(),
                message: format!("cannot start the checkpoint thread: {e}"),
            })?;
        Ok(())
    }

    /// A private in-memory database, for unit tests.
    pub fn in_memory() -> Db {
        let conn = Connection::open_in_memory().expect("in-memory sqlite");
        let db = Db {
            conn: Arc::new(Mutex::new(conn)),
        };
        db.migrate().expect("migrations apply");
        db
    }

    fn migrate(&self) -> rusqlite::Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable: SQLite rolls
        // back any open statement, so poisoning carries no meaning here.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A cheap query that proves the database answers (for `/healthz`).
    pub fn ping(&self) -> Result<(), DbError> {
        self.lock()
            .query_row("SELECT count(*) FROM jobs", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With background checkpoints, commits on the shared connection never checkpoint,
    /// and the background thread gets every frame into the database file.
    /// Many processes' worth of connections opening a new database at once all succeed.
    #[test]
    fn opening_a_new_database_from_many_places_at_once_succeeds() {
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.db");
            let threads: Vec<_> = (0..12)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || Db::open(&path).map(|db| db.ping()))
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap().unwrap();
            }
        }
    }

    #[test]
    fn background_checkpoints_take_over_from_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let db = Db::open(&path).unwrap();
        db.checkpoint_in_background(&path, Duration::from_millis(50))
            .unwrap();
        let auto: i64 = db
            .lock()
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 0);
        for i in 0..2000 {
            let detail = format!("row {i} {}", "x".repeat(200));
            db.audit("cli:t", "test", None, "ok", Some(&detail))
                .unwrap();
        }
        // Rows reach the database file itself only through a checkpoint (400 KiB of
        // them is below SQLite's own 4 MiB automatic threshold, so only ours counts).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < 400_000 {
            assert!(std::time::Instant::now() < deadline, "never checkpointed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
