//! lifeboat's own state database damaged on disk (pages overwritten, as a bad disk would):
//! before `serve` starts and while it runs. `/healthz` answers 503 naming the way out,
//! the alert channel hears it once, commands that meet it say how to recover, and
//! `lifeboat recover` works over the damaged file without deleting it.

use std::io::{Seek, SeekFrom, Write};

use crate::common::fakes::*;
use crate::common::*;
use rusqlite::Connection;

const CHANNEL: &str = "C0OPS";

/// A home with a Slack alert channel, a local store that keeps state backups, and a state
/// database of a few MiB (an audit log of some years) with a state backup of it.
pub(crate) fn damaged_home(api: &FakeApi) -> Home {
    let home = Home::new();
    home.write_config(&format!(
        "[server.state_backup]\nstore = \"local\"\n\n\
         [slack]\nsigning_secret = \"${{SLACK_SIGNING_SECRET}}\"\nbot_token = \"${{SLACK_BOT_TOKEN}}\"\n\
         alert_channel = \"{CHANNEL}\"\napi_url = \"{}/api/\"\n\n\
         [targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\n",
        api.base
    ));
    drop(make_app_db(&home.path("data/app.db"), 20));
    home.json(&["backup", "app-db"]);
    {
        let state = Connection::open(home.path("var/lifeboat.db")).unwrap();
        state
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
                 INSERT INTO audit (at, actor, action, target, outcome, detail)
                 SELECT '2025-01-01T00:00:00.000Z', 'cli:root', 'status', NULL, 'ok',
                        hex(randomblob(60)) FROM n;
                 PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .unwrap();
    }
    home.json(&["backup", "lifeboat-state"]);
    home
}

/// Overwrite a run of pages in the middle of the file (the audit log's), as a bad disk
/// would, leaving the header and the first pages (schema, jobs) intact.
pub(crate) fn damage(path: &std::path::Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let start = (len / 2) / 4096 * 4096;
    f.seek(SeekFrom::Start(start)).unwrap();
    f.write_all(&vec![0x5a; 16 * 4096]).unwrap();
    f.sync_all().unwrap();
}

fn healthz(serve: &Serve) -> (u16, serde_json::Value) {
    let (code, body) = serve.get("/healthz");
    (code, serde_json::from_str(&body).unwrap_or_default())
}

fn damage_alerts(api: &FakeApi) -> usize {
    api.calls_to("chat.postMessage")
        .iter()
        .filter(|c| {
            c.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("state database is damaged"))
        })
        .count()
}

#[test]
fn a_state_damaged_before_start_is_reported_with_the_way_out_and_recovered_in_place() {
    let api = FakeApi::start();
    let home = damaged_home(&api);
    let state = home.path("var/lifeboat.db");
    damage(&state);

    // A command that meets it names the fix.
    let out = home.run(&["status"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("damaged") && err.contains("lifeboat recover --store local"),
        "{err}"
    );

    let serve = Serve::start(&home);
    let (code, body) = healthz(&serve);
    assert_eq!(code, 503, "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("damaged") && reason.contains("lifeboat recover --store local"),
        "{body}"
    );
    api.wait_until(20, "the damage alert", |_| damage_alerts(&api) == 1);
    let alert = api.calls_to("chat.postMessage").pop().unwrap();
    let text = alert.body["text"].as_str().unwrap();
    assert!(text.contains("lifeboat recover --store local"), "{text}");
    // Once: a later health check does not post it again.
    assert_eq!(healthz(&serve).0, 503);
    serve.stop();
    assert_eq!(damage_alerts(&api), 1);

    // recover works over the damaged file, which it moves aside, never deletes.
    let damaged_bytes = std::fs::read(&state).unwrap();
    let report = home.json(&["recover", "--store", "local"]);
    let aside = report["moved_aside"][0]["to"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read(&aside).unwrap(), damaged_bytes);
    home.ok(&["status"]);
    let serve = Serve::start(&home);
    assert_eq!(healthz(&serve).0, 200);
    serve.stop();
}

#[test]
fn a_state_damaged_while_serve_runs_turns_health_to_503_and_alerts_once() {
    let api = FakeApi::start();
    let home = damaged_home(&api);
    let serve = Serve::start(&home);
    assert_eq!(healthz(&serve).0, 200);
    damage(&home.path("var/lifeboat.db"));
    wait_for(60, "/healthz to say the state is damaged", || {
        healthz(&serve).0 == 503
    });
    let (_, body) = healthz(&serve);
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("lifeboat recover --store local")),
        "{body}"
    );
    api.wait_until(20, "the damage alert", |_| damage_alerts(&api) == 1);
    serve.stop();
    assert_eq!(damage_alerts(&api), 1);
}
