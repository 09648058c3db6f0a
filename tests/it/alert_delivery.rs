//! Chat never holds the watchdog up: with one alert's message deleted (its edits refused
//! for good), every other alert and every recovery notice arrives as fast as in a run
//! where nothing is refused, and the refused alert moves to one fresh message; a channel
//! lifeboat cannot post to is reported once, in the audit log, `/healthz` and `status`.
//! Real `serve`, the recording fake Slack API.

use std::time::{Duration, SystemTime};

use crate::common::fakes::*;
use crate::common::*;

const ALERTS: &str = "C0ALERTS";

/// How late each message came after the moment it was owed, in one run.
#[derive(Debug)]
struct Latencies {
    /// `late`'s missed-backup alert, after its due time plus grace.
    missed: Duration,
    /// `other`'s failure alert, after the failure report.
    failed: Duration,
    /// `other`'s recovery notice, after the success report.
    other_recovered: Duration,
    /// `victim`'s recovery notice, after its successful backup ended.
    victim_recovered: Duration,
}

/// When the fake received a call, on the wall clock.
fn wall(call: &Call) -> SystemTime {
    SystemTime::now() - call.at.elapsed()
}

fn system_time(text: &str) -> SystemTime {
    let t = lifeboat::units::parse_time(text).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_millis(t.timestamp_millis() as u64)
}

/// The first post to the alert channel containing `needle`, once it arrives.
fn wait_post(api: &FakeApi, secs: u64, needle: &str) -> Call {
    let calls = api.wait_until(secs, needle, |calls| {
        calls.iter().any(|c| is_post(c, needle))
    });
    calls.into_iter().find(|c| is_post(c, needle)).unwrap()
}

fn is_post(c: &Call, needle: &str) -> bool {
    c.path.ends_with("chat.postMessage")
        && c.body["channel"] == ALERTS
        && c.body["text"].as_str().unwrap_or("").contains(needle)
}

fn posts_of(api: &FakeApi, needle: &str) -> Vec<Call> {
    api.calls()
        .into_iter()
        .filter(|c| is_post(c, needle))
        .collect()
}

fn edits_of(api: &FakeApi, ts: &str) -> Vec<Call> {
    api.calls_to("chat.update")
        .into_iter()
        .filter(|c| c.body["ts"] == ts)
        .collect()
}

/// Report `target`'s job outcome to its ping hook; returns when it was accepted.
fn report(serve: &Serve, target: &str, status: &str) -> SystemTime {
    let auth = [("authorization", "Bearer xoxb-test-token".to_string())];
    let body = format!("{{\"status\":\"{status}\",\"message\":\"dump {status}\"}}");
    let url = serve.url(&format!("/hooks/ping/{target}"));
    let sent = SystemTime::now();
    assert_eq!(post(&url, "application/json", &auth, &body).0, 200);
    sent
}

/// One run: `victim` fails every 2 s (its alert edited at each failure), `late` misses a
/// due time about 12 s in, `other` reports a failure and then a success, and `victim`
/// recovers. With `refuse`, the first message of `victim`'s alert has been deleted.
fn run(refuse: bool) -> (Latencies, Home, FakeApi) {
    let api = FakeApi::start();
    // `late` is due once a minute, at a second about 12 s from now: its due time passes
    // while `victim`'s alert is being edited.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let second = (now + 12) % 60;
    let home = Home::with_config(
        &ConfigBuilder::new()
            .server("max_jobs = 2")
            .channels(&["slack:C0ALERTS"])
            .slack(&api, Some(ALERTS))
            .sqlite_target("victim", "../data/victim.db")
            .with("schedule = \"*/2 * * * * *\"\ngrace = \"1h\"\nrealert = \"1h\"")
            .external_target("late", &format!("{second} * * * * *"), "SLACK_BOT_TOKEN")
            .with("grace = \"1s\"\nrealert = \"1h\"")
            .external_target("other", "0 0 3 * * *", "SLACK_BOT_TOKEN")
            .with("realert = \"1h\""),
    );
    home.ok(&["incident", "start", "Backups", "failing"]);
    if refuse {
        api.delete_first_message("backup of victim failed");
    }
    let serve = Serve::start(&home);
    wait_post(&api, 20, "backup of victim failed");
    api.wait_until(20, "an edit of victim's alert", |_| {
        !api.calls_to("chat.update").is_empty()
    });

    let missed = wait_post(&api, 30, "missed backup: late");
    let text = missed.body["text"].as_str().unwrap();
    let due = text
        .split("due at ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let deadline = system_time(due) + Duration::from_secs(1);
    let missed = wall(&missed).duration_since(deadline).unwrap_or_default();

    let sent = report(&serve, "other", "fail");
    let alert = wait_post(&api, 20, "backup of other failed");
    let failed = wall(&alert).duration_since(sent).unwrap_or_default();
    let sent = report(&serve, "other", "success");
    let notice = wait_post(&api, 20, "other is healthy again");
    let other_recovered = wall(&notice).duration_since(sent).unwrap_or_default();

    drop(make_app_db(&home.path("data/victim.db"), 10));
    let notice = wait_post(&api, 30, "victim is healthy again");
    let finished = home.state_strings(
        "SELECT finished_at FROM jobs WHERE target = 'victim' AND state = 'succeeded' ORDER BY id LIMIT 1",
    );
    let victim_recovered = wall(&notice)
        .duration_since(system_time(&finished[0]))
        .unwrap_or_default();
    serve.stop();
    let latencies = Latencies {
        missed,
        failed,
        other_recovered,
        victim_recovered,
    };
    eprintln!("refused: {refuse}: {latencies:?}");
    (latencies, home, api)
}

#[test]
fn a_deleted_alert_message_delays_no_other_alert_and_moves_to_one_fresh_message() {
    let (normal, _, api) = run(false);
    assert_eq!(posts_of(&api, "backup of victim failed").len(), 1);
    let (refused, home, api) = run(true);

    let slack = Duration::from_secs(1);
    // A deadline is looked at on the watchdog's next one-second tick, wherever in the
    // second it falls: two runs may differ by that much with nothing refused.
    let tick = lifeboat::schedule::TICK;
    for (what, normal, refused) in [
        (
            "late's missed-backup alert",
            normal.missed + tick,
            refused.missed,
        ),
        ("other's failure alert", normal.failed, refused.failed),
        (
            "other's recovery notice",
            normal.other_recovered,
            refused.other_recovered,
        ),
        (
            "victim's recovery notice",
            normal.victim_recovered,
            refused.victim_recovered,
        ),
    ] {
        assert!(
            refused <= normal + slack,
            "{what} took {refused:?} with victim's edits refused, {normal:?} without"
        );
    }

    // The deleted message was tried once, not retried; the alert went to one fresh
    // message, whose edits then went through.
    let posted = posts_of(&api, "backup of victim failed");
    assert_eq!(posted.len(), 2, "re-anchored once: {:#?}", texts(&posted));
    let answers: Vec<String> = api
        .calls_to("chat.update")
        .iter()
        .map(|c| c.body["ts"].as_str().unwrap_or("").to_string())
        .collect();
    let gone = answers.first().cloned().unwrap();
    assert_eq!(edits_of(&api, &gone).len(), 1, "{answers:?}");
    assert!(
        answers.iter().skip(1).all(|ts| *ts != gone) && answers.len() >= 2,
        "later edits go to the fresh message: {answers:?}"
    );
    let audited = home.state_strings(
        "SELECT detail FROM audit WHERE action = 'alert' AND outcome = 're-anchored'",
    );
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert!(
        audited[0].contains("message_not_found") && audited[0].contains("slack:C0ALERTS"),
        "{audited:?}"
    );
    let timeline = home.state_strings("SELECT text FROM incident_events WHERE incident_id = 1");
    assert!(
        timeline.iter().any(|t| t.contains("re-anchored")),
        "{timeline:#?}"
    );
}

#[test]
fn a_channel_lifeboat_cannot_post_to_is_reported_once() {
    let api = FakeApi::start();
    api.delete_channel("C0GONE");
    let mut config = ConfigBuilder::new()
        .channels(&["slack:C0OPS"])
        .slack(&api, Some("C0GONE"));
    for t in ["a", "b", "c"] {
        config = config
            .external_target(t, "0 0 3 * * *", "SLACK_BOT_TOKEN")
            .with("realert = \"1h\"");
    }
    let home = Home::with_config(&config);
    let serve = Serve::start(&home);
    // The channel's queue handles one post at a time: when `c`'s post is tried, the
    // refusals of `a`'s and `b`'s have been dealt with.
    for t in ["a", "b", "c"] {
        report(&serve, t, "fail");
        let needle = format!("backup of {t} failed");
        api.wait_until(20, &needle, |calls| {
            calls.iter().any(|c| {
                c.path.ends_with("chat.postMessage")
                    && c.body["channel"] == "C0GONE"
                    && c.body["text"].as_str().unwrap_or("").contains(&needle)
            })
        });
    }
    let audited = home.state_strings(
        "SELECT detail FROM audit WHERE action = 'alert channel unusable' ORDER BY id",
    );
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert!(
        audited[0].contains("slack:C0GONE") && audited[0].contains("channel_not_found"),
        "{audited:?}"
    );
    let logged = serve
        .log_text()
        .lines()
        .filter(|l| l.contains("cannot be posted to"))
        .count();
    assert_eq!(logged, 1, "{}", serve.log_text());

    let (code, body) = serve.get("/healthz");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (code, health["status"].as_str()),
        (200, Some("ok")),
        "{body}"
    );
    let unusable = &health["chat"]["slack"]["unusable_channels"];
    assert_eq!(unusable[0]["channel"], "C0GONE", "{body}");
    assert!(
        unusable[0]["problem"]
            .as_str()
            .unwrap()
            .contains("channel_not_found"),
        "{body}"
    );

    let status = home.json(&["status"]);
    for target in status.as_array().unwrap() {
        assert_eq!(
            target["unreachable_alert_channels"][0]["channel"], "C0GONE",
            "{status:#}"
        );
    }
    assert!(
        home.ok(&["status"])
            .contains("alert channel slack:C0GONE cannot be posted to"),
        "{}",
        home.ok(&["status"])
    );
    serve.stop();
}

/// The header of a Slack message's blocks, and all its blocks as one JSON text.
fn card_of(call: &Call) -> (String, String) {
    let blocks = &call.body["blocks"];
    let header = blocks
        .as_array()
        .and_then(|b| b.first())
        .filter(|b| b["type"] == "header")
        .map(|b| b["text"]["text"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no header block: {:?}", call.body));
    (header, blocks.to_string())
}

#[test]
fn a_missed_backup_is_a_red_card_edited_as_it_grows_and_its_recovery_a_green_one() {
    let api = FakeApi::start();
    let home = Home::with_config(
        &ConfigBuilder::new()
            .channels(&["slack:C0ALERTS"])
            .slack(&api, Some(ALERTS))
            .external_target("nightly", "*/3 * * * * *", "SLACK_BOT_TOKEN")
            .with("grace = \"1s\"\nrealert = \"1h\""),
    );
    let serve = Serve::start(&home);
    let alert = wait_post(&api, 15, "missed backup: nightly");
    let (header, blocks) = card_of(&alert);
    assert_eq!(header, "🔴 The backup of nightly was missed");
    assert!(blocks.contains("`nightly`"), "the target: {blocks}");
    assert!(
        blocks.contains("<!date^"),
        "a date in Slack's code: {blocks}"
    );
    assert!(
        blocks.contains("none on record"),
        "no good backup yet: {blocks}"
    );
    let text = alert.body["text"].as_str().unwrap();
    assert!(
        text.starts_with("⚠️ missed backup: nightly") && text.contains("alert A1 · open since"),
        "the notification is the alert text as before: {text}"
    );
    // The next due time passes too: the count grows in the card, in the same message.
    api.wait_until(15, "the card edited with the count", |_| {
        api.calls_to("chat.update")
            .iter()
            .any(|c| c.body["blocks"].to_string().contains("2 due times missed"))
    });
    report(&serve, "nightly", "success");
    let recovery = wait_post(&api, 15, "nightly is healthy again");
    let (header, blocks) = card_of(&recovery);
    assert_eq!(header, "✅ nightly is healthy again");
    assert!(
        blocks.contains("`nightly`")
            && blocks.contains("a success report at")
            && blocks.contains("<!date^"),
        "{blocks}"
    );
    assert_eq!(posts_of(&api, "missed backup: nightly").len(), 1);
    serve.stop();
}
