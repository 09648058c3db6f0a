//! Runbook command steps on a target's host, and drills of remote targets in a sandbox
//! on the bot's host.

use std::path::Path;

use super::*;
use crate::common::*;

#[test]
fn runbook_command_steps_run_on_the_targets_host() {
    let s = Setup::new();
    drop(make_app_db(&s.remote("data/app.db"), 40));
    let host = s.sshd.url();
    std::fs::create_dir_all(s.home.path("runbooks")).unwrap();
    // No keys in the steps: they are borrowed from the target on the same host.
    std::fs::write(
        s.home.path("runbooks/remote-checks.toml"),
        format!(
            "title = \"Checks on the database host\"\n\
             [[step]]\ntitle = \"Integrity\"\nestimate = \"1m\"\nhost = \"{host}\"\n\
             command = [\"sqlite3\", \"{{path:app-db}}\", \"PRAGMA integrity_check;\"]\noutput_contains = \"ok\"\n\
             [[step]]\ntitle = \"Disk space\"\nestimate = \"1m\"\nhost = \"{host}\"\n\
             command = [\"sh\", \"-c\", \"echo 'disk full' >&2; exit 3\"]\n"
        ),
    )
    .unwrap();
    let out = s.home.run(&["runbook", "run", "remote-checks"]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}\n{}", stderr(&out));
    assert!(
        report.contains("| 1 | Integrity | command | 1m |"),
        "{report}"
    );
    assert!(report.contains("sqlite3 exited 0: ok"), "{report}");
    assert!(
        report.contains("sh exited 3, expected 0: disk full"),
        "{report}"
    );
    assert!(report.contains("❌ failed"), "{report}");
}

#[test]
fn a_remote_target_drills_into_a_sandbox_on_the_bot_host() {
    let s = Setup::new();
    drop(make_app_db(&s.remote("data/app.db"), 60));
    s.home.ok(&["backup", "app-db"]);
    let before = std::fs::read(s.remote("data/app.db")).unwrap();
    let r = s.home.json(&["drill", "app-db"]);
    assert_eq!(r["ok"], true, "{r:#}");
    assert!(r["rto_seconds"].as_f64().unwrap() >= 0.0);
    let sandbox = r["sandbox"].as_str().unwrap();
    assert!(
        sandbox.starts_with(s.home.dir.path().to_str().unwrap()),
        "{sandbox}"
    );
    assert!(!Path::new(sandbox).exists(), "the sandbox is removed");
    assert_eq!(std::fs::read(s.remote("data/app.db")).unwrap(), before);
    assert!(
        s.remote_leftovers().is_empty(),
        "{:?}",
        s.remote_leftovers()
    );
}
