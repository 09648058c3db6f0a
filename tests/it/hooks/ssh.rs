//! Hooks over SSH against a real sshd: the variables passed, the argv quoted, the time
//! limit enforced on the host, an unreachable host, and a remote target's own host.

use super::{gone, lines, pid_in, sh};
use crate::common::sshd::Sshd;
use crate::common::{ConfigBuilder, Home, assert_contains_all, make_app_db, stderr, wait_for};

#[test]
fn hooks_over_ssh_get_their_variables_and_are_killed_on_the_host_at_the_timeout() {
    let sshd = Sshd::start();
    let home = Home::new();
    std::fs::write(home.path("data/a.txt"), "x").unwrap();
    let out_file = home.path("remote-env.txt");
    let pidfile = home.path("remote.pid");
    // A local target whose hooks run on another host (`hooks.host`).
    ConfigBuilder::new()
        .directory_target("t", "../data")
        .raw(&format!(
            "[targets.t.hooks]\nhost = \"{}\"\nssh_identity = \"{}\"\nssh_known_hosts = \"{}\"\nbefore_backup = [{}]\nafter_backup = [[\"sh\", \"-c\", \"echo \\\"$0 $LIFEBOAT_RESULT\\\" >> $1\", \"it's quoted\", \"{}\"]]\n",
            sshd.url(),
            sshd.client_key().display(),
            sshd.known_hosts().display(),
            sh(&format!(
                "echo \"$LIFEBOAT_TARGET $LIFEBOAT_ACTION $LIFEBOAT_JOB $LIFEBOAT_BACKUP\" > {}; env | grep -c SLACK >> {} || true",
                out_file.display(),
                out_file.display()
            )),
            out_file.display()
        ))
        .write(&home);
    let m = home.json(&["backup", "t"]);
    let id = m["id"].as_str().unwrap();
    assert_eq!(
        lines(&out_file),
        [
            format!("t backup 1 {id}"),
            "0".to_string(),
            "it's quoted ok".to_string()
        ]
    );
    // A hook that outlives its time limit is killed on the host, not just locally.
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    let hanging = text.replace(
        "before_backup = [",
        &format!(
            "timeout = \"2s\"\nbefore_backup = [{}, ",
            sh(&format!("echo $$ > {}; exec sleep 1000", pidfile.display()))
        ),
    );
    std::fs::write(home.config_path(), hanging).unwrap();
    let out = home.run(&["backup", "t"]);
    assert!(!out.status.success());
    assert_contains_all(
        &stderr(&out),
        &["timed out after 2s", "nothing was backed up"],
    );
    let pid = pid_in(&pidfile);
    wait_for(10, "the remote hook to be gone", || gone(pid));
    assert_eq!(lines(&out_file).last().unwrap(), "it's quoted failed");
}

#[test]
fn a_hook_on_an_unreachable_host_stops_the_backup_and_stays_owed() {
    let sshd = Sshd::start();
    let home = Home::new();
    std::fs::write(home.path("data/a.txt"), "x").unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ConfigBuilder::new()
        .directory_target("t", "../data")
        .raw(&format!(
            "[targets.t.hooks]\nhost = \"ssh://root@127.0.0.1:{port}\"\nssh_identity = \"{}\"\nssh_known_hosts = \"{}\"\nbefore_backup = [[\"true\"]]\nafter_backup = [[\"true\"]]\n",
            sshd.client_key().display(),
            sshd.known_hosts().display(),
        ))
        .write(&home);
    let out = home.run(&["backup", "t"]);
    assert!(!out.status.success());
    assert_contains_all(
        &stderr(&out),
        &["before_backup", "not run", "nothing was backed up"],
    );
    assert!(home.json(&["list", "t"]).as_array().unwrap().is_empty());
    // The after hook could not reach the host either: it stays owed for the next try.
    assert_eq!(home.state_strings("SELECT target FROM hooks_owed"), ["t"]);
}

#[test]
fn a_remote_targets_hooks_run_on_its_own_host_around_a_restore_in_place() {
    let sshd = Sshd::start();
    let home = Home::new();
    let db = home.path("data/app.db");
    drop(make_app_db(&db, 5));
    let log = home.path("hooks.log");
    let l = log.display();
    ConfigBuilder::new()
        .target(
            "r",
            "sqlite",
            &format!(
                "path = \"{}\"\nstore = \"local\"\n{}",
                db.display(),
                sshd.target_keys()
            ),
        )
        .raw(&format!(
            "[targets.r.hooks]\nbefore_restore = [{}]\nafter_restore = [{}]\n",
            // sshd sets SSH_CONNECTION; lifeboat's own clean environment has none.
            sh(&format!(
                "w=here; [ -n \"$SSH_CONNECTION\" ] && w=over-ssh; echo \"stop $LIFEBOAT_TARGET $w\" >> {l}"
            )),
            sh(&format!("echo \"start $LIFEBOAT_RESULT\" >> {l}")),
        ))
        .write(&home);
    home.ok(&["backup", "r"]);
    let plan = home.ok(&["restore", "r", "--dry-run"]);
    assert!(
        plan.contains(&format!(
            "before putting it in place, on root@127.0.0.1:{}",
            sshd.port
        )),
        "{plan}"
    );
    home.ok(&["restore", "r", "--yes"]);
    assert_eq!(lines(&log), ["stop r over-ssh", "start ok"]);
}
