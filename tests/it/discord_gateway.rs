//! Discord over the Gateway end to end: the real `lifeboat serve` with serenity's gateway
//! client, a local Gateway (hello, identify, heartbeats, INTERACTION_CREATE, reconnect,
//! resume) that the fake REST API's `GET /gateway` points to, and answers posted to the
//! interactions' callbacks on the fake API. No public key: lifeboat needs no public URL.

use std::time::Duration;

use crate::common::fakes::*;
use crate::common::gateway::{GatewayServer, SESSION};
use crate::common::*;
use serde_json::{Value, json};

const CHANNEL: &str = "112233";
const OPS: &str = "5551";
const ADMIN: &str = "5552";
const ADMIN2: &str = "5553";

struct Setup {
    api: FakeApi,
    gateway: GatewayServer,
    home: Home,
}

fn setup(rows: usize) -> Setup {
    let api = FakeApi::start();
    let gateway = GatewayServer::start();
    api.answer("/gateway", json!({"url": gateway.url}));
    api.answer(
        "/gateway/bot",
        json!({"url": gateway.url, "shards": 1, "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}}),
    );
    let home = Home::with_config(
        &ConfigBuilder::new()
            .admins(&["discord:5552", "discord:5553"])
            .operators(&["discord:5551"])
            .channels(&["discord:112233"])
            .discord_gateway(&api, CHANNEL)
            .sqlite_target("app-db", "../data/app.db")
            .with("restore_approvals = 1"),
    );
    drop(make_app_db(&home.path("data/app.db"), rows));
    Setup { api, gateway, home }
}

fn start(s: &Setup) -> Serve {
    let serve = Serve::start(&s.home);
    s.gateway.wait_live(20);
    serve.wait_chat_connected("discord", true, 10);
    serve
}

fn user(id: &str) -> Value {
    json!({"id": id, "username": format!("user{id}"), "discriminator": "0", "global_name": null, "avatar": null})
}

fn interaction(kind: u8, user_id: &str, data: Value) -> Value {
    json!({
        "application_id": "4242", "type": kind, "version": 1,
        "channel_id": CHANNEL, "channel": {"id": CHANNEL, "type": 0}, "guild_id": "777",
        "member": {"user": user(user_id), "roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0, "permissions": "0"},
        "user": user(user_id), "app_permissions": "0", "locale": "en-US", "guild_locale": "en-US",
        "entitlements": [], "authorizing_integration_owners": {}, "context": 0,
        "attachment_size_limit": 8388608, "data": data
    })
}

fn backup_now(user_id: &str) -> Value {
    interaction(
        2,
        user_id,
        json!({"id": "800", "name": "backup", "type": 1, "options": [{"name": "now", "type": 1, "options": [{"name": "target", "type": 3, "value": "app-db"}]}]}),
    )
}

/// The answer lifeboat posted to the interaction's callback.
fn answer(s: &Setup, id: &str) -> Value {
    let path = format!("/api/v10/interactions/{id}/token-{id}/callback");
    let calls = s.api.wait_until(10, "the interaction's answer", |c| {
        c.iter().any(|c| c.path == path)
    });
    calls.into_iter().find(|c| c.path == path).unwrap().body
}

fn result_edit(s: &Setup, what: &str, secs: u64) {
    s.api.wait_until(secs, what, |c| {
        c.iter()
            .any(|c| c.method == "PATCH" && c.body["content"].as_str().unwrap_or("").contains(what))
    });
}

#[test]
fn a_backup_from_the_gateway_is_answered_at_once_and_reported_in_one_edited_message() {
    let s = setup(300);
    let serve = start(&s);
    let identify = &s.gateway.identifies()[0];
    assert_eq!(
        identify["token"], "Bot discord-test-token",
        "serenity sends the bot token as for REST: {identify}"
    );
    assert_eq!(
        identify["intents"], 0,
        "no privileged or other intents needed"
    );
    // Without a public key there is no HTTP endpoint.
    assert_eq!(
        post(
            &serve.url("/discord/interactions"),
            "application/json",
            &[],
            "{}"
        )
        .0,
        404
    );
    let (_, metrics) = serve.get("/metrics");
    assert!(
        metrics.contains("lifeboat_chat_connected{platform=\"discord\",mode=\"gateway\"} 1"),
        "{metrics}"
    );
    promtool_check(s.home.dir.path(), &metrics);

    let started = std::time::Instant::now();
    let id = s.gateway.interaction(backup_now(OPS));
    let reply = answer(&s, &id);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered in {:?}",
        started.elapsed()
    );
    assert_eq!(reply["type"], 4, "{reply}");
    assert_eq!(reply["data"]["flags"], 64, "ephemeral: {reply}");
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Starting a backup of app-db")
    );

    result_edit(&s, "✅ backup", 30);
    let calls = s.api.calls();
    let posts: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.contains("/channels/"))
        .collect();
    assert_eq!(posts.len(), 1, "one message per job");
    assert_eq!(posts[0].auth, "Bot discord-test-token");
    let message = posts[0].path.clone();
    assert!(
        calls
            .iter()
            .filter(|c| c.method == "PATCH")
            .all(|c| c.path.starts_with(&message)),
        "always the same message"
    );
    wait_for(10, "a heartbeat", || s.gateway.heartbeats() >= 1);
    let status = s.home.ok(&["status"]);
    assert!(
        status.contains("discord Gateway: connected since"),
        "{status}"
    );
    serve.stop();
}

#[test]
fn a_refused_user_gets_a_private_reason_and_nothing_runs() {
    let s = setup(50);
    let serve = start(&s);
    let id = s.gateway.interaction(backup_now("9999"));
    let reply = answer(&s, &id);
    assert_eq!(reply["data"]["flags"], 64);
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("not on lifeboat's access list"),
        "{reply}"
    );
    // A job asked for after the refusal: once it has posted its result, a job the
    // refusal had started would have posted too.
    let later = s.gateway.interaction(backup_now(OPS));
    answer(&s, &later);
    result_edit(&s, "✅ backup", 30);
    let posts: Vec<Call> = s
        .api
        .calls()
        .into_iter()
        .filter(|c| c.method == "POST" && c.path.contains("/channels/"))
        .collect();
    assert_eq!(
        posts.len(),
        1,
        "nothing posted but the later job: {posts:#?}"
    );
    let db = rusqlite::Connection::open(s.home.path("var/lifeboat.db")).unwrap();
    let refused: i64 = db
        .query_row(
            "SELECT count(*) FROM audit WHERE actor = 'discord:9999' AND outcome = 'refused'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(refused, 1, "audited");
    serve.stop();
}

#[test]
fn a_restore_is_approved_by_a_second_admin_through_a_button() {
    let s = setup(300);
    s.home.json(&["backup", "app-db"]);
    let db_path = s.home.path("data/app.db");
    insert_rows(&rusqlite::Connection::open(&db_path).unwrap(), 4);
    let serve = start(&s);
    let request = interaction(
        2,
        ADMIN,
        json!({"id": "801", "name": "restore", "type": 1, "options": [{"name": "target", "type": 3, "value": "app-db"}]}),
    );
    let id = s.gateway.interaction(request);
    assert!(
        answer(&s, &id)["data"]["content"]
            .as_str()
            .unwrap()
            .contains("posted")
    );
    let calls = s.api.wait_until(10, "the approval request", |c| {
        c.iter()
            .any(|c| c.method == "POST" && c.path.contains("/channels/"))
    });
    let post = calls
        .iter()
        .find(|c| c.method == "POST" && c.path.contains("/channels/"))
        .unwrap();
    let ask = post.body["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.home.wait_approvals_posted(1);
    let click = |who: &str, custom_id: &str, ephemeral: bool| {
        let mut c = interaction(3, who, json!({"custom_id": custom_id, "component_type": 2}));
        c["message"] = discord_message(CHANNEL, "1001", "plan");
        if ephemeral {
            c["message"]["flags"] = json!(64);
        }
        c
    };
    // The restore replaces the live data: Approve first asks, privately.
    let asked = s.gateway.interaction(click(ADMIN2, &ask, false));
    let question = answer(&s, &asked);
    assert_eq!(question["data"]["flags"], 64, "{question}");
    let approve = question["data"]["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(approve.starts_with("approve:"), "{question}");
    let own = s.gateway.interaction(click(ADMIN, &approve, true));
    assert!(
        answer(&s, &own)["data"]["content"]
            .as_str()
            .unwrap()
            .contains("another admin"),
        "the requester cannot approve"
    );
    let second = s.gateway.interaction(click(ADMIN2, &approve, true));
    let confirmed = answer(&s, &second);
    assert_eq!(confirmed["type"], 7, "the question is answered in place");
    assert!(
        confirmed["data"]["content"]
            .as_str()
            .unwrap()
            .contains("approval is recorded"),
        "{confirmed}"
    );
    result_edit(&s, "✅ restored", 30);
    assert_eq!(
        count(&rusqlite::Connection::open(&db_path).unwrap(), "repository"),
        300
    );
    serve.stop();
}

#[test]
fn reconnect_and_cut_connections_resume_the_session_and_jobs_still_report() {
    let s = setup(0);
    make_big_db(&s.home.path("data/big.db"), 64);
    std::fs::remove_file(s.home.path("data/app.db")).unwrap();
    std::fs::rename(s.home.path("data/big.db"), s.home.path("data/app.db")).unwrap();
    let serve = start(&s);

    // Op 7: the client reconnects and resumes the same session.
    s.gateway.reconnect();
    wait_for(15, "a resume", || !s.gateway.resumes().is_empty());
    let resume = &s.gateway.resumes()[0];
    assert_eq!(resume["session_id"], SESSION, "{resume}");
    assert_eq!(resume["token"], "Bot discord-test-token");
    assert_eq!(resume["seq"], 1, "resumed after READY, the last event seen");
    s.gateway.wait_live(10);
    // An interaction dispatched right after the resume is answered.
    let id = s.gateway.interaction(backup_now("9999"));
    assert!(
        answer(&s, &id)["data"]["content"]
            .as_str()
            .unwrap()
            .contains("access list")
    );

    let id = s.gateway.interaction(backup_now(OPS));
    assert!(
        answer(&s, &id)["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Starting a backup")
    );
    let cut_at = std::time::Instant::now();
    // The connection is cut mid-job and the Gateway refuses connections for a while.
    s.gateway.refuse();
    s.gateway.cut();
    serve.wait_chat_connected("discord", false, 15);
    let (_, metrics) = serve.get("/metrics");
    assert!(
        metrics.contains("lifeboat_chat_connected{platform=\"discord\",mode=\"gateway\"} 0"),
        "{metrics}"
    );
    result_edit(&s, "✅ backup", 60);
    let result = s
        .api
        .calls()
        .into_iter()
        .find(|c| {
            c.body["content"]
                .as_str()
                .unwrap_or("")
                .contains("✅ backup")
        })
        .unwrap();
    assert!(
        result.at > cut_at,
        "the job was still running when the connection went"
    );
    // The Gateway is back: serenity's resume failed while it was away, so it starts a
    // new session (interactions from the outage are gone: their 3 seconds are up).
    s.gateway.accept();
    serve.wait_chat_connected("discord", true, 30);
    s.gateway.wait_live(10);
    assert_eq!(s.gateway.identifies().len(), 2, "a new session");
    let after = s.gateway.interaction(backup_now("9999"));
    let reply = answer(&s, &after);
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("not on lifeboat's access list")
    );
    serve.stop();
}

#[test]
fn a_malformed_dispatch_is_logged_and_the_connection_stays() {
    let s = setup(50);
    let serve = start(&s);
    s.gateway
        .send_raw(r#"{"op":0,"s":2,"t":"INTERACTION_CREATE","d":{"type":2,"id":"not-a-number"}}"#);
    s.gateway.send_raw("not json at all");
    let id = s.gateway.interaction(interaction(
        2,
        OPS,
        json!({"id": "802", "name": "backup", "type": 1, "options": [{"name": "status", "type": 1, "options": []}]}),
    ));
    let reply = answer(&s, &id);
    // The status is a card for the requester only: an embed listing the target.
    assert_eq!(reply["data"]["flags"], 64, "{reply}");
    assert!(
        reply["data"]["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("**app-db**"),
        "{reply}"
    );
    assert_eq!(s.gateway.connections(), 1, "no reconnection");
    assert_eq!(s.gateway.identifies().len(), 1);
    let log = serve.log_text();
    assert_contains_all(
        &log,
        &[
            "dropped an unreadable interaction: {\"id\":\"not-a-number\"",
            "Err deserializing text",
        ],
    );
    serve.stop();
}
