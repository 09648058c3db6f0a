//! Runbooks end to end: the shipped runbooks for the seeds' SQLite and directory systems
//! run against real local targets from the CLI (manual steps and restores answered on
//! stdin, each health check answered by a server on a port the system chose, the shipped
//! runbook copied with only its check's address changed to it), and runbooks run from
//! Slack with a
//! manual step confirmed by button, a restore approved by another admin, and a failing
//! HTTP check that stops the run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::fakes::*;
use crate::common::*;
use serde_json::Value;

fn shipped_runbooks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks")
}

/// A copy of the repository's runbooks in the home's `runbooks/`, which its config names
/// (`with_health_server` changes a copy's health check address; the shipped files stay).
fn copy_shipped_runbooks(home: &Home) -> String {
    let dir = home.path("runbooks");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(shipped_runbooks()).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir.display().to_string()
}

/// A home whose config has `targets` and a copy of the repository's runbooks.
fn home_with(targets: &str) -> Home {
    let home = Home::new();
    ConfigBuilder::new()
        .runbooks(&copy_shipped_runbooks(&home))
        .local_store("offsite", "../offsite")
        .raw(targets)
        .write(&home);
    home
}

/// Answer runbook `name`'s health check, which the shipped file sends to `shipped` (its
/// service's real address, e.g. "127.0.0.1:8100"), from a server on a port the system
/// chose: the home's copy of the runbook is pointed there, nothing else in it changes,
/// so no test needs a fixed port to be free.
fn with_health_server(home: &Home, name: &str, shipped: &str, body: &'static str) {
    let file = format!("{name}.toml");
    let text = std::fs::read_to_string(shipped_runbooks().join(&file)).unwrap();
    let from = format!("http = \"http://{shipped}/");
    assert_eq!(
        text.matches(&from).count(),
        1,
        "runbooks/{file} checks one service at http://{shipped}/"
    );
    let serving = http_server(200, body);
    let to = format!("http = \"http://{serving}/");
    std::fs::write(home.path("runbooks").join(&file), text.replace(&from, &to)).unwrap();
}

/// Run a runbook from the CLI, answering its questions with `answers` (one per line).
fn run_runbook(home: &Home, args: &[&str], answers: &str) -> (i32, String, String) {
    let mut all = vec!["runbook", "run"];
    all.extend_from_slice(args);
    let mut child = home
        .command(&all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

fn report_rows(report: &str) -> Vec<Vec<String>> {
    report
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| #"))
        .map(|l| {
            let cells: Vec<String> = l.split('|').map(|c| c.trim().to_string()).collect();
            cells[1..cells.len() - 1].to_vec()
        })
        .collect()
}

#[test]
fn sqlite_restore_runbook_puts_the_database_back_and_reports_estimates_against_actuals() {
    let home = home_with(
        "[targets.devops-hub-db]\nkind = \"sqlite\"\npath = \"../data/hub.db\"\nstore = \"offsite\"\n",
    );
    with_health_server(&home, "sqlite-restore", "127.0.0.1:8100", "ok");
    let db = make_app_db(&home.path("data/hub.db"), 400);
    home.ok(&["backup", "devops-hub-db"]);
    // The bad day: most rows are gone.
    db.execute("DELETE FROM issue WHERE id > 10", []).unwrap();
    drop(db);

    let (code, report, log) = run_runbook(&home, &["sqlite-restore"], "done\nyes\ndone\n");
    assert_eq!(code, 0, "{report}\n{log}");
    let conn = rusqlite::Connection::open(home.path("data/hub.db")).unwrap();
    assert_eq!(count(&conn, "issue"), 400, "the rows are back");
    let aside: Vec<String> = std::fs::read_dir(home.path("data"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("hub.db.pre-restore-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file was kept: {aside:?}");

    let rows = report_rows(&report);
    assert_eq!(rows.len(), 7, "six steps and the total: {report}");
    assert_eq!(rows[0][2], "verify");
    assert_eq!(rows[0][3], "2m", "estimate");
    assert!(rows[0][4].ends_with('s'), "actual: {:?}", rows[0]);
    assert_eq!(rows[3][2], "command");
    assert!(
        rows[3][6].contains("exited 0: ok"),
        "integrity_check said ok: {:?}",
        rows[3]
    );
    assert!(rows[2][6].contains("confirmed by cli:"), "{:?}", rows[2]);
    assert!(rows[5][6].contains("answered 200"), "{:?}", rows[5]);
    assert!(rows.iter().take(6).all(|r| r[5] == "✅ done"), "{report}");
    assert_eq!(rows[6][1], "**total**");
    assert_eq!(rows[6][3], "14m", "the estimates' sum");
    assert!(log.contains("✋ step 2 is for you"), "{log}");
}

#[test]
fn vps_loss_runbook_rebuilds_gitea_from_its_database_and_config_backups() {
    let home = home_with(
        "[targets.gitea-db]\nkind = \"sqlite\"\npath = \"../data/gitea/gitea.db\"\nstore = \"offsite\"\n\n\
         [targets.gitea-config]\nkind = \"directory\"\npath = \"../data/gitea/custom\"\nstore = \"offsite\"\n",
    );
    with_health_server(
        &home,
        "vps-loss-gitea",
        "127.0.0.1:3000",
        "{\"status\":\"pass\"}",
    );
    std::fs::create_dir_all(home.path("data/gitea")).unwrap();
    drop(make_app_db(&home.path("data/gitea/gitea.db"), 120));
    let conf = home.path("data/gitea/custom/conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("app.ini"), "[server]\nDOMAIN = git.example.com\n").unwrap();
    home.ok(&["backup", "gitea-db"]);
    home.ok(&["backup", "gitea-config"]);
    // The VPS is gone: nothing of Gitea is left on the (new) machine.
    std::fs::remove_dir_all(home.path("data/gitea")).unwrap();
    std::fs::create_dir_all(home.path("data/gitea")).unwrap();

    let (code, report, log) =
        run_runbook(&home, &["vps-loss-gitea"], "done\nyes\nyes\ndone\ndone\n");
    assert_eq!(code, 0, "{report}\n{log}");
    let conn = rusqlite::Connection::open(home.path("data/gitea/gitea.db")).unwrap();
    assert_eq!(count(&conn, "issue"), 120);
    assert!(
        std::fs::read_to_string(conf.join("app.ini"))
            .unwrap()
            .contains("git.example.com")
    );
    let rows = report_rows(&report);
    assert_eq!(rows.len(), 10, "{report}");
    assert_eq!(rows[8][2], "manual", "the DNS change is a person's step");
    assert!(rows[8][6].contains("marked done by cli:"), "{:?}", rows[8]);
}

#[test]
fn data_volume_runbook_restores_duckdb_and_parquet_files() {
    // The target's restore hooks stop and start the app (here: they say so in a file).
    let home = Home::new();
    let hooks_log = home.path("hooks.log");
    ConfigBuilder::new()
        .runbooks(&copy_shipped_runbooks(&home))
        .local_store("offsite", "../offsite")
        .raw(&format!(
            "[targets.app-data]\nkind = \"directory\"\npath = \"../data/volume\"\nstore = \"local\"\n\
             [targets.app-data.hooks]\n\
             before_restore = [[\"sh\", \"-c\", \"echo down >> {log}\"]]\n\
             after_restore = [[\"sh\", \"-c\", \"echo up $LIFEBOAT_RESULT >> {log}\"]]\n",
            log = hooks_log.display()
        ))
        .write(&home);
    with_health_server(&home, "data-volume-restore", "127.0.0.1:8000", "ok");
    let vol = home.path("data/volume");
    std::fs::create_dir_all(vol.join("state")).unwrap();
    std::fs::create_dir_all(vol.join("extracts/jira")).unwrap();
    let registry: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(vol.join("state/system.duckdb"), &registry).unwrap();
    std::fs::write(vol.join("extracts/jira/issues.parquet"), b"PAR1....PAR1").unwrap();
    home.ok(&["backup", "app-data"]);
    std::fs::remove_file(vol.join("state/system.duckdb")).unwrap();

    let (code, report, log) = run_runbook(&home, &["data-volume-restore"], "yes\ndone\n");
    assert_eq!(code, 0, "{report}\n{log}");
    let hooks = std::fs::read_to_string(&hooks_log).unwrap_or_default();
    assert_eq!(
        hooks, "down\nup ok\n",
        "the restore step ran the target's hooks"
    );
    assert_eq!(
        std::fs::read(vol.join("state/system.duckdb")).unwrap(),
        registry
    );
    assert_eq!(
        std::fs::read(vol.join("extracts/jira/issues.parquet")).unwrap(),
        b"PAR1....PAR1"
    );
}

#[test]
fn pitr_runbook_goes_back_to_the_copy_before_the_bad_write() {
    let home = home_with(
        "[targets.stemedb-data]\nkind = \"directory\"\npath = \"../data/stemedb\"\nstore = \"offsite\"\n",
    );
    with_health_server(&home, "pitr-before-bad-write", "127.0.0.1:8180", "ok");
    let data = home.path("data/stemedb");
    std::fs::create_dir_all(data.join("db")).unwrap();
    std::fs::create_dir_all(data.join("wal")).unwrap();
    std::fs::write(data.join("db/main.dat"), "balance=100\n").unwrap();
    std::fs::write(data.join("wal/000001.wal"), "set balance=100\n").unwrap();
    let good = home.json(&["backup", "stemedb-data"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // The bad write, and a copy taken after it.
    std::fs::write(data.join("db/main.dat"), "balance=-999999\n").unwrap();
    home.ok(&["backup", "stemedb-data"]);
    let good_at =
        chrono::DateTime::parse_from_rfc3339(good["created_at"].as_str().unwrap()).unwrap();
    let before =
        (good_at + chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    // Without the time it refuses, saying what it needs.
    let out = home.run(&["runbook", "run", "pitr-before-bad-write"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("needs before=<"), "{}", stderr(&out));

    let param = format!("before={before}");
    let (code, report, log) = run_runbook(
        &home,
        &["pitr-before-bad-write", &param],
        "done\nyes\ndone\n",
    );
    assert_eq!(code, 0, "{report}\n{log}");
    assert_eq!(
        std::fs::read_to_string(data.join("db/main.dat")).unwrap(),
        "balance=100\n"
    );
    let rows = report_rows(&report);
    assert!(
        rows[2][6].contains(good["id"].as_str().unwrap()),
        "restored the good copy: {:?}",
        rows[2]
    );
    // The bad state was backed up first (step 2) and is listed.
    let list = home.json(&["list", "stemedb-data"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
}

#[test]
fn a_refused_restore_stops_the_run_with_what_to_do_next() {
    let home = home_with(
        "[targets.devops-hub-db]\nkind = \"sqlite\"\npath = \"../data/hub.db\"\nstore = \"offsite\"\n",
    );
    drop(make_app_db(&home.path("data/hub.db"), 30));
    home.ok(&["backup", "devops-hub-db"]);
    let before = std::fs::read(home.path("data/hub.db")).unwrap();
    // Manual step done, then the restore is not confirmed.
    let (code, report, _) = run_runbook(&home, &["sqlite-restore"], "done\nno\n");
    assert_eq!(code, 1);
    assert_eq!(
        std::fs::read(home.path("data/hub.db")).unwrap(),
        before,
        "nothing restored"
    );
    let rows = report_rows(&report);
    assert_eq!(rows[2][5], "❌ failed");
    assert!(rows[2][6].contains("not approved"), "{:?}", rows[2]);
    assert!(rows[3..6].iter().all(|r| r[5] == "⏭ not run"), "{report}");
    assert!(report.contains("Next: Stopped at step 3"), "{report}");
    assert!(
        report.contains("4. Integrity check of the restored file"),
        "{report}"
    );
    // Unknown runbooks are named with the ones that exist.
    let out = home.run(&["runbook", "run", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("sqlite-restore"), "{}", stderr(&out));
    let list = home.ok(&["runbook", "list"]);
    assert!(
        list.contains("sqlite-restore — Restore the DevOps Hub SQLite database"),
        "{list}"
    );
    // Runbooks naming targets this config lacks are listed with the reason.
    assert!(
        list.contains("vps-loss-gitea — cannot run: step 2"),
        "{list}"
    );
}

// --- from Slack ---

const ADMIN1: &str = "U0ADMIN1";
const OPS: &str = "U0OPS1";
const VIEWER: &str = "U0VIEW1";
const CHANNEL: &str = "C0OPS";

fn chat_home(api: &FakeApi, health_port: u16, approvals: u32) -> Home {
    let home = Home::new();
    std::fs::create_dir_all(home.path("runbooks")).unwrap();
    std::fs::write(
        home.path("runbooks/app-recovery.toml"),
        format!(
            "title = \"Recover the app\"\n\
             [[step]]\ntitle = \"Safety backup\"\nestimate = \"1m\"\naction = \"backup\"\ntarget = \"app-db\"\n\
             [[step]]\ntitle = \"Drill it\"\nestimate = \"2m\"\naction = \"drill\"\ntarget = \"app-db\"\n\
             [[step]]\ntitle = \"Stop the app\"\nestimate = \"2m\"\nmanual = \"systemctl stop app\"\n\
             [[step]]\ntitle = \"Restore\"\nestimate = \"5m\"\naction = \"restore\"\ntarget = \"app-db\"\n\
             [[step]]\ntitle = \"App answers\"\nestimate = \"30s\"\nhttp = \"http://127.0.0.1:{health_port}/health\"\nstatus = 200\nbody_contains = \"ok\"\n\
             [[step]]\ntitle = \"Tell the users\"\nestimate = \"5m\"\nmanual = \"Post in #general\"\n"
        ),
    )
    .unwrap();
    ConfigBuilder::new()
        .runbooks("../runbooks")
        .admins(&["slack:U0ADMIN1", "slack:U0ADMIN2"])
        .operators(&["slack:U0OPS1"])
        .viewers(&["slack:U0VIEW1"])
        .channels(&["slack:C0OPS"])
        .slack(api, Some(CHANNEL))
        .sqlite_target("app-db", "../data/app.db")
        .with(&format!("restore_approvals = {approvals}"))
        .write(&home);
    drop(make_app_db(&home.path("data/app.db"), 80));
    home
}

fn all_text(c: &Call) -> String {
    let mut t = c.body["text"].as_str().unwrap_or_default().to_string();
    if let Some(blocks) = c.body["blocks"].as_array() {
        for b in blocks {
            t.push_str(b["text"]["text"].as_str().unwrap_or_default());
        }
    }
    t
}

/// The value of the button `action` on the newest message that has it.
fn button(api: &FakeApi, action: &str) -> String {
    let calls = api.wait_until(20, &format!("a {action} button"), |c| {
        c.iter()
            .any(|c| c.body["blocks"].to_string().contains(action))
    });
    let msg = calls
        .iter()
        .rev()
        .find(|c| c.body["blocks"].to_string().contains(action))
        .unwrap();
    let actions = msg.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap()
        .clone();
    let el = actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action_id"] == action)
        .unwrap()
        .clone();
    el["value"].as_str().unwrap().to_string()
}

fn wait_text(api: &FakeApi, what: &str, needle: &str) -> String {
    let calls = api.wait_until(30, what, |c| c.iter().any(|c| all_text(c).contains(needle)));
    calls
        .iter()
        .rev()
        .map(all_text)
        .find(|t| t.contains(needle))
        .unwrap()
}

#[test]
fn a_runbook_from_slack_waits_for_buttons_and_approvals_and_reports_each_step() {
    let health = http_server(200, "all ok");
    let api = FakeApi::start();
    let home = chat_home(&api, health.port(), 1);
    let serve = Serve::start(&home);

    let (_, body) = slack_command(&serve, VIEWER, CHANNEL, "/runbook", "list");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("app-recovery — Recover the app (6 steps"),
        "{body}"
    );
    let (_, body) = slack_command(&serve, VIEWER, CHANNEL, "/runbook", "run app-recovery");
    assert!(body.contains("needs the operator role"), "{body}");
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/runbook", "run app-recovery");
    assert!(body.contains("Running runbook app-recovery"), "{body}");

    // Step 2 is manual: a message with Done/Failed buttons.
    let done = button(&api, "step_done");
    assert_eq!(done, "1:3");
    // A viewer may not mark it; an operator may.
    slack_click(
        &serve,
        VIEWER,
        CHANNEL,
        "1700000000.000001",
        "step_done",
        &done,
    );
    wait_text(&api, "the refusal", "only operators and admins");
    slack_click(
        &serve,
        OPS,
        CHANNEL,
        "1700000000.000001",
        "step_done",
        &done,
    );
    wait_text(&api, "the confirmation", "marked done by <@U0OPS1>");

    // Step 3 restores: the request waits for another admin's approval.
    let approval = button(&api, "approve");
    home.wait_approvals_posted(1);
    slack_click(
        &serve,
        ADMIN1,
        CHANNEL,
        "1700000000.000002",
        "approve",
        &approval,
    );
    // Step 5 is manual again.
    api.wait_until(30, "the second manual step", |c| {
        c.iter()
            .any(|c| c.body["blocks"].to_string().contains("1:6"))
    });
    slack_click(
        &serve,
        OPS,
        CHANNEL,
        "1700000000.000003",
        "step_done",
        "1:6",
    );
    let last = wait_text(&api, "the run's end", "✅ Runbook");
    assert!(last.contains("6 of 6 steps done"), "{last}");
    assert!(
        last.contains("App answers* (") && last.contains("of est. 30s"),
        "{last}"
    );
    // The approver as a person (a mention), not as lifeboat's identity.
    assert!(last.contains("approved by <@U0ADMIN1>"), "{last}");
    assert!(!last.contains("slack:U0"), "{last}");
    assert!(last.contains("restored backup"), "{last}");
    assert!(last.contains("drill of backup"), "{last}");
    // The run's message is a card: a header, the steps as a list, the requester
    // notified of the end, and Slack reads every message of the run whole.
    assert!(last.contains("requested by <@U0OPS1>"), "{last}");
    crate::common::block_kit::assert_slack_sdk_reads(&api.calls());
    // The report: the per-step table with the total, posted as a document.
    api.wait_until(10, "the report", |_| !api.uploads().is_empty());
    let report = api.uploads().concat();
    assert!(
        report.contains("| 5 | App answers | http | 30s |"),
        "{report}"
    );
    assert!(report.contains("| | **total** | | 15m30s |"), "{report}");
    // The report is an export: identities as they are.
    assert!(report.contains("approved by slack:U0ADMIN1"), "{report}");
    // A click after the end changes nothing.
    slack_click(
        &serve,
        OPS,
        CHANNEL,
        "1700000000.000003",
        "step_failed",
        "1:6",
    );
    wait_text(&api, "the late click's answer", "this runbook run is over");
    serve.stop();
}

#[test]
fn a_failing_http_check_stops_the_run_and_says_what_to_do() {
    let health = http_server(503, "down");
    let api = FakeApi::start();
    // No approval needed here, so the run reaches the check by itself after step 2.
    let home = chat_home(&api, health.port(), 0);
    let serve = Serve::start(&home);
    slack_command(&serve, OPS, CHANNEL, "/runbook", "run app-recovery");
    let done = button(&api, "step_done");
    slack_click(
        &serve,
        OPS,
        CHANNEL,
        "1700000000.000001",
        "step_done",
        &done,
    );
    let last = wait_text(&api, "the failed run", "❌ Runbook");
    assert!(last.contains("answered 503, expected 200"), "{last}");
    assert!(last.contains("6. ⏭ not run *Tell the users*"), "{last}");
    assert!(
        last.contains("*Next:* Stopped at step 5 (App answers)"),
        "{last}"
    );
    assert!(last.contains("`/runbook run app-recovery`"), "{last}");
    assert!(last.contains("4 of 6 steps done"), "{last}");
    serve.stop();
}

#[test]
fn the_state_recovery_runbook_runs_unattended_on_the_default_targets() {
    let home = home_with(
        "[targets.lifeboat-state]\nkind = \"sqlite\"\npath = \"../var/lifeboat.db\"\nstore = \"local\"\nrto = \"5m\"\nrpo = \"2h\"\n",
    );
    home.ok(&["status"]); // creates the state database
    let (code, report, log) = run_runbook(&home, &["state-recovery-check"], "");
    assert_eq!(code, 0, "{report}\n{log}");
    let rows = report_rows(&report);
    assert_eq!(rows.len(), 4, "three steps and the total: {report}");
    assert!(rows[..3].iter().all(|r| r[5] == "✅ done"), "{report}");
    assert!(rows[2][6].contains("drill of backup"), "{:?}", rows[2]);
    assert_eq!(
        home.json(&["list", "lifeboat-state"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
