//! The deployment files as shipped: the systemd units (the bot's, and the template that
//! runs `lifeboat replicate <target>`) pass `systemd-analyze verify` without a warning and
//! keep their hardening, and the container image carries the ssh client that targets on
//! other hosts need.

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn repo(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// `deploy/<file>` written into `dir` with its `ExecStart` pointed at the binary these
/// tests built (verify checks that the command exists).
fn unit_here(dir: &Path, file: &str) -> std::path::PathBuf {
    let unit = repo(&format!("deploy/{file}"))
        .replace("/usr/local/bin/lifeboat", env!("CARGO_BIN_EXE_lifeboat"));
    let path = dir.join(file);
    std::fs::write(&path, unit).unwrap();
    path
}

/// `systemd-analyze verify` of `unit` says nothing, and `systemd-analyze security` rates
/// its exposure at most 2.0 ("OK").
fn verifies_cleanly_and_stays_hardened(unit: &Path) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze (Debian's systemd; scripts/test.sh installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    // Unknown or misspelt keys are only warnings to systemd: none may be printed.
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify said:\n{said}"
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let name = unit.file_name().unwrap().to_string_lossy();
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split(&format!("Overall exposure level for {name}: "))
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    eprintln!("systemd's exposure level for {name}: {exposure}");
    assert!(exposure <= 2.0, "{name} lost its hardening:\n{report}");
}

/// The words of the unit's `ExecStart` after the binary, which must be lifeboat's.
fn exec_args(file: &str) -> Vec<String> {
    let text = repo(&format!("deploy/{file}"));
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/lifeboat"));
    words.map(str::to_string).collect()
}

#[test]
fn the_systemd_unit_verifies_cleanly_and_stays_hardened() {
    let dir = tempfile::tempdir().unwrap();
    verifies_cleanly_and_stays_hardened(&unit_here(dir.path(), "lifeboat.service"));

    let text = repo("deploy/lifeboat.service");
    for line in [
        "User=lifeboat",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "StateDirectory=lifeboat",
        "LimitNOFILE=",
    ] {
        assert!(text.contains(line), "the unit has no {line}");
    }
}

#[test]
fn the_unit_starts_serve_with_a_command_line_lifeboat_accepts() {
    let args = exec_args("lifeboat.service");
    assert_eq!(args.last().map(String::as_str), Some("serve"));
    // The same flags with `--help` appended parse (clap rejects unknown ones).
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_replicate_template_verifies_for_an_instance_and_stays_hardened() {
    let dir = tempfile::tempdir().unwrap();
    unit_here(dir.path(), "lifeboat-replicate@.service");
    // An instance's name finds the template beside it, with %i filled in.
    verifies_cleanly_and_stays_hardened(&dir.path().join("lifeboat-replicate@app-db.service"));

    let text = repo("deploy/lifeboat-replicate@.service");
    for line in [
        "User=lifeboat",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "StateDirectory=lifeboat",
        // The replicator's PASSIVE checkpoints (and SQLite's -wal and -shm) write the
        // database's directory.
        "ReadWritePaths=-/srv/%i",
    ] {
        assert!(text.contains(line), "the replicate unit has no {line}");
    }
    // The same config path as the bot's unit.
    let bot = exec_args("lifeboat.service");
    let replicate = exec_args("lifeboat-replicate@.service");
    assert_eq!(replicate[..2], bot[..2], "--config and its path");
}

/// The template's command line, with `%i` filled in and the config path pointed at a
/// test home, replicates that target until SIGTERM, then exits cleanly.
#[test]
fn the_replicate_unit_runs_replicate_for_its_instance() {
    let args = exec_args("lifeboat-replicate@.service");
    assert_eq!(args[args.len() - 2..], ["replicate", "%i"]);
    let home = Home::with_config(&ConfigBuilder::new().raw(
        "[targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\ncontinuous = \"1s\"\n",
    ));
    crate::continuous::create_db(&home.path("data/app.db"), true);
    let config = home.config_path().display().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    cmd.args(args.iter().map(|w| match w.as_str() {
        "/etc/lifeboat/lifeboat.toml" => config.as_str(),
        "%i" => "app-db",
        other => other,
    }));
    let mut replicator = crate::continuous::Replicator::start(cmd);
    replicator.wait_for("replicating app-db every 1s");
    let status = replicator.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn the_container_image_has_the_ssh_client() {
    let dockerfile = repo("Dockerfile");
    let runtime = dockerfile
        .split("FROM debian:")
        .nth(1)
        .expect("a Debian runtime stage");
    assert!(
        runtime.contains("openssh-client"),
        "the runtime image must install openssh-client"
    );
}
