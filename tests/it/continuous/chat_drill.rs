//! `/drill <target> at <time>` from Slack (signed requests to a real `serve`, the fake
//! Web API recording what lifeboat posts): a continuous target replicated by that
//! `serve` while a real application writes is drilled as of the moment, and the report
//! says the moment, the base copy and the RPO then; a moment past `replicated_to` or
//! one that cannot be read is refused before any drill is recorded; a target that is not
//! replicated continuously drills its newest backup at or before the moment, as the
//! command line's `drill --at` does, and says so.

use super::*;
use crate::common::fakes::{FakeApi, Serve, slack_command};

const OPS: &str = "U0OPS1";
const CHANNEL: &str = "C0OPS";

fn posts(api: &FakeApi) -> usize {
    api.calls_to("chat.postMessage").len()
}

fn uploads_done(api: &FakeApi, n: usize) -> Vec<String> {
    api.wait_until(60, "the drill report's upload", |calls| {
        calls
            .iter()
            .filter(|c| c.path.ends_with("files.completeUploadExternal"))
            .count()
            >= n
    });
    api.uploads()
}

#[test]
fn a_drill_at_a_moment_from_slack_restores_to_it_and_refuses_what_nothing_reaches() {
    let api = FakeApi::start();
    let plain =
        "[targets.plain]\nkind = \"sqlite\"\npath = \"../data/plain.db\"\nstore = \"local\"\n";
    let home = Home::with_config(
        &ConfigBuilder::new()
            .operators(&["slack:U0OPS1"])
            .channels(&["slack:C0OPS"])
            .slack(&api, Some(CHANNEL))
            .raw(&format!("{}rpo = \"1h\"\n{plain}", target("local"))),
    );
    let db = db_path(&home);
    create_db(&db, true);
    drop(make_app_db(&home.path("data/plain.db"), 20));
    let before_plain = chrono::Utc::now() - chrono::Duration::hours(1);
    home.ok(&["backup", "plain"]);
    let serve = Serve::start(&home);
    let log = home.path("data/commits.log");
    finish(writer(&db, 600, &log, &[]));
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);

    // A moment in the middle, between two commits.
    let i = rows.len() / 2;
    let at = (rows[i].committed + rows[i + 1].began) / 2.0;
    let (status, body) = slack_command(
        &serve,
        OPS,
        CHANNEL,
        "/drill",
        &format!("app at {}", rfc3339(at)),
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("Drilling app") && body.contains("as of") && body.contains("base copy"),
        "{body}"
    );
    let report = uploads_done(&api, 1).remove(0);
    assert!(report.contains("✅ PASSED"), "{report}");
    let second = &rfc3339(at)[..19];
    let restored = report
        .lines()
        .find(|l| l.starts_with("- restored to: "))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        restored.contains(second) && restored.contains("(the moment asked for)"),
        "{restored}"
    );
    // Every row committed more than the slack before the moment is in, none that began
    // after it.
    let upto: u64 = restored
        .split("up to transaction ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{restored}"));
    let surely_in = rows.iter().filter(|c| c.committed + slack() <= at).count() as u64;
    let began_by = rows.iter().filter(|c| c.began <= at).count() as u64;
    assert!(surely_in <= upto && upto <= began_by, "{upto}: {restored}");
    assert!(
        report.contains(
            "| RPO (replication lag at the moment restored to: for the newest, drill start minus it; for one asked for, at most that moment minus the last transaction shipped by it) |"
        ),
        "{report}"
    );
    let card = api
        .calls_to("chat.update")
        .last()
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .unwrap();
    assert!(
        card.contains("restored to ") && card.contains("Restored to") && card.contains("RPO: "),
        "{card}"
    );
    // The RPO recorded is the lag at the moment: no more than the moment minus the last
    // row it holds (that row was seen committed after it began), not the moment's
    // age when the drill started.
    let s = home.status();
    let rpo = s["last_drill_rpo_seconds"].as_f64().unwrap();
    let last_in = rows[upto as usize - 1].began;
    assert!(
        // (Times in the store are to the millisecond.)
        (0.0..=at - last_in + 0.002).contains(&rpo),
        "rpo {rpo}, moment minus last row {}: {s}",
        at - last_in
    );
    let drilled = s["last_drill_at"].clone();

    // Refused before any drill is recorded or posted: past replicated_to, naming how far
    // it reaches; a time that cannot be read; a backup id and a moment both.
    let messages = posts(&api);
    let past = rfc3339(rows.last().unwrap().committed + 3600.0);
    for (text, says) in [
        (format!("app at {past}"), "is past it"),
        ("app at yesterday".to_string(), "cannot read the time"),
        (
            "app 20261122T083000Z at 2026-11-22 08:30".to_string(),
            "either a backup id or `at`",
        ),
        ("app at".to_string(), "`at` needs a time"),
    ] {
        let (status, body) = slack_command(&serve, OPS, CHANNEL, "/drill", &text);
        assert_eq!(status, 200);
        assert!(
            body.contains(says) && !body.contains("Drilling"),
            "{text}: {body}"
        );
    }
    assert_eq!(posts(&api), messages, "no drill was posted");
    assert_eq!(home.status()["last_drill_at"], drilled, "no drill recorded");

    // A target without continuous replication: nothing before its first backup, and
    // after it its newest backup at or before the moment, said so.
    let (_, body) = slack_command(
        &serve,
        OPS,
        CHANNEL,
        "/drill",
        &format!("plain at {}", before_plain.to_rfc3339()),
    );
    assert!(!body.contains("Drilling"), "{body}");
    let (_, body) = slack_command(
        &serve,
        OPS,
        CHANNEL,
        "/drill",
        &format!("plain at {}", rfc3339(at)),
    );
    assert!(
        body.contains("Drilling plain") && body.contains("not replicated continuously"),
        "{body}"
    );
    let report = uploads_done(&api, 2).remove(1);
    assert!(
        report.contains("# Recovery drill of plain") && !report.contains("- restored to: "),
        "{report}"
    );
    serve.stop();
}
