//! Load benchmark (not a test): 200 concurrent connections fire signed Slack slash
//! commands (status, and refused ones) at a real `lifeboat serve` while a large backup
//! runs, and report acknowledgement latency p50/p99/max and requests per second.
//!
//! Two phases over the same 200 connections: paced (a fixed offered rate, latency counted
//! from when each request was due) and saturation (closed loop: throughput).
//!
//! `cargo bench --bench chat_load` (env: LOAD_DB_MB, default 1024; LOAD_SECONDS per phase,
//! default 12; LOAD_CONNECTIONS, default 200; LOAD_RATE for the paced phase, default 1000).

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fakes::*;
use common::*;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let db_mb = env_num("LOAD_DB_MB", 1024);
    let seconds = env_num("LOAD_SECONDS", 12);
    let connections = env_num("LOAD_CONNECTIONS", 200) as usize;

    let api = FakeApi::start();
    let home = Home::new();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate = \"../var/lifeboat.db\"\n\n\
         [access]\nadmins = []\noperators = [\"slack:U0OPS\"]\nviewers = [\"slack:U0VIEW\"]\nchannels = [\"slack:C0OPS\"]\n\n\
         [slack]\nsigning_secret = \"${{SLACK_SIGNING_SECRET}}\"\nbot_token = \"${{SLACK_BOT_TOKEN}}\"\napi_url = \"{}/api/\"\n\n\
         [stores.local]\nkind = \"local\"\npath = \"../backups\"\n\n\
         [targets.big]\nkind = \"sqlite\"\npath = \"../data/big.db\"\nstore = \"local\"\n",
        api.base
    );
    std::fs::write(home.config_path(), text).unwrap();
    eprintln!("building a {db_mb} MiB database…");
    make_big_db(&home.path("data/big.db"), db_mb as usize);

    let serve = Serve::start(&home);
    // Keep a 1 GiB backup running for the whole measurement: start the next one as soon
    // as the last has finished.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut started = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if finished_backups(&api) >= started {
                    let (code, _) = slack_command(&serve, "U0OPS", "C0OPS", "/backup", "now big");
                    assert_eq!(code, 200);
                    started += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        api.wait_until(30, "the backup to start", |c| {
            c.iter().any(|c| c.path.ends_with("chat.postMessage"))
        });
        println!(
            "| load | connections | requests | errors | req/s | p50 | p99 | max | over 3 s | backups finished meanwhile |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        // Paced: every connection sends on a fixed schedule, latency counted from the
        // moment the request was due (so a slow answer cannot hide the requests it delayed).
        let rate = env_num("LOAD_RATE", 1000);
        let interval = Duration::from_secs_f64(connections as f64 / rate as f64);
        let label = format!("paced, {rate} req/s offered");
        run_phase(&serve, &api, connections, seconds, Some(interval), &label);
        // Saturation: every connection sends its next request as soon as the last is
        // answered; this measures throughput, and latency is then queueing
        // (connections / throughput).
        run_phase(
            &serve,
            &api,
            connections,
            seconds,
            None,
            "saturation (closed loop)",
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    serve.stop();
}

fn run_phase(
    serve: &Serve,
    api: &FakeApi,
    connections: usize,
    seconds: u64,
    interval: Option<Duration>,
    label: &str,
) {
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(Mutex::new(0u64));
    let backups_before = finished_backups(api);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            let url = serve.url("/slack/commands");
            let (latencies, errors) = (latencies.clone(), errors.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut mine = Vec::new();
                let mut n = 0u64;
                // Spread the connections' schedules evenly over one interval.
                let offset = interval.map(|iv| iv.mul_f64(i as f64 / connections as f64));
                loop {
                    let due = match (interval, offset) {
                        (Some(iv), Some(off)) => {
                            let due = started + off + iv.mul_f64(n as f64);
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                            due
                        }
                        _ => Instant::now(),
                    };
                    if due >= deadline {
                        break;
                    }
                    // Half status requests by a viewer, half refused backups by the same viewer.
                    let text = if (i as u64 + n).is_multiple_of(2) {
                        "status"
                    } else {
                        "now big"
                    };
                    let body = serde_urlencoded::to_string([
                        ("team_id", "T0"),
                        ("channel_id", "C0OPS"),
                        ("user_id", "U0VIEW"),
                        ("command", "/backup"),
                        ("text", text),
                        ("response_url", "https://hooks.slack.com/x"),
                        ("trigger_id", "t"),
                    ])
                    .unwrap();
                    let ts = now();
                    let r = agent
                        .post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("x-slack-request-timestamp", ts.to_string())
                        .header(
                            "x-slack-signature",
                            slack_signature(SLACK_SECRET, ts, &body),
                        )
                        .send(&body);
                    let took = due.elapsed();
                    match r {
                        Ok(resp) if resp.status() == 200 => mine.push(took),
                        _ => *errors.lock().unwrap() += 1,
                    }
                    n += 1;
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let backups = finished_backups(api) - backups_before;
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    let over_3s = l.iter().filter(|d| **d > Duration::from_secs(3)).count();
    println!(
        "| {label} | {connections} | {} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {over_3s} | {backups} |",
        l.len(),
        errors.lock().unwrap(),
        l.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        l.last().unwrap().as_secs_f64() * 1000.0,
    );
}

/// Backups of the big database that have reported their end.
fn finished_backups(api: &FakeApi) -> usize {
    api.calls_to("chat.update")
        .iter()
        .filter(|c| {
            let t = c.body["text"].as_str().unwrap_or("");
            t.contains("✅ backup") || t.contains("❌ backup")
        })
        .count()
}
