//! The one place a target's kind is decided: its config in, its [`Source`] out, as
//! rustic_backend's `choose.rs` picks a backend. A new kind, or a kind in a new place, is
//! one more arm here and one more file beside this one.

use std::path::{Path, PathBuf};

use crate::config::{TargetConfig, TargetKind};
use crate::error::{Error, Result};
use crate::sources::Source;
use crate::sources::command::Command;
use crate::sources::directory::local::LocalDirectory;
use crate::sources::directory::ssh::SshDirectory;
use crate::sources::external::External;
use crate::sources::gcp_disk::GcpDisk;
use crate::sources::place::Roots;
use crate::sources::sqlite::local::LocalSqlite;
use crate::sources::sqlite::ssh::SshSqlite;
use crate::ssh::Remote;

/// The source of the target `name` configured as `cfg`.
pub fn choose(name: &str, cfg: &TargetConfig) -> Result<Box<dyn Source>> {
    let target = name.to_string();
    // Config validation has checked every key a kind needs; a target assembled in code
    // without one is lifeboat's own mistake, not the user's.
    let missing = |key: &str| {
        Error::Failed(format!(
            "targets.{name}.{key}: required for kind \"{}\"",
            cfg.kind.as_str()
        ))
    };
    let path = || cfg.path.clone().ok_or_else(|| missing("path"));
    let roots = |live: &Path, own: Option<PathBuf>| Roots {
        live: live.to_path_buf(),
        own,
        restore_roots: cfg.restore_roots.clone(),
    };
    let remote = Remote::of_target(cfg)?;
    Ok(match (cfg.kind, remote) {
        (TargetKind::Sqlite, remote) => {
            let path = path()?;
            // `--to` may write beside the database, in its directory.
            let roots = roots(&path, path.parent().map(Path::to_path_buf));
            match remote {
                None => Box::new(LocalSqlite {
                    target,
                    path,
                    roots,
                }),
                Some(remote) => Box::new(SshSqlite {
                    target,
                    path,
                    remote,
                    roots,
                }),
            }
        }
        (TargetKind::Directory, remote) => {
            let path = path()?;
            // `--to` may write inside the tree's own directory.
            let roots = roots(&path, Some(path.clone()));
            let (include, exclude) = (cfg.include.clone(), cfg.exclude.clone());
            match remote {
                None => Box::new(LocalDirectory {
                    target,
                    path,
                    include,
                    exclude,
                    roots,
                    snapshot: cfg.snapshot,
                }),
                Some(remote) => Box::new(SshDirectory {
                    target,
                    path,
                    include,
                    exclude,
                    remote,
                    roots,
                }),
            }
        }
        (TargetKind::GcpDisk, _) => Box::new(GcpDisk { target }),
        (TargetKind::Command, _) => Box::new(Command {
            target,
            argv: cfg.command.clone().ok_or_else(|| missing("command"))?,
        }),
        (TargetKind::External, _) => Box::new(External { target }),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    /// One target of every kind, and a sqlite and a directory target on another host.
    const TARGETS: &str = r#"
[stores.l]
kind = "local"
path = "/tmp"
[targets.db]
kind = "sqlite"
path = "/srv/app.db"
store = "l"
[targets.far-db]
kind = "sqlite"
path = "/srv/app.db"
store = "l"
host = "ssh://backup@db1:22"
ssh_identity = "/etc/lifeboat/key"
ssh_known_hosts = "/etc/lifeboat/known_hosts"
[targets.tree]
kind = "directory"
path = "/srv/data"
store = "l"
[targets.far-tree]
kind = "directory"
path = "/srv/data"
store = "l"
host = "ssh://backup@db1:22"
ssh_identity = "/etc/lifeboat/key"
ssh_known_hosts = "/etc/lifeboat/known_hosts"
[targets.disk]
kind = "gcp-disk"
project = "p"
zone = "z"
disk = "d"
[targets.dump]
kind = "command"
command = ["dump"]
store = "l"
[targets.nightly]
kind = "external"
schedule = "0 0 3 * * *"
token = "${T}"
"#;

    fn all() -> Vec<Box<dyn Source>> {
        let config = Config::parse(TARGETS, "t.toml", Path::new("/etc/lifeboat"), &|name| {
            (name == "T").then(|| "t".to_string())
        })
        .unwrap();
        config
            .targets
            .iter()
            .map(|(name, cfg)| choose(name, cfg).unwrap())
            .collect()
    }

    #[test]
    fn each_target_gets_the_source_of_its_kind() {
        for s in all() {
            let cfg_kind = match s.target() {
                "db" | "far-db" => TargetKind::Sqlite,
                "tree" | "far-tree" => TargetKind::Directory,
                "disk" => TargetKind::GcpDisk,
                "dump" => TargetKind::Command,
                _ => TargetKind::External,
            };
            assert_eq!(s.kind(), cfg_kind, "{}", s.target());
        }
    }

    #[test]
    fn only_gcp_disk_keeps_its_backups_as_snapshots_verified_hourly() {
        for s in all() {
            let gcp = s.kind() == TargetKind::GcpDisk;
            assert_eq!(s.kept() == crate::sources::Kept::AsSnapshots, gcp);
            let every = s.unscheduled_verify_every();
            assert_eq!(every, gcp.then_some(Duration::from_secs(3600)));
        }
    }

    #[test]
    fn only_files_restore_to_a_path_and_the_rest_say_how_instead() {
        for s in all() {
            let r = s.restores_to_a_path();
            match s.target() {
                "db" | "far-db" | "tree" | "far-tree" => assert!(r.is_ok(), "{}", s.target()),
                "disk" => {
                    let e = r.unwrap_err().to_string();
                    assert!(
                        e.contains("lifeboat restore disk [<backup>] --to <new disk name>"),
                        "{e}"
                    );
                }
                t => {
                    let e = r.unwrap_err().to_string();
                    assert!(e.contains(&format!("restores of {t} (")), "{e}");
                }
            }
        }
    }

    #[test]
    fn external_targets_are_not_backed_up_and_drills_refuse_what_cannot_be_loaded() {
        for s in all() {
            assert_eq!(s.takes_backups(), s.kind() != TargetKind::External);
            let refuses = matches!(s.kind(), TargetKind::Command | TargetKind::External);
            assert_eq!(s.drill_refusal().is_some(), refuses, "{}", s.target());
        }
    }

    #[test]
    fn names_inside_a_backup_are_the_database_file_or_the_target_tar() {
        let by_name = |n: &str| all().into_iter().find(|s| s.target() == n).unwrap();
        assert_eq!(by_name("db").content_name(), "app.db");
        assert_eq!(by_name("far-db").artifact_ext(), "sqlite");
        assert_eq!(by_name("tree").content_name(), "tree.tar");
        assert_eq!(by_name("far-tree").artifact_ext(), "tar");
    }
}
