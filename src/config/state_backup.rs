//! `[server] state_backup`: how lifeboat's own state database goes off-site by itself.
//!
//! When the config does not write a `[targets.lifeboat-state]` of its own, lifeboat adds
//! that target: the state database (`server.state`), backed up like any sqlite target
//! into `state_backup.store`, or else the off-site store (the first store of kind `s3`
//! by name), on `state_backup.schedule` (default hourly) with `state_backup.retention`.
//! `config check` warns when the state is backed up only onto this host, or not at all.

use serde::Deserialize;

use super::{Config, CronSchedule, Retention, StoreKind, TargetConfig, TargetKind};

/// The name of the target that protects lifeboat's own state database.
pub const STATE_TARGET: &str = "lifeboat-state";
/// Hourly, on the hour (UTC).
pub const DEFAULT_STATE_SCHEDULE: &str = "0 0 * * * *";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateBackup {
    /// The store the state goes to. Default: the first store of kind "s3" by name.
    pub store: Option<String>,
    /// Cron schedule. Default hourly on the hour.
    pub schedule: Option<CronSchedule>,
    /// Retention. Default last 3, hourly 24, daily 7, weekly 4, monthly 6.
    pub retention: Option<Retention>,
    /// A drill of the state (restore, catalog rebuild, counts) on this cron schedule.
    pub drill_schedule: Option<CronSchedule>,
}

fn default_retention() -> Retention {
    Retention {
        last: Some(3),
        hourly: Some(24),
        daily: Some(7),
        weekly: Some(4),
        monthly: Some(6),
        yearly: None,
    }
}

impl Config {
    /// The first store of kind s3, by name: where backups survive the loss of this host.
    pub fn offsite_store(&self) -> Option<&str> {
        self.stores
            .iter()
            .find(|(_, s)| s.kind == StoreKind::S3)
            .map(|(n, _)| n.as_str())
    }

    /// The target that backs up the state database (`server.state`), if any.
    pub fn state_target(&self) -> Option<(&str, &TargetConfig)> {
        self.targets
            .iter()
            .find(|(_, t)| {
                t.kind == TargetKind::Sqlite
                    && t.host.is_none()
                    && t.path.as_deref() == Some(self.server.state.as_path())
            })
            .map(|(n, t)| (n.as_str(), t))
    }

    /// The store that keeps state backups, if any (what `lifeboat recover --store` takes).
    pub fn state_backup_store(&self) -> Option<&str> {
        self.state_target().and_then(|(_, t)| t.store.as_deref())
    }

    /// The name state backups are kept under: the state target's, else the built-in one.
    pub fn state_target_name(&self) -> &str {
        self.state_target().map_or(STATE_TARGET, |(n, _)| n)
    }

    /// Add the built-in `lifeboat-state` target (see the module comment). Called after
    /// paths are resolved and before validation.
    pub(super) fn add_state_target(&mut self) -> Result<(), String> {
        let explicit = self.targets.contains_key(STATE_TARGET);
        let Some(sb) = self.server.state_backup.clone() else {
            if explicit {
                return Ok(());
            }
            return match self.offsite_store().map(str::to_string) {
                Some(store) => self.insert_state_target(store, &StateBackup::default()),
                None => Ok(()), // nowhere off-site: `config check` says so
            };
        };
        if explicit {
            return Err(format!(
                "server.state_backup: the config also has [targets.{STATE_TARGET}]; keep one of them"
            ));
        }
        let store = match (&sb.store, self.offsite_store()) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => s.to_string(),
            (None, None) => {
                return Err(
                    "server.state_backup.store: required when no store of kind \"s3\" exists"
                        .into(),
                );
            }
        };
        if !self.stores.contains_key(&store) {
            return Err(format!(
                "server.state_backup.store: no store named {store:?} (stores: {})",
                super::names(self.stores.keys())
            ));
        }
        self.insert_state_target(store, &sb)
    }

    fn insert_state_target(&mut self, store: String, sb: &StateBackup) -> Result<(), String> {
        let base = "kind = \"sqlite\"\ngrace = \"30m\"\nmax_duration = \"10m\"\nrto = \"5m\"\nrpo = \"2h\"\n";
        let mut t: TargetConfig = toml::from_str(base).map_err(|e| e.to_string())?;
        t.path = Some(self.server.state.clone());
        t.store = Some(store);
        t.schedule = Some(match &sb.schedule {
            Some(s) => s.clone(),
            None => CronSchedule(DEFAULT_STATE_SCHEDULE.parse().expect("valid cron")),
        });
        t.retention = sb.retention.clone().unwrap_or_else(default_retention);
        t.drill_schedule = sb.drill_schedule.clone();
        t.built_in = true;
        self.targets.insert(STATE_TARGET.to_string(), t);
        Ok(())
    }

    /// Warnings for `config check` about where the state database is backed up.
    pub fn state_backup_warnings(&self) -> Vec<String> {
        let offsite = self.offsite_store();
        let Some((name, t)) = self.state_target() else {
            let hint = match offsite {
                Some(s) => format!("set `state_backup = {{ store = \"{s}\" }}` under [server]"),
                None => "add a store of kind \"s3\" (the state then goes there by itself)".into(),
            };
            return vec![format!(
                "server.state: lifeboat's own state database ({}) is not backed up: when this host is lost, the catalog, approvals and incident timelines go with it; {hint}",
                self.server.state.display()
            )];
        };
        let store = t.store.as_deref().unwrap_or_default();
        if self.stores.get(store).map(|s| s.kind) != Some(StoreKind::Local) {
            return Vec::new();
        }
        let (key, hint) = match (t.built_in, offsite) {
            (true, Some(s)) => (
                "server.state_backup.store".to_string(),
                format!("set `state_backup = {{ store = \"{s}\" }}` under [server]"),
            ),
            (true, None) => (
                "server.state_backup.store".to_string(),
                "add a store of kind \"s3\" and name it here".to_string(),
            ),
            (false, Some(s)) => (
                format!("targets.{name}.store"),
                format!(
                    "set `store = \"{s}\"` there, or remove [targets.{name}] and let lifeboat back the state up to \"{s}\" by itself"
                ),
            ),
            (false, None) => (
                format!("targets.{name}.store"),
                "add a store of kind \"s3\" and set `store` there to its name".to_string(),
            ),
        };
        vec![format!(
            "{key}: lifeboat's state database is only backed up onto this host (local store {store:?}); when this host is lost, so are those backups; {hint}"
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "t.toml", Path::new("/etc/lifeboat"), &|_| None).map_err(|e| e.message)
    }

    const STORES: &str = "[stores.offsite]\nkind = \"s3\"\nbucket = \"b\"\n\n[stores.local]\nkind = \"local\"\npath = \"/srv/backups\"\n";

    #[test]
    fn with_an_s3_store_the_state_goes_there_hourly_by_itself() {
        let c = parse(STORES).unwrap();
        let t = &c.targets[STATE_TARGET];
        assert!(t.built_in);
        assert_eq!(t.store.as_deref(), Some("offsite"));
        assert_eq!(t.path.as_deref(), Some(c.server.state.as_path()));
        assert_eq!(t.retention, default_retention());
        let s = t.schedule.as_ref().unwrap();
        let next: Vec<_> = s.0.upcoming(chrono::Utc).take(2).collect();
        assert_eq!((next[1] - next[0]).num_seconds(), 3600);
        assert_eq!(c.state_target().map(|(n, _)| n), Some(STATE_TARGET));
        assert!(c.state_backup_warnings().is_empty());
    }

    #[test]
    fn state_backup_chooses_the_store_schedule_and_retention() {
        let c = parse(&format!(
            "[server]\nstate_backup = {{ store = \"local\", schedule = \"0 */15 * * * *\", retention = {{ last = 5 }} }}\n{STORES}"
        ))
        .unwrap();
        let t = &c.targets[STATE_TARGET];
        assert_eq!(t.store.as_deref(), Some("local"));
        assert_eq!(t.retention.last, Some(5));
        assert_eq!(t.retention.hourly, None);
        let w = c.state_backup_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("server.state_backup.store: lifeboat's state database is only backed up onto this host"), "{w:?}");
        assert!(w[0].contains("store = \"offsite\""), "{w:?}");
    }

    #[test]
    fn conflicting_or_dangling_settings_are_errors_naming_the_key() {
        let both = parse(&format!(
            "[server]\nstate_backup = {{}}\n{STORES}\n[targets.lifeboat-state]\nkind = \"sqlite\"\npath = \"/x.db\"\nstore = \"local\"\n"
        ))
        .unwrap_err();
        assert!(
            both.contains("server.state_backup: the config also has [targets.lifeboat-state]"),
            "{both}"
        );
        let unknown = parse(&format!(
            "[server]\nstate_backup = {{ store = \"nas\" }}\n{STORES}"
        ))
        .unwrap_err();
        assert!(
            unknown.contains("server.state_backup.store: no store named \"nas\""),
            "{unknown}"
        );
        let nowhere = parse("[server]\nstate_backup = {}\n").unwrap_err();
        assert!(
            nowhere.contains("server.state_backup.store: required"),
            "{nowhere}"
        );
    }

    #[test]
    fn a_state_kept_only_on_this_host_or_nowhere_is_warned_about() {
        let local_only = parse("[stores.local]\nkind = \"local\"\npath = \"/srv/b\"\n").unwrap();
        assert!(!local_only.targets.contains_key(STATE_TARGET));
        let w = local_only.state_backup_warnings();
        assert!(
            w[0].starts_with("server.state: lifeboat's own state database"),
            "{w:?}"
        );
        assert!(w[0].contains("is not backed up"), "{w:?}");
        let explicit = parse(&format!(
            "{STORES}\n[targets.lifeboat-state]\nkind = \"sqlite\"\npath = \"../var/lifeboat.db\"\nstore = \"local\"\n"
        ))
        .unwrap();
        assert!(!explicit.targets[STATE_TARGET].built_in);
        let w = explicit.state_backup_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("targets.lifeboat-state.store: lifeboat's state database is only backed up onto this host (local store \"local\")"), "{w:?}");
        assert!(w[0].contains("set `store = \"offsite\"` there"), "{w:?}");
        // The built-in default keeps the state in a local store: said, with what to add.
        let default = Config::parse(
            crate::config::EMBEDDED_DEFAULT,
            "<embedded>",
            Path::new("config"),
            &|_| None,
        )
        .unwrap();
        let w = default.state_backup_warnings();
        assert!(w[0].starts_with("targets.lifeboat-state.store: lifeboat's state database is only backed up onto this host"), "{w:?}");
        assert!(
            w[0].contains("add a store of kind \"s3\" and set `store` there"),
            "{w:?}"
        );
    }
}
