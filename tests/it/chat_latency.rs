//! A chat job's final state reaches its message within a second of the job's end, even
//! when the platform has just rate-limited a progress edit; progress edits stay at most
//! one a second. Real `serve`, requests signed as Slack and Discord sign them, recording
//! fakes of both APIs that answer 429 with Retry-After as the real ones do.

use std::time::{Duration, SystemTime};

use crate::common::fakes::*;
use crate::common::*;
use serde_json::json;

const SLACK_CHANNEL: &str = "C0OPS";
const DISCORD_CHANNEL: &str = "112233";

fn home(api: &FakeApi) -> Home {
    let home = Home::with_config(
        &ConfigBuilder::new()
            .operators(&["slack:U0OPS", "discord:5551"])
            .channels(&["slack:C0OPS", "discord:112233"])
            .slack(api, None)
            .discord(api, None)
            .sqlite_target("app", "../data/app.db"),
    );
    make_big_db(&home.path("data/app.db"), 2);
    home
}

/// When the fake received a call, on the wall clock.
fn wall(call: &Call) -> SystemTime {
    SystemTime::now() - call.at.elapsed()
}

/// When the newest backup job of `app` ended, from its record.
fn job_end(home: &Home) -> SystemTime {
    let db = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    let finished: String = db
        .query_row(
            "SELECT finished_at FROM jobs WHERE kind = 'backup' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let t = lifeboat::units::parse_time(&finished).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_millis(t.timestamp_millis() as u64)
}

/// The edits of the job message, in order; the last carries the result.
fn check_edits(home: &Home, edits: &[Call], text_of: impl Fn(&Call) -> String) -> Duration {
    let last = edits.last().unwrap();
    assert!(text_of(last).contains("✅ backup"), "{:?}", last.body);
    let late = wall(last).duration_since(job_end(home)).unwrap_or_default();
    // Progress edits (and the refused one) come at most one a second.
    for pair in edits[..edits.len() - 1].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(950), "edits {gap:?} apart");
    }
    late
}

#[test]
fn slack_the_result_lands_within_a_second_of_the_end_despite_a_429() {
    let api = FakeApi::start();
    let home = home(&api);
    // The first edit of the job message is refused with Retry-After: 1.
    api.rate_limit("chat.update", 1, 1);
    let serve = Serve::start(&home);
    let (code, _) = slack_command(&serve, "U0OPS", SLACK_CHANNEL, "/backup", "now app");
    assert_eq!(code, 200);
    let calls = api.wait_update(30, "✅ backup");
    let edits: Vec<Call> = calls
        .into_iter()
        .filter(|c| c.path.ends_with("chat.update"))
        .collect();
    assert!(
        edits.len() >= 2,
        "the refused edit, then the result: {edits:#?}"
    );
    let late = check_edits(&home, &edits, |c| {
        c.body["text"].as_str().unwrap_or("").to_string()
    });
    assert!(
        late <= Duration::from_millis(1200),
        "the result came {late:?} after the job's end"
    );
    eprintln!("slack: result {late:?} after the job's end");
    serve.stop();
}

#[test]
fn discord_the_result_lands_within_a_second_of_the_end_despite_a_429() {
    let api = FakeApi::start();
    let home = home(&api);
    api.rate_limit_method("PATCH", 1, 1);
    let serve = Serve::start(&home);
    let body = json!({
        "id": "900000000000000001", "application_id": "4242", "type": 2, "token": "interaction-token", "version": 1,
        "channel_id": DISCORD_CHANNEL, "channel": {"id": DISCORD_CHANNEL, "type": 0}, "guild_id": "777",
        "member": {"user": {"id": "5551", "username": "ops", "discriminator": "0", "global_name": null, "avatar": null},
                   "roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0, "permissions": "0"},
        "user": {"id": "5551", "username": "ops", "discriminator": "0", "global_name": null, "avatar": null},
        "app_permissions": "0", "locale": "en-US", "guild_locale": "en-US", "entitlements": [],
        "authorizing_integration_owners": {}, "context": 0, "attachment_size_limit": 8388608,
        "data": {"id": "800", "name": "backup", "type": 1, "options": [
            {"name": "now", "type": 1, "options": [{"name": "target", "type": 3, "value": "app"}]}]}
    })
    .to_string();
    let (code, reply) = discord_interaction(&serve, &body);
    assert_eq!(code, 200, "{reply}");
    let calls = api.wait_edit(30, "✅ backup");
    let edits: Vec<Call> = calls.into_iter().filter(|c| c.method == "PATCH").collect();
    assert!(
        edits.len() >= 2,
        "the refused edit, then the result: {edits:#?}"
    );
    let late = check_edits(&home, &edits, |c| {
        c.body["content"].as_str().unwrap_or("").to_string()
    });
    assert!(
        late <= Duration::from_millis(1200),
        "the result came {late:?} after the job's end"
    );
    eprintln!("discord: result {late:?} after the job's end");
    serve.stop();
}
