//! Schedules and the watchdog through the real server: second-level cron schedules with
//! short graces, a fake Slack API as the alert channel, restarts in between.

mod common;

use std::time::Duration;

use common::fakes::*;
use common::*;

const ALERTS: &str = "C0ALERTS";

fn watch_home(api: &FakeApi, targets: &str) -> Home {
    let home = Home::new();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate = \"../var/lifeboat.db\"\nmax_jobs = 2\n\n\
         [access]\nchannels = [\"slack:{ALERTS}\"]\n\n\
         [slack]\nsigning_secret = \"${{SLACK_SIGNING_SECRET}}\"\nbot_token = \"${{SLACK_BOT_TOKEN}}\"\nalert_channel = \"{ALERTS}\"\napi_url = \"{}/api/\"\n\n\
         [stores.local]\nkind = \"local\"\npath = \"../backups\"\n\n{targets}",
        api.base
    );
    std::fs::write(home.config_path(), text).unwrap();
    home
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

#[test]
fn a_failing_schedule_alerts_once_realerts_then_recovers_once() {
    let api = FakeApi::start();
    let home = watch_home(
        &api,
        "[targets.flaky]\nkind = \"sqlite\"\npath = \"../data/flaky.db\"\nstore = \"local\"\nschedule = \"*/2 * * * * *\"\ngrace = \"1h\"\nrealert = \"6s\"\n",
    );
    let serve = Serve::start(&home);
    api.wait_until(15, "the failure alert", |_| {
        count_matching(&api, "backup of flaky failed") == 1
    });
    let first = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        count_matching(&api, "backup of flaky failed"),
        1,
        "no flood while it keeps failing: {:?}",
        alerts(&api)
    );
    api.wait_until(15, "the repeat", |_| count_matching(&api, "(still)") == 1);
    assert!(
        first.elapsed() >= Duration::from_secs(5),
        "repeated only after realert"
    );
    assert!(
        alerts(&api).iter().any(|t| t.contains("does not exist")),
        "the alert carries the error: {:?}",
        alerts(&api)
    );

    drop(make_app_db(&home.path("data/flaky.db"), 10));
    api.wait_until(15, "the recovery notice", |_| {
        count_matching(&api, "flaky is healthy again") == 1
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count_matching(&api, "healthy again"), 1);
    assert_eq!(
        count_matching(&api, "failed"),
        2,
        "one alert and one repeat: {:?}",
        alerts(&api)
    );
    serve.stop();
}

#[test]
fn an_external_job_that_never_reports_is_missed_and_a_ping_recovers_it() {
    let api = FakeApi::start();
    // Due every 5 seconds with a 1 s grace: the first due time after lifeboat starts
    // watching passes without a report.
    let home = watch_home(
        &api,
        "[targets.nightly]\nkind = \"external\"\nschedule = \"*/5 * * * * *\"\ngrace = \"1s\"\nrealert = \"1h\"\ntoken = \"${NIGHTLY_TOKEN}\"\n",
    );
    let start = |home: &Home| {
        // SAFETY of the environment: the variable is set for the child only.
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
        text.contains("no good backup on record") && text.contains("/hooks/ping"),
        "{text}"
    );
    serve.stop();

    // A restart does not repeat what was already said.
    let serve = Serve::from_command(start(&home));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        count_matching(&api, "missed backup"),
        1,
        "{:?}",
        alerts(&api)
    );

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

    // A failure report alerts with its message.
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
    api.wait_until(10, "the failure alert", |_| {
        count_matching(&api, "pg_dump: connection refused") == 1
    });
    serve.stop();
}

#[test]
fn overlapping_runs_are_skipped_long_runs_alert_and_retention_keeps_what_it_says() {
    let api = FakeApi::start();
    let home = watch_home(
        &api,
        "[targets.big]\nkind = \"sqlite\"\npath = \"../data/big.db\"\nstore = \"local\"\nschedule = \"* * * * * *\"\ngrace = \"1h\"\nmax_duration = \"1s\"\nretention = { last = 2 }\n",
    );
    make_big_db(&home.path("data/big.db"), 384);
    let serve = Serve::start(&home);
    api.wait_until(60, "the too-long alert", |_| {
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
    wait_for(60, "a skipped run", || skipped() >= 1);
    let concurrent: i64 = db
        .query_row(
            "SELECT count(*) FROM jobs WHERE kind = 'backup' AND state = 'running'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(concurrent <= 1, "never two backups of one target at once");
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
    let home = watch_home(
        &api,
        "[targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\nschedule = \"0 0 3 * * *\"\n\n\
         [targets.nightly]\nkind = \"external\"\nschedule = \"0 0 3 * * *\"\ntoken = \"${SLACK_BOT_TOKEN}\"\n",
    );
    drop(make_app_db(&home.path("data/app.db"), 50));
    home.json(&["backup", "app-db"]);
    home.json(&["backup", "app-db"]);
    let serve = Serve::start(&home);
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
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let path = home.path("metrics.txt");
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new("promtool")
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

#[test]
fn a_failed_verification_alerts_and_a_passing_one_recovers() {
    let api = FakeApi::start();
    let home = watch_home(
        &api,
        "[targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\nschedule = \"0 0 3 * * *\"\ngrace = \"1h\"\n",
    );
    // The same config, with an operator who may verify from chat.
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    std::fs::write(
        home.config_path(),
        text.replace("[access]\n", "[access]\noperators = [\"slack:U0OPS\"]\n"),
    )
    .unwrap();
    drop(make_app_db(&home.path("data/app.db"), 100));
    let first = home.json(&["backup", "app-db"]);
    let serve = Serve::start(&home);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        alerts(&api).is_empty(),
        "a healthy target is quiet: {:?}",
        alerts(&api)
    );

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
    assert_eq!(
        count_matching(&api, "⚠️") + count_matching(&api, "healthy again"),
        0,
        "nothing else was alerted"
    );

    home.json(&["backup", "app-db"]);
    slack_command(&serve, "U0OPS", ALERTS, "/verify", "app-db");
    api.wait_until(20, "the recovery notice", |_| {
        count_matching(&api, "app-db is healthy again") == 1
    });
    serve.stop();
}
