//! Slack end to end: the real server on a loopback port, requests signed as Slack signs
//! them, and a fake Slack Web API that records what lifeboat posts.

use crate::common::fakes::*;
use crate::common::*;
use serde_json::Value;

const ADMIN1: &str = "U0ADMIN1";
const ADMIN2: &str = "U0ADMIN2";
const ADMIN3: &str = "U0ADMIN3";
const OPS: &str = "U0OPS1";
const VIEWER: &str = "U0VIEW1";
const OPS_CHANNEL: &str = "C0OPS";

fn chat_home(api: &FakeApi, approvals: u32) -> Home {
    let home = Home::with_config(
        &ConfigBuilder::new()
            .admins(&["slack:U0ADMIN1", "slack:U0ADMIN2", "slack:U0ADMIN3"])
            .operators(&["slack:U0OPS1"])
            .viewers(&["slack:U0VIEW1"])
            .channels(&["slack:C0OPS"])
            .slack(api, Some(OPS_CHANNEL))
            .sqlite_target("app-db", "../data/app.db")
            .with(&format!("restore_approvals = {approvals}"))
            .with("restore_roots = [\"../restores\"]"),
    );
    drop(make_app_db(&home.path("data/app.db"), 500));
    home
}

fn ack_text(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["response_type"], "ephemeral", "{body}");
    v["text"].as_str().unwrap().to_string()
}

#[test]
fn a_backup_from_chat_posts_one_message_and_updates_it_to_the_result() {
    let api = FakeApi::start();
    let home = chat_home(&api, 1);
    let serve = Serve::start(&home);
    let started = std::time::Instant::now();
    let (code, body) = slack_command(&serve, OPS, OPS_CHANNEL, "/backup", "now app-db");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "acknowledged within 3 s"
    );
    assert_eq!(code, 200);
    assert!(
        ack_text(&body).contains("Starting a backup of app-db"),
        "{body}"
    );

    let calls = api.wait_update(30, "✅ backup");
    let posts: Vec<&Call> = calls
        .iter()
        .filter(|c| c.path.ends_with("chat.postMessage"))
        .collect();
    assert_eq!(posts.len(), 1, "one message per job");
    assert_eq!(posts[0].body["channel"], OPS_CHANNEL);
    // The result: a header, the facts as fields, the requester mentioned.
    let result = calls
        .iter()
        .rfind(|c| {
            c.path.ends_with("chat.update")
                && c.body["text"].as_str().unwrap_or("").contains("✅ backup")
        })
        .unwrap();
    let blocks = result.body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["text"], "✅ backup of app-db complete");
    let all = result.body.to_string();
    assert!(
        all.contains("Requested by <@U0OPS1>, done in ") && all.contains("*Stored*"),
        "{all}"
    );
    crate::common::block_kit::assert_slack_sdk_reads(&calls);
    assert_eq!(
        posts[0].auth, "Bearer xoxb-test-token",
        "posted with the bot token"
    );
    let ts = calls
        .iter()
        .find(|c| c.path.ends_with("chat.update"))
        .unwrap()
        .body["ts"]
        .clone();
    assert!(
        calls
            .iter()
            .filter(|c| c.path.ends_with("chat.update"))
            .all(|c| c.body["ts"] == ts),
        "always the same message"
    );
    let last = texts(&api.calls_to("chat.update")).pop().unwrap();
    let listed = home.json(&["list", "app-db"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(last.contains(listed[0]["id"].as_str().unwrap()), "{last}");
    serve.stop();
}

#[test]
fn refusals_are_private_and_audited_and_run_nothing() {
    let api = FakeApi::start();
    let home = chat_home(&api, 1);
    home.json(&["backup", "app-db"]);
    let serve = Serve::start(&home);
    let cases = [
        (
            VIEWER,
            OPS_CHANNEL,
            "/backup",
            "now app-db",
            "needs the operator role",
        ),
        (
            "U0STRANGER",
            OPS_CHANNEL,
            "/backup",
            "now app-db",
            "not on lifeboat's access list",
        ),
        (
            OPS,
            "C0RANDOM",
            "/backup",
            "now app-db",
            "does not take commands in this channel",
        ),
        (
            OPS,
            OPS_CHANNEL,
            "/backup",
            "now gitea",
            "unknown target `gitea`; targets: app-db",
        ),
        (
            OPS,
            OPS_CHANNEL,
            "/backup",
            "nwo app-db",
            "Usage: `/backup now <target> | list [<target>] | status [<target>] | ls <target> [<path>]`",
        ),
        (
            OPS,
            OPS_CHANNEL,
            "/restore",
            "app-db",
            "needs the admin role",
        ),
        (
            ADMIN1,
            OPS_CHANNEL,
            "/restore",
            "app-db to /etc/lifeboat-restored.db",
            "may only write under",
        ),
    ];
    for (user, channel, cmd, text, expect) in cases {
        let (code, body) = slack_command(&serve, user, channel, cmd, text);
        assert_eq!(code, 200);
        let reply = ack_text(&body);
        assert!(reply.contains(expect), "{cmd} {text} by {user}: {reply}");
        assert!(
            !reply.contains(SLACK_SECRET) && !reply.contains("xoxb-test-token"),
            "no secrets: {reply}"
        );
        assert!(
            !reply.contains("lifeboat.db") && !reply.contains("backups"),
            "no paths beyond the target's own: {reply}"
        );
    }
    // Viewers may look.
    let (_, body) = slack_command(&serve, VIEWER, OPS_CHANNEL, "/backup", "status");
    assert!(ack_text(&body).contains("app-db"), "{body}");
    // A job sent after the refusals: once it has posted its result, a job any refusal
    // had started would have posted too.
    slack_command(&serve, OPS, OPS_CHANNEL, "/verify", "app-db");
    api.wait_update(30, "verified");
    let posts = texts(&api.calls_to("chat.postMessage"));
    assert!(
        posts.len() == 1 && posts[0].contains("verify"),
        "nothing was run but the later verify: {:?}",
        api.calls()
    );
    let db = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    let refused: i64 = db
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'command' AND outcome = 'refused'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(refused, 7);
    let stranger: i64 = db
        .query_row(
            "SELECT count(*) FROM audit WHERE actor = 'slack:U0STRANGER'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stranger, 1);
    assert_eq!(
        home.json(&["list"]).as_array().unwrap().len(),
        1,
        "only the backup taken before"
    );
}

#[test]
fn bad_stale_and_missing_signatures_get_401_and_nothing_happens() {
    let api = FakeApi::start();
    let home = chat_home(&api, 1);
    let serve = Serve::start(&home);
    let body = "command=%2Fbackup&text=now+app-db&user_id=U0OPS1&channel_id=C0OPS&team_id=T&response_url=x&trigger_id=y";
    let url = serve.url("/slack/commands");
    let form = "application/x-www-form-urlencoded";
    let ts = now();
    let wrong = [
        ("x-slack-request-timestamp", ts.to_string()),
        (
            "x-slack-signature",
            slack_signature("wrong-secret", ts, body),
        ),
    ];
    assert_eq!(post(&url, form, &wrong, body).0, 401);
    let old = ts - 301;
    let stale = [
        ("x-slack-request-timestamp", old.to_string()),
        (
            "x-slack-signature",
            slack_signature(SLACK_SECRET, old, body),
        ),
    ];
    assert_eq!(post(&url, form, &stale, body).0, 401);
    assert_eq!(post(&url, form, &[], body).0, 401);
    let tampered = [
        ("x-slack-request-timestamp", ts.to_string()),
        ("x-slack-signature", slack_signature(SLACK_SECRET, ts, body)),
    ];
    assert_eq!(
        post(&url, form, &tampered, &body.replace("app-db", "other")).0,
        401
    );
    for path in ["/slack/interactions", "/slack/events"] {
        assert_eq!(
            post(&serve.url(path), form, &[], "payload=%7B%7D").0,
            401,
            "{path}"
        );
    }
    let huge = "x".repeat((1 << 20) + 10);
    let big = [
        ("x-slack-request-timestamp", ts.to_string()),
        (
            "x-slack-signature",
            slack_signature(SLACK_SECRET, ts, &huge),
        ),
    ];
    assert_eq!(post(&url, form, &big, &huge).0, 413);
    // A correctly signed command after them: once its job has reported, anything a
    // refused request had set off would have shown too.
    slack_command(&serve, OPS, OPS_CHANNEL, "/backup", "now app-db");
    api.wait_update(30, "✅ backup");
    assert_eq!(
        api.calls_to("chat.postMessage").len(),
        1,
        "{:?}",
        api.calls()
    );
    let commands = home.state_strings("SELECT detail FROM audit WHERE action = 'command'");
    assert!(
        commands.len() == 1 && commands[0].starts_with("/backup now app-db"),
        "a refused signature reaches nothing: {commands:?}"
    );
}

/// Request a restore as ADMIN1; returns the approval id and the request message's ts.
fn request_restore(home: &Home, serve: &Serve, api: &FakeApi) -> (String, String) {
    let (_, body) = slack_command(serve, ADMIN1, OPS_CHANNEL, "/restore", "app-db");
    assert!(ack_text(&body).contains("posted"), "{body}");
    let calls = api.wait_until(10, "the approval request", |c| {
        c.iter().any(|c| c.path.ends_with("chat.postMessage"))
    });
    let post = calls
        .iter()
        .find(|c| c.path.ends_with("chat.postMessage"))
        .unwrap();
    let blocks = post.body["blocks"].as_array().unwrap();
    let actions = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons");
    let ids: Vec<&str> = actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["approve", "deny"]);
    let value = actions["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    // The message reference is saved once the post returns.
    home.wait_approvals_posted(1);
    (value, "1700000000.001001".to_string())
}

fn ephemerals(api: &FakeApi) -> Vec<String> {
    texts(&api.calls_to("chat.postEphemeral"))
}

#[test]
fn the_approval_flow_refuses_self_double_and_non_admin_clicks() {
    let api = FakeApi::start();
    let home = chat_home(&api, 2);
    let db_path = home.path("data/app.db");
    home.json(&["backup", "app-db"]);
    insert_rows(&rusqlite::Connection::open(&db_path).unwrap(), 7);
    let serve = Serve::start(&home);
    let (id, ts) = request_restore(&home, &serve, &api);
    let plan_text = texts(&api.calls_to("chat.postMessage")).pop().unwrap();
    assert!(
        plan_text.contains("Requested by <@U0ADMIN1>") && plan_text.contains("Moved aside to: `"),
        "{plan_text}"
    );
    assert!(
        plan_text.contains("Can approve: <@U0ADMIN2>, <@U0ADMIN3>"),
        "the admins who can approve are alerted: {plan_text}"
    );
    // The restore replaces the live database: Slack asks the approver first, saying what
    // is replaced and where the current data goes.
    let request = api.calls_to("chat.postMessage").pop().unwrap();
    let approve = &request.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap()["elements"][0];
    let asked = approve["confirm"]["text"]["text"].as_str().unwrap();
    assert!(
        asked.contains(&format!("This replaces {}", db_path.display()))
            && asked.contains("moved aside to"),
        "{asked}"
    );

    slack_click(&serve, ADMIN1, OPS_CHANNEL, &ts, "approve", &id);
    api.wait_until(10, "self-approval refusal", |_| {
        ephemerals(&api).iter().any(|t| t.contains("another admin"))
    });
    slack_click(&serve, OPS, OPS_CHANNEL, &ts, "approve", &id);
    api.wait_until(10, "non-admin refusal", |_| {
        ephemerals(&api).iter().any(|t| t.contains("only admins"))
    });
    slack_click(&serve, ADMIN2, OPS_CHANNEL, &ts, "approve", &id);
    api.wait_update(10, "approved by <@U0ADMIN2>");
    let pending = texts(&api.calls_to("chat.update")).pop().unwrap();
    assert!(
        pending.contains("Needs 1 more approval") && pending.contains("Can approve: <@U0ADMIN3>\n"),
        "{pending}"
    );
    slack_click(&serve, ADMIN2, OPS_CHANNEL, &ts, "approve", &id);
    api.wait_until(10, "double approval refusal", |_| {
        ephemerals(&api)
            .iter()
            .any(|t| t.contains("already approved"))
    });
    assert_eq!(
        count(&rusqlite::Connection::open(&db_path).unwrap(), "repository"),
        507,
        "not yet restored"
    );

    slack_click(&serve, ADMIN3, OPS_CHANNEL, &ts, "approve", &id);
    api.wait_update(30, "✅ restored");
    assert_eq!(
        count(&rusqlite::Connection::open(&db_path).unwrap(), "repository"),
        500,
        "restored to the backup"
    );
    let last = texts(&api.calls_to("chat.update")).pop().unwrap();
    assert!(
        last.contains("approved by <@U0ADMIN2>") && last.contains("approved by <@U0ADMIN3>"),
        "{last}"
    );
    assert!(
        api.calls_to("chat.update")
            .iter()
            .all(|c| c.body["ts"] == ts),
        "one message throughout"
    );
    // A click after the decision is refused.
    slack_click(&serve, ADMIN2, OPS_CHANNEL, &ts, "deny", &id);
    api.wait_until(10, "late click refusal", |_| {
        ephemerals(&api)
            .iter()
            .any(|t| t.contains("already approved"))
    });
    // The request, each approval, the restore's progress and its result: all Block Kit
    // that Slack's own models read back unchanged.
    let checked = crate::common::block_kit::assert_slack_sdk_reads(&api.calls());
    assert!(checked >= 4, "{checked} messages");
}

#[test]
fn deny_cancels_and_changes_nothing() {
    let api = FakeApi::start();
    let home = chat_home(&api, 1);
    home.json(&["backup", "app-db"]);
    let before = std::fs::read(home.path("data/app.db")).unwrap();
    let serve = Serve::start(&home);
    let (id, ts) = request_restore(&home, &serve, &api);
    slack_click(&serve, ADMIN2, OPS_CHANNEL, &ts, "deny", &id);
    api.wait_update(10, "denied by <@U0ADMIN2>");
    let update = api.calls_to("chat.update").pop().unwrap();
    assert!(
        !update.body["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["type"] == "actions"),
        "buttons removed"
    );
    slack_click(&serve, ADMIN3, OPS_CHANNEL, &ts, "approve", &id);
    api.wait_until(10, "refusal after denial", |_| {
        ephemerals(&api)
            .iter()
            .any(|t| t.contains("already denied"))
    });
    // The refusal answered a click on a decided request: no restore was, or will be, run.
    let db = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    let status: String = db
        .query_row("SELECT status FROM approvals WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "denied");
    let restores: i64 = db
        .query_row(
            "SELECT count(*) FROM jobs WHERE kind = 'restore'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(restores, 0);
    assert_eq!(std::fs::read(home.path("data/app.db")).unwrap(), before);
}

#[test]
fn approvals_survive_a_restart_and_expire_after_their_time() {
    let api = FakeApi::start();
    let home = chat_home(&api, 1);
    home.json(&["backup", "app-db"]);
    let serve = Serve::start(&home);
    let (first_id, ts) = request_restore(&home, &serve, &api);
    let (_, second_body) = slack_command(&serve, ADMIN1, OPS_CHANNEL, "/restore", "app-db");
    assert!(ack_text(&second_body).contains("posted"));
    api.wait_until(10, "two requests", |_| {
        api.calls_to("chat.postMessage").len() == 2
    });
    home.wait_approvals_posted(2);
    serve.stop();

    // While the bot is down, the second request's 30 minutes run out.
    let db = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    db.execute(
        "UPDATE approvals SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id != ?1",
        [&first_id],
    )
    .unwrap();
    let serve = Serve::start(&home);
    api.wait_update(20, "expired");

    insert_rows(
        &rusqlite::Connection::open(home.path("data/app.db")).unwrap(),
        3,
    );
    slack_click(&serve, ADMIN2, OPS_CHANNEL, &ts, "approve", &first_id);
    api.wait_update(30, "✅ restored");
    assert_eq!(
        count(
            &rusqlite::Connection::open(home.path("data/app.db")).unwrap(),
            "repository"
        ),
        500
    );
    let status: String = db
        .query_row(
            "SELECT status FROM approvals WHERE id = ?1",
            [&first_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "approved");
}

#[test]
fn url_verification_and_event_retries_run_once() {
    let api = FakeApi::start();
    let home = chat_home(&api, 1);
    let serve = Serve::start(&home);
    let challenge = r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let (code, body) = signed_slack_post(&serve, "/slack/events", "application/json", challenge);
    assert_eq!(code, 200);
    assert!(
        body.contains("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"),
        "{body}"
    );

    let event = r#"{"type":"event_callback","event_id":"Ev0MENTION1","team_id":"T0TEAM","event":{"type":"app_mention","user":"U0OPS1","text":"<@U0BOT> help","channel":"C0OPS","ts":"1700000000.1"}}"#;
    assert_eq!(
        signed_slack_post(&serve, "/slack/events", "application/json", event).0,
        200
    );
    let ts = now();
    let retry = [
        ("x-slack-request-timestamp", ts.to_string()),
        (
            "x-slack-signature",
            slack_signature(SLACK_SECRET, ts, event),
        ),
        ("x-slack-retry-num", "1".to_string()),
        ("x-slack-retry-reason", "http_timeout".to_string()),
    ];
    assert_eq!(
        post(
            &serve.url("/slack/events"),
            "application/json",
            &retry,
            event
        )
        .0,
        200
    );
    api.wait_until(10, "the answer to the mention", |_| {
        !api.calls_to("chat.postMessage").is_empty()
    });
    // A new event after the retry: once it is answered, the retry has been dealt with.
    let later = event.replace("Ev0MENTION1", "Ev0MENTION2");
    assert_eq!(
        signed_slack_post(&serve, "/slack/events", "application/json", &later).0,
        200
    );
    api.wait_until(10, "the answer to the later mention", |_| {
        api.calls_to("chat.postMessage").len() >= 2
    });
    assert_eq!(
        api.calls_to("chat.postMessage").len(),
        2,
        "the retry was not acted on"
    );
}

#[test]
fn rate_limited_updates_wait_for_retry_after() {
    let api = FakeApi::start();
    let home = chat_home(&api, 1);
    api.rate_limit("chat.update", 2, 1);
    let serve = Serve::start(&home);
    slack_command(&serve, OPS, OPS_CHANNEL, "/backup", "now app-db");
    // Two edits are refused (the second may already be the result: a refused progress
    // edit is not retried, the newest content is); the third is delivered.
    let calls = api.wait_until(30, "the final update after the limit", |c| {
        let updates: Vec<&Call> = c
            .iter()
            .filter(|c| c.path.ends_with("chat.update"))
            .collect();
        updates.len() >= 3
            && updates
                .last()
                .is_some_and(|c| c.body["text"].as_str().unwrap_or("").contains("✅ backup"))
    });
    let updates: Vec<&Call> = calls
        .iter()
        .filter(|c| c.path.ends_with("chat.update"))
        .collect();
    assert!(
        updates.len() >= 3,
        "two refused, then delivered: {updates:?}"
    );
    for pair in updates.windows(2).take(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= std::time::Duration::from_millis(950),
            "waited for Retry-After: {gap:?}"
        );
    }
}
