//! A new replication generation (the application truncated the log while no replicator
//! held it) is one alert in the alert channel, and a verify that proves the new chain
//! closes it with one recovery notice. Real `serve`, the recording fake Slack API.

use super::*;
use crate::common::fakes::{Call, FakeApi};

const ALERTS: &str = "C0ALERTS";
const NEEDLE: &str = "had to start a new generation";

fn posts(calls: &[Call], needle: &str) -> usize {
    calls
        .iter()
        .filter(|c| {
            c.path.ends_with("chat.postMessage")
                && c.body["channel"] == ALERTS
                && c.body["text"].as_str().unwrap_or("").contains(needle)
        })
        .count()
}

#[test]
fn a_new_generation_is_one_alert_and_a_passing_verify_one_recovery() {
    let api = FakeApi::start();
    // A short max_lag makes the watchdog look every second while it replicates.
    let home = Home::with_config(
        &ConfigBuilder::new()
            .slack(&api, Some(ALERTS))
            .raw(&format!("{}max_lag = \"2s\"\n", target("local"))),
    );
    let db = db_path(&home);
    create_db(&db, true);
    let log = home.path("data/commits.log");

    // The first generation: no alert for it.
    let serve = fakes::Serve::start(&home);
    finish(writer(&db, 200, &log, &["noauto"]));
    home.wait_replicated_past(commits(&log).last().unwrap().committed);
    serve.stop();
    assert_eq!(
        posts(&api.calls(), NEEDLE),
        0,
        "the first generation is no alert"
    );

    // Behind lifeboat's back: more rows, then the application truncates the log.
    finish(writer(&db, 200, &log, &["noauto", "truncate=400"]));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("# truncate 0 0 0"),
        "the truncate went through"
    );

    let serve = fakes::Serve::start(&home);
    let calls = api.wait_until(60, "the new-generation alert", |calls| {
        posts(calls, NEEDLE) > 0
    });
    let alert = calls
        .iter()
        .find(|c| posts(std::slice::from_ref(c), NEEDLE) == 1)
        .unwrap();
    let said = alert.body["text"].as_str().unwrap();
    assert!(said.contains("app") && said.contains("WAL"), "{said}");

    // Until a verify passes, status does not pass the old verify off as the new chain's.
    let status = home.status();
    let unproven = status["unverified_generation"].as_str().unwrap_or_default();
    assert!(unproven.starts_with("generation "), "{status}");
    assert_eq!(status["health"], "amber", "{status}");
    let reasons = status["health_reasons"].to_string();
    assert!(
        reasons.contains("replication started over") && reasons.contains("lifeboat verify app"),
        "{reasons}"
    );

    // The new chain proved by a verify: one recovery notice.
    home.ok(&["verify", "app"]);
    let status = home.status();
    assert!(status.get("unverified_generation").is_none(), "{status}");
    let calls = api.wait_until(60, "the recovery notice", |calls| {
        posts(calls, "new replication chain of app is verified") > 0
    });
    assert_eq!(posts(&calls, NEEDLE), 1, "one alert, not one per look");
    serve.stop();
    let calls = api.calls();
    assert_eq!(posts(&calls, NEEDLE), 1, "{:?}", texts(&calls));
    assert_eq!(posts(&calls, "new replication chain of app is verified"), 1);
}

fn texts(calls: &[Call]) -> Vec<String> {
    crate::common::fakes::texts(calls)
}
