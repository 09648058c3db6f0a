//! Scale benchmark (not a test), in two parts.
//!
//! 1. `serve` watching 10,000 external targets that are all healthy, measured idle (CPU
//!    share of one core, peak memory), plus how long after its deadline an overdue
//!    target's alert reaches the (fake) Slack channel, in real time.
//! 2. A simulated week: lifeboat's scheduler and watchdog in this process on a paused
//!    tokio clock, 10,000 external targets on daily schedules, 10 % of them failing for
//!    one to three days (half silent, half reporting failures), every alert message
//!    recorded: messages per outage against 1 + repeats every `realert` + 1, the worst
//!    delay between a deadline and its alert (simulated time), and the CPU it took.
//!
//! `cargo bench --bench watchdog_scale` (env: SCALE_TARGETS, default 10000;
//! SCALE_IDLE_SECONDS, default 30; SCALE_PART = all | idle | week; SCALE_DAYS, default 7).

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::fmt::Write;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};

#[path = "watchdog_scale/week.rs"]
mod week;
use common::fakes::*;
use common::*;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) used so far by `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn memory_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let part = std::env::var("SCALE_PART").unwrap_or_else(|_| "all".into());
    if part != "week" {
        idle();
    }
    if part != "idle" {
        week::run(
            env_num("SCALE_TARGETS", 10_000),
            env_num("SCALE_DAYS", 7) as i64,
        );
    }
}

fn idle() {
    let targets = env_num("SCALE_TARGETS", 10_000);
    let idle_seconds = env_num("SCALE_IDLE_SECONDS", 30);
    let api = FakeApi::start();
    let home = Home::new();
    // The deadline target: due at a second soon after start, with a 1 s grace.
    let due = (Utc::now() + chrono::Duration::seconds(60))
        .with_nanosecond(0)
        .unwrap();
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate = \"../var/lifeboat.db\"\n\n\
         [slack]\nsigning_secret = \"${{SLACK_SIGNING_SECRET}}\"\nbot_token = \"${{SLACK_BOT_TOKEN}}\"\nalert_channel = \"C0ALERTS\"\napi_url = \"{}/api/\"\n\n\
         [targets.deadline]\nkind = \"external\"\nschedule = \"{} {} {} * * *\"\ngrace = \"1s\"\ntoken = \"${{SLACK_BOT_TOKEN}}\"\n",
        api.base,
        due.second(),
        due.minute(),
        due.hour()
    );
    for i in 0..targets {
        // Spread over the day, as real schedules are.
        let _ = write!(
            text,
            "\n[targets.job-{i:05}]\nkind = \"external\"\nschedule = \"0 {} {} * * *\"\ngrace = \"2h\"\ntoken = \"${{SLACK_BOT_TOKEN}}\"\n",
            i % 60,
            (i / 60) % 24
        );
    }
    std::fs::write(home.config_path(), text).unwrap();
    // Every target reported success a moment ago, so the bot starts healthy and idle.
    home.ok(&["status", "--json"]);
    let db = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    db.execute_batch("BEGIN").unwrap();
    let now = lifeboat::units::now_text();
    for i in 0..targets {
        db.execute(
            "INSERT INTO jobs (kind, target, actor, state, started_at, finished_at, pid) VALUES ('backup', ?1, 'hook', 'succeeded', ?2, ?2, 0)",
            rusqlite::params![format!("job-{i:05}"), now],
        )
        .unwrap();
    }
    db.execute("INSERT INTO jobs (kind, target, actor, state, started_at, finished_at, pid) VALUES ('backup', 'deadline', 'hook', 'succeeded', ?1, ?1, 0)", [&now]).unwrap();
    db.execute_batch("COMMIT").unwrap();

    let started = Instant::now();
    let serve = Serve::start(&home);
    let pid = serve.child.id();
    // Let the first look at every target finish: wait until the CPU use settles.
    let mut last = cpu_seconds(pid);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = cpu_seconds(pid);
        if now - last < 0.1 {
            break;
        }
        last = now;
    }
    let startup_cpu = cpu_seconds(pid);
    let t0 = Instant::now();
    let c0 = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(idle_seconds));
    let idle_share = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    let rss = memory_kib(pid, "VmRSS:") / 1024;
    let peak = memory_kib(pid, "VmHWM:") / 1024;

    let deadline = due + chrono::Duration::seconds(1);
    let wait = (deadline - Utc::now()).num_seconds().max(0) as u64 + 20;
    let calls = api.wait_until(wait, "the deadline alert", |c| {
        c.iter().any(|c| {
            c.body["text"]
                .as_str()
                .unwrap_or("")
                .contains("missed backup: deadline")
        })
    });
    let alert = calls
        .iter()
        .find(|c| {
            c.body["text"]
                .as_str()
                .unwrap_or("")
                .contains("missed backup: deadline")
        })
        .unwrap();
    let alert_wall = Utc::now() - chrono::Duration::from_std(alert.at.elapsed()).unwrap();
    let late = (alert_wall - deadline).num_milliseconds() as f64 / 1000.0;
    let other_alerts = calls
        .iter()
        .filter(|c| c.path.ends_with("chat.postMessage"))
        .count()
        - 1;

    println!(
        "| targets | startup (first look at all) | idle CPU (% of one core) | RSS | peak RSS | alert after deadline | other alerts |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {targets} | {startup_cpu:.1} s CPU | {idle_share:.2} % | {rss} MiB | {peak} MiB | {late:.2} s | {other_alerts} |"
    );
    eprintln!("total {:.0}s", started.elapsed().as_secs_f64());
    serve.stop();
}
