//! The alerts that are open now, for the status page: what the watchdog last alerted
//! per target and has not yet seen recover. One function, so where open alerts are kept
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

/// Every configured target the watchdog holds an alert open for, by target name.
pub fn open_alerts(app: &App) -> Result<Vec<OpenAlert>> {
    let mut out = Vec::new();
    for name in app.config.targets.keys() {
        let w = app.db.watch_get(name)?;
        if w.conditions.is_empty() {
            continue;
        }
        out.push(OpenAlert {
            target: name.clone(),
            problems: w.conditions.split(',').map(words).collect(),
            since: w.bad_since,
            alerted_at: w.alerted_at,
        });
    }
    Ok(out)
}

/// A problem key of the watchdog in words.
fn words(key: &str) -> String {
    match key {
        "missed" => "backup missed",
        "failed" => "backup failed",
        "verify_failed" => "verify failed",
        "drill_failed" => "drill failed or missed an objective",
        "drill_stale" => "drill overdue",
        "too_long" => "job running too long",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::watch::WatchRecord;

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
        app.db
            .watch_put(
                "b",
                &WatchRecord {
                    conditions: "failed,missed".into(),
                    bad_since: Some("2026-01-01T00:00:00.000Z".into()),
                    alerted_at: Some("2026-01-01T01:00:00.000Z".into()),
                    first_seen: None,
                },
            )
            .unwrap();
        app.db.watch_put("a", &WatchRecord::default()).unwrap();
        let open = open_alerts(&app).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].target, "b");
        assert_eq!(open[0].problems, vec!["backup failed", "backup missed"]);
    }
}
