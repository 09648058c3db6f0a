//! Target hooks (`[targets.<t>.hooks]`) with the real binary: real commands on this host
//! and over a real sshd, their order and environment, time limits that kill what a hook
//! started (here and on the remote side), secrets kept out, `after_*` hooks owed across a
//! SIGKILL and run at the next action or `serve` start, restore hooks only in place, and
//! seed 002's SQLite app stopped and started around a restore in place.

mod owed;
mod seed_002;
mod ssh;

use std::path::Path;
use std::process::Stdio;

use crate::common::fakes::{FakeApi, Serve, texts};
use crate::common::{ConfigBuilder, Home, assert_contains_all, make_app_db, stderr, wait_for};

/// `sh -c <script>` as a TOML argv list.
pub(super) fn sh(script: &str) -> String {
    format!(
        "[\"sh\", \"-c\", {}]",
        toml::Value::String(script.to_string())
    )
}

/// Lines of a file the hooks append to (none when it does not exist).
pub(super) fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Whether a process is gone (or only a zombie waiting for its parent).
pub(super) fn gone(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty()
        || stat
            .rsplit_once(") ")
            .is_some_and(|(_, s)| s.starts_with('Z'))
}

pub(super) fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A directory target `t` of `data/` with `hooks` (TOML lines of its hooks section).
pub(super) fn directory_home(hooks: &str) -> Home {
    let home = Home::new();
    std::fs::write(home.path("data/a.txt"), "some data\n").unwrap();
    let config = ConfigBuilder::new()
        .directory_target("t", "../data")
        .raw(&format!("[targets.t.hooks]\n{hooks}\n"));
    config.write(&home);
    home
}

#[test]
fn hooks_run_in_order_with_their_environment_and_after_backup_before_publishing() {
    let home = Home::new();
    let log = home.path("hooks.log");
    let l = log.display();
    std::fs::write(home.path("data/a.txt"), "some data\n").unwrap();
    let backups = home.path("backups/t");
    let hooks = format!(
        "before_backup = [{}, {}]\nafter_backup = [{}]\n",
        sh(&format!(
            // `${..}` is the config's own interpolation (at load); the shell's is `$NAME`.
            "r=unset; [ -n \"$LIFEBOAT_RESULT\" ] && r=set; echo \"before1 $LIFEBOAT_TARGET $LIFEBOAT_ACTION $LIFEBOAT_JOB $LIFEBOAT_BACKUP $r\" >> {l}"
        )),
        sh(&format!("echo before2 >> {l}; echo hello from the hook")),
        sh(&format!(
            "echo \"after $LIFEBOAT_RESULT $LIFEBOAT_BACKUP\" >> {l}; ls {} | grep -c manifest >> {l} || true",
            backups.display()
        )),
    );
    ConfigBuilder::new()
        .directory_target("t", "../data")
        .raw(&format!("[targets.t.hooks]\n{hooks}"))
        .write(&home);
    let out = home.run(&["backup", "t", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = m["id"].as_str().unwrap();
    let job = home.state_strings("SELECT CAST(id AS TEXT) FROM jobs WHERE kind = 'backup'");
    assert_eq!(
        lines(&log),
        vec![
            format!("before1 t backup {} {id} unset", job[0]),
            "before2".to_string(),
            format!("after ok {id}"),
            // No manifest yet: the after hook ran when reading ended, before publishing.
            "0".to_string(),
        ]
    );
    // Shown on the command line, kept with the job and audited.
    assert_contains_all(
        &stderr(&out),
        &["before_backup `sh -c", "ok; output:", "hello from the hook"],
    );
    let kept = home.state_strings(&format!(
        "SELECT phase || ' ' || outcome || ' ' || tail FROM hook_runs WHERE job_id = {} ORDER BY id",
        job[0]
    ));
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept[1].contains("hello from the hook"), "{kept:?}");
    let audited = home.state_strings("SELECT action FROM audit WHERE action LIKE 'hook %'");
    assert_eq!(
        audited,
        [
            "hook before_backup",
            "hook before_backup",
            "hook after_backup"
        ]
    );
    assert!(
        home.state_strings("SELECT target FROM hooks_owed")
            .is_empty()
    );
}

#[test]
fn a_hook_that_hangs_is_killed_at_its_timeout_and_the_after_hook_still_runs() {
    let home = Home::new();
    let pidfile = home.path("hung.pid");
    let log = home.path("hooks.log");
    let hooks = format!(
        "timeout = \"1s\"\nbefore_backup = [{}]\nafter_backup = [{}]\n",
        sh(&format!(
            "sleep 1000 & echo $! > {}; wait",
            pidfile.display()
        )),
        sh(&format!(
            "echo \"after $LIFEBOAT_RESULT\" >> {}",
            log.display()
        )),
    );
    std::fs::write(home.path("data/a.txt"), "x").unwrap();
    ConfigBuilder::new()
        .directory_target("t", "../data")
        .raw(&format!("[targets.t.hooks]\n{hooks}"))
        .write(&home);
    let out = home.run(&["backup", "t"]);
    assert!(!out.status.success());
    assert_contains_all(
        &stderr(&out),
        &[
            "before_backup",
            "timed out after 1s",
            "nothing was backed up",
        ],
    );
    assert_eq!(lines(&log), ["after failed"]);
    // What the hook started went with it; nothing was published.
    let pid = pid_in(&pidfile);
    wait_for(10, "the hook's child to be killed with it", || gone(pid));
    assert!(
        home.store_files("t")
            .iter()
            .all(|f| !f.ends_with(".manifest.json")),
        "{:?}",
        home.store_files("t")
    );
    let state = home.state_strings("SELECT state FROM jobs");
    assert_eq!(state, ["failed"]);
}

#[test]
fn a_hook_that_is_not_executable_stops_the_backup_and_says_so() {
    let home = Home::new();
    let script = home.path("pause.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap(); // mode 0644: not executable
    let log = home.path("hooks.log");
    let h = directory_home(&format!(
        "before_backup = [[\"{}\"]]\nafter_backup = [{}]\n",
        script.display(),
        sh(&format!("echo after $LIFEBOAT_RESULT >> {}", log.display()))
    ));
    let out = h.run(&["backup", "t"]);
    assert!(!out.status.success());
    assert_contains_all(&stderr(&out), &["not executable", "pause.sh"]);
    assert_eq!(lines(&log), ["after failed"]);
    // `config check` accepts the config (the file exists): the failure is at run time.
    let missing = directory_home("before_backup = [[]]\n");
    let out = missing.run(&["config", "check"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("targets.t.hooks.before_backup[0]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn hooks_get_no_secrets_of_lifeboat_and_secret_values_are_masked() {
    let home = Home::new();
    let token = "tok-9f8e7d6c5b4a";
    let secret_file = home.path("leak.txt");
    std::fs::write(&secret_file, format!("the token is {token}\n")).unwrap();
    std::fs::write(home.path("data/a.txt"), "x").unwrap();
    let env_out = home.path("env.txt");
    ConfigBuilder::new()
        .alertmanager_token("HOOK_TEST_TOKEN")
        .directory_target("t", "../data")
        .raw(&format!(
            "[targets.t.hooks]\nbefore_backup = [{}]\n",
            sh(&format!(
                "env > {}; cat {}",
                env_out.display(),
                secret_file.display()
            ))
        ))
        .write(&home);
    let out = home
        .command(&["backup", "t"])
        .env("HOOK_TEST_TOKEN", token)
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret-value-123")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env = std::fs::read_to_string(&env_out).unwrap();
    for leaked in [
        "HOOK_TEST_TOKEN",
        token,
        "AWS_SECRET_ACCESS_KEY",
        "SLACK_BOT_TOKEN",
        "LIFEBOAT_REPO_PASSWORD",
    ] {
        assert!(!env.contains(leaked), "{leaked} reached the hook: {env}");
    }
    assert!(env.contains("LIFEBOAT_TARGET=t"), "{env}");
    // The hook printed the secret: lifeboat keeps and shows it masked.
    let shown = stderr(&out);
    assert!(!shown.contains(token), "{shown}");
    assert!(shown.contains("the token is ***"), "{shown}");
    for kept in home
        .state_strings("SELECT tail FROM hook_runs")
        .into_iter()
        .chain(home.state_strings("SELECT coalesce(detail, '') FROM audit"))
    {
        assert!(!kept.contains(token), "{kept}");
    }
}

#[test]
fn restore_hooks_run_only_for_restores_in_place_and_the_plan_lists_them() {
    let home = Home::new();
    let db = home.path("data/app.db");
    make_app_db(&db, 10);
    let log = home.path("hooks.log");
    let l = log.display();
    ConfigBuilder::new()
        .sqlite_target("t", "../data/app.db")
        .with("restore_roots = [\"../restores\"]")
        .raw(&format!(
            "[targets.t.hooks]\nbefore_restore = [{}]\nafter_restore = [{}]\n",
            sh(&format!(
                "echo \"stop $LIFEBOAT_ACTION $LIFEBOAT_BACKUP\" >> {l}"
            )),
            sh(&format!("echo \"start $LIFEBOAT_RESULT\" >> {l}")),
        ))
        .write(&home);
    let id = home.json(&["backup", "t"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lines(&log).is_empty(), "no backup hooks are set");
    let to = home.path("restores/copy.db");
    let plan = home.ok(&["restore", "t", "--to", to.to_str().unwrap(), "--dry-run"]);
    assert!(!plan.contains("hook:"), "{plan}");
    home.ok(&["restore", "t", "--to", to.to_str().unwrap(), "--yes"]);
    assert!(lines(&log).is_empty(), "a restore to a new path ran hooks");
    let plan = home.ok(&["restore", "t", "--dry-run"]);
    assert_contains_all(
        &plan,
        &[
            "hook:        before putting it in place, on this host: sh -c",
            "hook:        after putting it in place, on this host: sh -c",
        ],
    );
    assert!(lines(&log).is_empty(), "a dry run ran hooks");
    home.ok(&["restore", "t", "--yes"]);
    assert_eq!(
        lines(&log),
        [format!("stop restore {id}"), "start ok".to_string()]
    );
    // A drill never touches live data, so it runs no hooks.
    let (code, _) = crate::common::drill(&home, "t");
    assert_eq!(code, 0);
    assert_eq!(lines(&log).len(), 2);
}

#[test]
fn a_failing_hook_and_its_output_are_on_the_open_incidents_timeline() {
    let home = directory_home(&format!(
        "before_backup = [{}]\n",
        sh("echo 'container analyst is not running' >&2; exit 4")
    ));
    home.ok(&["incident", "start", "data", "volume", "damaged"]);
    let out = home.run(&["backup", "t"]);
    assert!(!out.status.success());
    // The command line says which command failed, how, and what it printed.
    assert_contains_all(
        &stderr(&out),
        &[
            "before_backup `sh -c",
            "failed (exit 4)",
            "container analyst is not running",
        ],
    );
    let export = home.ok(&["incident", "export"]);
    assert_contains_all(
        &export,
        &[
            "hook before_backup t (failed)",
            "failed (exit 4)",
            "container analyst is not running",
        ],
    );
}

#[test]
fn a_chat_backup_whose_hook_fails_says_so_with_the_hooks_output() {
    let api = FakeApi::start();
    let home = Home::new();
    std::fs::write(home.path("data/a.txt"), "x").unwrap();
    ConfigBuilder::new()
        .operators(&["slack:U0OPS1"])
        .channels(&["slack:C0OPS"])
        .slack(&api, Some("C0OPS"))
        .directory_target("t", "../data")
        .raw(&format!(
            "[targets.t.hooks]\nbefore_backup = [{}]\n",
            sh("echo 'cannot pause: 3 writers busy'; exit 2")
        ))
        .write(&home);
    let serve = Serve::start(&home);
    let (code, _) =
        crate::common::fakes::slack_command(&serve, "U0OPS1", "C0OPS", "/backup", "now t");
    assert_eq!(code, 200);
    let calls = api.wait_update(30, "❌ backup of t failed");
    let text = texts(&calls).join("\n");
    assert_contains_all(
        &text,
        &[
            "before_backup `sh -c",
            "failed (exit 2)",
            "cannot pause: 3 writers busy",
            "nothing was backed up",
        ],
    );
    serve.stop();
}

#[test]
fn a_cancelled_backup_kills_its_before_hook_and_still_runs_the_after_hook() {
    let home = Home::new();
    let log = home.path("hooks.log");
    let l = log.display();
    std::fs::write(home.path("data/a.txt"), "x").unwrap();
    ConfigBuilder::new()
        .directory_target("t", "../data")
        .raw(&format!(
            "[targets.t.hooks]\nbefore_backup = [{}]\nafter_backup = [{}]\n",
            sh(&format!("echo paused >> {l}; exec sleep 1000")),
            sh(&format!("echo \"resumed $LIFEBOAT_RESULT\" >> {l}")),
        ))
        .write(&home);
    let child = home
        .command(&["backup", "t"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(30, "the before_backup hook", || !lines(&log).is_empty());
    // Ctrl-C: the job is cancelled, the hook killed, and the app resumed.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert_eq!(lines(&log), ["paused", "resumed cancelled"]);
    assert_eq!(home.state_strings("SELECT state FROM jobs"), ["cancelled"]);
    assert!(
        home.state_strings("SELECT target FROM hooks_owed")
            .is_empty()
    );
}
