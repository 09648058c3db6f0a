//! The Discord renderer against Discord's limits and serenity's models of what Discord
//! sends back.

use super::*;
use crate::approvals::fixtures;
use crate::db::approvals::ApprovalStatus;
use serde_json::Value;
use serenity::all::{ActionRow, Embed};

fn payload(msg: &ChatMessage) -> Value {
    serde_json::to_value(post(msg)).unwrap()
}

fn chars(v: &Value) -> usize {
    v.as_str().map(|s| s.chars().count()).unwrap_or(0)
}

/// Discord's limits, checked on the JSON that goes out; the embeds and buttons read back
/// by serenity's own models without losing anything.
fn assert_within_discord_limits(p: &Value) {
    assert!(chars(&p["content"]) <= MAX_CONTENT);
    for e in p["embeds"].as_array().into_iter().flatten() {
        assert!(chars(&e["title"]) <= MAX_TITLE);
        assert!(chars(&e["description"]) <= MAX_DESCRIPTION);
        let fields = e["fields"].as_array().cloned().unwrap_or_default();
        assert!(fields.len() <= MAX_FIELDS, "{} fields", fields.len());
        let mut total = chars(&e["title"]) + chars(&e["description"]);
        for f in &fields {
            assert!(chars(&f["name"]) <= MAX_FIELD_NAME);
            assert!(
                chars(&f["value"]) <= MAX_FIELD_VALUE,
                "{}",
                chars(&f["value"])
            );
            total += chars(&f["name"]) + chars(&f["value"]);
        }
        assert!(total <= MAX_EMBED_TOTAL, "{total} characters in the embed");
        let model: Embed = serde_json::from_value(e.clone()).expect("serenity reads the embed");
        assert_eq!(&serde_json::to_value(&model).unwrap(), e, "nothing lost");
    }
    for row in p["components"].as_array().into_iter().flatten() {
        let model: ActionRow = serde_json::from_value(row.clone()).expect("serenity reads the row");
        assert_eq!(
            model.components.len(),
            row["components"].as_array().unwrap().len()
        );
    }
}

#[test]
fn the_largest_restore_request_fits_and_serenity_reads_it() {
    let plan = fixtures::largest_plan();
    for status in [
        ApprovalStatus::Pending,
        ApprovalStatus::Approved,
        ApprovalStatus::Denied,
        ApprovalStatus::Expired,
    ] {
        let req = fixtures::request("discord", status);
        assert_within_discord_limits(&payload(&crate::approvals::message(&req, &plan, &[])));
    }
    let p = payload(&ChatMessage::card(fixtures::largest_card("discord")));
    assert_within_discord_limits(&p);
    assert!(p.to_string().contains("more lines (not shown here)"));
    assert_within_discord_limits(&payload(&ChatMessage::text("x".repeat(100_000))));
}

#[test]
fn a_request_is_an_embed_that_pings_nobody_and_asks_before_approving() {
    let plan = fixtures::largest_plan();
    let mut req = fixtures::request("discord", ApprovalStatus::Pending);
    req.approvers.truncate(1);
    let can_approve = ["discord:100000000000000003".to_string()];
    let p = payload(&crate::approvals::message(&req, &plan, &can_approve));
    let e = &p["embeds"][0];
    assert_eq!(e["color"], 0xECB22E, "amber while it waits");
    let description = e["description"].as_str().unwrap();
    assert!(
        description.starts_with("Requested by <@100000000000000001>"),
        "{description}"
    );
    assert!(
        description.contains("✅ approved by <@100000000000000002> at <t:1796475000:f>"),
        "{description}"
    );
    assert!(
        description.contains("\n-# Expires <t:1796476580:f> (<t:1796476580:R>) · request `"),
        "{description}"
    );
    assert!(
        e.get("footer").is_none(),
        "a footer would not render mentions and times"
    );
    assert_eq!(e["fields"][1]["name"], "Backup");
    assert_eq!(e["fields"][1]["value"], "`20261205T124620Z`");
    // Only the admins who can approve are pinged; the requester and the approver who
    // already did are named, not alerted.
    assert!(
        description.contains("Can approve: <@100000000000000003>"),
        "{description}"
    );
    assert_eq!(
        p["allowed_mentions"]["users"],
        serde_json::json!(["100000000000000003"])
    );
    assert!(
        p["content"]
            .as_str()
            .unwrap()
            .ends_with(" <@100000000000000003>")
    );
    assert!(
        p["allowed_mentions"]["parse"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let buttons = &p["components"][0]["components"];
    assert_eq!(buttons[0]["custom_id"], format!("ask_approve:{}", req.id));
    assert_eq!(buttons[1]["custom_id"], format!("deny:{}", req.id));
    let asked = ask(&crate::approvals::confirm(&plan), "approve", &req.id);
    assert_eq!(
        asked["data"]["flags"], 64,
        "only the clicker sees the question"
    );
    let row = &asked["data"]["components"][0]["components"];
    assert_eq!(row[0]["custom_id"], format!("approve:{}", req.id));
    assert_eq!(row[1]["custom_id"], format!("cancel:{}", req.id));
    assert!(
        asked["data"]["content"]
            .as_str()
            .unwrap()
            .contains("This replaces deploy@")
    );
}

#[test]
fn a_result_pings_its_requester_and_is_coloured_by_outcome() {
    let card = Card::new(Tone::Bad, "❌ backup of db failed")
        .lead(Line::new().text("Requested by ").notify("discord:42"))
        .context(Line::new().text("by ").person("slack:U1"));
    let p = payload(&ChatMessage::card(card));
    assert_eq!(p["content"], "❌ backup of db failed <@42>");
    assert_eq!(p["allowed_mentions"]["users"], serde_json::json!(["42"]));
    assert_eq!(p["embeds"][0]["color"], 0xE01E5A);
    let description = p["embeds"][0]["description"].as_str().unwrap();
    assert!(description.ends_with("\n-# by `slack:U1`"), "{description}");
    let plain = payload(&ChatMessage::text("<@42> said hi"));
    assert!(
        plain["allowed_mentions"]["users"]
            .as_array()
            .is_none_or(|u| u.is_empty())
    );
    assert!(
        plain["allowed_mentions"]["parse"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn every_alert_and_recovery_card_fits_and_serenity_reads_it() {
    for (i, msg) in crate::schedule::alert_card::fixtures::all_messages("db")
        .iter()
        .enumerate()
    {
        let p = payload(msg);
        assert_within_discord_limits(&p);
        let embed = &p["embeds"][0];
        let sent = embed["color"].as_u64().unwrap();
        let expected = if i % 2 == 0 { Tone::Bad } else { Tone::Good };
        assert_eq!(sent, u64::from(colour(expected).0), "{embed}");
        assert!(embed.to_string().contains("<t:"), "{embed}");
    }
}

#[test]
fn the_largest_drill_incident_status_and_runbook_messages_fit_and_serenity_reads_them() {
    for (name, msg) in crate::card::largest::all("discord") {
        let p = payload(&msg);
        assert_within_discord_limits(&p);
        let embed = p["embeds"][0].to_string();
        if !["scheduled drill", "status of 50 targets", "manual step"].contains(&name) {
            assert!(embed.contains("<@1"), "{name}: a mention: {embed}");
        }
        assert!(
            !p.to_string().contains("slack:U0"),
            "{name}: no raw identity"
        );
        if !["status of 50 targets", "manual step"].contains(&name) {
            assert!(embed.contains("<t:"), "{name}: a time: {embed}");
        }
        if name == "incident note" {
            // The note is whole: 2,000 characters in paragraphs no limit cuts.
            let description = p["embeds"][0]["description"].as_str().unwrap();
            let words = crate::card::largest::long_note();
            assert!(
                description.replace('\n', "").contains(&words),
                "{description}"
            );
        }
        if name == "manual step" {
            assert_eq!(
                p["components"][0]["components"].as_array().unwrap().len(),
                2,
                "{name}"
            );
            // The instructions are whole: 2,000 characters in paragraphs no limit cuts.
            let description = p["embeds"][0]["description"].as_str().unwrap();
            let kept: usize = description
                .lines()
                .filter(|l| {
                    l.starts_with("proxy") || l.starts_with(" proxy") || l.contains("retried")
                })
                .map(|l| l.chars().count())
                .sum();
            assert!(kept >= 2000, "{kept}: {description}");
        }
    }
}

#[test]
fn drill_colours_follow_the_outcome_and_objectives_are_fields() {
    let fixtures = crate::actions::drill_card::fixtures::drill;
    for (report, tone) in [
        (fixtures(3, true, Some(40.0), Some(300.0)), Tone::Good),
        (fixtures(3, true, Some(7200.0), Some(300.0)), Tone::Warning),
        (fixtures(3, false, Some(40.0), Some(300.0)), Tone::Bad),
    ] {
        let p = payload(&ChatMessage::card(crate::actions::drill_card::card(
            &report, None,
        )));
        assert_within_discord_limits(&p);
        let embed = &p["embeds"][0];
        assert_eq!(embed["color"].as_u64().unwrap(), u64::from(colour(tone).0));
        let fields = embed["fields"].as_array().unwrap();
        assert_eq!(fields[0]["name"], "RTO");
        assert_eq!(fields[1]["name"], "RPO");
        assert_eq!(
            p["allowed_mentions"]["users"],
            serde_json::json!([]),
            "a scheduled drill pings nobody"
        );
    }
}
