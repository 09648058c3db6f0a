//! Targets on another host (`host = "ssh://…"`): the SSH keys they need, all or nothing,
//! their absolute remote paths, and the file checks `config check` makes for them.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{Host, TargetConfig, TargetKind};

/// The SSH keys of a target: all or nothing, and only where lifeboat can use them.
pub(super) fn validate_remote(name: &str, t: &TargetConfig) -> Result<(), String> {
    let key = |k: &str| format!("targets.{name}.{k}");
    let Some(host) = t.host.as_deref() else {
        for (set, k) in [
            (t.ssh_identity.is_some(), "ssh_identity"),
            (t.ssh_known_hosts.is_some(), "ssh_known_hosts"),
            (t.ssh_timeout.is_some(), "ssh_timeout"),
        ] {
            if set {
                return Err(format!("{}: only used with `host`", key(k)));
            }
        }
        return Ok(());
    };
    if !matches!(t.kind, TargetKind::Sqlite | TargetKind::Directory) {
        return Err(format!(
            "{}: targets of kind \"{}\" cannot be on another host (sqlite and directory can)",
            key("host"),
            t.kind.as_str()
        ));
    }
    Host::parse(host).map_err(|e| format!("{}: {e}", key("host")))?;
    // Key authentication only, with a key of lifeboat's own: no agent, no passwords.
    for (value, k) in [
        (&t.ssh_identity, "ssh_identity"),
        (&t.ssh_known_hosts, "ssh_known_hosts"),
    ] {
        let Some(p) = value else {
            return Err(format!("{}: required with `host`", key(k)));
        };
        if p.to_string_lossy().contains('"') {
            return Err(format!("{}: the path may not contain '\"'", key(k)));
        }
    }
    let remote_abs = |p: &Path| {
        p.is_absolute()
            && !p
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
    };
    if let Some(p) = &t.path
        && !remote_abs(p)
    {
        return Err(format!(
            "{}: a path on another host must be absolute, without `..`",
            key("path")
        ));
    }
    if let Some(r) = t.restore_roots.iter().find(|r| !remote_abs(r)) {
        return Err(format!(
            "{}: {} is on the remote host and must be absolute, without `..`",
            key("restore_roots"),
            r.display()
        ));
    }
    Ok(())
}

/// The key and known_hosts files of a remote target exist, and the host is listed.
pub(super) fn check_remote_files(name: &str, t: &TargetConfig) -> Vec<String> {
    let mut problems = Vec::new();
    for (p, k) in [
        (&t.ssh_identity, "ssh_identity"),
        (&t.ssh_known_hosts, "ssh_known_hosts"),
    ] {
        if let Some(p) = p
            && !p.is_file()
        {
            problems.push(format!(
                "targets.{name}.{k}: {} is not a readable file",
                p.display()
            ));
        }
    }
    if problems.is_empty()
        && let Some(Ok(host)) = t.host.as_deref().map(Host::parse)
        && let Some(known_hosts) = &t.ssh_known_hosts
        && let Ok(false) = known_host_listed(&host, known_hosts)
    {
        problems.push(format!(
            "targets.{name}.ssh_known_hosts: {} has no key for {}; add the host's key line after checking its fingerprint",
            known_hosts.display(),
            host.known_hosts_name()
        ));
    }
    problems
}

/// Whether `known_hosts` holds a key for this host (hashed entries included).
pub(super) fn known_host_listed(host: &Host, known_hosts: &Path) -> std::io::Result<bool> {
    let out = Command::new("ssh-keygen")
        .arg("-F")
        .arg(host.known_hosts_name())
        .arg("-f")
        .arg(known_hosts)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    Ok(out.status.success() && !out.stdout.is_empty())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::parse_test as parse;

    #[test]
    fn remote_targets_need_their_ssh_keys_and_absolute_paths() {
        let base = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.r]\nkind=\"sqlite\"\nstore=\"l\"\n";
        let ok = format!(
            "{base}path=\"/srv/app.db\"\nhost=\"ssh://backup@db1:2222\"\nssh_identity=\"key\"\nssh_known_hosts=\"kh\"\nrestore_roots=[\"/var/tmp/r\"]\n"
        );
        let c = parse(&ok).unwrap();
        let t = &c.targets["r"];
        assert_eq!(
            t.ssh_identity.as_deref(),
            Some(Path::new("/etc/lifeboat/key"))
        );
        assert_eq!(
            t.restore_roots,
            vec![PathBuf::from("/var/tmp/r")],
            "remote: as written"
        );
        for (bad, named) in [
            (ok.replace("ssh_identity=\"key\"\n", ""), "ssh_identity"),
            (
                ok.replace("ssh_known_hosts=\"kh\"\n", ""),
                "ssh_known_hosts",
            ),
            (ok.replace("/srv/app.db", "app.db"), "targets.r.path"),
            (ok.replace("[\"/var/tmp/r\"]", "[\"r\"]"), "restore_roots"),
            (ok.replace("ssh://backup@db1:2222", "db1"), "targets.r.host"),
            (ok.replace("backup@", "-oProxyCommand=x@"), "targets.r.host"),
        ] {
            let e = parse(&bad).unwrap_err().to_string();
            assert!(e.contains(named), "{named}: {e}");
        }
        let stray = format!("{base}path=\"/srv/app.db\"\nssh_timeout=\"5m\"\n");
        let e = parse(&stray).unwrap_err().to_string();
        assert!(e.contains("only used with `host`"), "{e}");
    }
}
