//! The command line and the config file as a user meets them: config errors name the
//! file, key and problem and exit 2; `serve` answers /healthz and stops cleanly.

use crate::common::fakes::Serve;
use crate::common::*;

fn check(home: &Home, text: &str) -> (i32, String) {
    std::fs::write(home.config_path(), text).unwrap();
    let out = home.run(&["config", "check"]);
    (out.status.code().unwrap(), stderr(&out) + &stdout(&out))
}

#[test]
fn config_check_names_file_key_and_problem() {
    let home = Home::new();
    let store = "[stores.local]\nkind = \"local\"\npath = \"../backups\"\n";
    let (code, msg) = check(
        &home,
        &format!(
            "{store}[targets.a]\nkind = \"sqlite\"\npath = \"../data/a.db\"\nstore = \"local\"\nshedule = \"0 0 * * * *\"\n"
        ),
    );
    assert_eq!(code, 2);
    assert!(
        msg.contains("lifeboat.toml") && msg.contains("shedule"),
        "{msg}"
    );

    let (code, msg) = check(
        &home,
        &format!(
            "{store}[targets.a]\nkind = \"sqlite\"\npath = \"../data/a.db\"\nstore = \"local\"\nschedule = \"daily\"\n"
        ),
    );
    assert_eq!(code, 2);
    assert!(
        msg.contains("invalid cron expression") && msg.contains("schedule"),
        "{msg}"
    );

    let (code, msg) = check(
        &home,
        &format!(
            "{store}[targets.a]\nkind = \"sqlite\"\npath = \"../data/a.db\"\nstore = \"local\"\ngrace = \"soon\"\n"
        ),
    );
    assert_eq!(code, 2);
    assert!(msg.contains("invalid duration"), "{msg}");

    let (code, msg) = check(
        &home,
        "[hooks]\nalertmanager_token = \"${LIFEBOAT_TEST_UNSET_VAR}\"\n",
    );
    assert_eq!(code, 2);
    assert!(
        msg.contains("LIFEBOAT_TEST_UNSET_VAR") && msg.contains("hooks.alertmanager_token"),
        "{msg}"
    );

    let (code, msg) = check(
        &home,
        &format!(
            "{store}[targets.a]\nkind = \"sqlite\"\npath = \"../data/a.db\"\nstore = \"offsite\"\n"
        ),
    );
    assert_eq!(code, 2);
    assert!(
        msg.contains("targets.a.store") && msg.contains("offsite"),
        "{msg}"
    );

    let (code, msg) = check(
        &home,
        &format!(
            "{store}[targets.a]\nkind = \"sqlite\"\npath = \"../data/missing.db\"\nstore = \"local\"\n"
        ),
    );
    assert_eq!(code, 2);
    assert!(
        msg.contains("targets.a.path") && msg.contains("does not exist"),
        "{msg}"
    );

    std::fs::write(home.path("data/a.db"), b"").unwrap();
    let (code, msg) = check(
        &home,
        &format!(
            "{store}[targets.a]\nkind = \"sqlite\"\npath = \"../data/a.db\"\nstore = \"local\"\n"
        ),
    );
    assert_eq!(code, 0, "{msg}");
}

#[test]
fn secrets_from_the_environment_never_show() {
    let home = Home::new();
    std::fs::write(
        home.config_path(),
        "[hooks]\nalertmanager_token = \"${LIFEBOAT_TEST_TOKEN}\"\n",
    )
    .unwrap();
    let out = home
        .command(&["config", "check"])
        .env("LIFEBOAT_TEST_TOKEN", "tok-very-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("tok-very-secret") && !stderr(&out).contains("tok-very-secret"));
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    let home = Home::new();
    home.write_config("");
    let out = home.run(&["backup"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage"), "{}", stderr(&out));
    let out = home.run(&["restore", "x", "--at", "last tuesday", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    let explicit_missing = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["--config", "/nonexistent/lifeboat.toml", "status"])
        .output()
        .unwrap();
    assert_eq!(explicit_missing.status.code(), Some(2));
    assert!(stderr(&explicit_missing).contains("/nonexistent/lifeboat.toml"));
}

#[test]
fn the_embedded_default_runs_without_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["backup", "lifeboat-state", "--json"])
        .current_dir(dir.path())
        .env_remove("LIFEBOAT_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(b["target"], "lifeboat-state");
    assert!(dir.path().join("var/lifeboat.db").exists());
    assert!(dir.path().join("var/backups/lifeboat-state").is_dir());
}

#[test]
fn serve_answers_healthz_and_stops_on_sigterm() {
    let home = Home::new();
    home.write_config("");
    let serve = Serve::start(&home);
    let (code, body) = serve.get("/healthz");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"status\":\"ok\"") && body.contains(env!("CARGO_PKG_VERSION")),
        "{body}"
    );

    // An unusable state database turns health red.
    let conn = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    conn.execute_batch("DROP TABLE jobs").unwrap();
    let (code, body) = serve.get("/healthz");
    assert_eq!(code, 503, "{body}");
    serve.stop();
}
