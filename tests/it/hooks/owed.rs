//! `after_*` hooks owed across a SIGKILL between `before_backup` and `after_backup`:
//! run at the next action on the target, or when `serve` starts (and posted).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{lines, sh};
use crate::common::fakes::{FakeApi, Serve, texts};
use crate::common::{ConfigBuilder, Home, assert_contains_all, held_db, stderr, wait_for};

/// The rollback-journal database `held_db` makes: a backup of it waits until the
/// returned connection commits, so a test can kill lifeboat between `before_backup` and
/// `after_backup` at a moment it chooses.
fn owed_home() -> (Home, rusqlite::Connection, PathBuf) {
    let home = Home::new();
    let held = held_db(&home.path("data/app.db"));
    let log = home.path("hooks.log");
    let l = log.display();
    ConfigBuilder::new()
        .sqlite_target("t", "../data/app.db")
        .raw(&format!(
            "[targets.t.hooks]\nbefore_backup = [{}]\nafter_backup = [{}]\n",
            sh(&format!("echo \"before $LIFEBOAT_JOB\" >> {l}")),
            sh(&format!(
                "echo \"after $LIFEBOAT_RESULT $LIFEBOAT_JOB\" >> {l}"
            )),
        ))
        .write(&home);
    (home, held, log)
}

/// Start a backup of `t`, wait until its `before_backup` ran, and SIGKILL lifeboat.
fn kill_between_before_and_after(home: &Home, log: &Path) {
    let mut child = home
        .command(&["backup", "t"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(30, "the before_backup hook", || !lines(log).is_empty());
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert_eq!(lines(log), ["before 1"], "nothing after a SIGKILL");
}

#[test]
fn after_a_sigkill_the_owed_after_hook_runs_at_the_next_action_on_the_target() {
    let (home, held, log) = owed_home();
    kill_between_before_and_after(&home, &log);
    assert_eq!(home.state_strings("SELECT target FROM hooks_owed"), ["t"]);
    // Neither `status` nor `config check` runs it; status names it.
    let status = home.json(&["status"]);
    assert!(status[0]["owed_hooks_since"].is_string(), "{status}");
    assert_ne!(status[0]["health"], "green", "{status}");
    assert!(
        status[0]["health_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("the app may still be stopped")),
        "{status}"
    );
    home.ok(&["config", "check"]);
    assert_eq!(lines(&log).len(), 1);
    held.execute_batch("COMMIT").unwrap();
    let out = home.run(&["backup", "t"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        lines(&log),
        ["before 1", "after failed 1", "before 2", "after ok 2"]
    );
    assert!(stderr(&out).contains("owed since"), "{}", stderr(&out));
    assert!(
        home.state_strings("SELECT target FROM hooks_owed")
            .is_empty()
    );
    assert!(home.json(&["status"])[0].get("owed_hooks_since").is_none());
    let audited = home
        .state_strings("SELECT detail FROM audit WHERE action = 'hook after_backup' ORDER BY id");
    assert!(
        audited[0].contains("job 1: owed since"),
        "the owed run is audited as such: {audited:?}"
    );
}

#[test]
fn after_a_sigkill_serve_runs_the_owed_after_hook_at_start_and_posts_it() {
    let (home, held, log) = owed_home();
    kill_between_before_and_after(&home, &log);
    held.execute_batch("COMMIT").unwrap();
    let slack = FakeApi::start();
    let config = ConfigBuilder::new()
        .slack(&slack, Some("C0ALERTS"))
        .sqlite_target("t", "../data/app.db");
    let hooks = std::fs::read_to_string(home.config_path()).unwrap();
    let section = &hooks[hooks.find("[targets.t.hooks]").unwrap()..];
    config.raw(section).write(&home);
    let serve = Serve::start(&home);
    wait_for(30, "the owed after_backup hook", || lines(&log).len() == 2);
    assert_eq!(lines(&log), ["before 1", "after failed 1"]);
    let calls = slack.wait_until(30, "the owed hook posted", |c| {
        texts(c).iter().any(|t| t.contains("owed"))
    });
    let posted = texts(&calls).join("\n");
    assert_contains_all(&posted, &["t after_backup", "job 1", "`sh -c"]);
    serve.stop();
    assert!(
        home.state_strings("SELECT target FROM hooks_owed")
            .is_empty()
    );
}
