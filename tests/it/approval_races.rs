//! Restore requests decided by simultaneous signed clicks against a real `serve`: each
//! request is decided exactly once, never both approved and denied, and exactly the
//! approved ones run a restore.

use std::sync::{Arc, Barrier};

use crate::common::fakes::*;
use crate::common::*;
use rusqlite::Connection;

const REQUESTER: &str = "U0ADMIN1";
const ADMIN2: &str = "U0ADMIN2";
const ADMIN3: &str = "U0ADMIN3";
const CHANNEL: &str = "C0OPS";

fn race_home(api: &FakeApi) -> Home {
    let home = Home::new();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate = \"../var/lifeboat.db\"\n\n\
         [access]\nadmins = [\"slack:{REQUESTER}\", \"slack:{ADMIN2}\", \"slack:{ADMIN3}\"]\nchannels = [\"slack:{CHANNEL}\"]\n\n\
         [slack]\nsigning_secret = \"${{SLACK_SIGNING_SECRET}}\"\nbot_token = \"${{SLACK_BOT_TOKEN}}\"\nalert_channel = \"{CHANNEL}\"\napi_url = \"{}/api/\"\n\n\
         [stores.local]\nkind = \"local\"\npath = \"../backups\"\n\n\
         [targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\nrestore_approvals = 1\n",
        api.base
    );
    std::fs::write(home.config_path(), text).unwrap();
    drop(make_app_db(&home.path("data/app.db"), 50));
    home
}

/// The id of the newest pending request, once lifeboat has stored it with its message.
/// On a timeout the panic shows the command's reply, the stored requests and serve's log.
fn newest_request(state: &Connection, after: usize, reply: &str, serve: &Serve) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let found: Option<String> = state
            .query_row(
                "SELECT id FROM approvals WHERE status = 'pending' AND message_ref IS NOT NULL \
                 ORDER BY created_at DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .ok();
        if let Some(id) = found.filter(|_| count(state, "SELECT COUNT(*) FROM approvals") > after) {
            return id;
        }
        if std::time::Instant::now() > deadline {
            let mut rows = state
                .prepare("SELECT id, status, message_ref, created_at FROM approvals")
                .unwrap();
            let rows: Vec<String> = rows
                .query_map([], |r| {
                    Ok(format!(
                        "{} {} {:?} {}",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            panic!(
                "request {} never stored with its message\nreply: {reply}\nrequests:\n{}\nserve's log:\n{}",
                after + 1,
                rows.join("\n"),
                serve.log_text()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn count(state: &Connection, sql: &str) -> usize {
    state
        .query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as usize)
        .unwrap()
}

#[test]
fn simultaneous_signed_clicks_decide_each_request_once() {
    let api = FakeApi::start();
    let home = race_home(&api);
    home.json(&["backup", "app-db"]);
    let serve = Serve::start(&home);
    let state = Connection::open(home.path("var/lifeboat.db")).unwrap();
    let rounds = 12;
    for round in 0..rounds {
        let (code, body) = slack_command(&serve, REQUESTER, CHANNEL, "/restore", "app-db");
        assert_eq!(code, 200, "{body}");
        let id = newest_request(&state, round, &body, &serve);
        let clicks = [(ADMIN2, "approve"), (ADMIN3, "approve"), (ADMIN3, "deny")];
        let barrier = Arc::new(Barrier::new(clicks.len()));
        std::thread::scope(|s| {
            for (user, action) in clicks {
                let (barrier, serve, id) = (barrier.clone(), &serve, &id);
                s.spawn(move || {
                    barrier.wait();
                    let (code, _) = slack_click(serve, user, CHANNEL, "1.1", action, id);
                    assert_eq!(code, 200);
                });
            }
        });
        // Decided, and an approved restore finished, before the next round. One statement
        // reads all three counts from one snapshot: counted one by one, a request still
        // pending when approvals were counted and approved when pending ones were would
        // pass for a denied one while its restore has not yet run.
        wait_for(60, "the decision and its restore", || {
            count(
                &state,
                "SELECT (SELECT COUNT(*) FROM approvals WHERE status = 'pending') = 0 \
                   AND (SELECT COUNT(*) FROM approvals WHERE status = 'approved') \
                     = (SELECT COUNT(*) FROM jobs WHERE kind = 'restore' AND finished_at IS NOT NULL)",
            ) == 1
        });
    }
    let approved = count(
        &state,
        "SELECT COUNT(*) FROM approvals WHERE status = 'approved'",
    );
    let denied = count(
        &state,
        "SELECT COUNT(*) FROM approvals WHERE status = 'denied'",
    );
    eprintln!("{rounds} requests: {approved} approved, {denied} denied");
    assert_eq!(approved + denied, rounds);
    // Every decision is recorded once: never an approval and a denial of one request.
    let both = count(
        &state,
        "SELECT COUNT(*) FROM approvals WHERE status = 'denied' AND approvers != '[]'",
    );
    assert_eq!(both, 0, "a denied request that also has an approval");
    let decisions = count(
        &state,
        "SELECT COUNT(*) FROM audit WHERE action IN ('restore approved', 'restore denied')",
    );
    assert_eq!(
        decisions, rounds,
        "one decision in the audit log per request"
    );
    let restores = count(&state, "SELECT COUNT(*) FROM jobs WHERE kind = 'restore'");
    assert_eq!(restores, approved, "restores run = requests approved");
    serve.stop();
}
