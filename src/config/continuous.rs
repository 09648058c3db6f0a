//! `continuous`, `max_lag` and `continuous_history` on a `sqlite` target: continuous
//! replication's keys and their checks (into any store: a repository store keeps the
//! segments sealed with its key beside its snapshots). A database on another host (`host`) is replicated by `lifeboat replicate`
//! run on that host; this config then reads its lag from the store. The spool's keys
//! (`continuous_spool`, `continuous_spool_max`) and where the spool is by default.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::{Config, TargetConfig};

/// A size written as text, such as "1GiB", "512MiB" or "64KiB".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanBytes(pub u64);

impl<'de> Deserialize<'de> for HumanBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| HumanBytes(b.as_u64()))
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid size {text:?} (such as \"1GiB\" or \"512MiB\"): {e}"
                ))
            })
    }
}

impl Config {
    /// Where a continuous target's spool is: `continuous_spool`, or `spool/` beside the
    /// state database; each target in its own folder under it.
    pub fn spool_dir(&self, name: &str) -> PathBuf {
        let root = self
            .targets
            .get(name)
            .and_then(|t| t.continuous_spool.clone())
            .unwrap_or_else(|| {
                self.server
                    .state
                    .parent()
                    .map_or_else(|| PathBuf::from("spool"), |p| p.join("spool"))
            });
        root.join(name)
    }
}

impl Config {
    pub(super) fn validate_continuous(&self, name: &str, t: &TargetConfig) -> Result<(), String> {
        let key = |k: &str| format!("targets.{name}.{k}");
        let Some(every) = t.continuous else {
            for k in [
                "max_lag",
                "continuous_history",
                "continuous_compact",
                "continuous_spool",
                "continuous_spool_max",
            ] {
                let set = match k {
                    "max_lag" => t.max_lag.is_some(),
                    "continuous_history" => t.continuous_history.is_some(),
                    "continuous_spool" => t.continuous_spool.is_some(),
                    "continuous_spool_max" => t.continuous_spool_max.is_some(),
                    _ => t.continuous_compact.is_some(),
                };
                if set {
                    return Err(format!(
                        "{}: only read with `continuous` (continuous replication); set `continuous = \"1s\"` or remove it",
                        key(k)
                    ));
                }
            }
            return Ok(());
        };
        if every.0.is_zero() || every.0 > std::time::Duration::from_secs(3600) {
            return Err(format!(
                "{}: the shipping interval must be between 1ms and 1h, such as \"1s\"",
                key("continuous")
            ));
        }
        if t.continuous_spool_max.is_some_and(|b| b.0 == 0) {
            return Err(format!(
                "{}: the spool needs room for at least one segment, such as \"1GiB\"",
                key("continuous_spool_max")
            ));
        }
        if t.max_lag() < every.0 {
            return Err(format!(
                "{}: {} is shorter than the shipping interval `continuous` ({}), so replication would count as late between any two rounds; make it several intervals",
                key("max_lag"),
                humantime::format_duration(t.max_lag()),
                humantime::format_duration(every.0)
            ));
        }
        if t.built_in {
            return Err(format!(
                "{}: not for lifeboat's own state",
                key("continuous")
            ));
        }
        Ok(())
    }
}

/// What `config check` finds of a continuous target's database on this host: one not in
/// WAL mode, read from the file header's format bytes (2 = WAL) without opening it with
/// SQLite.
pub(super) fn check_wal_file(name: &str, t: &TargetConfig) -> Option<String> {
    let path = t.path.as_deref().filter(|_| t.continuous.is_some())?;
    let mut header = [0u8; 20];
    let mut file = std::fs::File::open(path).ok()?;
    std::io::Read::read_exact(&mut file, &mut header).ok()?;
    if header.starts_with(b"SQLite format 3\0") && header[18] == 2 && header[19] == 2 {
        return None;
    }
    Some(format!(
        "targets.{name}.continuous: {} is not in WAL mode; continuous replication ships the write-ahead log, so switch the database with `PRAGMA journal_mode=WAL`",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::parse_test as parse;

    const BASE: &str = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.a]\nkind=\"sqlite\"\npath=\"/tmp/a.db\"\nstore=\"l\"\n";

    #[test]
    fn continuous_is_read_on_sqlite_targets_with_its_defaults() {
        let c = parse(&format!("{BASE}continuous=\"1s\"\n")).unwrap();
        let t = &c.targets["a"];
        assert_eq!(
            t.continuous_every(),
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(t.max_lag(), std::time::Duration::from_secs(60));
        let c = parse(&format!(
            "{BASE}continuous=\"1s\"\nmax_lag=\"5m\"\ncontinuous_history=\"2d\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.targets["a"].max_lag(),
            std::time::Duration::from_secs(300)
        );
    }

    #[test]
    fn continuous_keys_elsewhere_are_refused_naming_them() {
        let dir = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.d]\nkind=\"directory\"\npath=\"/srv\"\nstore=\"l\"\n";
        for k in [
            "continuous=\"1s\"",
            "max_lag=\"1m\"",
            "continuous_history=\"7d\"",
        ] {
            let e = parse(&format!("{dir}{k}\n")).unwrap_err().to_string();
            let name = k.split('=').next().unwrap();
            assert!(e.contains(&format!("targets.d.{name}")), "{e}");
            assert!(e.contains("not a key of kind"), "{e}");
        }
        let e = parse(&format!("{BASE}max_lag=\"1m\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("targets.a.max_lag") && e.contains("continuous"),
            "{e}"
        );
    }

    #[test]
    fn a_max_lag_shorter_than_the_interval_is_refused() {
        let e = parse(&format!("{BASE}continuous=\"10s\"\nmax_lag=\"5s\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("targets.a.max_lag") && e.contains("shorter than the shipping interval"),
            "{e}"
        );
        assert!(parse(&format!("{BASE}continuous=\"10s\"\nmax_lag=\"30s\"\n")).is_ok());
    }

    #[test]
    fn a_repository_store_is_taken_and_a_zero_interval_is_not() {
        let repo = "[stores.r]\nkind=\"repository\"\nlocation=\"/tmp/r\"\npassword=\"${TOKEN}\"\n[targets.a]\nkind=\"sqlite\"\npath=\"/tmp/a.db\"\nstore=\"r\"\ncontinuous=\"1s\"\n";
        let c = parse(repo).unwrap();
        assert!(c.targets["a"].continuous.is_some());
        let e = parse(&format!("{BASE}continuous=\"0s\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("targets.a.continuous"), "{e}");
    }

    #[test]
    fn a_database_on_another_host_is_continuous_there() {
        let far = format!(
            "{BASE}continuous=\"1s\"\nhost=\"ssh://b@db1:22\"\nssh_identity=\"/k\"\nssh_known_hosts=\"/h\"\nschedule=\"0 0 3 * * *\"\n"
        );
        let c = parse(&far).unwrap();
        let t = &c.targets["a"];
        assert!(crate::replicate::replicated_on_its_host(t));
        // This lifeboat takes no scheduled backup of it: the replicator there does.
        assert!(!crate::schedule::backed_up_on_schedule_here("a", t));
        let here = parse(&format!(
            "{BASE}continuous=\"1s\"\nschedule=\"0 0 3 * * *\"\n"
        ))
        .unwrap();
        assert!(!crate::replicate::replicated_on_its_host(
            &here.targets["a"]
        ));
        assert!(crate::schedule::backed_up_on_schedule_here(
            "a",
            &here.targets["a"]
        ));
    }

    #[test]
    fn the_spool_is_beside_the_state_unless_set_and_its_bound_is_a_size() {
        let c = parse(&format!("{BASE}continuous=\"1s\"\n")).unwrap();
        let state_dir = c.server.state.parent().unwrap().to_path_buf();
        assert_eq!(c.spool_dir("a"), state_dir.join("spool/a"));
        assert_eq!(c.targets["a"].spool_max(), 1 << 30);
        let c = parse(&format!(
            "{BASE}continuous=\"1s\"\ncontinuous_spool=\"/var/spool/lb\"\ncontinuous_spool_max=\"64KiB\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.spool_dir("a"),
            std::path::Path::new("/var/spool/lb/a").to_path_buf()
        );
        assert_eq!(c.targets["a"].spool_max(), 64 * 1024);
        for bad in ["\"lots\"", "\"0B\""] {
            let e = parse(&format!(
                "{BASE}continuous=\"1s\"\ncontinuous_spool_max={bad}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("continuous_spool_max") || e.contains("invalid size"),
                "{e}"
            );
        }
        let e = parse(&format!("{BASE}continuous_spool=\"/s\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("targets.a.continuous_spool"), "{e}");
    }
}
