//! The Slack renderer against Slack's limits and Slack's own Block Kit models.

use super::*;
use crate::approvals::fixtures;
use crate::db::approvals::ApprovalStatus;
use serde_json::Value;

fn payload(msg: &ChatMessage) -> Value {
    serde_json::to_value(content(msg)).unwrap()
}

fn len(v: &Value) -> usize {
    v.as_str().unwrap().chars().count()
}

/// Every limit Slack documents, checked on the JSON that goes out.
fn assert_within_slack_limits(p: &Value) {
    let blocks = p["blocks"].as_array().unwrap();
    assert!(blocks.len() <= MAX_BLOCKS, "{} blocks", blocks.len());
    assert!(len(&p["text"]) <= MAX_MESSAGE_TEXT);
    let mut total = len(&p["text"]);
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "header" => assert!(len(&b["text"]["text"]) <= MAX_HEADER),
            "section" => {
                if let Some(t) = b.get("text") {
                    assert!(len(&t["text"]) <= MAX_SECTION_TEXT, "{}", len(&t["text"]));
                    total += len(&t["text"]);
                }
                if let Some(fields) = b.get("fields") {
                    let fields = fields.as_array().unwrap();
                    assert!(fields.len() <= MAX_FIELDS);
                    for f in fields {
                        assert!(len(&f["text"]) <= MAX_FIELD_TEXT, "{}", len(&f["text"]));
                        total += len(&f["text"]);
                    }
                }
            }
            "context" => {
                let elements = b["elements"].as_array().unwrap();
                assert!(elements.len() <= MAX_CONTEXT_ELEMENTS);
                for e in elements {
                    assert!(len(&e["text"]) <= MAX_SECTION_TEXT);
                    total += len(&e["text"]);
                }
            }
            "actions" => {}
            other => panic!("unexpected block {other}"),
        }
    }
    assert!(total <= MAX_MESSAGE_TEXT, "{total} characters in all");
}

/// Slack's Python SDK parses every block and writes it back (running its own limit
/// validators on the way); anything lost or changed on the way is a failure.
fn assert_parsed_by_slack_sdk(p: &Value) {
    use std::io::Write;
    const SCRIPT: &str = r#"
import json, sys
from slack_sdk.models.blocks import Block
bad = []
for b in json.load(sys.stdin)["blocks"]:
    parsed = Block.parse(b)
    again = parsed.to_dict() if parsed is not None else None
    if again != b:
        bad.append({"sent": b, "parsed": again})
print(json.dumps(bad))
sys.exit(1 if bad else 0)
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test.sh installs it with slack-sdk)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(p.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "slack_sdk: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_largest_restore_request_fits_and_slack_reads_it_whole() {
    let plan = fixtures::largest_plan();
    for status in [
        ApprovalStatus::Pending,
        ApprovalStatus::Approved,
        ApprovalStatus::Denied,
        ApprovalStatus::Expired,
    ] {
        let req = fixtures::request("slack", status);
        let p = payload(&crate::approvals::message(&req, &plan, &[]));
        assert_within_slack_limits(&p);
        assert_parsed_by_slack_sdk(&p);
    }
}

#[test]
fn an_incident_sized_card_is_summarised_within_the_limits() {
    let msg = ChatMessage::card(fixtures::largest_card("slack"));
    let p = payload(&msg);
    assert_within_slack_limits(&p);
    assert_parsed_by_slack_sdk(&p);
    let all = p.to_string();
    assert!(
        all.contains("more lines (not shown here)"),
        "the cut is said"
    );
    assert!(all.contains("facts not shown"), "{all}");
    // A plain text message of 100,000 characters too.
    let p = payload(&ChatMessage::text("a long line of text\n".repeat(5000)));
    assert_within_slack_limits(&p);
    assert_parsed_by_slack_sdk(&p);
}

#[test]
fn a_request_reads_as_blocks_with_mentions_dates_and_a_confirm_on_approve() {
    let plan = fixtures::largest_plan();
    let mut req = fixtures::request("slack", ApprovalStatus::Pending);
    req.approvers.truncate(1);
    req.required = 2;
    let many: Vec<String> = (3..20).map(|n| format!("slack:U0ADMIN{n}")).collect();
    let p = payload(&crate::approvals::message(&req, &plan, &many));
    let blocks = p["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        p.to_string()
            .contains("Can approve: <@U0ADMIN3>, <@U0ADMIN4>, <@U0ADMIN5>, <@U0ADMIN6>, <@U0ADMIN7>, <@U0ADMIN8>, <@U0ADMIN9>, <@U0ADMIN10>, <@U0ADMIN11>, <@U0ADMIN12> and 7 other admins"),
        "{p}"
    );
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Restore requested: gitea-db")
    );
    let text = p.to_string();
    for needle in [
        "Requested by <@U0ADMIN1>",
        "✅ approved by <@U0ADMIN2> at <!date^1796475000^{date_short_pretty} at {time}|2026-12-05 12:50 UTC>",
        "Needs 1 more approval from an admin other than the requester (1 of 2 so far).",
        "*Backup*\\n`20261205T124620Z`",
        "*Size*\\n941.9 MiB",
        "1. Run the hook on deploy@db-primary:2222: `systemctl stop app-0.service`",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert!(
        !text.contains("slack:U0ADMIN"),
        "raw identities stay out of chat"
    );
    let actions = blocks.last().unwrap();
    assert_eq!(actions["type"], "actions");
    let approve = &actions["elements"][0];
    assert_eq!(approve["action_id"], "approve");
    assert_eq!(
        approve["confirm"]["title"]["text"],
        "Replace the live data?"
    );
    let why = approve["confirm"]["text"]["text"].as_str().unwrap();
    assert!(why.starts_with("This replaces deploy@db-primary"), "{why}");
    assert!(why.chars().count() <= 300);
    assert_eq!(actions["elements"][1]["action_id"], "deny");
    assert!(
        actions["elements"][1].get("confirm").is_none(),
        "Deny asks nothing"
    );
    // A partial restore names its paths and what they hold.
    let mut partial = plan.clone();
    partial.in_place = false;
    partial.paths = serde_json::from_value(serde_json::json!([
        {"path": "conf/app.ini", "type": "file", "files": 1, "bytes": 2048},
        {"path": "assets", "type": "dir", "files": 12, "bytes": 3145728}
    ]))
    .unwrap();
    let p = payload(&crate::approvals::message(&req, &partial, &[]));
    let text = p.to_string();
    assert!(
        text.contains(
            "*Paths*\\n`conf/app.ini` (file, 2.0 KiB), `assets` (folder, 12 files, 3.0 MiB)"
        ) && text.contains("*Restores*\\n13 files, 3.0 MiB")
            && text.contains("extract only these paths"),
        "{text}"
    );
    assert_parsed_by_slack_sdk(&p);
    // A new copy beside the live data replaces nothing: no question asked.
    let mut beside = plan.clone();
    beside.in_place = false;
    let p = payload(&crate::approvals::message(&req, &beside, &[]));
    assert!(
        p["blocks"].as_array().unwrap().last().unwrap()["elements"][0]
            .get("confirm")
            .is_none()
    );
}

#[test]
fn words_in_mrkdwn_are_escaped_and_people_from_elsewhere_named() {
    let line = Line::new()
        .text("a <b> & c ")
        .person("cli:root")
        .text(" ")
        .code("x`y");
    assert_eq!(mrkdwn(&line), "a &lt;b&gt; &amp; c `cli:root` `x'y`");
}

#[test]
fn the_fallback_text_is_never_cut_inside_a_mention_or_a_date() {
    let mention = "<@U0123456789>";
    let text = format!("{}{mention} asked", "x".repeat(95));
    // The cut falls inside the mention: it is left out whole.
    let cut = clip_fallback(&text, 100);
    assert_eq!(cut, format!("{}…", "x".repeat(95)));
    // Room for the whole mention keeps it.
    let cut = clip_fallback(&text, 112);
    assert!(
        cut.starts_with(&format!("{}{mention}", "x".repeat(95))),
        "{cut}"
    );
    assert!(cut.chars().count() <= 112);
    // Short enough: untouched.
    assert_eq!(clip_fallback("hi <@U1>", 100), "hi <@U1>");
    let date = "<!date^1764938780^{date_short} {time}|2026-12-05 12:46 UTC>";
    let cut = clip_fallback(&format!("at {date} done"), 20);
    assert_eq!(cut, "at …");
}

#[test]
fn every_alert_and_recovery_card_fits_and_slack_reads_it_whole() {
    for msg in crate::schedule::alert_card::fixtures::all_messages("db") {
        let p = payload(&msg);
        assert_within_slack_limits(&p);
        assert_parsed_by_slack_sdk(&p);
        let words = clip_fallback(&msg.text, FALLBACK_TEXT);
        assert_eq!(p["text"], words.as_str(), "the watchdog's words notify");
        let all = p.to_string();
        assert!(all.contains("`db`"), "{all}");
        assert!(all.contains("<!date^"), "{all}");
    }
}

#[test]
fn the_largest_drill_incident_status_and_runbook_messages_fit_and_slack_reads_them_whole() {
    for (name, msg) in crate::card::largest::all("slack") {
        let p = payload(&msg);
        assert_within_slack_limits(&p);
        assert_parsed_by_slack_sdk(&p);
        let all = p.to_string();
        assert!(all.contains(r#""type":"header""#), "{name}: {all}");
        // Whatever was cut says so; people are mentions and times are dates.
        if !["scheduled drill", "status of 50 targets", "manual step"].contains(&name) {
            assert!(all.contains("<@U0"), "{name}: a mention");
        }
        assert!(
            !all.contains("slack:U0"),
            "{name}: no raw identity in the message"
        );
        if !["status of 50 targets", "manual step"].contains(&name) {
            assert!(all.contains("<!date^"), "{name}: a date");
        }
        if name == "manual step" {
            assert!(
                all.contains(r#""action_id":"step_done""#),
                "{name}: its buttons kept"
            );
        }
    }
}

#[test]
fn a_drill_card_shows_objectives_as_fields_and_checks_as_a_list() {
    let drill = crate::actions::drill_card::fixtures::drill(3, false, Some(40.0), Some(300.0));
    let msg = ChatMessage::card(crate::actions::drill_card::card(
        &drill,
        Some("slack:U0OPS1"),
    ));
    let p = payload(&msg);
    assert_parsed_by_slack_sdk(&p);
    let blocks = p["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["text"]["text"], "❌ Drill of gitea-db failed");
    let fields: Vec<&str> = blocks
        .iter()
        .filter_map(|b| b["fields"].as_array())
        .flatten()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"*RTO*\nnot reached · objective 5 min · ❌ not reached"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"*RPO*\n40 s · objective 1 h · ✅ met"),
        "{fields:?}"
    );
    assert!(fields.contains(&"*Checks*\n❌ 2 of 3 passed"), "{fields:?}");
    let all = p.to_string();
    assert!(all.contains("5. ❌ check 3: sql `SELECT"), "{all}");
    assert!(
        p["text"]
            .as_str()
            .unwrap()
            .starts_with("❌ Drill of gitea-db failed\nRequested by <@U0OPS1>")
    );
}
