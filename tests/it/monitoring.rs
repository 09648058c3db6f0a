//! lifeboat watched from outside: the heartbeat of `serve` and each backup's pings
//! (healthchecks.io's conventions), against a local HTTP server that records what it
//! receives. The monitor URLs are secrets: no log line, output or audit shows them.

use serde_json::json;

use crate::common::fakes::*;
use crate::common::*;

/// The secret part of every monitor URL in these tests.
const SECRET: &str = "uuid-7f3a9c";

fn paths(api: &FakeApi) -> Vec<String> {
    api.calls().into_iter().map(|c| c.path).collect()
}

fn metric(serve: &Serve, line_start: &str) -> Option<f64> {
    let (_, text) = serve.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn serve_pings_the_heartbeat_and_counts_failures_without_showing_the_url() {
    let api = FakeApi::start();
    api.answer(SECRET, json!({}));
    let home = Home::with_config(
        &ConfigBuilder::new().server("heartbeat = { url = \"${HEARTBEAT_URL}\", every = \"10s\" }"),
    );
    let mut cmd = home.command(&["serve"]);
    cmd.env("HEARTBEAT_URL", format!("{}/hb/{SECRET}", api.base));
    let serve = Serve::from_command(cmd);
    api.wait_until(20, "the first heartbeat", |c| {
        c.iter().any(|c| c.path == format!("/hb/{SECRET}"))
    });
    let ok = "lifeboat_heartbeat_pings_total{outcome=\"ok\"}";
    wait_for(20, "the ping counted", || metric(&serve, ok) >= Some(1.0));
    assert!(metric(&serve, "lifeboat_heartbeat_last_success_timestamp_seconds").unwrap() > 1.7e9);
    let (_, text) = serve.get("/metrics");
    promtool_check(home.dir.path(), &text);

    // The monitor goes away: the next ping fails, is logged and counted.
    api.set_down(true);
    let failed = "lifeboat_heartbeat_pings_total{outcome=\"failed\"}";
    wait_for(30, "a failed ping counted", || {
        metric(&serve, failed) >= Some(1.0)
    });
    assert!(serve.log_text().contains("heartbeat failed"));
    let log = serve.log_text();
    assert!(!log.contains(SECRET) && !log.contains("/hb/"), "{log}");
    serve.stop();
}

#[test]
fn a_damaged_state_withholds_the_heartbeat() {
    let api = FakeApi::start();
    let home = crate::state_damage::damaged_home(&api);
    crate::state_damage::damage(&home.path("var/lifeboat.db"));
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    let text = text.replacen(
        "[server]\n",
        "[server]\nheartbeat = { url = \"${HEARTBEAT_URL}\", every = \"10s\" }\n",
        1,
    );
    std::fs::write(home.config_path(), text).unwrap();
    let mut cmd = home.command(&["serve"]);
    cmd.env("HEARTBEAT_URL", format!("{}/hb/{SECRET}", api.base));
    let serve = Serve::from_command(cmd);
    // The heartbeat's first decision (made once the scheduler has turned) is to withhold.
    wait_for(30, "the heartbeat withheld", || {
        serve
            .log_text()
            .contains("heartbeat withheld: the state database is damaged")
    });
    assert!(
        !paths(&api).iter().any(|p| p.starts_with("/hb/")),
        "no heartbeat while the state is damaged: {:?}",
        paths(&api)
    );
}

#[test]
fn each_backup_tells_its_monitor_of_its_start_and_its_end_and_never_fails_for_it() {
    let api = FakeApi::start();
    api.answer("/start", json!({}));
    api.answer("/fail", json!({}));
    api.answer(SECRET, json!({}));
    let home = Home::with_config(
        &ConfigBuilder::new()
            .sqlite_target("app-db", "../data/app.db")
            .with("ping_url = \"${APP_PING}\"")
            .sqlite_target("gone", "../data/gone.db")
            .with("ping_url = \"${GONE_PING}\""),
    );
    drop(make_app_db(&home.path("data/app.db"), 20));
    let url = |name: &str| format!("{}/ping/{name}/{SECRET}", api.base);
    let backup = |target: &str| {
        home.command(&["backup", target])
            .env("APP_PING", url("app"))
            .env("GONE_PING", url("gone"))
            .output()
            .unwrap()
    };

    // The CLI waits for the pings before it exits: they are there when it returns.
    let out = backup("app-db");
    assert!(out.status.success(), "{}", stderr(&out));
    let app = format!("/ping/app/{SECRET}");
    assert_eq!(paths(&api), vec![format!("{app}/start"), app.clone()]);
    assert!(api.calls().iter().all(|c| c.method == "POST"));

    // A failed backup: /fail, with the error as the body.
    let out = backup("gone");
    assert!(!out.status.success());
    let calls = api.calls_to("/fail");
    assert_eq!(calls.len(), 1, "{:?}", paths(&api));
    assert_eq!(calls[0].path, format!("/ping/gone/{SECRET}/fail"));
    assert!(
        calls[0].raw.contains("gone.db"),
        "the error: {}",
        calls[0].raw
    );
    let gone = paths(&api);
    assert_eq!(gone[gone.len() - 2], format!("/ping/gone/{SECRET}/start"));

    // The monitor down: the backup succeeds all the same; the failure is logged unseen.
    api.set_down(true);
    let before = api.calls().len();
    let out = backup("app-db");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("could not tell the monitor"), "{err}");
    assert!(api.calls().len() > before + 2, "retried");
    for text in [err, stdout(&out)] {
        assert!(!text.contains(SECRET) && !text.contains("/ping/"), "{text}");
    }
    let audit = home.state_strings("SELECT coalesce(detail, '') FROM audit");
    assert!(audit.iter().all(|d| !d.contains(SECRET)), "{audit:?}");
}
