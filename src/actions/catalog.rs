//! Finding backups: list a target's backups from its store and pick one by id, `latest`
//! or a point in time.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::app::App;
use crate::error::{Error, Result};
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

/// A target's complete backups, newest first.
pub fn backups(app: &App, target: &str) -> Result<Vec<Manifest>> {
    if app.target(target)?.kind == crate::config::TargetKind::GcpDisk {
        return crate::actions::gcp::backups(app, target); // snapshots, not store objects
    }
    let (store_name, store) = app.store_for(target)?;
    let (found, broken) = store.backups(target)?;
    for b in broken {
        tracing::warn!(target = target, "{b}");
    }
    // Keep the catalog (which answers `status` and metrics) in step with the store, also
    // after the state database was lost or restored.
    if let Err(e) = app.db.catalog_sync(target, &store_name, &found) {
        tracing::warn!(target = target, "updating the catalog: {e}");
    }
    Ok(found)
}

/// Resolve a selector to one backup, with an error that says what exists.
pub fn find(app: &App, target: &str, selector: &Selector) -> Result<Manifest> {
    let all = backups(app, target)?;
    let found = match selector {
        Selector::Latest => all.first().cloned(),
        Selector::Id(id) => all.iter().find(|m| &m.id == id).cloned(),
        Selector::At(t) => all.iter().find(|m| m.created() <= *t).cloned(),
    };
    found.ok_or_else(|| {
        let recent: Vec<&str> = all.iter().take(5).map(|m| m.id.as_str()).collect();
        let known = if recent.is_empty() {
            format!("{target} has no backups yet; take one with `lifeboat backup {target}`")
        } else {
            format!("newest backups of {target}: {}", recent.join(", "))
        };
        match selector {
            Selector::Latest => Error::Usage(known),
            Selector::Id(id) => Error::Usage(format!("no backup {id:?} of {target}; {known}")),
            Selector::At(t) => Error::Usage(format!(
                "no backup of {target} at or before {}; {known}",
                crate::db::time_text(*t)
            )),
        }
    })
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
