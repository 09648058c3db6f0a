//! The deployment files as shipped: the systemd unit passes `systemd-analyze verify`
//! without a warning and keeps its hardening, and the container image carries the ssh
//! client that targets on other hosts need.

use std::path::Path;
use std::process::Command;

fn repo(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// The unit with its `ExecStart` pointed at the binary these tests built (verify checks
/// that the command exists).
fn unit_here(dir: &Path) -> std::path::PathBuf {
    let unit = repo("deploy/lifeboat.service")
        .replace("/usr/local/bin/lifeboat", env!("CARGO_BIN_EXE_lifeboat"));
    let path = dir.join("lifeboat.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_cleanly_and_stays_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_here(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
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
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for lifeboat.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    eprintln!("systemd's exposure level for the unit: {exposure}");
    assert!(exposure <= 2.0, "the unit lost its hardening:\n{report}");

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
    let text = repo("deploy/lifeboat.service");
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/lifeboat"));
    let args: Vec<&str> = words.collect();
    assert_eq!(args.last(), Some(&"serve"));
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
