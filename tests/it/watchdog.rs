//! Schedules and the watchdog through the real server: second-level cron schedules with
//! short graces, a fake Slack API as the alert channel, restarts in between.

use std::time::Duration;

use crate::common::fakes::*;
use crate::common::*;

const ALERTS: &str = "C0ALERTS";

/// A config whose alerts go to the fake Slack's channel `ALERTS`.
fn watch_config(api: &FakeApi) -> ConfigBuilder {
    ConfigBuilder::new()
        .server("max_jobs = 2")
        .channels(&["slack:C0ALERTS"])
        .slack(api, Some(ALERTS))
}

fn watch_home(_api: &FakeApi, targets: ConfigBuilder) -> Home {
    Home::with_config(&targets)
}

fn alerts(api: &FakeApi) -> Vec<String> {
    api.calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["channel"] == ALERTS)
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn count_matching(api: &FakeApi, needle: &str) -> usize {
    alerts(api).iter().filter(|t| t.contains(needle)).count()
}

/// Every message (not edit) posted to the alert channel.
fn posts(api: &FakeApi) -> Vec<Call> {
    api.calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["channel"] == ALERTS)
        .collect()
}

/// The texts of the edits of the message posted as `ts`.
fn edits_of(api: &FakeApi, ts: &str) -> Vec<String> {
    api.calls_to("chat.update")
        .into_iter()
        .filter(|c| c.body["ts"] == ts)
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The alert and recovery lines of the audit log, oldest first.
fn audited(home: &Home) -> Vec<String> {
    home.state_strings(
        "SELECT action || ' ' || outcome || ' ' || coalesce(detail, '') FROM audit WHERE action IN ('alert', 'recovery') ORDER BY id",
    )
}

fn metrics_text(serve: &Serve) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(&serve.url("/metrics")).call().unwrap();
    resp.body_mut().read_to_string().unwrap()
}

#[test]
fn a_failing_schedule_is_one_alert_updated_in_place_repeated_then_one_recovery() {
    let api = FakeApi::start();
    // The database is missing: every run fails, and with a 1 s grace each due time is
    // missed as well. Both are one alert.
    let home = watch_home(
        &api,
        watch_config(&api)
            .sqlite_target("flaky", "../data/flaky.db")
            .with("schedule = \"*/2 * * * * *\"\ngrace = \"1s\"\nrealert = \"8s\""),
    );
    let serve = Serve::start(&home);
    api.wait_until(15, "the failure alert", |_| {
        count_matching(&api, "backup of flaky failed") == 1
    });
    let first = std::time::Instant::now();
    let opening = posts(&api)[0].clone();
    assert!(
        opening.body["text"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "the alert carries the error: {:?}",
        opening.body
    );
    // The fake's answer to the post carries its ts; the edits name it.
    api.wait_until(15, "an edit of the alert", |_| {
        !api.calls_to("chat.update").is_empty()
    });
    let ts = api.calls_to("chat.update")[0].body["ts"]
        .as_str()
        .unwrap()
        .to_string();
    // Two more failed runs and a missed due time, counted in the one message.
    api.wait_until(
        15,
        "the third failure and a missed due time in the alert",
        |_| {
            let edits = edits_of(&api, &ts);
            edits.iter().any(|e| e.contains("failed (3 in a row)"))
                && edits.iter().any(|e| e.contains("missed backup: flaky"))
        },
    );
    assert_eq!(
        posts(&api).len(),
        1,
        "no flood while it keeps failing: {:?}",
        alerts(&api)
    );
    let edits = edits_of(&api, &ts);
    assert!(
        edits.iter().any(|e| e.contains("failed (3 in a row)"))
            && edits.iter().any(|e| e.contains("missed backup: flaky")),
        "the count grows in the one message, which also says the due time was missed: {edits:#?}"
    );
    api.wait_until(15, "the repeat", |_| count_matching(&api, "(still)") >= 1);
    assert!(
        first.elapsed() >= Duration::from_secs(7),
        "repeated only after realert"
    );

    drop(make_app_db(&home.path("data/flaky.db"), 10));
    api.wait_until(15, "the recovery notice", |_| {
        count_matching(&api, "flaky is healthy again") == 1
    });
    // Two more scheduled backups after it: had they said anything, it would be in.
    let succeeded = || -> i64 {
        rusqlite::Connection::open(home.path("var/lifeboat.db"))
            .unwrap()
            .query_row(
                "SELECT count(*) FROM jobs WHERE kind = 'backup' AND state = 'succeeded'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let before = succeeded();
    wait_for(15, "two more backups", || succeeded() >= before + 2);
    let texts = alerts(&api);
    assert_eq!(count_matching(&api, "healthy again"), 1, "{texts:#?}");
    let recovery = texts.iter().find(|t| t.contains("healthy again")).unwrap();
    assert!(
        recovery.contains("alert A1 was open for") && recovery.contains("failed runs"),
        "{recovery}"
    );
    let repeats = count_matching(&api, "(still)");
    let upto = texts
        .iter()
        .position(|t| t.contains("healthy again"))
        .unwrap();
    assert_eq!(
        upto + 1,
        1 + repeats + 1,
        "one alert, its repeats, one recovery: {texts:#?}"
    );
    // After it, nothing of that alert. A backup that took longer than the 1 s grace on a
    // busy machine is honestly a new "missed" alert, and only that may follow.
    assert!(
        texts[upto + 1..]
            .iter()
            .all(|t| t.starts_with("⚠\u{fe0f} missed backup: flaky")),
        "only a new missed alert may follow the recovery: {texts:#?}"
    );
    assert!((1..=2).contains(&repeats), "{texts:#?}");
    serve.stop();
}

#[test]
fn an_external_job_that_never_reports_is_one_alert_through_a_restart_until_a_ping() {
    let api = FakeApi::start();
    // Due every 3 seconds with a 1 s grace and no report ever: before, each due time
    // brought a false "healthy again" and a new alert.
    let home = watch_home(
        &api,
        watch_config(&api)
            .external_target("nightly", "*/3 * * * * *", "NIGHTLY_TOKEN")
            .with("grace = \"1s\"\nrealert = \"1h\""),
    );
    let start = |home: &Home| {
        let mut cmd = home.command(&["serve"]);
        cmd.env("NIGHTLY_TOKEN", "ping-secret");
        cmd
    };
    let serve = Serve::from_command(start(&home));
    api.wait_until(10, "the missed alert", |_| {
        count_matching(&api, "missed backup: nightly") == 1
    });
    let text = alerts(&api).pop().unwrap();
    assert!(
        text.contains("no good backup on record")
            && text.contains("/hooks/ping")
            && text.contains("alert A1"),
        "{text}"
    );
    // Each missed due time is counted in the alert; three more go by.
    let missed = |n: u32| {
        let needle = format!("{n} due times missed");
        api.calls_to("chat.update")
            .iter()
            .any(|c| c.body["text"].as_str().unwrap_or("").contains(&needle))
    };
    api.wait_until(20, "the fourth missed due time in the alert", |_| missed(4));
    assert_eq!(
        alerts(&api).len(),
        1,
        "no false recovery, no new alert: {:?}",
        alerts(&api)
    );
    let metrics = metrics_text(&serve);
    assert!(
        metrics.contains("lifeboat_alert_open{id=\"A1\",target=\"nightly\",kind=\"backup\"} 1"),
        "{metrics}"
    );
    assert!(
        audited(&home)
            .iter()
            .any(|a| a.starts_with("alert opened A1 backup")),
        "{:?}",
        audited(&home)
    );
    serve.stop();

    // A restart does not repeat what was already said. It starts just after a due time,
    // so its first look comes while that due time is within its grace: nothing is
    // overdue in that second, yet nothing proves the job well either.
    let in_cycle = |_: ()| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        ms % 3000
    };
    let mut tries = 0;
    let serve = loop {
        std::thread::sleep(Duration::from_millis(3000 - in_cycle(()) as u64 + 50));
        let serve = Serve::from_command(start(&home));
        // A start slowed past the grace (a busy machine) is not the case this is about:
        // try again.
        tries += 1;
        if in_cycle(()) < 900 || tries == 5 {
            break serve;
        }
        serve.stop();
    };
    assert!(in_cycle(()) < 900, "serve started within the grace");
    let restarted = std::time::Instant::now();
    // The restarted serve counts the next missed due time in the same alert.
    api.wait_until(20, "an edit of the alert after the restart", |_| {
        api.calls_to("chat.update").iter().any(|c| {
            let text = c.body["text"].as_str().unwrap_or("");
            c.at > restarted && text.contains("alert A1")
        })
    });
    assert_eq!(alerts(&api).len(), 1, "{:?}", alerts(&api));

    let url = serve.url("/hooks/ping/nightly");
    let json = "application/json";
    let auth = |t: &str| [("authorization", format!("Bearer {t}"))];
    assert_eq!(
        post(&url, json, &auth("wrong"), r#"{"status":"success"}"#).0,
        401
    );
    assert_eq!(post(&url, json, &[], r#"{"status":"success"}"#).0, 401);
    assert_eq!(
        post(
            &serve.url("/hooks/ping/nope"),
            json,
            &auth("ping-secret"),
            r#"{"status":"success"}"#
        )
        .0,
        404
    );
    assert_eq!(
        post(&url, json, &auth("ping-secret"), r#"{"status":"maybe"}"#).0,
        400
    );
    assert_eq!(
        post(&url, json, &auth("ping-secret"), &"x".repeat((1 << 20) + 1)).0,
        413
    );
    assert_eq!(alerts(&api).len(), 1, "refused reports change nothing");
    let (code, body) = post(
        &url,
        json,
        &auth("ping-secret"),
        r#"{"status":"success","message":"nightly dump 2.1 GB"}"#,
    );
    assert_eq!(code, 200, "{body}");
    api.wait_until(10, "the recovery notice", |_| {
        count_matching(&api, "nightly is healthy again") == 1
    });
    let recovery = alerts(&api).pop().unwrap();
    assert!(
        recovery.contains("a success report at") && recovery.contains("alert A1 was open for"),
        "{recovery}"
    );
    assert!(
        !metrics_text(&serve).contains("id=\"A1\""),
        "closed alerts leave /metrics"
    );
    assert!(
        audited(&home)
            .iter()
            .any(|a| a.starts_with("recovery closed A1 backup"))
    );

    // A failure report is alerted with its message (a new alert, or the one the next
    // missed due time opened).
    assert_eq!(
        post(
            &url,
            json,
            &auth("ping-secret"),
            r#"{"status":"fail","message":"pg_dump: connection refused"}"#
        )
        .0,
        200
    );
    api.wait_until(10, "the failure in the alert channel", |calls| {
        calls.iter().any(|c| {
            c.body["channel"] == ALERTS
                && c.body["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("pg_dump: connection refused")
        })
    });
    assert!(
        alerts(&api)
            .iter()
            .all(|t| !t.contains("alert A1 ") || !t.contains("pg_dump"))
    );
    serve.stop();
}

#[test]
fn flapping_reports_success_fail_success_give_one_alert_and_one_recovery() {
    let api = FakeApi::start();
    let home = watch_home(
        &api,
        watch_config(&api)
            .external_target("nightly", "0 0 3 * * *", "SLACK_BOT_TOKEN")
            .with("realert = \"1h\""),
    );
    let serve = Serve::start(&home);
    let url = serve.url("/hooks/ping/nightly");
    let report = |status: &str| {
        let auth = [("authorization", "Bearer xoxb-test-token".to_string())];
        let body = format!("{{\"status\":\"{status}\",\"message\":\"dump {status}\"}}");
        assert_eq!(post(&url, "application/json", &auth, &body).0, 200);
    };
    report("success");
    report("fail");
    // The failure's alert is the first thing said: the success before it said nothing.
    api.wait_until(10, "the alert", |_| !alerts(&api).is_empty());
    assert!(alerts(&api)[0].contains("failed"), "{:?}", alerts(&api));
    report("success");
    api.wait_until(10, "the recovery", |_| alerts(&api).len() >= 2);
    // The next failure is a new alert, said after anything the recovery set off.
    report("fail");
    api.wait_until(10, "the next alert", |_| {
        alerts(&api).iter().any(|t| t.contains("alert A2"))
    });
    let texts = alerts(&api);
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert!(
        texts[0].contains("backup of nightly failed (1 in a row): dump fail")
            && texts[0].contains("alert A1"),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].contains("nightly is healthy again") && texts[1].contains("alert A1 was open for"),
        "{}",
        texts[1]
    );
    serve.stop();
}

#[test]
fn overlapping_runs_are_skipped_long_runs_alert_and_retention_keeps_what_it_says() {
    let api = FakeApi::start();
    let home = watch_home(
        &api,
        watch_config(&api)
            .sqlite_target("big", "../data/big.db")
            .with("schedule = \"* * * * * *\"\ngrace = \"1h\"\nmax_duration = \"1s\"")
            .with("retention = { last = 2 }"),
    );
    // The application holds a write transaction: the first scheduled backup waits for it,
    // so it surely outlasts max_duration and the next due times, until it commits.
    let app = held_db(&home.path("data/big.db"));
    let serve = Serve::start(&home);
    api.wait_until(20, "the too-long alert", |_| {
        count_matching(&api, "longer than its max_duration") >= 1
    });
    let db = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    let skipped = || -> i64 {
        db.query_row(
            "SELECT count(*) FROM audit WHERE action = 'scheduled backup skipped'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    wait_for(20, "a skipped run", || skipped() >= 1);
    let concurrent: i64 = db
        .query_row(
            "SELECT count(*) FROM jobs WHERE kind = 'backup' AND state = 'running'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(concurrent <= 1, "never two backups of one target at once");
    app.execute_batch("COMMIT").unwrap();
    // Generous: the backups run at a lower CPU priority than everything else in this test run.
    wait_for(300, "three finished backups", || {
        db.query_row::<i64, _, _>(
            "SELECT count(*) FROM jobs WHERE kind = 'backup' AND state = 'succeeded'",
            [],
            |r| r.get(0),
        )
        .unwrap()
            >= 3
    });
    wait_for(30, "retention after the scheduled backup", || {
        home.json(&["list", "big"]).as_array().unwrap().len() == 2
    });
    let pruned: i64 = db
        .query_row(
            "SELECT count(*) FROM jobs WHERE kind = 'prune' AND state = 'succeeded'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(pruned >= 1);
    drop(serve);
}

#[test]
fn metrics_pass_promtool() {
    let api = FakeApi::start();
    // `nightly` never reports: its daily run fell half a day ago, well past the hour of
    // grace, whatever the time of day the test runs at.
    let hour = (chrono::Timelike::hour(&chrono::Utc::now()) + 12) % 24;
    let nightly = format!("0 0 {hour} * * *");
    let home = watch_home(
        &api,
        watch_config(&api)
            .sqlite_target("app-db", "../data/app.db")
            .with("schedule = \"0 0 3 * * *\"")
            .external_target("nightly", &nightly, "SLACK_BOT_TOKEN")
            .external_target("broken", "0 0 3 * * *", "SLACK_BOT_TOKEN"),
    );
    drop(make_app_db(&home.path("data/app.db"), 50));
    home.json(&["backup", "app-db"]);
    home.json(&["backup", "app-db"]);
    // The last report of `broken` was a failure: its alert is open once serve has looked.
    rusqlite::Connection::open(home.path("var/lifeboat.db"))
        .unwrap()
        .execute(
            "INSERT INTO jobs (kind, target, actor, state, started_at, finished_at, message, pid)
             VALUES ('backup', 'broken', 'hook:broken', 'failed', '2026-11-22T03:00:00.000Z', '2026-11-22T03:00:01.000Z', 'disk full', 0)",
            [],
        )
        .unwrap();
    let serve = Serve::start(&home);
    api.wait_until(10, "the alert of broken", |_| {
        count_matching(&api, "backup of broken failed") == 1
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let _ = agent.get(&serve.url("/healthz")).call().unwrap();
    let mut resp = agent.get(&serve.url("/metrics")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.body_mut().read_to_string().unwrap();
    for needle in [
        "lifeboat_last_success_timestamp_seconds{target=\"app-db\"}",
        "lifeboat_last_backup_size_bytes{target=\"app-db\"}",
        "lifeboat_last_backup_duration_seconds{target=\"app-db\"}",
        "lifeboat_consecutive_failures{target=\"nightly\"} 0",
        "lifeboat_overdue{target=\"nightly\"} 1",
        "lifeboat_overdue{target=\"app-db\"} 0",
        "lifeboat_jobs_total{kind=\"backup\",outcome=\"succeeded\"} 2",
        "lifeboat_http_requests_total{endpoint=\"/healthz\",status=\"200\"} 1",
        "lifeboat_alert_open{id=\"A1\",target=\"broken\",kind=\"backup\"} 1",
        "lifeboat_alert_occurrences{id=\"A1\",target=\"broken\",kind=\"backup\"} 1",
        "lifeboat_alert_opened_timestamp_seconds{id=\"A1\",target=\"broken\",kind=\"backup\"} ",
        "lifeboat_alerts_opened_total{kind=\"backup\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    promtool_check(home.dir.path(), &text);
}

#[test]
fn a_failed_verification_alerts_and_a_passing_one_recovers() {
    let api = FakeApi::start();
    // An operator who may verify from chat.
    let home = watch_home(
        &api,
        watch_config(&api)
            .operators(&["slack:U0OPS"])
            .sqlite_target("app-db", "../data/app.db")
            .with("schedule = \"0 0 3 * * *\"\ngrace = \"1h\""),
    );
    drop(make_app_db(&home.path("data/app.db"), 100));
    let first = home.json(&["backup", "app-db"]);
    let serve = Serve::start(&home);

    let artifact = home
        .path("backups")
        .join(first["artifact"].as_str().unwrap());
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&artifact, bytes).unwrap();
    slack_command(&serve, "U0OPS", ALERTS, "/verify", "app-db");
    api.wait_until(20, "the verification alert", |_| {
        count_matching(&api, "verification of app-db failed") == 1
    });
    // The only alert: the healthy target was quiet until then.
    assert!(
        alerts(&api)
            .iter()
            .all(|t| !t.contains("alert A") || t.contains("verification of app-db failed")),
        "a healthy target is quiet: {:?}",
        alerts(&api)
    );
    assert_eq!(
        count_matching(&api, "⚠️") + count_matching(&api, "healthy again"),
        0,
        "nothing else was alerted"
    );

    home.json(&["backup", "app-db"]);
    slack_command(&serve, "U0OPS", ALERTS, "/verify", "app-db");
    api.wait_until(20, "the recovery notice", |_| {
        count_matching(&api, "verification of app-db passes again") == 1
    });
    assert_eq!(
        count_matching(&api, "alert A"),
        2,
        "one alert, one recovery: {:?}",
        alerts(&api)
    );
    serve.stop();
}
