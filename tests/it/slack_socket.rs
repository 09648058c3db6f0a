//! Slack in Socket Mode end to end: the real `lifeboat serve`, a local server speaking the
//! Socket Mode protocol (hello, envelopes, acknowledgements, disconnect, cut connections)
//! that the fake Web API's apps.connections.open points to, and the fake Web API recording
//! what lifeboat posts. No signing secret: lifeboat needs no public URL.

use std::time::Duration;

use crate::common::fakes::*;
use crate::common::socket_mode::SocketModeServer;
use crate::common::*;
use serde_json::{Value, json};

const ADMIN1: &str = "U0ADMIN1";
const ADMIN2: &str = "U0ADMIN2";
const OPS: &str = "U0OPS1";
const CHANNEL: &str = "C0OPS";

struct Setup {
    api: FakeApi,
    socket: SocketModeServer,
    home: Home,
}

fn setup(rows: usize) -> Setup {
    let api = FakeApi::start();
    let socket = SocketModeServer::start();
    api.answer(
        "apps.connections.open",
        json!({"ok": true, "url": socket.url}),
    );
    let home = Home::with_config(
        &ConfigBuilder::new()
            .admins(&["slack:U0ADMIN1", "slack:U0ADMIN2"])
            .operators(&["slack:U0OPS1"])
            .channels(&["slack:C0OPS"])
            .slack_socket(&api, CHANNEL)
            .alertmanager_token("SLACK_SIGNING_SECRET")
            .sqlite_target("app-db", "../data/app.db")
            .with("restore_approvals = 1"),
    );
    drop(make_app_db(&home.path("data/app.db"), rows));
    Setup { api, socket, home }
}

fn start(s: &Setup) -> Serve {
    let serve = Serve::start(&s.home);
    s.socket.wait_connections(1, 15);
    serve.wait_chat_connected("slack", true, 10);
    serve
}

/// An Alertmanager alert `name` firing, sent to serve's hook.
fn fire(serve: &Serve, name: &str, summary: &str) {
    let alert = json!({"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": name}, "annotations": {"summary": summary}}]});
    let (code, _) = post(
        &serve.url("/hooks/alertmanager"),
        "application/json",
        &[("authorization", format!("Bearer {SLACK_SECRET}"))],
        &alert.to_string(),
    );
    assert_eq!(code, 200);
}

/// The acknowledgement's payload text (the ephemeral answer).
fn ack_text(ack: &Value) -> String {
    assert_eq!(ack["payload"]["response_type"], "ephemeral", "{ack}");
    ack["payload"]["text"].as_str().unwrap().to_string()
}

fn metric(serve: &Serve, line_start: &str) -> Option<String> {
    let (_, body) = serve.get("/metrics");
    body.lines()
        .find(|l| l.starts_with(line_start))
        .map(String::from)
}

#[test]
fn a_backup_over_the_socket_is_acked_at_once_and_reported_in_one_updated_message() {
    let s = setup(500);
    let serve = start(&s);
    let open = s.api.calls_to("apps.connections.open");
    assert_eq!(
        open[0].auth, "Bearer xapp-1-A0APP-test-token",
        "connected with the app-level token"
    );
    assert_eq!(
        metric(&serve, "lifeboat_chat_connected{").as_deref(),
        Some("lifeboat_chat_connected{platform=\"slack\",mode=\"socket\"} 1")
    );
    // Without a signing secret there is no HTTP endpoint to attack.
    assert_eq!(
        slack_command(&serve, OPS, CHANNEL, "/backup", "now app-db").0,
        404
    );

    let id = s.socket.slash(OPS, CHANNEL, "/backup", "now app-db");
    let (ack, took) = s.socket.ack(&id, 5);
    assert!(took < Duration::from_secs(3), "acknowledged in {took:?}");
    assert!(
        ack_text(&ack).contains("Starting a backup of app-db"),
        "{ack}"
    );

    let calls = s.api.wait_update(30, "✅ backup");
    let posts: Vec<&Call> = calls
        .iter()
        .filter(|c| c.path.ends_with("chat.postMessage"))
        .collect();
    assert_eq!(posts.len(), 1, "one message per job");
    assert_eq!(
        posts[0].auth, "Bearer xoxb-test-token",
        "posted with the bot token"
    );
    let updates = s.api.calls_to("chat.update");
    let ts = &updates[0].body["ts"];
    assert!(
        updates.iter().all(|c| &c.body["ts"] == ts),
        "always the same message"
    );
    let listed = s.home.json(&["list", "app-db"]);
    let last = texts(&updates).pop().unwrap();
    assert!(last.contains(listed[0]["id"].as_str().unwrap()), "{last}");
    assert_eq!(s.socket.ack_count(&id), 1, "acknowledged once");

    let status = s.home.ok(&["status"]);
    assert!(
        status.contains("slack Socket Mode: connected since"),
        "{status}"
    );
    serve.stop();
    let status = s.home.ok(&["status"]);
    assert!(status.contains("slack Socket Mode: stopped"), "{status}");
}

#[test]
fn refused_commands_are_acked_with_the_reason_audited_and_run_nothing() {
    let s = setup(100);
    let serve = start(&s);
    let cases = [
        (
            "U0STRANGER",
            CHANNEL,
            "now app-db",
            "not on lifeboat's access list",
        ),
        (
            OPS,
            "C0RANDOM",
            "now app-db",
            "does not take commands in this channel",
        ),
        (
            OPS,
            CHANNEL,
            "now gitea",
            "unknown target `gitea`; targets: app-db",
        ),
    ];
    for (user, channel, text, expect) in cases {
        let id = s.socket.slash(user, channel, "/backup", text);
        let (ack, took) = s.socket.ack(&id, 5);
        assert!(took < Duration::from_secs(3));
        let reply = ack_text(&ack);
        assert!(reply.contains(expect), "{text} by {user}: {reply}");
        assert!(
            !reply.contains("xapp-") && !reply.contains("xoxb-"),
            "{reply}"
        );
    }
    // A job sent after the refusals: once it has posted, a job any refusal had started
    // would have posted too.
    let later = s.socket.slash(OPS, CHANNEL, "/backup", "now app-db");
    s.socket.ack(&later, 5);
    s.api.wait_update(30, "✅ backup");
    assert_eq!(
        s.api.calls_to("chat.postMessage").len(),
        1,
        "nothing was run but the later backup"
    );
    let db = rusqlite::Connection::open(s.home.path("var/lifeboat.db")).unwrap();
    let refused: i64 = db
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'command' AND outcome = 'refused'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(refused, 3, "each refusal is audited, as over HTTP");
    assert_eq!(
        s.home.json(&["list"]).as_array().unwrap().len(),
        1,
        "the later backup only"
    );
    serve.stop();
}

#[test]
fn a_restore_requested_over_the_socket_is_approved_by_a_second_admin_with_a_button() {
    let s = setup(500);
    s.home.json(&["backup", "app-db"]);
    let db_path = s.home.path("data/app.db");
    insert_rows(&rusqlite::Connection::open(&db_path).unwrap(), 9);
    let serve = start(&s);
    let id = s.socket.slash(ADMIN1, CHANNEL, "/restore", "app-db");
    assert!(ack_text(&s.socket.ack(&id, 5).0).contains("posted"));
    let calls = s.api.wait_until(10, "the approval request", |c| {
        c.iter().any(|c| c.path.ends_with("chat.postMessage"))
    });
    let request = calls
        .iter()
        .find(|c| c.path.ends_with("chat.postMessage"))
        .unwrap();
    let ts = "1700000000.001001";
    let buttons = request.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons")["elements"]
        .clone();
    let approval = buttons[0]["value"].as_str().unwrap().to_string();
    s.home.wait_approvals_posted(1);

    // The requester's own click is acknowledged and refused.
    let click = s.socket.click(ADMIN1, CHANNEL, ts, "approve", &approval);
    let (ack, took) = s.socket.ack(&click, 5);
    assert!(
        took < Duration::from_secs(3) && ack.get("payload").is_none(),
        "{ack}"
    );
    s.api.wait_until(10, "the self-approval refusal", |_| {
        texts(&s.api.calls_to("chat.postEphemeral"))
            .iter()
            .any(|t| t.contains("another admin"))
    });
    assert_eq!(
        count(&rusqlite::Connection::open(&db_path).unwrap(), "repository"),
        509
    );

    let click = s.socket.click(ADMIN2, CHANNEL, ts, "approve", &approval);
    s.socket.ack(&click, 5);
    s.api.wait_update(30, "✅ restored");
    assert_eq!(
        count(&rusqlite::Connection::open(&db_path).unwrap(), "repository"),
        500,
        "restored to the backup"
    );
    let last = texts(&s.api.calls_to("chat.update")).pop().unwrap();
    assert!(last.contains("approved by <@U0ADMIN2>"), "{last}");
    assert!(
        s.api
            .calls_to("chat.update")
            .iter()
            .all(|c| c.body["ts"] == ts),
        "the request's message is the one updated"
    );
    serve.stop();
}

#[test]
fn a_cut_connection_is_reported_retried_with_backoff_and_the_running_job_still_reports() {
    let s = setup(0);
    make_big_db(&s.home.path("data/big.db"), 64);
    std::fs::remove_file(s.home.path("data/app.db")).unwrap();
    std::fs::rename(s.home.path("data/big.db"), s.home.path("data/app.db")).unwrap();
    let serve = start(&s);
    let id = s.socket.slash(OPS, CHANNEL, "/backup", "now app-db");
    assert!(ack_text(&s.socket.ack(&id, 5).0).contains("Starting a backup"));

    // Slack becomes unreachable while the backup runs.
    s.socket.refuse();
    s.socket.cut();
    let cut_at = std::time::Instant::now();
    serve.wait_chat_connected("slack", false, 10);
    assert_eq!(
        metric(&serve, "lifeboat_chat_connected{").as_deref(),
        Some("lifeboat_chat_connected{platform=\"slack\",mode=\"socket\"} 0")
    );
    let health = serve.chat_health("slack");
    assert_eq!(health["mode"], "socket");
    assert!(
        health["detail"].as_str().unwrap().contains("retrying in"),
        "{health}"
    );

    // Posting goes through the Web API, not the socket: the job's result and an alert
    // raised meanwhile are delivered while the socket is down.
    let calls = s.api.wait_update(60, "✅ backup");
    let result = calls
        .iter()
        .find(|c| c.body["text"].as_str().unwrap_or("").contains("✅ backup"))
        .unwrap();
    assert!(
        result.at > cut_at,
        "the job was still running when the socket went"
    );
    fire(&serve, "DiskFull", "disk 97% full");
    s.api.wait_until(10, "the alert", |_| {
        texts(&s.api.calls_to("chat.postMessage"))
            .iter()
            .any(|t| t.contains("DiskFull"))
    });
    assert_eq!(
        s.socket.connections(),
        1,
        "nothing got through while refusing"
    );

    // Each failed attempt waits about twice as long as the one before.
    let opens = s.api.wait_until(20, "three retries", |_| {
        s.api.calls_to("apps.connections.open").len() >= 4
    });
    let at: Vec<std::time::Instant> = opens
        .iter()
        .filter(|c| c.path.ends_with("apps.connections.open"))
        .map(|c| c.at)
        .collect();
    let (first, second) = (at[2] - at[1], at[3] - at[2]);
    assert!(
        first >= Duration::from_millis(1900) && second >= first.mul_f64(1.5),
        "backoff: {first:?} then {second:?}"
    );
    // Now Slack is out of reach altogether (Web API too): an alert raised meanwhile is
    // held, and posted once Slack is back.
    s.api.set_down(true);
    fire(&serve, "BackupHostDown", "db1 unreachable");
    wait_for(10, "the alert to be held", || {
        serve
            .log_text()
            .contains("the alert is posted once the connection is back")
    });
    s.api.set_down(false);
    let back = std::time::Instant::now();
    s.socket.accept();
    s.socket.wait_connections(2, 60);
    serve.wait_chat_connected("slack", true, 10);
    let calls = s.api.wait_until(20, "the held alert", |c| {
        c.iter().any(|c| {
            c.at > back
                && c.path.ends_with("chat.postMessage")
                && c.body["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("BackupHostDown")
        })
    });
    // An alert raised after it: once that one is posted, a second posting of the held
    // one would have come before it.
    fire(&serve, "LaterAlert", "raised after");
    s.api.wait_until(20, "the later alert", |_| {
        texts(&s.api.calls_to("chat.postMessage"))
            .iter()
            .any(|t| t.contains("LaterAlert"))
    });
    let delivered = s
        .api
        .calls()
        .into_iter()
        .filter(|c| {
            c.at > back
                && c.body["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("BackupHostDown")
        })
        .count();
    assert_eq!(delivered, 1, "posted once: {calls:#?}");
    let id = s.socket.slash(OPS, CHANNEL, "/backup", "status");
    assert!(ack_text(&s.socket.ack(&id, 5).0).contains("app-db"));
    assert!(
        serve.log_text().contains("slack socket disconnected"),
        "{}",
        serve.log_text()
    );
    serve.stop();
}

#[test]
fn malformed_envelopes_are_logged_and_dropped_and_the_connection_stays() {
    let s = setup(50);
    let serve = start(&s);
    s.socket.send_raw("this is not JSON {");
    s.socket
        .send_raw(r#"{"type":"slash_commands","payload":{"command":"/backup"}}"#);
    let bad = s
        .socket
        .envelope("slash_commands", json!({"nonsense": true}));
    let (ack, _) = s.socket.ack(&bad, 5);
    assert!(ack.get("payload").is_none(), "acknowledged bare: {ack}");
    let odd = s
        .socket
        .envelope("interactive", json!({"type": "block_actions"}));
    s.socket.ack(&odd, 5);

    let id = s.socket.slash(OPS, CHANNEL, "/backup", "status");
    assert!(ack_text(&s.socket.ack(&id, 5).0).contains("app-db"));
    assert_eq!(s.socket.connections(), 1, "the same connection throughout");
    let log = serve.log_text();
    assert_contains_all(
        &log,
        &[
            "dropped a frame that is not JSON: this is not JSON {",
            "without an envelope_id",
            "unreadable slash command",
        ],
    );
    serve.stop();
}

#[test]
fn a_refresh_request_moves_to_a_new_connection_without_losing_acknowledgements() {
    let s = setup(50);
    let serve = start(&s);
    let id = s.socket.slash(OPS, CHANNEL, "/backup", "list");
    s.socket.refresh();
    s.socket.ack(&id, 5);
    s.socket.wait_connections(2, 5);
    serve.wait_chat_connected("slack", true, 5);
    let id = s.socket.slash(OPS, CHANNEL, "/backup", "status");
    let (ack, took) = s.socket.ack(&id, 5);
    assert!(took < Duration::from_secs(3));
    assert!(ack_text(&ack).contains("app-db"), "{ack}");
    assert_eq!(
        s.api.calls_to("apps.connections.open").len(),
        2,
        "one URL per connection"
    );
    serve.stop();
}
