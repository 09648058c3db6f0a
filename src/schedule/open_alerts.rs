//! The alerts that are open now, for the status page: the watchdog's open alerts per
//! target (the `alerts` table), not yet closed by evidence. One function, so where open alerts are kept
//! can change without touching the page.

use serde::Serialize;

use crate::app::App;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenAlert {
    pub target: String,
    /// In words, e.g. "backup missed".
    pub problems: Vec<String>,
    /// When the target went bad (RFC 3339 UTC), as the watchdog recorded it.
    pub since: Option<String>,
    /// When the alert was last posted.
    pub alerted_at: Option<String>,
}

/// Every configured target the watchdog holds an alert open for, by target name: one
/// entry per target, its open alerts' problems together, since the oldest opened.
pub fn open_alerts(app: &App) -> Result<Vec<OpenAlert>> {
    let mut by_target: std::collections::BTreeMap<String, OpenAlert> = Default::default();
    for a in app.db.alerts_open()? {
        if !app.config.targets.contains_key(&a.target) {
            continue;
        }
        let entry = by_target.entry(a.target.clone()).or_insert(OpenAlert {
            target: a.target.clone(),
            problems: Vec::new(),
            since: Some(a.opened_at.clone()),
            alerted_at: None,
        });
        for facet in a.facets.keys() {
            entry.problems.push(words(&a.kind, facet));
        }
        if a.facets.is_empty() {
            entry.problems.push(words(&a.kind, ""));
        }
        if entry.alerted_at < a.posted_at {
            entry.alerted_at = a.posted_at.clone();
        }
    }
    Ok(by_target.into_values().collect())
}

/// An alert's kind and facet in words.
fn words(kind: &str, facet: &str) -> String {
    match (kind, facet) {
        ("backup", "missed") => "backup missed",
        ("backup", _) => "backup failed",
        ("verify", _) => "verify failed",
        ("drill", "stale") => "drill overdue",
        ("drill", _) => "drill failed or missed an objective",
        ("inconsistent", _) => "newest backup changed while read",
        ("replication", _) => "replication behind max_lag",
        ("generation", _) => "replication started a new generation",
        _ => "job running too long",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_targets_with_alerted_problems_are_listed_in_words() {
        let text = "[targets.a]\nkind = \"external\"\nschedule = \"0 0 3 * * *\"\ntoken = \"${T}\"\n\
                    [targets.b]\nkind = \"external\"\nschedule = \"0 0 3 * * *\"\ntoken = \"${T}\"\n";
        let config =
            crate::config::Config::parse(text, "t.toml", std::path::Path::new("/etc"), &|_| {
                Some("0123456789abcdef".into())
            })
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let app = App::for_tests(config, Default::default(), dir.path().to_path_buf());
        let mut alert = crate::db::alerts::AlertRecord {
            target: "b".into(),
            kind: "backup".into(),
            opened_at: "2026-01-01T00:00:00.000Z".into(),
            posted_at: Some("2026-01-01T01:00:00.000Z".into()),
            ..Default::default()
        };
        for facet in ["failed", "missed"] {
            alert.facets.insert(facet.into(), Default::default());
        }
        app.db.alert_insert(&mut alert).unwrap();
        let open = open_alerts(&app).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].target, "b");
        assert_eq!(open[0].problems, vec!["backup failed", "backup missed"]);
        assert_eq!(open[0].since.as_deref(), Some("2026-01-01T00:00:00.000Z"));
    }
}
