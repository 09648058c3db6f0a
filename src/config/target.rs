//! `[targets.*]`: what is backed up (a kind, its data and its store), on which
//! schedules, kept how long, drilled and verified how; the keys each kind requires, and
//! the filesystem checks `config check` makes of them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::remote::{check_remote_files, validate_remote};
use super::target_hooks::{TargetHooks, check_hook_files, validate_hooks};
use super::{Check, Config, CronSchedule, HumanDuration, Secret, TimeZone, is_http_url, names};

/// What a target is. Also the `kind` of its backups' manifests, under the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    Sqlite,
    Directory,
    GcpDisk,
    Command,
    External,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Sqlite => "sqlite",
            TargetKind::Directory => "directory",
            TargetKind::GcpDisk => "gcp-disk",
            TargetKind::Command => "command",
            TargetKind::External => "external",
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The filesystem snapshot a directory target is read from (`snapshot = "btrfs"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Snapshot {
    /// A read-only snapshot of the btrfs subvolume at the target's path.
    Btrfs,
}

/// What a directory backup does when files changed while they were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnChange {
    /// Keep the backup, flagged `consistent: false`, and warn (status amber, one alert).
    #[default]
    Warn,
    /// Publish nothing; the backup fails naming the files.
    Fail,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
}

impl Retention {
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub kind: TargetKind,
    pub path: Option<PathBuf>,
    pub store: Option<String>,
    pub schedule: Option<CronSchedule>,
    pub grace: Option<HumanDuration>,
    pub max_duration: Option<HumanDuration>,
    #[serde(default)]
    pub retention: Retention,
    pub rto: Option<HumanDuration>,
    pub rpo: Option<HumanDuration>,
    #[serde(default = "default_approvals")]
    pub restore_approvals: u32,
    pub drill_schedule: Option<CronSchedule>,
    /// Cron for verifying the newest backup in `serve`; a failed verify alerts.
    pub verify_schedule: Option<CronSchedule>,
    #[serde(default)]
    pub restore_roots: Vec<PathBuf>,
    pub timezone: Option<TimeZone>,
    pub realert: Option<HumanDuration>,
    #[serde(default)]
    pub checks: Vec<Check>,
    /// directory: globs relative to `path`; empty include = everything.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// directory, on this host: read a filesystem snapshot instead of the live tree.
    pub snapshot: Option<Snapshot>,
    /// directory: what a copy that changed while read does (default warn).
    pub on_change: Option<OnChange>,
    /// Remote host (`ssh://user@host:port`) and its SSH settings: the private key
    /// lifeboat authenticates with (required), the known_hosts file its host key is
    /// checked against (required), and how long a remote command may send nothing
    /// before it is ended (default 10m).
    pub host: Option<String>,
    pub ssh_identity: Option<PathBuf>,
    pub ssh_known_hosts: Option<PathBuf>,
    pub ssh_timeout: Option<HumanDuration>,
    /// gcp-disk
    pub project: Option<String>,
    pub zone: Option<String>,
    pub disk: Option<String>,
    pub endpoint: Option<String>,
    pub credentials: Option<String>,
    /// gcp-disk: how often to poll a running operation at first (it backs off to ten
    /// times this). Default 1s.
    pub poll_interval: Option<HumanDuration>,
    /// command: argv of a dump command whose stdout is the backup.
    pub command: Option<Vec<String>>,
    /// external: bearer token for `POST /hooks/ping/<target>`.
    pub token: Option<Secret>,
    /// A healthchecks.io-style monitor told of each backup's start, success and failure.
    pub ping_url: Option<Secret>,
    /// `serve` backs the target up at start when it has no backup at all yet.
    #[serde(default)]
    pub backup_on_start: bool,
    /// `[targets.<t>.hooks]`: commands run around its backups and restores.
    pub hooks: Option<TargetHooks>,
    /// sqlite: ship every committed transaction to the store within this interval
    /// (continuous replication, `lifeboat replicate` / `serve`).
    pub continuous: Option<HumanDuration>,
    /// sqlite, continuous: how far replication may fall behind before it alerts (1m).
    pub max_lag: Option<HumanDuration>,
    /// sqlite, continuous: how far back a restore to any moment reaches (7d).
    pub continuous_history: Option<HumanDuration>,
    /// sqlite, continuous: the span whose shipped segments are merged into one object
    /// once it is that old (1h).
    pub continuous_compact: Option<HumanDuration>,
    /// sqlite, continuous: the directory on the replicator's host where each round's
    /// segment is made durable before it is uploaded (`<state dir>/spool`).
    pub continuous_spool: Option<PathBuf>,
    /// sqlite, continuous: how much the spool may hold while the store is unreachable
    /// before the replicator stops advancing and alerts (1GiB).
    pub continuous_spool_max: Option<super::continuous::HumanBytes>,
    /// Added by lifeboat itself (the state database's target), not written in the file.
    #[serde(skip)]
    pub built_in: bool,
}

fn default_approvals() -> u32 {
    1
}

/// How far replication may fall behind before it alerts, when `max_lag` is not set.
pub const DEFAULT_MAX_LAG: std::time::Duration = std::time::Duration::from_secs(60);

impl TargetConfig {
    /// The shipping interval of a continuously replicated target; `None` for the others.
    pub fn continuous_every(&self) -> Option<std::time::Duration> {
        self.continuous.map(|d| d.0)
    }

    /// `max_lag`, or its default.
    pub fn max_lag(&self) -> std::time::Duration {
        self.max_lag.map_or(DEFAULT_MAX_LAG, |d| d.0)
    }

    /// `continuous_history`, or its default (7 days).
    pub fn continuous_history(&self) -> std::time::Duration {
        self.continuous_history
            .map_or(std::time::Duration::from_secs(7 * 86_400), |d| d.0)
    }

    /// `continuous_compact`, or its default (an hour).
    pub fn compact_span(&self) -> std::time::Duration {
        self.continuous_compact
            .map_or(std::time::Duration::from_secs(3600), |d| d.0)
    }

    /// `continuous_spool_max`, or its default (1 GiB).
    pub fn spool_max(&self) -> u64 {
        self.continuous_spool_max.map_or(1 << 30, |b| b.0)
    }

    /// The path the target's data lives at; validated to exist for local path kinds.
    pub fn data_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether lifeboat keeps backups of this target that `list` and `prune` see: in a
    /// store, or (gcp-disk) as cloud snapshots.
    pub fn keeps_backups(&self) -> bool {
        self.store.is_some() || self.kind == TargetKind::GcpDisk
    }
}

/// The keys only some kinds of target read, and those kinds. Any other kind refuses
/// them at load: a `disk` on a sqlite target is a mistake to say, not a key to ignore.
const KIND_KEYS: [(&str, &[TargetKind]); 21] = [
    ("path", &[TargetKind::Sqlite, TargetKind::Directory]),
    ("include", &[TargetKind::Directory]),
    ("exclude", &[TargetKind::Directory]),
    ("snapshot", &[TargetKind::Directory]),
    ("on_change", &[TargetKind::Directory]),
    ("project", &[TargetKind::GcpDisk]),
    ("zone", &[TargetKind::GcpDisk]),
    ("disk", &[TargetKind::GcpDisk]),
    ("endpoint", &[TargetKind::GcpDisk]),
    ("credentials", &[TargetKind::GcpDisk]),
    ("poll_interval", &[TargetKind::GcpDisk]),
    ("command", &[TargetKind::Command]),
    ("token", &[TargetKind::External]),
    // An external target's backups run elsewhere: lifeboat never sees them start.
    ("ping_url", LIFEBOAT_BACKS_UP),
    ("backup_on_start", LIFEBOAT_BACKS_UP),
    ("continuous", &[TargetKind::Sqlite]),
    ("max_lag", &[TargetKind::Sqlite]),
    ("continuous_history", &[TargetKind::Sqlite]),
    ("continuous_compact", &[TargetKind::Sqlite]),
    ("continuous_spool", &[TargetKind::Sqlite]),
    ("continuous_spool_max", &[TargetKind::Sqlite]),
];

/// The kinds whose backups lifeboat takes itself.
const LIFEBOAT_BACKS_UP: &[TargetKind] = &[
    TargetKind::Sqlite,
    TargetKind::Directory,
    TargetKind::GcpDisk,
    TargetKind::Command,
];

impl TargetConfig {
    /// Whether the key `k` of [`KIND_KEYS`] is set.
    fn has(&self, k: &str) -> bool {
        match k {
            "path" => self.path.is_some(),
            "include" => !self.include.is_empty(),
            "exclude" => !self.exclude.is_empty(),
            "snapshot" => self.snapshot.is_some(),
            "on_change" => self.on_change.is_some(),
            "project" => self.project.is_some(),
            "zone" => self.zone.is_some(),
            "disk" => self.disk.is_some(),
            "endpoint" => self.endpoint.is_some(),
            "credentials" => self.credentials.is_some(),
            "poll_interval" => self.poll_interval.is_some(),
            "command" => self.command.is_some(),
            "token" => self.token.is_some(),
            "ping_url" => self.ping_url.is_some(),
            "backup_on_start" => self.backup_on_start,
            "continuous" => self.continuous.is_some(),
            "max_lag" => self.max_lag.is_some(),
            "continuous_history" => self.continuous_history.is_some(),
            "continuous_compact" => self.continuous_compact.is_some(),
            "continuous_spool" => self.continuous_spool.is_some(),
            "continuous_spool_max" => self.continuous_spool_max.is_some(),
            _ => false,
        }
    }

    /// The first key set that belongs to other kinds: the key and the error to show.
    fn foreign_key(&self, name: &str) -> Option<String> {
        let (k, kinds) = KIND_KEYS
            .iter()
            .find(|(k, kinds)| !kinds.contains(&self.kind) && self.has(k))?;
        let owners: Vec<String> = kinds.iter().map(|o| format!("\"{o}\"")).collect();
        Some(format!(
            "targets.{name}.{k}: not a key of kind \"{}\" (only {} targets have it); remove it, or fix `kind`",
            self.kind,
            owners.join(" and ")
        ))
    }
}

impl Config {
    pub(super) fn validate_target(&self, name: &str, t: &TargetConfig) -> Result<(), String> {
        let key = |k: &str| format!("targets.{name}.{k}");
        let kind = t.kind.as_str();
        if let Some(e) = t.foreign_key(name) {
            return Err(e);
        }
        let needs = |present: bool, k: &str| -> Result<(), String> {
            if present {
                Ok(())
            } else {
                Err(format!("{}: required for kind \"{kind}\"", key(k)))
            }
        };
        match t.kind {
            TargetKind::Sqlite | TargetKind::Directory => {
                needs(t.path.is_some(), "path")?;
                needs(t.store.is_some(), "store")?;
            }
            TargetKind::Command => {
                needs(t.command.as_ref().is_some_and(|c| !c.is_empty()), "command")?;
                needs(t.store.is_some(), "store")?;
            }
            TargetKind::GcpDisk => {
                needs(t.project.is_some(), "project")?;
                needs(t.zone.is_some(), "zone")?;
                needs(t.disk.is_some(), "disk")?;
                if t.store.is_some() {
                    return Err(format!(
                        "{}: gcp-disk targets keep their backups as Compute Engine snapshots, not in a store; remove `store`",
                        key("store")
                    ));
                }
                match t.credentials.as_deref() {
                    None | Some("default") | Some("anonymous") => {}
                    Some(other) => {
                        return Err(format!(
                            "{}: must be \"default\" or \"anonymous\", not {other:?}",
                            key("credentials")
                        ));
                    }
                }
                if let Some(endpoint) = &t.endpoint
                    && !is_http_url(endpoint)
                {
                    return Err(format!(
                        "{}: must be a URL starting with http:// or https://",
                        key("endpoint")
                    ));
                }
            }
            TargetKind::External => {
                needs(t.schedule.is_some(), "schedule")?;
                needs(t.token.is_some(), "token")?;
            }
        }
        if let Some(store) = &t.store
            && !self.stores.contains_key(store)
        {
            return Err(format!(
                "{}: no store named {store:?} (stores: {})",
                key("store"),
                names(self.stores.keys())
            ));
        }
        if let Some(url) = &t.ping_url
            && !is_http_url(url.expose())
        {
            return Err(format!(
                "{}: must be a URL starting with http:// or https://",
                key("ping_url")
            ));
        }
        validate_remote(name, t)?;
        if t.snapshot.is_some() && t.host.is_some() {
            return Err(format!(
                "{}: a snapshot is taken on this host, and this target is on {}; remove `snapshot` (or run lifeboat on that host)",
                key("snapshot"),
                t.host.as_deref().unwrap_or_default()
            ));
        }
        validate_hooks(name, t)?;
        self.validate_continuous(name, t)?;
        if !t.include.is_empty() || !t.exclude.is_empty() {
            for g in t.include.iter().chain(&t.exclude) {
                globset::Glob::new(g)
                    .map_err(|e| format!("{}: bad glob {g:?}: {e}", key("include/exclude")))?;
            }
        }
        for (i, c) in t.checks.iter().enumerate() {
            c.validate(&format!("{}[{i}]", key("checks")), t.kind)?;
        }
        Ok(())
    }

    /// Filesystem checks for `config check`: data paths and restore roots exist.
    /// Kept out of `validate()` so the bot can start before a target's disk is mounted.
    pub fn check_reachable(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, t) in &self.targets {
            problems.extend(check_hook_files(name, t));
            if t.host.is_some() {
                problems.extend(check_remote_files(name, t));
                continue; // its paths are on the other host
            }
            for root in &t.restore_roots {
                if !root.is_dir() {
                    problems.push(format!(
                        "targets.{name}.restore_roots: {} is not an existing directory",
                        root.display()
                    ));
                }
            }
            let local = matches!(t.kind, TargetKind::Sqlite | TargetKind::Directory);
            let Some(path) = t.path.as_deref().filter(|_| local) else {
                continue;
            };
            if path == self.server.state {
                continue; // lifeboat's own state: created on first start
            }
            if !path.exists() {
                problems.push(format!(
                    "targets.{name}.path: {} does not exist",
                    path.display()
                ));
            }
            problems.extend(super::continuous::check_wal_file(name, t));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_test as parse;

    #[test]
    fn unknown_store_reference() {
        let e = parse("[targets.a]\nkind=\"sqlite\"\npath=\"/tmp/a.db\"\nstore=\"nope\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("targets.a.store"), "{e}");
    }

    #[test]
    fn a_key_of_another_kind_is_refused_at_load_naming_it() {
        let base = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n";
        let sqlite =
            format!("{base}[targets.a]\nkind=\"sqlite\"\npath=\"/tmp/a.db\"\nstore=\"l\"\n");
        let gcp = "[targets.d]\nkind=\"gcp-disk\"\nproject=\"p\"\nzone=\"z\"\ndisk=\"d\"\n";
        let cmd = format!("{base}[targets.c]\nkind=\"command\"\ncommand=[\"dump\"]\nstore=\"l\"\n");
        assert!(parse(&sqlite).is_ok());
        assert!(parse(gcp).is_ok());
        assert!(parse(&cmd).is_ok());
        for (text, named, owner) in [
            (
                format!("{sqlite}disk=\"d\"\n"),
                "targets.a.disk",
                "\"gcp-disk\"",
            ),
            (
                format!("{sqlite}include=[\"*.db\"]\n"),
                "targets.a.include",
                "\"directory\"",
            ),
            (
                format!("{sqlite}on_change=\"fail\"\n"),
                "targets.a.on_change",
                "\"directory\"",
            ),
            (
                format!("{sqlite}command=[\"x\"]\n"),
                "targets.a.command",
                "\"command\"",
            ),
            (
                format!("{gcp}path=\"/srv\"\n"),
                "targets.d.path",
                "\"sqlite\" and \"directory\"",
            ),
            (
                format!("{cmd}poll_interval=\"1s\"\n"),
                "targets.c.poll_interval",
                "\"gcp-disk\"",
            ),
        ] {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(named), "{named}: {e}");
            assert!(e.contains("not a key of kind"), "{e}");
            assert!(e.contains(owner), "{owner}: {e}");
        }
        let e = parse(&format!("{sqlite}token=\"${{TOKEN}}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("targets.a.token") && e.contains("\"external\""),
            "{e}"
        );
    }

    #[test]
    fn a_ping_url_is_a_secret_url_of_a_target_lifeboat_backs_up() {
        let base = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.a]\nkind=\"sqlite\"\npath=\"/tmp/a.db\"\nstore=\"l\"\n";
        let t = parse(&format!(
            "{base}ping_url=\"https://hc.example/${{TOKEN}}\"\n"
        ))
        .unwrap();
        let url = t.targets["a"].ping_url.as_ref().unwrap();
        assert_eq!(url.expose(), "https://hc.example/s3cr3t");
        let e = parse(&format!("{base}ping_url=\"https://hc.example/x\"\n")).unwrap_err();
        assert!(e.to_string().contains("targets.a.ping_url"), "{e}");
        let e = parse(&format!("{base}ping_url=\"${{TOKEN}}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("targets.a.ping_url") && !e.contains("s3cr3t"),
            "{e}"
        );
        let ext = "[targets.e]\nkind=\"external\"\nschedule=\"0 0 * * * *\"\ntoken=\"${TOKEN}\"\n";
        let e = parse(&format!("{ext}ping_url=\"http://x/${{TOKEN}}\"\n")).unwrap_err();
        assert!(e.to_string().contains("targets.e.ping_url"), "{e}");
    }

    #[test]
    fn on_change_is_warn_or_fail_and_warn_by_default() {
        let dir = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.v]\nkind=\"directory\"\npath=\"/srv\"\nstore=\"l\"\n";
        assert_eq!(parse(dir).unwrap().targets["v"].on_change, None);
        let fail = parse(&format!("{dir}on_change=\"fail\"\n")).unwrap();
        assert_eq!(
            fail.targets["v"].on_change,
            Some(crate::config::OnChange::Fail)
        );
        let e = parse(&format!("{dir}on_change=\"ignore\"\n")).unwrap_err();
        assert!(e.to_string().contains("on_change"), "{e}");
    }

    #[test]
    fn gcp_disk_targets_keep_no_store() {
        let gcp = "[targets.d]\nkind=\"gcp-disk\"\nproject=\"p\"\nzone=\"z\"\ndisk=\"d\"\n";
        assert!(parse(gcp).is_ok());
        let e = parse(&format!(
            "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n{gcp}store=\"l\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("targets.d.store"), "{e}");
        let e = parse(&format!("{gcp}credentials=\"mine\"\n")).unwrap_err();
        assert!(e.to_string().contains("targets.d.credentials"), "{e}");
    }

    #[test]
    fn a_btrfs_snapshot_is_a_key_of_local_directory_targets_only() {
        let base = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n";
        let tree =
            format!("{base}[targets.t]\nkind=\"directory\"\npath=\"/srv/data\"\nstore=\"l\"\n");
        let t = parse(&format!("{tree}snapshot=\"btrfs\"\n")).unwrap();
        assert_eq!(t.targets["t"].snapshot, Some(super::Snapshot::Btrfs));
        let e = parse(&format!("{tree}snapshot=\"zfs\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("btrfs"), "{e}");
        let far = format!(
            "{tree}snapshot=\"btrfs\"\nhost=\"ssh://b@db1:22\"\nssh_identity=\"/k\"\nssh_known_hosts=\"/h\"\n"
        );
        let e = parse(&far).unwrap_err().to_string();
        assert!(
            e.contains("targets.t.snapshot") && e.contains("ssh://b@db1:22"),
            "{e}"
        );
        let db = format!(
            "{base}[targets.a]\nkind=\"sqlite\"\npath=\"/tmp/a.db\"\nstore=\"l\"\nsnapshot=\"btrfs\"\n"
        );
        let e = parse(&db).unwrap_err().to_string();
        assert!(
            e.contains("targets.a.snapshot") && e.contains("not a key of kind"),
            "{e}"
        );
    }
}
