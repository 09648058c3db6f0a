//! Long content on Slack through a real `serve`: the status of 50 targets and a
//! 200-entry incident (with a 2,000-character note) answered with cards inside Slack's
//! limits that slack_sdk reads whole, and the whole text posted beside them as files.

use crate::common::block_kit::assert_blocks_read;
use crate::common::fakes::*;
use crate::common::*;
use serde_json::Value;

const OPS: &str = "U0OPS1";
const CHANNEL: &str = "C0OPS";

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Slack's documented limits on a message's JSON: 50 blocks, a header of 150, a section
/// of 3,000, 40,000 characters in all.
fn assert_within_slack_limits(answer: &Value) {
    let blocks = answer["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    let mut total = chars(&answer["text"]);
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "header" => assert!(chars(&b["text"]["text"]) <= 150),
            "section" => {
                assert!(chars(&b["text"]["text"]) <= 3000);
                total += chars(&b["text"]["text"]);
                for f in b["fields"].as_array().into_iter().flatten() {
                    assert!(chars(&f["text"]) <= 2000);
                    total += chars(&f["text"]);
                }
            }
            "context" => {
                for e in b["elements"].as_array().unwrap() {
                    total += chars(&e["text"]);
                }
            }
            _ => {}
        }
    }
    assert!(total <= 40_000, "{total} characters");
}

fn answer(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

#[test]
fn fifty_targets_and_a_two_hundred_entry_incident_are_summaries_with_files() {
    let api = FakeApi::start();
    let mut config = ConfigBuilder::new()
        .operators(&["slack:U0OPS1"])
        .channels(&["slack:C0OPS"])
        .slack(&api, Some(CHANNEL));
    for i in 0..50 {
        config = config.sqlite_target(&format!("db-{i:02}"), &format!("../data/db-{i:02}.db"));
    }
    let home = Home::with_config(&config);
    let serve = Serve::start(&home);

    // The status: a card for the requester listing 15, all 50 as status.md.
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/backup", "status");
    let targets = answer(&body);
    assert_eq!(targets["response_type"], "ephemeral", "{body}");
    assert_eq!(targets["blocks"][0]["text"]["text"], "Status of 50 targets");
    assert_within_slack_limits(&targets);
    let listed = targets["blocks"].to_string().matches("(sqlite)").count();
    assert_eq!(listed, 15, "{body}");
    api.wait_until(10, "the status file", |_| !api.uploads().is_empty());
    let file = api.uploads().concat();
    for i in 0..50 {
        assert!(
            file.contains(&format!("| db-{i:02} |")),
            "db-{i:02}: {file}"
        );
    }
    let done = api.calls_to("files.completeUploadExternal");
    assert!(done[0].raw.contains(CHANNEL), "{}", done[0].raw);
    assert!(
        done[0].raw.contains("Status of 50 targets"),
        "{}",
        done[0].raw
    );

    // An incident with 200 notes, one of them 2,000 characters long.
    slack_command(
        &serve,
        OPS,
        CHANNEL,
        "/incident",
        "start Everything is down",
    );
    let long_note = "upstream timed out; ".repeat(100);
    for i in 0..199 {
        slack_command(
            &serve,
            OPS,
            CHANNEL,
            "/incident",
            &format!("note step {i} checked"),
        );
    }
    let (_, body) = slack_command(
        &serve,
        OPS,
        CHANNEL,
        "/incident",
        &format!("note {long_note}"),
    );
    assert!(body.contains("Noted on incident #1"), "{body}");

    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/incident", "status");
    let status = answer(&body);
    assert_eq!(status["response_type"], "ephemeral", "{body}");
    assert_within_slack_limits(&status);
    let all = status.to_string();
    assert!(all.contains("The latest 10 of 201 entries"), "{all}");
    assert!(all.contains("<@U0OPS1>"), "{all}");
    assert!(all.contains("<!date^"), "{all}");

    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/incident", "export md");
    let export = answer(&body);
    assert_eq!(export["response_type"], "in_channel", "{body}");
    assert_within_slack_limits(&export);
    assert!(
        export.to_string().contains("Timeline: 201 entries"),
        "{body}"
    );
    assert_blocks_read(&[&targets["blocks"], &status["blocks"], &export["blocks"]]);
    api.wait_until(10, "the export file", |_| api.uploads().len() >= 2);
    let md = api.uploads().pop().unwrap();
    assert!(md.contains("# Post-mortem: Everything is down"), "{md}");
    assert!(md.contains("step 0 checked") && md.contains("step 198 checked"));
    assert!(
        md.contains(long_note.trim_end()),
        "the long note whole in the file"
    );
    serve.stop();
}
