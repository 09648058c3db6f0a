//! Benchmark (not a test): how fast the status page answers with 50 targets and a year
//! of history each (40 backed up daily, 10 hourly; weekly drills; an open incident with
//! a long timeline), from a real `serve` over a real state database.
//!
//! `cargo bench --bench status_page` (env: PAGE_TARGETS, default 50; PAGE_ROUNDS,
//! default 30). Prints the time to the complete response of each view: min, median,
//! p95, max.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::fakes::*;
use common::history::{Seed, seed};
use common::*;

const TOKEN: &str = "benchmark-token-0123456789";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let targets = env_num("PAGE_TARGETS", 50);
    let rounds = env_num("PAGE_ROUNDS", 30);
    let home = Home::new();
    drop(make_app_db(&home.path("data/app.db"), 10));
    let mut text = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate = \"../var/lifeboat.db\"\n\n\
         [stores.local]\nkind = \"local\"\npath = \"../backups\"\n\n\
         [web]\nenabled = true\ntoken = \"${WEB_TOKEN}\"\n\n",
    );
    let name = |i: usize| format!("db-{i:02}");
    let hourly = |i: usize| i % 5 == 4;
    for i in 0..targets {
        let schedule = if hourly(i) {
            "0 0 * * * *"
        } else {
            "0 30 3 * * *"
        };
        text.push_str(&format!(
            "[targets.{}]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\n\
             schedule = \"{schedule}\"\nrpo = \"26h\"\nrto = \"30m\"\n\n",
            name(i)
        ));
    }
    std::fs::write(home.config_path(), text).unwrap();
    let run = |args: &[&str]| {
        let out = home.command(args).env("WEB_TOKEN", TOKEN).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    run(&["status"]);
    let seeding = Instant::now();
    let mut db = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    let mut rows = 0;
    for i in 0..targets {
        let n = name(i);
        let s = Seed {
            target: &n,
            kind: "sqlite",
            store: Some("local"),
            days: 365,
            every_hours: if hourly(i) { 1 } else { 24 },
            base_size: (20 + i as u64) << 20,
            base_seconds: 30.0,
            drill_every_days: 7,
            drill_rto: 600.0,
            gap: None,
            failed_drill: Some(100),
        };
        rows += seed(&mut db, &s, Utc::now() - chrono::Duration::minutes(20));
    }
    drop(db);
    run(&["incident", "start", "Benchmark incident"]);
    for k in 0..200 {
        run_note(&home, k);
    }
    println!(
        "seeded {targets} targets, {rows} backups over a year, in {:.1}s",
        seeding.elapsed().as_secs_f64()
    );

    let mut cmd = home.command(&["serve"]);
    cmd.env("WEB_TOKEN", TOKEN);
    let serve = Serve::from_command(cmd);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let fetch = |path: &str, auth: &str| -> (Duration, usize) {
        let started = Instant::now();
        let mut resp = agent
            .get(serve.url(path))
            .header("authorization", auth)
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let body = resp.body_mut().read_to_string().unwrap();
        (started.elapsed(), body.len())
    };
    let bearer = format!("Bearer {TOKEN}");
    let daily = format!("/targets/{}", name(0));
    let hourly_page = format!("/targets/{}", name(4));
    println!("view                      min    median   p95     max     size");
    for (label, path) in [
        ("/ (overview)", "/"),
        ("/targets/<daily>", daily.as_str()),
        ("/targets/<hourly>", hourly_page.as_str()),
        ("/incidents/1", "/incidents/1"),
    ] {
        for _ in 0..3 {
            fetch(path, &bearer); // warm the page cache and connections
        }
        let mut times: Vec<f64> = Vec::new();
        let mut size = 0;
        for _ in 0..rounds {
            let (t, n) = fetch(path, &bearer);
            times.push(t.as_secs_f64() * 1000.0);
            size = n;
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "{label:<24} {:>6.1}ms {:>6.1}ms {:>6.1}ms {:>6.1}ms {:>5} KiB",
            pick(0.0),
            pick(0.5),
            pick(0.95),
            pick(1.0),
            size / 1024
        );
    }
    serve.stop();
}

fn run_note(home: &Home, k: usize) {
    // Notes straight into the timeline: 200 CLI runs would dominate the benchmark's setup.
    let db = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    db.execute(
        "INSERT INTO incident_events (incident_id, at, actor, kind, text) VALUES (1, ?1, 'slack:U1', 'note', ?2)",
        rusqlite::params![
            common::history::text(Utc::now() - chrono::Duration::minutes(300 - k as i64)),
            format!("note {k}: checked replica lag, still catching up")
        ],
    )
    .unwrap();
}
