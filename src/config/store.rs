//! `[stores.<name>]`: where backups are kept. Each kind takes its own keys; the keys of
//! other kinds are refused so a typo cannot silently mean another store.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Secret, is_http_url};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Local,
    S3,
    /// A restic-format repository (deduplicated, compressed, encrypted), at a local path
    /// or on S3, that `restic` itself can read.
    Repository,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Local => "local",
            StoreKind::S3 => "s3",
            StoreKind::Repository => "repository",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// local: the directory backups are written to.
    pub path: Option<PathBuf>,
    /// s3: bucket, key prefix, region and an optional endpoint for S3-compatible servers.
    pub bucket: Option<String>,
    #[serde(default)]
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    /// s3: server-side encryption of every object: "AES256" (S3-managed keys) or
    /// "aws:kms" (KMS, with `sse_kms_key_id` or the bucket's default key).
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    /// s3: object-lock retention put on every object written, so that backups cannot
    /// be deleted early even with this host's credentials: "GOVERNANCE" or "COMPLIANCE",
    /// for `object_lock_days` days. The bucket must have object lock enabled.
    pub object_lock_mode: Option<String>,
    pub object_lock_days: Option<u32>,
    /// repository: where it is, as restic writes it: a local path, or
    /// `s3:https://host/bucket/prefix` (`s3:http://…` for a server on loopback).
    pub location: Option<String>,
    /// repository: the password its keys are encrypted with; only from `${ENV}`.
    pub password: Option<Secret>,
    /// zstd level of backups written to this store, 1 (fastest) to 19 (smallest).
    pub compression_level: Option<i32>,
}

impl StoreConfig {
    /// An `s3` store section with only its endpoint, bucket and prefix set: credentials
    /// and region come from the usual AWS variables.
    pub fn s3_at(endpoint: String, bucket: String, prefix: String) -> StoreConfig {
        StoreConfig {
            kind: StoreKind::S3,
            path: None,
            bucket: Some(bucket),
            prefix,
            region: None,
            endpoint: Some(endpoint),
            sse: None,
            sse_kms_key_id: None,
            object_lock_mode: None,
            object_lock_days: None,
            location: None,
            password: None,
            compression_level: None,
        }
    }

    /// The s3-only keys that are set, for refusing them on other kinds.
    pub(super) fn s3_keys_set(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        let pairs: [(&'static str, bool); 8] = [
            ("bucket", self.bucket.is_some()),
            ("prefix", !self.prefix.is_empty()),
            ("region", self.region.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("sse", self.sse.is_some()),
            ("sse_kms_key_id", self.sse_kms_key_id.is_some()),
            ("object_lock_mode", self.object_lock_mode.is_some()),
            ("object_lock_days", self.object_lock_days.is_some()),
        ];
        for (key, present) in pairs {
            if present {
                set.push(key);
            }
        }
        set
    }

    /// Checks of the section: keys its kind needs, keys of other kinds refused.
    pub(super) fn validate(&self, name: &str) -> Result<(), String> {
        if let Some(level) = self.compression_level
            && !(1..=19).contains(&level)
        {
            return Err(format!(
                "stores.{name}.compression_level: {level} is not a zstd level from 1 to 19"
            ));
        }
        let kind = self.kind.as_str();
        let refuse = |key: &str, takes: &str| {
            Err(format!(
                "stores.{name}.{key}: only stores of kind {takes} take this key, not \"{kind}\""
            ))
        };
        if self.kind != StoreKind::Repository {
            if self.location.is_some() {
                return refuse("location", "\"repository\"");
            }
            if self.password.is_some() {
                return refuse("password", "\"repository\"");
            }
        }
        if self.kind != StoreKind::S3
            && let Some(k) = self.s3_keys_set().first()
        {
            return refuse(k, "\"s3\"");
        }
        match self.kind {
            StoreKind::Local => {
                if self.path.is_none() {
                    return Err(format!(
                        "stores.{name}: `path` is required for kind \"local\""
                    ));
                }
            }
            StoreKind::S3 => {
                if self.path.is_some() {
                    return Err(format!(
                        "stores.{name}.path: stores of kind \"s3\" take `bucket` and `prefix`, not `path`"
                    ));
                }
                self.validate_s3(name)?;
            }
            StoreKind::Repository => {
                if self.path.is_some() {
                    return Err(format!(
                        "stores.{name}.path: stores of kind \"repository\" take `location` (a path or s3:…), not `path`"
                    ));
                }
                let location = self.location.as_deref().unwrap_or_default();
                if location.is_empty() {
                    return Err(format!(
                        "stores.{name}: `location` is required for kind \"repository\""
                    ));
                }
                // The full parse is the store's; refuse here what it can never open, so
                // `config check` says so rather than the first backup.
                if let Some((scheme, _)) = location.split_once(':')
                    && !scheme.contains('/')
                    && scheme != "s3"
                {
                    return Err(format!(
                        "stores.{name}.location: {location:?}: a repository is a local path or s3:https://host/bucket/prefix, not {scheme}:"
                    ));
                }
                if self.password.as_ref().is_none_or(|p| p.expose().is_empty()) {
                    return Err(format!(
                        "stores.{name}: `password` is required for kind \"repository\" (write it as \"${{SOME_VARIABLE}}\")"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks of an s3 section's own keys.
    pub(super) fn validate_s3(&self, name: &str) -> Result<(), String> {
        let key = |k: &str| format!("stores.{name}.{k}");
        if self.bucket.as_deref().is_none_or(str::is_empty) {
            return Err(format!(
                "stores.{name}: `bucket` is required for kind \"s3\""
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !is_http_url(endpoint)
        {
            return Err(format!(
                "{}: must be a URL starting with http:// or https://, not {endpoint:?}",
                key("endpoint")
            ));
        }
        match self.sse.as_deref() {
            None | Some("AES256") | Some("aws:kms") => {}
            Some(other) => {
                return Err(format!(
                    "{}: must be \"AES256\" or \"aws:kms\", not {other:?}",
                    key("sse")
                ));
            }
        }
        if self.sse_kms_key_id.is_some() && self.sse.as_deref() != Some("aws:kms") {
            return Err(format!(
                "{}: needs sse = \"aws:kms\"",
                key("sse_kms_key_id")
            ));
        }
        match (self.object_lock_mode.as_deref(), self.object_lock_days) {
            (None, None) => {}
            (Some("GOVERNANCE" | "COMPLIANCE"), Some(days)) if days >= 1 => {}
            (Some("GOVERNANCE" | "COMPLIANCE"), Some(_)) => {
                return Err(format!("{}: must be at least 1", key("object_lock_days")));
            }
            (Some("GOVERNANCE" | "COMPLIANCE"), None) => {
                return Err(format!(
                    "{}: required with object_lock_mode",
                    key("object_lock_days")
                ));
            }
            (Some(other), _) => {
                return Err(format!(
                    "{}: must be \"GOVERNANCE\" or \"COMPLIANCE\", not {other:?}",
                    key("object_lock_mode")
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{}: required with object_lock_days",
                    key("object_lock_mode")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, StoreKind, parse_test};

    fn parse(store: &str) -> Result<Config, String> {
        let env = |name: &str| (name == "REPO_PW").then(|| "correct horse".to_string());
        let text = format!("[stores.vault]\n{store}\n");
        Config::parse(&text, "t.toml", Path::new("/etc/lifeboat"), &env).map_err(|e| e.message)
    }

    #[test]
    fn repository_takes_a_location_and_a_password_from_the_environment() {
        let c = parse("kind = \"repository\"\nlocation = \"s3:http://127.0.0.1:9000/b/lifeboat\"\npassword = \"${REPO_PW}\"").unwrap();
        let s = &c.stores["vault"];
        assert_eq!(s.kind, StoreKind::Repository);
        assert_eq!(s.password.as_ref().unwrap().expose(), "correct horse");
        assert_eq!(format!("{:?}", s.password), "Some(***)");
    }

    #[test]
    fn repository_mistakes_are_named() {
        let literal =
            parse("kind = \"repository\"\nlocation = \"/srv/repo\"\npassword = \"hunter2\"")
                .unwrap_err();
        assert!(
            literal.contains("stores.vault.password: secrets must come from the environment"),
            "{literal}"
        );
        assert!(!literal.contains("hunter2"), "{literal}");
        let none = parse("kind = \"repository\"\nlocation = \"/srv/repo\"").unwrap_err();
        assert!(none.contains("`password` is required"), "{none}");
        let no_location = parse("kind = \"repository\"\npassword = \"${REPO_PW}\"").unwrap_err();
        assert!(
            no_location.contains("`location` is required"),
            "{no_location}"
        );
        let path = parse("kind = \"repository\"\npath = \"/srv/repo\"\nlocation = \"/srv/repo\"\npassword = \"${REPO_PW}\"").unwrap_err();
        assert!(path.contains("take `location`"), "{path}");
        let bucket = parse("kind = \"repository\"\nlocation = \"/srv/repo\"\npassword = \"${REPO_PW}\"\nbucket = \"b\"").unwrap_err();
        assert!(
            bucket.contains("stores.vault.bucket: only stores of kind \"s3\""),
            "{bucket}"
        );
        let local =
            parse("kind = \"local\"\npath = \"/srv/b\"\npassword = \"${REPO_PW}\"").unwrap_err();
        assert!(
            local.contains("stores.vault.password: only stores of kind \"repository\""),
            "{local}"
        );
    }

    #[test]
    fn compression_level_must_be_a_zstd_level() {
        let store = |level: &str| {
            parse_test(&format!(
                "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\ncompression_level={level}\n"
            ))
        };
        assert_eq!(store("9").unwrap().stores["l"].compression_level, Some(9));
        let e = store("0").unwrap_err().to_string();
        assert!(
            e.contains("stores.l.compression_level: 0 is not a zstd level"),
            "{e}"
        );
        assert!(store("22").is_err());
    }

    #[test]
    fn s3_settings_are_checked() {
        let s3 =
            |extra: &str| parse_test(&format!("[stores.o]\nkind=\"s3\"\nbucket=\"b\"\n{extra}\n"));
        assert!(s3("sse=\"AES256\"\nobject_lock_mode=\"GOVERNANCE\"\nobject_lock_days=30").is_ok());
        assert!(s3("sse=\"aws:kms\"\nsse_kms_key_id=\"alias/x\"").is_ok());
        for (extra, named) in [
            ("sse=\"aes\"", "stores.o.sse"),
            ("sse_kms_key_id=\"k\"", "stores.o.sse_kms_key_id"),
            (
                "object_lock_mode=\"GOVERNANCE\"",
                "stores.o.object_lock_days",
            ),
            ("object_lock_days=3", "stores.o.object_lock_mode"),
            (
                "object_lock_mode=\"LEGAL\"\nobject_lock_days=3",
                "stores.o.object_lock_mode",
            ),
            (
                "object_lock_mode=\"COMPLIANCE\"\nobject_lock_days=0",
                "stores.o.object_lock_days",
            ),
            ("endpoint=\"localhost:9000\"", "stores.o.endpoint"),
        ] {
            let e = s3(extra).unwrap_err().to_string();
            assert!(e.contains(named), "{extra}: {e}");
        }
        let e =
            parse_test("[stores.l]\nkind=\"local\"\npath=\"/tmp\"\nsse=\"AES256\"\n").unwrap_err();
        assert!(e.to_string().contains("stores.l.sse"), "{e}");
    }

    #[test]
    fn repository_locations_are_paths_or_s3() {
        let repo = |loc: &str| {
            parse_test(&format!(
                "[stores.v]\nkind=\"repository\"\nlocation=\"{loc}\"\npassword=\"${{TOKEN}}\"\n"
            ))
        };
        assert!(repo("vault").is_ok());
        assert!(repo("s3:http://127.0.0.1:9000/b/p").is_ok());
        let e = repo("sftp:host:/srv").unwrap_err().to_string();
        assert!(
            e.contains("stores.v.location") && e.contains("not sftp:"),
            "{e}"
        );
    }
}
