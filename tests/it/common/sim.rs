//! lifeboat's real scheduler and watchdog in this process on a simulated clock (tokio's
//! paused time: days pass in seconds), over a real state database, with a recording
//! notifier as the alert channel. Reports and drills are written with simulated times.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lifeboat::app::App;
use lifeboat::notify::{ChatMessage, Notifier, NotifyError};
use lifeboat::schedule::{Clock, Scheduler, TargetWake, TokioClock};

/// One call the watchdog made to the alert channel.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: DateTime<Utc>,
    /// false: a new message; true: an edit of `message`.
    pub edit: bool,
    pub message: String,
    pub text: String,
}

pub struct Recorder {
    clock: Arc<TokioClock>,
    pub sent: Mutex<Vec<Sent>>,
}

#[async_trait]
impl Notifier for Recorder {
    fn platform(&self) -> &'static str {
        "slack"
    }
    async fn post(&self, _: &str, msg: &ChatMessage) -> Result<String, NotifyError> {
        let mut sent = self.sent.lock().unwrap();
        let message = format!("m{}", sent.len());
        sent.push(Sent {
            at: self.clock.now(),
            edit: false,
            message: message.clone(),
            text: msg.text.clone(),
        });
        Ok(message)
    }
    async fn update(&self, _: &str, message: &str, msg: &ChatMessage) -> Result<(), NotifyError> {
        self.sent.lock().unwrap().push(Sent {
            at: self.clock.now(),
            edit: true,
            message: message.to_string(),
            text: msg.text.clone(),
        });
        Ok(())
    }
    async fn ephemeral(&self, _: &str, _: &str, _: &str) -> Result<(), NotifyError> {
        Ok(())
    }
}

pub struct Sim {
    pub app: App,
    pub clock: Arc<TokioClock>,
    pub rec: Arc<Recorder>,
    wake: TargetWake,
    task: tokio::task::JoinHandle<()>,
    config: std::path::PathBuf,
    db: rusqlite::Connection,
}

impl Sim {
    /// Start the scheduler of the config at `config` with the clock at `start`. Call
    /// from a `#[tokio::test(start_paused = true)]` (a current-thread runtime).
    pub fn start(config: &Path, start: DateTime<Utc>) -> Sim {
        let clock = Arc::new(TokioClock::starting_at(start));
        let rec = Arc::new(Recorder {
            clock: clock.clone(),
            sent: Mutex::new(Vec::new()),
        });
        Sim::boot(config, clock, rec)
    }

    fn boot(config: &Path, clock: Arc<TokioClock>, rec: Arc<Recorder>) -> Sim {
        // The test secrets are looked up here, not in this process's environment, which
        // every test in the binary shares.
        let text = std::fs::read_to_string(config).expect("config readable");
        let env = |name: &str| {
            super::secrets()
                .into_iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        };
        let base = config.parent().expect("config in a directory");
        let cfg = lifeboat::config::Config::parse(&text, &config.display().to_string(), base, &env)
            .expect("config loads");
        let (app, _) = App::open(cfg).expect("state opens");
        let notifier: Arc<dyn Notifier> = rec.clone();
        let scheduler = Scheduler::new(app.clone(), vec![(notifier, "C0ALERTS".into())])
            .with_clock(clock.clone())
            .with_poll(std::time::Duration::from_secs(60));
        let wake = scheduler.target_waker();
        let task = tokio::spawn(scheduler.run());
        let db = rusqlite::Connection::open(&app.config.server.state).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        Sim {
            db,
            app,
            clock,
            rec,
            wake,
            task,
            config: config.to_path_buf(),
        }
    }

    /// Stop the scheduler (as a killed `serve`) and start a new one on the same state.
    pub async fn restart(self) -> Sim {
        self.task.abort();
        let _ = self.task.await;
        Sim::boot(&self.config, self.clock, self.rec)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Let simulated time run until `t` (everything due meanwhile happens).
    pub async fn run_until(&self, t: DateTime<Utc>) {
        let wait = (t - self.now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
    }

    /// Let `secs` simulated seconds pass.
    pub async fn pass(&self, secs: i64) {
        let t = self.now() + chrono::Duration::seconds(secs);
        self.run_until(t).await;
    }

    /// Wait until a `kind` job of `target` has ended, holding the simulated clock: jobs
    /// run on threads of their own, in real time, as fast as the machine goes.
    pub async fn wait_finished(&self, kind: &str, target: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let ended: i64 = self
                .conn()
                .query_row(
                    "SELECT count(*) FROM jobs WHERE kind = ?1 AND target = ?2 AND state != 'running'",
                    [kind, target],
                    |r| r.get(0),
                )
                .unwrap();
            if ended > 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {kind} job of {target} ended within 60 s"
            );
            // A blocking task keeps tokio's paused clock from jumping ahead meanwhile.
            tokio::task::spawn_blocking(|| {
                std::thread::sleep(std::time::Duration::from_millis(20))
            })
            .await
            .unwrap();
        }
    }

    fn conn(&self) -> &rusqlite::Connection {
        &self.db
    }

    /// A finished job of `kind` on `target` at the simulated now (`state`: succeeded,
    /// failed), as a report or a job would leave it; the watchdog is told at once.
    pub fn job(&self, kind: &str, target: &str, state: &str, message: &str) {
        let now = lifeboat::units::time_text(self.now());
        self.conn()
            .prepare_cached(
                "INSERT INTO jobs (kind, target, actor, state, started_at, finished_at, message, pid)
                 VALUES (?1, ?2, 'sim', ?3, ?4, ?4, ?5, 0)",
            )
            .unwrap()
            .execute(rusqlite::params![kind, target, state, now, message])
            .unwrap();
        self.wake.wake(target);
    }

    /// A report of an external job (as `POST /hooks/ping` records it).
    pub fn report(&self, target: &str, ok: bool) {
        let (state, message) = if ok {
            ("succeeded", "reported success")
        } else {
            ("failed", "pg_dump: connection refused")
        };
        self.job("backup", target, state, message);
    }

    /// A job that started now and keeps running; returns its id.
    pub fn start_job(&self, kind: &str, target: &str) -> i64 {
        let now = lifeboat::units::time_text(self.now());
        let c = self.conn();
        c.execute(
            "INSERT INTO jobs (kind, target, actor, state, started_at, pid) VALUES (?1, ?2, 'sim', 'running', ?3, ?4)",
            rusqlite::params![kind, target, now, std::process::id()],
        )
        .unwrap();
        c.last_insert_rowid()
    }

    pub fn end_job(&self, id: i64, target: &str) {
        let now = lifeboat::units::time_text(self.now());
        self.conn()
            .execute(
                "UPDATE jobs SET state = 'succeeded', finished_at = ?2 WHERE id = ?1",
                rusqlite::params![id, now],
            )
            .unwrap();
        self.wake.wake(target);
    }

    /// A drill record, started and finished at the simulated now.
    pub fn drill(&self, target: &str, ok: bool) {
        let now = lifeboat::units::time_text(self.now());
        self.app
            .db
            .drill_insert(&lifeboat::db::drills::DrillRecord {
                id: 0,
                target: target.into(),
                backup_id: None,
                actor: "sim".into(),
                started_at: now.clone(),
                finished_at: now,
                ok,
                rto_seconds: None,
                rpo_seconds: None,
                rto_objective_seconds: None,
                rpo_objective_seconds: None,
                problems: if ok {
                    vec![]
                } else {
                    vec!["RTO missed by 3m".into()]
                },
                report: String::new(),
            })
            .unwrap();
        self.wake.wake(target);
    }

    /// Make the watchdog look at `target` now (after a job this test ran itself).
    pub fn wake(&self, target: &str) {
        self.wake.wake(target);
    }

    /// Every call to the alert channel so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.rec.sent.lock().unwrap().clone()
    }

    /// New messages (not edits) whose text contains `needle`.
    pub fn posts(&self, needle: &str) -> Vec<Sent> {
        self.sent()
            .into_iter()
            .filter(|s| !s.edit && s.text.contains(needle))
            .collect()
    }
}
