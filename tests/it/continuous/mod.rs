//! Continuous replication of SQLite (`continuous = "..."`, `lifeboat replicate`,
//! `restore --at`): real applications — python3's sqlite3 in other processes — commit
//! numbered rows while the real binary replicates into a local store or moto's S3, and
//! every restore to a moment is compared with the commit times the writer recorded.
//! Waits are on events: the replicator's log lines, the status JSON's `replicated_to`
//! passing the writer's last commit, a process exiting.

mod chain;
mod chat_drill;
mod drill;
mod faults;
mod generation_alert;
mod history;
mod later_base;
mod newest_base;
mod remote;
mod s3;
mod sealed;
mod spool;
mod vacuum;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// The generous last-resort deadline of every wait.
const DEADLINE: Duration = Duration::from_secs(180);
/// The shipping interval of the tests' targets.
pub const EVERY: &str = "200ms";

/// A target `app` replicated every [`EVERY`] into the store `store` (`local` by default).
pub fn target(store: &str) -> String {
    format!(
        "[targets.app]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"{store}\"\ncontinuous = \"{EVERY}\"\nrestore_roots = [\"../restores\"]\n"
    )
}

/// A new database in WAL mode with the table the writer fills, made by another process.
pub fn create_db(path: &Path, wal: bool) {
    let mode = if wal { "WAL" } else { "DELETE" };
    let script = format!(
        "import sqlite3; c = sqlite3.connect({path:?}, isolation_level=None); c.execute('PRAGMA journal_mode={mode}'); c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'); c.close()",
        path = path.display().to_string()
    );
    let ok = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The writer process: `count` rows after the last, logged with their commit times.
pub fn writer(db: &Path, count: u32, log: &Path, opts: &[&str]) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/continuous/writer.py");
    Command::new("python3")
        .arg(script)
        .arg(db)
        .arg(count.to_string())
        .arg(log)
        .args(opts)
        .spawn()
        .unwrap()
}

pub fn finish(mut writer: Child) {
    assert!(writer.wait().unwrap().success(), "the writer failed");
}

/// One committed row as the writer logged it.
#[derive(Debug, Clone, Copy)]
pub struct Commit {
    pub id: i64,
    pub began: f64,
    pub committed: f64,
}

pub fn commits(log: &Path) -> Vec<Commit> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Commit {
                id: f[0].parse().unwrap(),
                began: f[1].parse().unwrap(),
                committed: f[2].parse().unwrap(),
            }
        })
        .collect()
}

/// Unix seconds as RFC 3339 with microseconds.
pub fn rfc3339(t: f64) -> String {
    let at = chrono::DateTime::from_timestamp_micros((t * 1e6) as i64).unwrap();
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub fn unix(text: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_micros() as f64
        / 1e6
}

/// A running `lifeboat replicate app`, its log collected line by line; killed on drop.
pub struct Replicator {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Replicator {
    pub fn start(mut cmd: Command) -> Replicator {
        let mut child = cmd
            .env("LIFEBOAT_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Replicator { child, log }
    }

    pub fn text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Wait for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) {
        let start = Instant::now();
        loop {
            if self.text().contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // The log thread may still be reading the last lines.
                std::thread::sleep(Duration::from_millis(200));
                assert!(
                    self.text().contains(needle),
                    "the replicator exited ({status}) before logging {needle:?}:\n{}",
                    self.text()
                );
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {needle:?} in:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many times the log says `needle`.
    pub fn times(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }

    /// Wait until the log said `needle` at least `n` times, the replicator still running.
    pub fn wait_times(&mut self, needle: &str, n: usize) {
        let start = Instant::now();
        while self.times(needle) < n {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the replicator exited:\n{}",
                self.text()
            );
            assert!(
                start.elapsed() < DEADLINE,
                "no {n} × {needle:?} in:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs lifeboat commands for one home (a local one, or one with moto's credentials).
pub trait Lifeboat {
    fn cmd(&self, args: &[&str]) -> Command;

    fn out(&self, args: &[&str]) -> std::process::Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.out(args))
    }

    fn status(&self) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["status", "--json"])).unwrap();
        let targets = v.get("targets").cloned().unwrap_or(v);
        targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == "app")
            .cloned()
            .unwrap()
    }

    /// Wait until the status says every transaction committed by `t` is in the store.
    fn wait_replicated_past(&self, t: f64) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let s = self.status();
            if let Some(at) = s["replicated_to"].as_str()
                && unix(at) > t
            {
                return s;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "never replicated past {}: {s}",
                rfc3339(t)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restore `app` as of `at` to the new file `to`; the plan it carried out.
    fn restore_at(&self, at: &str, to: &Path) -> serde_json::Value {
        let to_s = to.display().to_string();
        let plan: serde_json::Value = serde_json::from_str(&self.ok(&[
            "restore",
            "app",
            "--at",
            at,
            "--to",
            &to_s,
            "--dry-run",
            "--json",
        ]))
        .unwrap();
        self.ok(&["restore", "app", "--at", at, "--to", &to_s, "--yes"]);
        plan
    }
}

impl Lifeboat for Home {
    fn cmd(&self, args: &[&str]) -> Command {
        self.command(args)
    }
}

/// The ids in a restored copy, after checking it whole with `integrity_check` in another
/// process (the sqlite3 CLI).
pub fn restored_ids(db: &Path) -> Vec<i64> {
    let check = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA integrity_check;")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "ok",
        "{}",
        db.display()
    );
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("SELECT id FROM t ORDER BY id;")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// The rows of a restore to `at` are exactly the first `up_to` rows, every one of them
/// began before `at`, and every row committed more than `slack` seconds before `at` is
/// among them. Returns how many rows.
pub fn assert_exactly_by(ids: &[i64], log: &[Commit], at: f64, slack: f64) -> usize {
    let expect: Vec<i64> = (1..=ids.len() as i64).collect();
    assert_eq!(
        ids,
        &expect[..],
        "a restore holds a prefix of the rows, with no hole"
    );
    for c in log.iter().filter(|c| ids.contains(&c.id)) {
        assert!(
            c.began <= at,
            "row {} began at {} after {}",
            c.id,
            rfc3339(c.began),
            rfc3339(at)
        );
    }
    for c in log.iter().filter(|c| c.committed + slack <= at) {
        assert!(
            ids.contains(&c.id),
            "row {} committed at {}, {slack} s before {}, is missing",
            c.id,
            rfc3339(c.committed),
            rfc3339(at)
        );
    }
    ids.len()
}

/// The replication position record in the local store.
pub fn position(home: &Home) -> serde_json::Value {
    let text = std::fs::read_to_string(home.path("backups/app.wal/position.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn db_path(home: &Home) -> PathBuf {
    home.path("data/app.db")
}

/// A home whose `app` target (a local store) is also backed up on `schedule`, its
/// database created in WAL mode.
pub fn scheduled_app(schedule: &str) -> (Home, PathBuf) {
    let config = format!("{}schedule = \"{schedule}\"\n", target("local"));
    let home = Home::with_config(&ConfigBuilder::new().raw(&config));
    let db = db_path(&home);
    create_db(&db, true);
    (home, db)
}

/// A moment the resolution is measured at: more than `slack` seconds of commits before it.
pub fn slack() -> f64 {
    3.0
}

#[test]
fn a_restore_to_a_moment_has_exactly_the_rows_committed_by_then() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app every 200ms");
    // Written to a pipe, the log is plain text, and a first generation is no warning.
    let started = rep.text();
    assert!(!started.contains('\u{1b}'), "no colour codes: {started}");
    let first = started
        .lines()
        .find(|l| l.contains("new replication generation"))
        .unwrap_or_else(|| panic!("{started}"));
    assert!(first.contains(" INFO "), "{first}");
    let log = home.path("data/commits.log");
    finish(writer(&db, 2500, &log, &[]));
    let rows = commits(&log);
    let last = rows.last().unwrap().committed;
    let status = home.wait_replicated_past(last);
    assert!(status["lag_seconds"].as_f64().unwrap() >= 0.0, "{status}");
    // The text status says the same.
    let text = home.ok(&["status"]);
    assert!(
        text.contains("replicated to ") && text.contains("(lag "),
        "{text}"
    );

    // A moment in the middle, between two commits.
    let mid = rows[rows.len() * 2 / 3];
    let at = (mid.committed + rows[rows.len() * 2 / 3 + 1].began) / 2.0;
    let copy = home.path("restores/middle.db");
    let plan = home.restore_at(&rfc3339(at), &copy);
    let ids = restored_ids(&copy);
    let n = assert_exactly_by(&ids, &rows, at, slack());
    assert_eq!(
        plan["point"]["up_to_txid"].as_u64(),
        Some(n as u64),
        "{plan}"
    );
    assert!(n > 1000, "a moment in the middle holds most rows: {n}");
    let seen = plan["point"]["up_to_committed_by"].as_str().unwrap();
    eprintln!(
        "restore to {}: {n} rows, the last seen committed by {seen}; resolution {:.3} s",
        rfc3339(at),
        at - rows[n - 1].committed
    );

    // Stopped (one last round), replication stands still: the newest moment has every
    // row, and one past it is refused, naming it.
    assert!(rep.stop().success(), "a stopped replicator exits cleanly");
    let newest = home.status()["replicated_to"].as_str().unwrap().to_string();
    let all = home.path("restores/newest.db");
    home.restore_at(&newest, &all);
    assert_eq!(restored_ids(&all).len(), rows.len());
    let later = rfc3339(unix(&newest) + 3600.0);
    let out = home.out(&["restore", "app", "--at", &later, "--to", "/tmp/never"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("replicated to") && err.contains(&newest),
        "{err}"
    );
}

#[test]
fn serve_replicates_continuous_targets_and_exports_the_lag() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let serve = fakes::Serve::start(&home);
    let log = home.path("data/commits.log");
    finish(writer(&db, 500, &log, &[]));
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);
    let (_, metrics) = serve.get("/metrics");
    let lag = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lifeboat_replication_lag_seconds{target=\"app\"} "))
        .unwrap_or_else(|| panic!("no lag metric in:\n{metrics}"));
    assert!(lag.parse::<f64>().unwrap() >= 0.0, "{lag}");
    assert!(
        serve.log_text().contains("replicating app every 200ms"),
        "{}",
        serve.log_text()
    );
    // A clean stop ships the last round and gives the lease up.
    serve.stop();
    assert!(!home.path("backups/app.wal/lease.json").exists());
    let all = home.path("restores/all.db");
    let newest = home.status()["replicated_to"].as_str().unwrap().to_string();
    home.restore_at(&newest, &all);
    assert_eq!(restored_ids(&all).len(), 500);
}

#[test]
fn a_replication_past_max_lag_turns_the_target_red_naming_it() {
    let config = format!("{}max_lag = \"1s\"\n", target("local"));
    let home = Home::with_config(&ConfigBuilder::new().raw(&config));
    create_db(&db_path(&home), true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    assert!(rep.stop().success());
    // Nothing ships any more: once the lag passes max_lag, status says so.
    let start = Instant::now();
    let status = loop {
        let s = home.status();
        if s["health"] == "red" {
            break s;
        }
        assert!(start.elapsed() < DEADLINE, "never red: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let reasons = status["health_reasons"].to_string();
    assert!(
        reasons.contains("replication is") && reasons.contains("max_lag 1"),
        "{status}"
    );
    assert_eq!(status["max_lag_seconds"], 1.0);
    assert!(status["lag_seconds"].as_f64().unwrap() > 1.0, "{status}");
    // The terminal's status says it too, not only the JSON.
    let text = home.ok(&["status"]);
    assert!(text.contains("health: red: replication is"), "{text}");
}

#[test]
fn backups_in_the_same_process_as_the_replicator_leave_its_hold_on_the_log() {
    // `serve` backs the target up every 2 s while it replicates it. A backup that opened
    // and closed the database file itself would drop every POSIX lock the process holds
    // on it, SQLite's included; the application's last close would then checkpoint and
    // delete the WAL under the replicator, and the last rows would never be shipped.
    let (home, db) = scheduled_app("*/2 * * * * *");
    let serve = fakes::Serve::start(&home);
    let log = home.path("data/commits.log");
    let backups = || home.ok(&["list", "app"]).lines().count().saturating_sub(1);
    let start = Instant::now();
    finish(writer(&db, 300, &log, &[]));
    while backups() < 3 {
        assert!(
            start.elapsed() < DEADLINE,
            "no scheduled backups: {}",
            serve.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The application writes more and closes: its close must not be the last.
    finish(writer(&db, 300, &log, &[]));
    assert!(
        home.path("data/app.db-wal").exists(),
        "the log is still there"
    );
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);
    // Stopped first: a scheduled backup would hold the target against the restore.
    serve.stop();
    let all = home.path("restores/all.db");
    let newest = home.status()["replicated_to"].as_str().unwrap().to_string();
    home.restore_at(&newest, &all);
    assert_eq!(restored_ids(&all), (1..=600).collect::<Vec<i64>>());
}
