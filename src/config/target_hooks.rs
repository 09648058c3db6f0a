//! `[targets.<t>.hooks]`: commands lifeboat runs around a target's backups and restores
//! to quiesce what a copy cannot make consistent (stop or pause the app, then start or
//! resume it), where they run and how long each may take. Not the top-level `[hooks]`
//! (`config/hooks.rs`), which authorizes incoming webhooks.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::remote::known_host_listed;
use super::{Host, HumanDuration, TargetConfig, TargetKind};

/// How long one hook command may run when `timeout` is not given.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// A target's hooks: argv lists run in order, never through a local shell.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetHooks {
    #[serde(default)]
    pub before_backup: Vec<Vec<String>>,
    #[serde(default)]
    pub after_backup: Vec<Vec<String>>,
    #[serde(default)]
    pub before_restore: Vec<Vec<String>>,
    #[serde(default)]
    pub after_restore: Vec<Vec<String>>,
    /// Per command; default 5m.
    pub timeout: Option<HumanDuration>,
    /// Where they run (`ssh://user@host:port`); default: the target's own host if it has
    /// one, else this machine.
    pub host: Option<String>,
    pub ssh_identity: Option<PathBuf>,
    pub ssh_known_hosts: Option<PathBuf>,
}

impl TargetHooks {
    /// Each command's time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout.map_or(DEFAULT_HOOK_TIMEOUT, |t| t.0)
    }

    /// Whether any command is set.
    pub fn is_empty(&self) -> bool {
        self.before_backup.is_empty()
            && self.after_backup.is_empty()
            && self.before_restore.is_empty()
            && self.after_restore.is_empty()
    }

    /// The lists by their key names, in the order they run.
    pub fn lists(&self) -> [(&'static str, &Vec<Vec<String>>); 4] {
        [
            ("before_backup", &self.before_backup),
            ("after_backup", &self.after_backup),
            ("before_restore", &self.before_restore),
            ("after_restore", &self.after_restore),
        ]
    }
}

/// The checks `validate()` makes of a target's hooks.
pub(super) fn validate_hooks(name: &str, t: &TargetConfig) -> Result<(), String> {
    let Some(h) = &t.hooks else {
        return Ok(());
    };
    let key = |k: &str| format!("targets.{name}.hooks.{k}");
    if t.kind == TargetKind::External {
        return Err(format!(
            "targets.{name}.hooks: an external target's backups run elsewhere; lifeboat has nothing to run hooks around"
        ));
    }
    for (list, commands) in h.lists() {
        for (i, argv) in commands.iter().enumerate() {
            match argv.first() {
                None => {
                    return Err(format!(
                        "{}[{i}]: give the program and its arguments, e.g. [\"systemctl\", \"stop\", \"app\"]",
                        key(list)
                    ));
                }
                Some(p) if p.is_empty() => {
                    return Err(format!("{}[{i}]: the program name is empty", key(list)));
                }
                Some(_) => {}
            }
            if argv.iter().any(|a| a.contains('\0')) {
                return Err(format!("{}[{i}]: arguments may not contain NUL", key(list)));
            }
        }
    }
    if h.timeout.is_some_and(|t| t.0.is_zero()) {
        return Err(format!("{}: must be longer than 0s", key("timeout")));
    }
    match &h.host {
        Some(host) => {
            Host::parse(host).map_err(|e| format!("{}: {e}", key("host")))?;
            for (value, k) in [
                (&h.ssh_identity, "ssh_identity"),
                (&h.ssh_known_hosts, "ssh_known_hosts"),
            ] {
                let Some(p) = value else {
                    return Err(format!("{}: required with `hooks.host`", key(k)));
                };
                if p.to_string_lossy().contains('"') {
                    return Err(format!("{}: the path may not contain '\"'", key(k)));
                }
            }
        }
        None => {
            for (set, k) in [
                (h.ssh_identity.is_some(), "ssh_identity"),
                (h.ssh_known_hosts.is_some(), "ssh_known_hosts"),
            ] {
                if set {
                    return Err(format!(
                        "{}: only used with `hooks.host` (without it, hooks use the target's own SSH settings)",
                        key(k)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `config check`: the key files of `hooks.host` exist, and its host key is listed.
pub(super) fn check_hook_files(name: &str, t: &TargetConfig) -> Vec<String> {
    let Some(h) = t.hooks.as_ref().filter(|h| h.host.is_some()) else {
        return Vec::new();
    };
    let mut problems: Vec<String> = [
        (&h.ssh_identity, "ssh_identity"),
        (&h.ssh_known_hosts, "ssh_known_hosts"),
    ]
    .into_iter()
    .filter_map(|(p, k)| {
        let p = p.as_ref()?;
        (!p.is_file()).then(|| {
            format!(
                "targets.{name}.hooks.{k}: {} is not a readable file",
                p.display()
            )
        })
    })
    .collect();
    if problems.is_empty()
        && let Some(Ok(host)) = h.host.as_deref().map(Host::parse)
        && let Some(known_hosts) = &h.ssh_known_hosts
        && let Ok(false) = known_host_listed(&host, known_hosts)
    {
        problems.push(format!(
            "targets.{name}.hooks.ssh_known_hosts: {} has no key for {}; add the host's key line after checking its fingerprint",
            known_hosts.display(),
            host.known_hosts_name()
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::parse_test as parse;

    const BASE: &str = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.a]\nkind=\"directory\"\npath=\"/srv/data\"\nstore=\"l\"\n";

    #[test]
    fn hooks_parse_with_their_defaults() {
        let c = parse(&format!(
            "{BASE}[targets.a.hooks]\nbefore_backup=[[\"docker\",\"pause\",\"app\"]]\nafter_backup=[[\"docker\",\"unpause\",\"app\"]]\n"
        ))
        .unwrap();
        let h = c.targets["a"].hooks.as_ref().unwrap();
        assert_eq!(h.before_backup, vec![vec!["docker", "pause", "app"]]);
        assert_eq!(h.timeout(), Duration::from_secs(300));
        assert!(h.host.is_none());
        let c = parse(&format!(
            "{BASE}[targets.a.hooks]\ntimeout=\"90s\"\nhost=\"ssh://root@vm1\"\nssh_identity=\"k\"\nssh_known_hosts=\"kh\"\nbefore_restore=[[\"fsfreeze\",\"-f\",\"/data\"]]\n"
        ))
        .unwrap();
        let h = c.targets["a"].hooks.as_ref().unwrap();
        assert_eq!(h.timeout(), Duration::from_secs(90));
        assert_eq!(
            h.ssh_identity.as_deref(),
            Some(Path::new("/etc/lifeboat/k"))
        );
    }

    #[test]
    fn bad_hooks_are_refused_naming_the_key() {
        for (hooks, named) in [
            ("before_backup=[[]]", "hooks.before_backup[0]"),
            ("after_restore=[[\"\"]]", "hooks.after_restore[0]"),
            ("timeout=\"soon\"", "invalid duration"),
            ("timeout=\"0s\"", "hooks.timeout"),
            ("host=\"vm1\"", "hooks.host"),
            ("host=\"ssh://root@vm1\"", "hooks.ssh_identity"),
            ("ssh_identity=\"k\"", "only used with `hooks.host`"),
            ("before_backup=[\"docker\"]", "expected a sequence"),
            ("befor_backup=[[\"x\"]]", "unknown field"),
        ] {
            let e = parse(&format!("{BASE}[targets.a.hooks]\n{hooks}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(named), "{hooks}: {e}");
        }
    }

    #[test]
    fn config_check_finds_the_hooks_host_keys_missing() {
        let c = parse(&format!(
            "{BASE}[targets.a.hooks]\nhost=\"ssh://root@vm1\"\nssh_identity=\"/nonexistent/k\"\nssh_known_hosts=\"/nonexistent/kh\"\n"
        ))
        .unwrap();
        let problems = super::check_hook_files("a", &c.targets["a"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("targets.a.hooks.ssh_identity"),
            "{problems:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let (k, kh) = (dir.path().join("k"), dir.path().join("kh"));
        std::fs::write(&k, "key").unwrap();
        std::fs::write(&kh, "").unwrap();
        let c = parse(&format!(
            "{BASE}[targets.a.hooks]\nhost=\"ssh://root@vm1\"\nssh_identity=\"{}\"\nssh_known_hosts=\"{}\"\n",
            k.display(),
            kh.display()
        ))
        .unwrap();
        let problems = super::check_hook_files("a", &c.targets["a"]);
        assert!(
            problems.len() == 1 && problems[0].contains("has no key for vm1"),
            "{problems:?}"
        );
    }

    #[test]
    fn external_targets_refuse_hooks() {
        let e = parse(
            "[targets.e]\nkind=\"external\"\nschedule=\"0 0 * * * *\"\ntoken=\"${TOKEN}\"\n[targets.e.hooks]\nbefore_backup=[[\"true\"]]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("targets.e.hooks") && e.contains("external"),
            "{e}"
        );
    }
}
