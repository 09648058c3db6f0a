//! Runbook files against the example config: the shipped ones, mistakes, params.

use super::*;

fn example_config() -> Config {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let text = std::fs::read_to_string(dir.join("example.toml")).unwrap();
    let any_var = |name: &str| Some(format!("value-of-{name}"));
    let mut config = Config::parse(&text, "example.toml", &dir, &any_var).unwrap();
    config.server.runbooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    config
}

/// Every runbook we ship parses and checks out against the example config, whose
/// targets are modelled on the same systems.
#[test]
fn every_shipped_runbook_is_valid_against_the_example_config() {
    let config = example_config();
    let all = load_all(&config).unwrap();
    let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
    for expected in [
        "data-volume-restore",
        "gcp-data-disk-loss",
        "lifeboat-host-loss",
        "pitr-before-bad-write",
        "sqlite-restore",
        "vps-loss-gitea",
    ] {
        assert!(
            names.contains(&expected),
            "runbooks/{expected}.toml missing"
        );
    }
    for l in &all {
        let r = l
            .runbook
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", l.path.display()));
        assert!(!r.title.is_empty());
        assert!(r.steps.iter().all(|s| !s.estimate.is_zero()), "{}", l.name);
    }
    let text = list_text(&config).unwrap();
    assert!(text.contains("pitr-before-bad-write before=…"), "{text}");
}

fn parse(text: &str) -> Result<Runbook, RunbookError> {
    Runbook::parse("t", text, Path::new("/etc/lifeboat"), &example_config())
}

#[test]
fn mistakes_are_named_with_their_step() {
    let head = "title = \"t\"\n[[step]]\ntitle = \"one\"\nestimate = \"1m\"\n";
    let cases = [
        ("", "exactly one of"),
        ("manual = \"x\"\nhttp = \"http://a\"\n", "exactly one of"),
        (
            "action = \"backup\"\ntarget = \"nope\"\n",
            "unknown target \"nope\"",
        ),
        (
            "action = \"verify\"\ntarget = \"vps-nightly-script\"\n",
            "cannot verify",
        ),
        (
            "action = \"explode\"\ntarget = \"gitea-db\"\n",
            "unknown action",
        ),
        (
            "action = \"restore\"\ntarget = \"gitea-db\"\nat = \"{when}\"\n",
            "{when} is not a declared param",
        ),
        ("http = \"ftp://x\"\n", "not an http(s) URL"),
        ("command = []\n", "at least the program"),
        ("command = [\"cat\", \"{path:nope}\"]\n", "{path:nope}"),
        (
            "command = [\"true\"]\nhost = \"ssh://u@elsewhere:22\"\n",
            "ssh_identity",
        ),
        ("manual = \"x\"\nstatus = 200\n", "`status` does not belong"),
        ("manual = \"x\"\nestimat = \"1m\"\n", "estimat"),
    ];
    for (step, want) in cases {
        let e = parse(&format!("{head}{step}")).unwrap_err().to_string();
        assert!(e.contains(want), "{step:?}: {e}");
        if want != "estimat" {
            assert!(e.starts_with("step 1 (one)"), "{e}");
        }
    }
    assert!(
        parse("title = \"t\"\n")
            .unwrap_err()
            .to_string()
            .contains("at least one")
    );
}

#[test]
fn commands_get_target_paths_and_borrow_a_targets_ssh_settings() {
    let r = parse(
        "title = \"t\"\n[[step]]\ntitle = \"c\"\nestimate = \"1m\"\ncommand = [\"sqlite3\", \"{path:gitea-db}\", \"PRAGMA integrity_check;\"]\nhost = \"ssh://deploy@staging.internal:22\"\n",
    )
    .unwrap();
    match &r.steps[0].kind {
        StepKind::Command { argv, remote, .. } => {
            assert_eq!(argv[1], "/var/lib/gitea/data/gitea.db");
            let remote = remote.as_ref().unwrap();
            assert!(remote.known_hosts.ends_with("known_hosts"), "{remote:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn params_are_required_and_checked() {
    let config = example_config();
    let r = find(&config, "pitr-before-bad-write").unwrap();
    assert!(matches!(r.check_params(&[]), Err(Error::Usage(m)) if m.contains("needs before=")));
    assert!(matches!(
        r.check_params(&[("when".into(), "x".into())]),
        Err(Error::Usage(m)) if m.contains("no parameter \"when\"")
    ));
    let v = r
        .check_params(&[("before".into(), "2026-11-22T09:55:00Z".into())])
        .unwrap();
    assert_eq!(fill("{before}", &v), "2026-11-22T09:55:00Z");
    assert!(matches!(find(&config, "nope"), Err(Error::Usage(m)) if m.contains("sqlite-restore")));
}
