//! The watchdog's alerts in `/metrics`: each open alert under its stable id (the one in
//! chat and in the audit log), when it opened, how many occurrences it has taken in,
//! and how many alerts of each kind were ever opened.

use std::fmt::Write;

use super::metrics::esc;
use crate::app::App;

pub fn render(app: &App, out: &mut String) -> Result<(), crate::error::Error> {
    let open = app.db.alerts_open()?;
    let labels = |a: &crate::db::alerts::AlertRecord| {
        format!(
            "{{id=\"{}\",target=\"{}\",kind=\"{}\"}}",
            a.label(),
            esc(&a.target),
            esc(&a.kind)
        )
    };
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    family(
        "lifeboat_alert_open",
        "gauge",
        "1 for each open watchdog alert, by its id, target and kind.",
        open.iter().map(|a| (labels(a), 1.0)).collect(),
    );
    family(
        "lifeboat_alert_opened_timestamp_seconds",
        "gauge",
        "Unix time the open watchdog alert opened.",
        open.iter()
            .filter_map(|a| {
                let t = crate::units::parse_time(&a.opened_at)?;
                Some((labels(a), t.timestamp() as f64))
            })
            .collect(),
    );
    family(
        "lifeboat_alert_occurrences",
        "gauge",
        "Occurrences (failed runs, missed due times) the open watchdog alert has taken in.",
        open.iter()
            .map(|a| {
                (
                    labels(a),
                    a.facets.values().map(|f| f.count).sum::<u64>() as f64,
                )
            })
            .collect(),
    );
    family(
        "lifeboat_alerts_opened_total",
        "counter",
        "Watchdog alerts opened, by kind.",
        app.db
            .alert_counts()?
            .into_iter()
            .map(|(kind, n)| (format!("{{kind=\"{}\"}}", esc(&kind)), n as f64))
            .collect(),
    );
    Ok(())
}
