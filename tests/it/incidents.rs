//! Incidents end to end: opened from Slack, everything that happens in the channel while
//! it is open (a backup, a restore with its approval, a note, an Alertmanager alert, an
//! action item) stamped on its timeline, and exported as Markdown to the channel and as
//! JSON from the CLI, in order and complete.

use crate::common::fakes::*;
use crate::common::*;
use serde_json::Value;

const ADMIN1: &str = "U0ADMIN1";
const ADMIN2: &str = "U0ADMIN2";
const OPS: &str = "U0OPS1";
const VIEWER: &str = "U0VIEW1";
const CHANNEL: &str = "C0OPS";
const AM_TOKEN: &str = "am-secret-token";

fn chat_home(api: &FakeApi) -> Home {
    let home = Home::with_config(
        &ConfigBuilder::new()
            .admins(&["slack:U0ADMIN1", "slack:U0ADMIN2"])
            .operators(&["slack:U0OPS1"])
            .viewers(&["slack:U0VIEW1"])
            .channels(&["slack:C0OPS"])
            .slack(api, Some(CHANNEL))
            .alertmanager_token("AM_TOKEN")
            .sqlite_target("app-db", "../data/app.db")
            .with("restore_approvals = 1"),
    );
    drop(make_app_db(&home.path("data/app.db"), 300));
    home
}

fn reply(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    (
        v["response_type"].as_str().unwrap_or_default().to_string(),
        v["text"].as_str().unwrap_or_default().to_string(),
    )
}

/// Each posted or updated message's full text: Slack's `text` is cut at 3000
/// characters; the whole of it is in the blocks (header, sections and their fields,
/// context), one line each.
fn posted_texts(api: &FakeApi) -> Vec<String> {
    fn texts_in(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(t) = o.get("text").and_then(|t| t.as_str()) {
                    out.push(t.to_string());
                }
                o.values().for_each(|v| texts_in(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| texts_in(v, out)),
            _ => {}
        }
    }
    api.calls()
        .iter()
        .filter(|c| c.path.ends_with("chat.postMessage") || c.path.ends_with("chat.update"))
        .map(|c| match c.body["blocks"].as_array() {
            Some(blocks) => {
                // Buttons' labels and dialogs are not the message's words.
                let words: Vec<_> = blocks
                    .iter()
                    .filter(|b| b["type"] != "actions")
                    .cloned()
                    .collect();
                let mut out = Vec::new();
                texts_in(&serde_json::Value::Array(words), &mut out);
                out.join("\n")
            }
            None => c.body["text"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

#[test]
fn an_incident_records_everything_in_order_and_exports_a_post_mortem() {
    let api = FakeApi::start();
    let home = chat_home(&api);
    let mut cmd = home.command(&["serve"]);
    cmd.env("AM_TOKEN", AM_TOKEN);
    let serve = Serve::from_command(cmd);

    // Opening is announced to the whole channel.
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/incident", "start Gitea is down");
    let (kind, text) = reply(&body);
    assert_eq!(kind, "in_channel", "{body}");
    assert!(
        text.starts_with("🚨 Incident #1 opened: Gitea is down"),
        "{text}"
    );
    assert!(text.contains("Opened by <@U0OPS1> at <!date^"), "{text}");
    // A second incident in the same channel is refused while the first is open.
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/incident", "start again");
    assert!(reply(&body).1.contains("already open"), "{body}");
    // Viewers may add notes but not open or close incidents.
    let (_, body) = slack_command(&serve, VIEWER, CHANNEL, "/incident", "close");
    assert!(reply(&body).1.contains("needs the operator role"), "{body}");

    // A backup: its acknowledgement says it is on the timeline.
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/backup", "now app-db");
    assert!(
        reply(&body).1.contains("on incident #1's timeline"),
        "{body}"
    );
    api.wait_until(30, "the backup result", |_| {
        posted_texts(&api)
            .iter()
            .any(|t| t.contains("✅ backup") && t.contains("📎 on incident #1's timeline"))
    });

    // A restore with its approval.
    let (_, body) = slack_command(&serve, ADMIN1, CHANNEL, "/restore", "app-db");
    assert!(reply(&body).1.contains("posted"), "{body}");
    let calls = api.wait_until(10, "the approval request", |c| {
        c.iter()
            .any(|c| c.body["blocks"].to_string().contains("approve"))
    });
    let request = calls
        .iter()
        .find(|c| c.body["blocks"].to_string().contains("approve"))
        .unwrap();
    let blocks = request.body["blocks"].as_array().unwrap();
    let buttons = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    let approval = buttons["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    home.wait_approvals_posted(1);
    slack_click(
        &serve,
        ADMIN2,
        CHANNEL,
        "1700000000.001001",
        "approve",
        &approval,
    );
    api.wait_until(30, "the restore result", |_| {
        posted_texts(&api)
            .iter()
            .any(|t| t.contains("✅ restored backup"))
    });

    // A note, visible to the channel with its time.
    let (_, body) = slack_command(
        &serve,
        VIEWER,
        CHANNEL,
        "/incident",
        "note users see 502s | since 09:50",
    );
    let (kind, text) = reply(&body);
    assert_eq!(kind, "in_channel");
    assert!(text.starts_with("📝 Noted on incident #1"), "{text}");
    assert!(
        text.contains("users see 502s | since 09:50\nby <@U0VIEW1> at <!date^"),
        "{text}"
    );

    // An Alertmanager alert, stamped at its own start time.
    let starts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let alert = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "lifeboat",
        "alerts": [{"status": "firing", "labels": {"alertname": "GiteaDown"},
                    "annotations": {"summary": "gitea health check failing"},
                    "startsAt": starts}]
    });
    let (code, _) = post(
        &serve.url("/hooks/alertmanager"),
        "application/json",
        &[("authorization", format!("Bearer {AM_TOKEN}"))],
        &alert.to_string(),
    );
    assert_eq!(code, 200);
    api.wait_until(10, "the alert post", |_| {
        posted_texts(&api)
            .iter()
            .any(|t| t.contains("GiteaDown") && t.contains("on incident #1's timeline"))
    });

    let (_, body) = slack_command(
        &serve,
        OPS,
        CHANNEL,
        "/incident",
        "action alert on disk usage above 90%",
    );
    assert!(
        reply(&body).1.contains("📌 Action item on incident #1"),
        "{body}"
    );
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/incident", "status");
    let (kind, text) = reply(&body);
    assert_eq!(kind, "ephemeral");
    assert!(text.contains("Action items: 1 action item"), "{text}");
    // A card for the requester: the people as mentions, the entries' times as dates.
    let answer: Value = serde_json::from_str(&body).unwrap();
    let blocks = answer["blocks"].to_string();
    assert!(blocks.contains(r#""type":"header""#), "{blocks}");
    assert!(blocks.contains("<@U0VIEW1>"), "{blocks}");
    assert!(blocks.contains("<!date^"), "{blocks}");
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/incident", "close");
    assert!(reply(&body).1.contains("closed"), "{body}");
    // Closed: later events are not stamped.
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/backup", "status");
    assert!(!reply(&body).1.contains("timeline"), "{body}");

    // Markdown export, posted to the channel.
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/incident", "export md");
    // The channel sees a summary card; the whole export follows as a file.
    let (kind, text) = reply(&body);
    assert_eq!(kind, "in_channel", "{body}");
    assert!(text.starts_with("✅ Incident #1: Gitea is down"), "{text}");
    assert!(text.contains("Restores: 1 restore"), "{text}");
    assert!(text.contains("`incident-1.md`"), "{text}");
    api.wait_until(10, "the export", |c| {
        c.iter()
            .any(|c| c.path.ends_with("files.completeUploadExternal"))
    });
    let md = api.uploads().concat();
    let done = api.calls_to("files.completeUploadExternal");
    assert!(
        done[0].raw.contains("Incident #1: Gitea is down"),
        "{}",
        done[0].raw
    );
    assert!(md.contains("# Post-mortem: Gitea is down"), "{md}");
    assert!(
        md.contains("| slack:U0VIEW1 | note | users see 502s \\| since 09:50 |"),
        "{md}"
    );
    assert!(md.contains("- [ ] alert on disk usage above 90%"), "{md}");
    assert!(md.contains("| app-db |"), "restores table: {md}");

    // The same incident as JSON from the CLI, while serve runs.
    let out = home
        .command(&["incident", "export", "1", "--format", "json"])
        .env("AM_TOKEN", AM_TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let x: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(x["id"], 1);
    assert_eq!(x["title"], "Gitea is down");
    assert!(x["closed_at"].is_string());
    assert_eq!(
        x["actions"],
        serde_json::json!(["alert on disk usage above 90%"])
    );
    let timeline = x["timeline"].as_array().unwrap();
    let ats: Vec<&str> = timeline.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = ats.clone();
    sorted.sort();
    assert_eq!(ats, sorted, "ordered by time");
    let find = |kind: &str, needle: &str| {
        timeline
            .iter()
            .position(|e| e["kind"] == kind && e["text"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no {kind} event with {needle:?} in {timeline:#?}"))
    };
    let opened = find("opened", "Gitea is down");
    let backup_cmd = find("command", "/backup now app-db");
    let backup_done = find("job", "backup finished app-db (succeeded)");
    let phase = find("job", "backup phase");
    let requested = find("approval", "restore requested");
    let approved = find("approval", "restore approved");
    let restored = find("job", "restore finished app-db (succeeded)");
    let note = find("note", "users see 502s");
    let alert = find("alert", "GiteaDown");
    let action = find("action", "disk usage");
    let closed = find("closed", "closed");
    assert!(opened < backup_cmd && backup_cmd < phase && phase < backup_done);
    assert!(backup_done < requested && requested < approved && approved < restored);
    assert!(restored < note && note <= alert && alert < action && action < closed);
    assert_eq!(
        timeline[alert]["at"].as_str().unwrap(),
        starts,
        "the alert keeps its own time"
    );
    assert_eq!(timeline[approved]["actor"], "slack:U0ADMIN2");
    assert!(
        !timeline
            .iter()
            .any(|e| e["text"].as_str().unwrap().contains("/backup status"))
    );
    let restore = &x["restores"][0];
    assert_eq!(restore["target"], "app-db");
    assert_eq!(restore["state"], "succeeded");
    assert!(restore["rto_seconds"].as_i64().unwrap() >= 0);
    assert!(restore["rpo_seconds"].as_i64().unwrap() >= 0);
    let people: Vec<&str> = x["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for p in [
        "slack:U0OPS1",
        "slack:U0ADMIN1",
        "slack:U0ADMIN2",
        "slack:U0VIEW1",
    ] {
        assert!(people.contains(&p), "{people:?}");
    }
    serve.stop();
}

#[test]
fn the_cli_runs_incidents_too() {
    let home = Home::new();
    ConfigBuilder::new()
        .sqlite_target("app-db", "../data/app.db")
        .write(&home);
    drop(make_app_db(&home.path("data/app.db"), 50));
    // Nothing open yet: a clear refusal, exit 2.
    let out = home.run(&["incident", "note", "hello"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no incident is open"),
        "{}",
        stderr(&out)
    );

    assert!(
        home.ok(&["incident", "start", "Disk", "full"])
            .contains("incident #1 opened: Disk full")
    );
    home.ok(&["backup", "app-db"]);
    home.ok(&["incident", "note", "freed", "2 GiB"]);
    home.ok(&["incident", "action", "add a disk alert"]);
    assert!(home.ok(&["incident", "status"]).contains("freed 2 GiB"));
    home.ok(&["incident", "close"]);
    let list = home.ok(&["incident", "list"]);
    assert!(
        list.contains("#1  Disk full") && list.contains("closed"),
        "{list}"
    );
    let md = home.ok(&["incident", "export"]);
    assert!(md.contains("backup finished app-db (succeeded)"), "{md}");
    assert!(md.contains("| note | freed 2 GiB |"), "{md}");
    assert!(md.contains("No restore ran during the incident."), "{md}");
    let out = home.run(&["incident", "export", "7"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no incident #7"));
    let out = home.run(&["incident", "export", "--format", "pdf"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_status_answered_after_slacks_deadline_arrives_as_a_private_card() {
    let api = FakeApi::start();
    let home = chat_home(&api);
    let mut cmd = home.command(&["serve"]);
    cmd.env("AM_TOKEN", AM_TOKEN);
    let serve = Serve::from_command(cmd);
    slack_command(&serve, OPS, CHANNEL, "/incident", "start Gitea is down");

    // Another process holds the state database's write lock: the command's audit entry
    // waits for it, past the time Slack allows for an answer.
    let lock = crate::common::state_lock::StateLock::hold(&home);
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/incident", "status");
    assert!(reply(&body).1.contains("Working on it"), "{body}");
    lock.release();

    let calls = api.wait_until(15, "the late answer", |c| {
        c.iter().any(|c| c.path.ends_with("chat.postEphemeral"))
    });
    let late = calls
        .iter()
        .find(|c| c.path.ends_with("chat.postEphemeral"))
        .unwrap();
    assert_eq!(late.body["user"], OPS, "{:?}", late.body);
    // The card itself (a header, the people as a field), not its text in sections.
    let blocks = &late.body["blocks"];
    assert_eq!(blocks[0]["type"], "header", "{blocks}");
    assert_eq!(blocks[0]["text"]["text"], "🚨 Incident #1: Gitea is down");
    assert!(
        blocks.to_string().contains(r#"*People*\n<@U0OPS1>"#),
        "{blocks}"
    );
    crate::common::block_kit::assert_blocks_read(&[&late.body["blocks"]]);
    serve.stop();
}
