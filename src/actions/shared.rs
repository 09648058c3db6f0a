//! The words actions and target kinds share: which backup a command means, what a
//! verify found, and an age for people. It imports no action, so the code of each kind
//! (actions::kind) can use it without depending on the actions that call that code.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::executor::JobOutput;
use crate::stores::manifest::Manifest;

/// Which backup a command means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Latest,
    Id(String),
    /// The newest backup created at or before this time.
    At(DateTime<Utc>),
}

impl Selector {
    /// From the optional `<backup>` argument and `--at`.
    pub fn from_args(backup: Option<&str>, at: Option<&str>) -> Result<Selector> {
        match (backup, at) {
            (Some(_), Some(_)) if backup != Some("latest") => Err(Error::Usage(
                "give either a backup id or --at, not both".into(),
            )),
            (_, Some(at)) => Ok(Selector::At(parse_at(at)?)),
            (None, None) | (Some("latest"), None) => Ok(Selector::Latest),
            (Some(id), None) => Ok(Selector::Id(id.to_string())),
        }
    }
}

/// RFC 3339, or `YYYY-MM-DD HH:MM` (UTC).
pub fn parse_at(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, fmt) {
            return Ok(t.and_utc());
        }
    }
    Err(Error::Usage(format!(
        "cannot read the time {text:?}: use RFC 3339 (2026-11-22T08:30:00Z) or \"YYYY-MM-DD HH:MM\" (UTC)"
    )))
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    #[serde(flatten)]
    pub backup: Manifest,
    pub ok: bool,
    pub problems: Vec<String>,
    /// A continuous target: what was proved of its shipped history, and what not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<crate::replicate::chain::ChainProof>,
}

impl JobOutput for VerifyReport {
    fn backup_id(&self) -> Option<String> {
        Some(self.backup.id.clone())
    }
    fn summary(&self) -> String {
        let chain = self.chain.as_ref().map_or(String::new(), |c| {
            let mut s = String::new();
            for p in &c.proved {
                s.push_str(&format!("; proved: {p}"));
            }
            for p in &c.not_proved {
                s.push_str(&format!("; not proved: {p}"));
            }
            s
        });
        format!("{}{chain}", self.backup_summary())
    }
    fn ok(&self) -> bool {
        self.ok
    }
}

impl VerifyReport {
    fn backup_summary(&self) -> String {
        if self.ok && !self.backup.is_consistent() {
            // The checks prove the store holds what was read, not that what was read is
            // one moment of the data: never call such a copy verified without saying so.
            format!(
                "backup {} of {}: the stored copy passed every check, but it is INCONSISTENT ({}) and may not restore to a working state",
                self.backup.id,
                self.backup.target,
                crate::actions::backup::changed_files(self.backup.changed_paths())
            )
        } else if self.ok {
            format!(
                "backup {} of {} verified: all checks passed",
                self.backup.id, self.backup.target
            )
        } else {
            format!(
                "backup {} of {} FAILED verification: {}",
                self.backup.id,
                self.backup.target,
                self.problems.join("; ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_accepts_both_formats() {
        let a = parse_at("2026-11-22 08:30").unwrap();
        let b = parse_at("2026-11-22T08:30:00Z").unwrap();
        assert_eq!(a, b);
        assert!(parse_at("yesterday").is_err());
    }

    #[test]
    fn selector_from_args() {
        assert_eq!(Selector::from_args(None, None).unwrap(), Selector::Latest);
        assert_eq!(
            Selector::from_args(Some("latest"), None).unwrap(),
            Selector::Latest
        );
        assert_eq!(
            Selector::from_args(Some("x"), None).unwrap(),
            Selector::Id("x".into())
        );
        assert!(Selector::from_args(Some("x"), Some("2026-01-01 00:00")).is_err());
    }
}
