//! Shared helpers for the integration tests: a temporary lifeboat home with a config,
//! running the real binary, and real SQLite databases with real data.
// The benchmarks include these modules too, and each uses only a part of them.
#![allow(dead_code)]

pub mod block_kit;
pub mod btrfs;
pub mod config;
pub mod cutter;
pub mod duckdb;
pub mod fakes;
pub mod gateway;
pub mod history;
pub mod moto;
pub mod ports;
pub mod rclone;
pub mod sim;
pub mod socket_mode;
pub mod sshd;
pub mod state_lock;
pub mod stopped;
pub mod vault;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;

pub use config::ConfigBuilder;

/// A temporary directory laid out like a lifeboat installation.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["config", "data", "restores", "backups"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Home { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("config/lifeboat.toml")
    }

    /// A new home with `config` written as its config.
    pub fn with_config(config: &ConfigBuilder) -> Home {
        let home = Home::new();
        config.write(&home);
        home
    }

    /// Write a config with a local store `local` (under backups/) plus `targets` TOML.
    pub fn write_config(&self, targets: &str) {
        ConfigBuilder::new().raw(targets).write(self);
    }

    /// The phases jobs on `target` went through, oldest first, from the audit log.
    pub fn job_phases(&self, target: &str) -> Vec<String> {
        self.state_strings(&format!(
            "SELECT detail FROM audit WHERE target = '{target}' AND outcome = 'running' ORDER BY id"
        ))
    }

    /// The text column `sql` selects from the state database, row by row.
    pub fn state_strings(&self, sql: &str) -> Vec<String> {
        let db = Connection::open(self.path("var/lifeboat.db")).unwrap();
        let mut stmt = db.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Wait until `n` restore requests have their chat message saved: from then on a
    /// click on their buttons finds them.
    pub fn wait_approvals_posted(&self, n: i64) {
        let db = Connection::open(self.path("var/lifeboat.db")).unwrap();
        wait_for(10, "the approval requests' messages to be saved", || {
            db.query_row(
                "SELECT count(*) FROM approvals WHERE message_ref IS NOT NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0)
                >= n
        });
    }

    /// Run the lifeboat binary with this home's config.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run lifeboat")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        cmd.arg("--config").arg(self.config_path()).args(args);
        cmd.env_remove("LIFEBOAT_CONFIG");
        cmd.envs(secrets());
        cmd
    }

    /// Run and expect success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    /// Run with --json and parse stdout.
    /// An argon2 hash of `password` for `[web] users`, made by `lifeboat web
    /// hash-password` reading it from stdin.
    pub fn hash_password(&self, password: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command(&["web", "hash-password"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        json_of(args, |a| self.ok(a))
    }

    /// Files in the store directory for a target, including temporary ones.
    pub fn store_files(&self, target: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path("backups").join(target))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// The environment test configs take their secrets from (`${SLACK_BOT_TOKEN}`, …): given
/// to every lifeboat the tests start, and looked up by in-process config loads, so that
/// no test changes its own process's environment.
pub fn secrets() -> Vec<(&'static str, String)> {
    vec![
        ("SLACK_SIGNING_SECRET", fakes::SLACK_SECRET.to_string()),
        ("SLACK_BOT_TOKEN", "xoxb-test-token".to_string()),
        ("SLACK_APP_TOKEN", "xapp-1-A0APP-test-token".to_string()),
        ("DISCORD_PUBLIC_KEY", fakes::discord_public_key_hex()),
        ("DISCORD_BOT_TOKEN", "discord-test-token".to_string()),
        // Repository stores in test configs take their password from here.
        ("LIFEBOAT_REPO_PASSWORD", vault::PASSWORD.to_string()),
    ]
}

/// Run `lifeboat drill … --json`; returns the exit code and the parsed report.
pub fn drill(home: &Home, target: &str) -> (i32, serde_json::Value) {
    let out = home.run(&["drill", target, "--json"]);
    let text = stdout(&out);
    let json = serde_json::from_str::<serde_json::Value>(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}\nstderr: {}", stderr(&out)));
    (out.status.code().unwrap(), json)
}

/// Every needle is in `text`; a failure shows the missing one and the whole text.
pub fn assert_contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

/// The stdout of a lifeboat run that must have succeeded; a failure shows both streams.
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "lifeboat {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `args` with `--json` appended, run by `ok`, and its stdout parsed.
pub fn json_of(args: &[&str], ok: impl FnOnce(&[&str]) -> String) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = ok(&all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// An application-like database: WAL mode, two tables, `rows` rows of mixed data.
pub fn make_app_db(path: &Path, rows: usize) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS repository (id INTEGER PRIMARY KEY, name TEXT NOT NULL, body BLOB);
         CREATE TABLE IF NOT EXISTS issue (id INTEGER PRIMARY KEY, repo_id INTEGER, title TEXT);
         CREATE INDEX IF NOT EXISTS issue_repo ON issue(repo_id);",
    )
    .unwrap();
    insert_rows(&conn, rows);
    conn
}

pub fn insert_rows(conn: &Connection, rows: usize) {
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut repo = conn
            .prepare(
                "INSERT INTO repository (name, body) VALUES (?1, randomblob(200) || zeroblob(300))",
            )
            .unwrap();
        let mut issue = conn
            .prepare("INSERT INTO issue (repo_id, title) VALUES (?1, ?2)")
            .unwrap();
        for i in 0..rows {
            repo.execute([format!("repo-{i}")]).unwrap();
            issue
                .execute(rusqlite::params![
                    i as i64,
                    format!("issue number {i} needs triage")
                ])
                .unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
}

pub fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// A database with incompressible content of about `mb` MiB (for slow or large backups).
pub fn make_big_db(path: &Path, mb: usize) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB);")
        .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for _ in 0..mb * 16 {
        conn.execute("INSERT INTO blobs (data) VALUES (randomblob(65536))", [])
            .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// A small rollback-journal database at `path` whose application holds a write
/// transaction: a backup of it waits for the lock (up to lifeboat's 30 s busy timeout)
/// until the returned connection runs `COMMIT`, so a test decides when a backup ends.
pub fn held_db(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB);
         INSERT INTO blobs (data) VALUES (randomblob(4096));
         BEGIN EXCLUSIVE;
         INSERT INTO blobs (data) VALUES (randomblob(4096));",
    )
    .unwrap();
    conn
}

/// Check `/metrics` text with Prometheus's own `promtool` (it is written to `dir` first).
pub fn promtool_check(dir: &Path, text: &str) {
    let path = dir.join("metrics.txt");
    std::fs::write(&path, text).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .expect("promtool (Debian package prometheus) is installed by scripts/test.sh");
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Wait until `cond` holds, polling; panics after `secs` seconds.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A tiny HTTP server answering every request with `status` and `body`, for the health
/// checks runbooks and drills make, on a loopback port the system chooses (never a fixed
/// one: another process may hold it). Runs until the test process ends.
pub fn http_server(status: u16, body: &'static str) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot listen on loopback for a health-check server: {e}"));
    let local = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // Read the request line and headers; health checks have no body.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" || line == "\n" {
                    break;
                }
                line.clear();
            }
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    local
}

/// The application writing to its database on a thread of its own, 50 rows a
/// transaction, until stopped: a backup taken meanwhile must still be consistent.
pub struct AppWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    batches: std::sync::Arc<std::sync::atomic::AtomicI64>,
    thread: std::thread::JoinHandle<()>,
}

impl AppWriter {
    /// Start writing to the database at `path`; returns once the first batch is in.
    pub fn start(path: &Path) -> AppWriter {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let batches = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let thread = {
            let (stop, batches, path) = (stop.clone(), batches.clone(), path.to_path_buf());
            std::thread::spawn(move || {
                let conn = Connection::open(&path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    insert_rows(&conn, 50);
                    batches.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let writer = AppWriter {
            stop,
            batches,
            thread,
        };
        writer.wait_more(1);
        writer
    }

    /// Wait until `n` more batches have been committed.
    pub fn wait_more(&self, n: i64) {
        let count = || self.batches.load(std::sync::atomic::Ordering::SeqCst);
        let until = count() + n;
        wait_for(60, "the application's writes", || count() >= until);
    }

    /// Stop writing; returns how many batches were committed.
    pub fn stop(self) -> i64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap();
        self.batches.load(std::sync::atomic::Ordering::SeqCst)
    }
}
