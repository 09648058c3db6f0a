//! Discord end to end: interactions signed with Ed25519 as Discord signs them, PING/PONG,
//! a command answered at once and followed by a channel message that is edited to the
//! result, and approval buttons, through a fake Discord API.

use crate::common::fakes::*;
use crate::common::*;
use serde_json::{Value, json};

const CHANNEL: &str = "112233";
const OPS: &str = "5551";
const ADMIN: &str = "5552";

fn discord_home(api: &FakeApi) -> Home {
    let home = Home::with_config(
        &ConfigBuilder::new()
            .admins(&["discord:5552"])
            .operators(&["discord:5551"])
            .viewers(&["*"])
            .channels(&["discord:112233"])
            .discord(api, Some(CHANNEL))
            .sqlite_target("app-db", "../data/app.db"),
    );
    drop(make_app_db(&home.path("data/app.db"), 300));
    home
}

fn user(id: &str) -> Value {
    json!({"id": id, "username": format!("user{id}"), "discriminator": "0", "global_name": null, "avatar": null})
}

/// An interaction as Discord delivers it, with the fields its models require.
fn interaction(kind: u8, user_id: &str, data: Value) -> Value {
    let mut i = json!({
        "id": "900000000000000001",
        "application_id": "4242",
        "type": kind,
        "token": "interaction-token",
        "version": 1,
        "channel_id": CHANNEL,
        "channel": {"id": CHANNEL, "type": 0},
        "guild_id": "777",
        "member": {"user": user(user_id), "roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0, "permissions": "0"},
        "user": user(user_id),
        "app_permissions": "0",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {},
        "context": 0,
        "attachment_size_limit": 8388608
    });
    if !data.is_null() {
        i["data"] = data;
    }
    i
}

fn command(user_id: &str, name: &str, options: Value) -> Value {
    interaction(
        2,
        user_id,
        json!({"id": "800", "name": name, "type": 1, "options": options}),
    )
}

fn send(serve: &Serve, body: &Value) -> (u16, Value) {
    let (code, reply) = discord_interaction(serve, &body.to_string());
    (code, serde_json::from_str(&reply).unwrap_or(Value::Null))
}

#[test]
fn ping_is_answered_with_pong_and_bad_signatures_get_401() {
    let api = FakeApi::start();
    let home = discord_home(&api);
    let serve = Serve::start(&home);
    let ping = json!({"id": "1", "application_id": "4242", "type": 1, "token": "t", "version": 1});
    let (code, reply) = send(&serve, &ping);
    assert_eq!(code, 200);
    assert_eq!(reply, json!({"type": 1}));

    let text = ping.to_string();
    let ts = now();
    let url = serve.url("/discord/interactions");
    let forged = [
        ("x-signature-ed25519", "00".repeat(64)),
        ("x-signature-timestamp", ts.to_string()),
    ];
    assert_eq!(post(&url, "application/json", &forged, &text).0, 401);
    let stale_ts = ts - 600;
    let stale = [
        ("x-signature-ed25519", discord_signature(stale_ts, &text)),
        ("x-signature-timestamp", stale_ts.to_string()),
    ];
    assert_eq!(post(&url, "application/json", &stale, &text).0, 401);
    assert_eq!(post(&url, "application/json", &[], &text).0, 401);
    let other_body = [
        ("x-signature-ed25519", discord_signature(ts, &text)),
        ("x-signature-timestamp", ts.to_string()),
    ];
    assert_eq!(
        post(
            &url,
            "application/json",
            &other_body,
            &text.replace("4242", "4243")
        )
        .0,
        401
    );
    serve.stop();
}

#[test]
fn a_command_is_acknowledged_then_reported_in_one_edited_message() {
    let api = FakeApi::start();
    let home = discord_home(&api);
    let serve = Serve::start(&home);
    let body = command(
        OPS,
        "backup",
        json!([{"name": "now", "type": 1, "options": [{"name": "target", "type": 3, "value": "app-db"}]}]),
    );
    let started = std::time::Instant::now();
    let (code, reply) = send(&serve, &body);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(code, 200);
    assert_eq!(reply["type"], 4, "{reply}");
    assert_eq!(reply["data"]["flags"], 64, "ephemeral: {reply}");
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Starting a backup of app-db")
    );

    let calls = api.wait_edit(30, "✅ backup");
    let posts: Vec<&Call> = calls.iter().filter(|c| c.method == "POST").collect();
    assert_eq!(posts.len(), 1);
    // The result is a green embed that pings the person who asked, and only them.
    let result = calls
        .iter()
        .rfind(|c| {
            c.method == "PATCH"
                && c.body["content"]
                    .as_str()
                    .unwrap_or("")
                    .contains("✅ backup")
        })
        .unwrap();
    assert!(
        result.body["content"]
            .as_str()
            .unwrap()
            .ends_with(&format!("<@{OPS}>")),
        "{}",
        result.body
    );
    assert_eq!(result.body["allowed_mentions"]["users"], json!([OPS]));
    let embed = &result.body["embeds"][0];
    assert_eq!(embed["color"], 0x2EB67D, "{embed}");
    assert!(
        embed["description"]
            .as_str()
            .unwrap()
            .contains(&format!("Requested by <@{OPS}>, done in ")),
        "{embed}"
    );
    // While it ran the message named the requester without pinging anyone.
    assert_eq!(posts[0].body["allowed_mentions"]["users"], json!([]));
    assert_eq!(
        posts[0].path,
        format!("/api/v10/channels/{CHANNEL}/messages")
    );
    assert_eq!(posts[0].auth, "Bot discord-test-token");
    assert!(calls.iter().filter(|c| c.method == "PATCH").all(|c| {
        c.path
            .starts_with(&format!("/api/v10/channels/{CHANNEL}/messages/"))
    }));
    assert_eq!(home.json(&["list", "app-db"]).as_array().unwrap().len(), 1);
}

#[test]
fn refusals_and_approval_buttons() {
    let api = FakeApi::start();
    let home = discord_home(&api);
    home.json(&["backup", "app-db"]);
    let serve = Serve::start(&home);
    // Anyone may be a viewer here, but backups need an operator.
    let body = command(
        "9999",
        "backup",
        json!([{"name": "now", "type": 1, "options": [{"name": "target", "type": 3, "value": "app-db"}]}]),
    );
    let (_, reply) = send(&serve, &body);
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("needs the operator role"),
        "{reply}"
    );

    let body = command(
        ADMIN,
        "restore",
        json!([{"name": "target", "type": 3, "value": "app-db"}]),
    );
    let (_, reply) = send(&serve, &body);
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("posted"),
        "{reply}"
    );
    let calls = api.wait_until(10, "the approval request", |c| {
        c.iter().any(|c| c.method == "POST")
    });
    let request = calls.iter().find(|c| c.method == "POST").unwrap();
    let buttons = request.body["components"][0]["components"]
        .as_array()
        .unwrap();
    let ask = buttons[0]["custom_id"].as_str().unwrap().to_string();
    // The restore replaces the live data: Approve asks first.
    let id = ask.strip_prefix("ask_approve:").expect(&ask).to_string();
    let embed = &request.body["embeds"][0];
    assert!(
        embed["title"]
            .as_str()
            .unwrap()
            .starts_with("Restore requested"),
        "{embed}"
    );
    assert_eq!(embed["color"], 0xECB22E, "amber while it waits");
    assert!(
        embed["description"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Requested by <@{ADMIN}>")),
        "{embed}"
    );

    let click_on = |custom_id: &str, message: Value| {
        let mut click = interaction(
            3,
            ADMIN,
            json!({"custom_id": custom_id, "component_type": 2}),
        );
        click["message"] = message;
        send(&serve, &click).1
    };
    let question = click_on(&ask, discord_message(CHANNEL, "1001", "plan"));
    assert_eq!(question["type"], 4);
    assert_eq!(
        question["data"]["flags"], 64,
        "only the clicker sees the question"
    );
    assert!(
        question["data"]["content"]
            .as_str()
            .unwrap()
            .contains("This replaces"),
        "{question}"
    );
    let row = &question["data"]["components"][0]["components"];
    assert_eq!(row[0]["custom_id"], format!("approve:{id}"));
    assert_eq!(row[1]["custom_id"], format!("cancel:{id}"));
    let mut ephemeral = discord_message(CHANNEL, "1002", "question");
    ephemeral["flags"] = json!(64);

    // Cancel answers in place and decides nothing.
    let cancelled = click_on(&format!("cancel:{id}"), ephemeral.clone());
    assert_eq!(cancelled["type"], 7);
    assert!(
        cancelled["data"]["content"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{cancelled}"
    );
    assert_eq!(cancelled["data"]["components"], json!([]));

    // The requester cannot approve their own restore, even past the question.
    let reply = click_on(&format!("approve:{id}"), ephemeral);
    assert_eq!(reply["type"], 7, "the answer replaces the question");
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("another admin"),
        "{reply}"
    );
    // The audit log keeps the raw identity, not the mention.
    let refused = home.state_strings("SELECT actor FROM audit WHERE action = 'approval refused'");
    assert_eq!(refused, vec![format!("discord:{ADMIN}")]);
}

/// The messages (not edits) posted to the Discord channel, with their first embed.
fn embeds_posted(api: &FakeApi) -> Vec<Value> {
    api.calls()
        .into_iter()
        .filter(|c| c.method == "POST" && c.path == format!("/api/v10/channels/{CHANNEL}/messages"))
        .map(|c| c.body)
        .collect()
}

#[test]
fn an_alert_arrives_as_a_red_embed_and_its_recovery_as_a_green_one() {
    let api = FakeApi::start();
    // The database is missing: the scheduled backups fail until it appears.
    let home = Home::with_config(
        &ConfigBuilder::new()
            .operators(&["discord:5551"])
            .channels(&["discord:112233"])
            .discord(&api, Some(CHANNEL))
            .sqlite_target("flaky", "../data/flaky.db")
            .with("schedule = \"*/2 * * * * *\"\ngrace = \"1s\"\nrealert = \"1h\""),
    );
    let serve = Serve::start(&home);
    api.wait_until(20, "the alert's red embed", |_| {
        embeds_posted(&api)
            .iter()
            .any(|b| b["embeds"][0]["color"] == 0xE01E5A)
    });
    let alert = embeds_posted(&api)
        .into_iter()
        .find(|b| b["embeds"][0]["color"] == 0xE01E5A)
        .unwrap();
    let embed = &alert["embeds"][0];
    assert!(
        embed["title"].as_str().unwrap().contains("flaky"),
        "the target named in the title: {embed}"
    );
    let fields = embed["fields"].as_array().unwrap();
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no {name} field: {embed}"))["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(field("Target"), "`flaky`");
    assert!(field("Open since").starts_with("<t:"), "{embed}");
    assert!(
        embed.to_string().contains("does not exist"),
        "the error itself: {embed}"
    );
    // Nobody is pinged by an alert, and serenity reads the embed whole.
    assert_eq!(alert["allowed_mentions"]["users"], json!([]), "{alert}");
    let model: serenity::all::Embed = serde_json::from_value(embed.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&model).unwrap(), embed);

    drop(make_app_db(&home.path("data/flaky.db"), 10));
    api.wait_until(20, "the recovery's green embed", |_| {
        embeds_posted(&api)
            .iter()
            .any(|b| b["embeds"][0]["color"] == 0x2EB67D)
    });
    let recovery = embeds_posted(&api)
        .into_iter()
        .find(|b| b["embeds"][0]["color"] == 0x2EB67D)
        .unwrap();
    let embed = &recovery["embeds"][0];
    assert_eq!(embed["title"], "✅ flaky is healthy again", "{embed}");
    assert!(embed.to_string().contains("<t:"), "{embed}");
    let model: serenity::all::Embed = serde_json::from_value(embed.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&model).unwrap(), embed);
    serve.stop();
}

/// Messages posted to the channel with a file attached (multipart), as sent.
fn attachments(api: &FakeApi) -> Vec<String> {
    api.calls()
        .into_iter()
        .filter(|c| {
            c.method == "POST"
                && c.path == format!("/api/v10/channels/{CHANNEL}/messages")
                && c.raw.contains("filename=")
        })
        .map(|c| c.raw)
        .collect()
}

fn subcommand(name: &str, options: Value) -> Value {
    json!([{"name": name, "type": 1, "options": options}])
}

#[test]
fn long_content_is_a_summary_embed_with_the_whole_text_attached_as_a_file() {
    let api = FakeApi::start();
    let mut config = ConfigBuilder::new()
        .operators(&["discord:5551"])
        .viewers(&["*"])
        .channels(&["discord:112233"])
        .discord(&api, Some(CHANNEL));
    for i in 0..50 {
        config = config.sqlite_target(&format!("db-{i:02}"), &format!("../data/db-{i:02}.db"));
    }
    let home = Home::with_config(&config);
    let serve = Serve::start(&home);

    // The status of 50 targets: the requester sees a summary embed, the whole status
    // goes to the channel as status.md.
    let (code, reply) = send(
        &serve,
        &command(OPS, "backup", subcommand("status", json!([]))),
    );
    assert_eq!(code, 200);
    assert_eq!(reply["data"]["flags"], 64, "{reply}");
    let embed = &reply["data"]["embeds"][0];
    assert_eq!(embed["title"], "Status of 50 targets", "{embed}");
    let listed = embed["description"].as_str().unwrap();
    assert_eq!(listed.matches("(sqlite)").count(), 15, "{listed}");
    assert!(listed.contains("`status.md`"), "{listed}");
    let model: serenity::all::Embed = serde_json::from_value(embed.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&model).unwrap(), embed);
    api.wait_until(10, "the status file", |_| !attachments(&api).is_empty());
    let file = attachments(&api).remove(0);
    assert!(file.contains("filename=\"status.md\""), "{file}");
    for i in 0..50 {
        assert!(
            file.contains(&format!("| db-{i:02} |")),
            "db-{i:02} in {file}"
        );
    }

    // An incident export: a summary embed everyone sees, the Markdown as a file.
    let start = subcommand(
        "start",
        json!([{"name": "title", "type": 3, "value": "Gitea is down"}]),
    );
    let (_, reply) = send(&serve, &command(OPS, "incident", start));
    assert!(reply.to_string().contains("Incident #1"), "{reply}");
    let note = "x".repeat(2000);
    let (_, reply) = send(
        &serve,
        &command(
            OPS,
            "incident",
            subcommand("note", json!([{"name": "text", "type": 3, "value": note}])),
        ),
    );
    assert!(
        reply.to_string().contains("Noted on incident #1"),
        "{reply}"
    );
    let (_, reply) = send(
        &serve,
        &command(OPS, "incident", subcommand("export", json!([]))),
    );
    assert!(reply["data"]["flags"].is_null(), "in the channel: {reply}");
    let embed = &reply["data"]["embeds"][0];
    assert_eq!(embed["title"], "🚨 Incident #1: Gitea is down", "{embed}");
    assert!(
        embed.to_string().contains(&format!("<@{OPS}>")),
        "people as mentions: {embed}"
    );
    assert!(embed.to_string().contains("<t:"), "times as times: {embed}");
    assert!(embed.to_string().contains("`incident-1.md`"), "{embed}");
    api.wait_until(10, "the export file", |_| attachments(&api).len() >= 2);
    let file = attachments(&api).pop().unwrap();
    assert!(file.contains("filename=\"incident-1.md\""), "{file}");
    assert!(file.contains("# Post-mortem: Gitea is down"), "{file}");
    assert!(
        file.contains(&note),
        "the 2,000-character note whole in the file"
    );
    serve.stop();
}

#[test]
fn answers_after_the_3_second_window_are_deferred_then_edited_in_privately() {
    let api = FakeApi::start();
    let home = discord_home(&api);
    let serve = Serve::start(&home);
    let start = subcommand(
        "start",
        json!([{"name": "title", "type": 3, "value": "Gitea is down"}]),
    );
    let (_, reply) = send(&serve, &command(OPS, "incident", start));
    assert!(reply.to_string().contains("Incident #1"), "{reply}");
    let original = "/api/v10/webhooks/4242/interaction-token/messages/@original";
    let edits = |api: &FakeApi| api.calls().into_iter().filter(|c| c.path == original);

    // Another process holds the state database's write lock: the command's audit entry
    // waits for it, past the time Discord allows for an interaction's answer.
    let lock = crate::common::state_lock::StateLock::hold(&home);
    let started = std::time::Instant::now();
    let (code, reply) = send(
        &serve,
        &command(OPS, "incident", subcommand("status", json!([]))),
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(code, 200);
    // Deferred, privately: Discord shows the asker alone that the bot is thinking.
    assert_eq!(reply, json!({"type": 5, "data": {"flags": 64}}));
    let calls_before = api.calls().len();
    lock.release();

    let calls = api.wait_until(15, "the deferred answer edited", |c| {
        c.iter().any(|c| c.path == original)
    });
    let late = edits(&api).next().unwrap();
    assert_eq!(late.method, "PATCH");
    // The card itself: its embed, the people as mentions.
    let embed = &late.body["embeds"][0];
    assert_eq!(embed["title"], "🚨 Incident #1: Gitea is down", "{embed}");
    assert!(
        embed.to_string().contains(&format!("<@{OPS}>")),
        "people as mentions: {embed}"
    );
    let model: serenity::all::Embed = serde_json::from_value(embed.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&model).unwrap(), embed);
    // Private: nothing about it went to the channel.
    assert!(
        calls[calls_before..]
            .iter()
            .all(|c| !c.path.contains("/channels/")),
        "{calls:#?}"
    );

    // An answer for the channel (the export) that comes late is posted there, and the
    // deferred answer says so rather than thinking for ever.
    let lock = crate::common::state_lock::StateLock::hold(&home);
    let (_, reply) = send(
        &serve,
        &command(OPS, "incident", subcommand("export", json!([]))),
    );
    assert_eq!(reply, json!({"type": 5, "data": {"flags": 64}}));
    lock.release();
    let calls = api.wait_until(
        15,
        "the export in the channel, the deferred answer edited",
        |c| {
            c.iter().filter(|c| c.path == original).count() == 2
                && c.iter().any(|c| {
                    c.method == "POST"
                        && c.path == format!("/api/v10/channels/{CHANNEL}/messages")
                        && c.body["embeds"][0]["title"] == "🚨 Incident #1: Gitea is down"
                })
        },
    );
    let said = edits(&api).nth(1).unwrap();
    assert_eq!(
        said.body["content"], "Answered in the channel.",
        "{calls:#?}"
    );
    serve.stop();
}
