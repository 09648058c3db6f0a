//! The simulated week: every outage's messages counted against what they must be.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

use crate::common::Home;
use crate::common::sim::Sim;

const REALERT_HOURS: i64 = 4;
const GRACE_HOURS: i64 = 2;

/// How target `i` behaves: healthy, or failing from day `start` for `days` days, either
/// silent (no report: missed) or reporting failures.
#[derive(Clone, Copy, PartialEq)]
enum Plan {
    Healthy,
    Silent { start: i64, days: i64 },
    Failing { start: i64, days: i64 },
}

fn plan(i: u64) -> Plan {
    if !i.is_multiple_of(10) {
        return Plan::Healthy;
    }
    let k = (i / 10) as i64;
    let (start, days) = (1 + k % 3, 1 + (k / 3) % 3);
    if k % 2 == 0 {
        Plan::Silent { start, days }
    } else {
        Plan::Failing { start, days }
    }
}

fn name(i: u64) -> String {
    format!("job-{i:05}")
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

pub fn run(targets: u64, days: i64) {
    let home = Home::new();
    let mut text = String::new();
    for i in 0..targets {
        let _ = write!(
            text,
            "\n[targets.{}]\nkind = \"external\"\nschedule = \"0 {} {} * * *\"\ngrace = \"{GRACE_HOURS}h\"\nrealert = \"{REALERT_HOURS}h\"\ntoken = \"${{SLACK_BOT_TOKEN}}\"\n",
            name(i),
            i % 60,
            (i / 60) % 24
        );
    }
    home.write_config(&text);
    unsafe { std::env::set_var("SLACK_BOT_TOKEN", "xoxb-bench") };
    let day0: DateTime<Utc> = "2026-11-23T00:00:00Z".parse().unwrap();
    let due = |i: u64, d: i64| {
        day0 + Duration::days(d)
            + Duration::hours(((i / 60) % 24) as i64)
            + Duration::minutes((i % 60) as i64)
    };
    // Every report of the week, in time order: healthy ones 10 minutes after the due
    // time, failures 5 minutes after it; nothing from a silent target in its outage.
    let mut reports: Vec<(DateTime<Utc>, u64, bool)> = Vec::new();
    for i in 0..targets {
        for d in 0..days {
            let out = |start: i64, n: i64| d >= start && d < start + n;
            match plan(i) {
                Plan::Silent { start, days: n } if out(start, n) => {}
                Plan::Failing { start, days: n } if out(start, n) => {
                    reports.push((due(i, d) + Duration::minutes(5), i, false))
                }
                _ => reports.push((due(i, d) + Duration::minutes(10), i, true)),
            }
        }
    }
    reports.sort();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let sim = runtime.block_on(async {
        let sim = Sim::start(&home.config_path(), day0);
        for (at, i, ok) in &reports {
            sim.run_until(*at).await;
            sim.report(&name(*i), *ok);
        }
        sim.run_until(day0 + Duration::days(days)).await;
        sim
    });
    let cpu = cpu_seconds() - cpu0;
    let wall = wall0.elapsed().as_secs_f64();

    // Each alert's posts, by the id every one of them names.
    let mut by_alert: BTreeMap<i64, Vec<(DateTime<Utc>, String)>> = BTreeMap::new();
    for s in sim.sent().into_iter().filter(|s| !s.edit) {
        let id = s
            .text
            .split("alert A")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<i64>().ok())
            .expect("every watchdog post names its alert");
        by_alert.entry(id).or_default().push((s.at, s.text));
    }
    let alerts = sim.app.db.alerts_open().unwrap().len();
    let mut outages = 0;
    let mut wrong = Vec::new();
    let mut worst_delay = 0i64;
    let mut per_outage: BTreeMap<usize, usize> = BTreeMap::new();
    let mut false_alerts = 0;
    for posts in by_alert.values() {
        let (opened_at, first) = &posts[0];
        let target = first
            .split("job-")
            .nth(1)
            .map(|r| r[..5].parse::<u64>().unwrap())
            .unwrap();
        let (deadline, close) = match plan(target) {
            Plan::Healthy => {
                false_alerts += 1;
                continue;
            }
            Plan::Silent { start, days } => (
                due(target, start) + Duration::hours(GRACE_HOURS),
                due(target, start + days) + Duration::minutes(10),
            ),
            Plan::Failing { start, days } => (
                due(target, start) + Duration::minutes(5),
                due(target, start + days) + Duration::minutes(10),
            ),
        };
        outages += 1;
        worst_delay = worst_delay.max((*opened_at - deadline).num_milliseconds());
        let repeats = ((close - deadline).num_minutes() / (REALERT_HOURS * 60)) as usize;
        let expected = 1 + repeats + 1;
        *per_outage.entry(posts.len()).or_default() += 1;
        let last_is_recovery = posts
            .last()
            .is_some_and(|(_, t)| t.contains("healthy again"));
        if posts.len() != expected || !last_is_recovery {
            wrong.push((name(target), posts.len(), expected));
        }
    }
    let failing = (0..targets).filter(|i| plan(*i) != Plan::Healthy).count();
    let edits = sim.sent().iter().filter(|s| s.edit).count();
    println!();
    println!(
        "simulated {days} days, {targets} targets, {failing} failing ({:.0} %), realert {REALERT_HOURS}h, grace {GRACE_HOURS}h",
        failing as f64 / targets as f64 * 100.0
    );
    println!(
        "| outages | alerts with 1 + repeats + 1 posts | wrong | false alerts | still open | posts per outage (count: outages) | edits | worst delay deadline → alert (simulated) | CPU | wall |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let hist: Vec<String> = per_outage
        .iter()
        .map(|(n, k)| format!("{n}: {k}"))
        .collect();
    println!(
        "| {outages} | {} | {} | {false_alerts} | {alerts} | {} | {edits} | {:.3} s | {cpu:.1} s | {wall:.1} s |",
        outages - wrong.len(),
        wrong.len(),
        hist.join(", "),
        worst_delay as f64 / 1000.0
    );
    if !wrong.is_empty() {
        println!(
            "wrong (target, posts, expected): {:?}",
            &wrong[..wrong.len().min(10)]
        );
    }
    assert_eq!(outages, failing, "every outage was alerted, once");
}
