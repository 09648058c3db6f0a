//! The page frame shared by every view (head, style, header, footer) and small pieces
//! of markup: health badges, ages, sizes. Everything interpolated is escaped by maud.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::actions::status::Health;

/// Inline style: the page loads nothing from elsewhere (the host may be offline).
const CSS: &str = "
body{font-family:'DejaVu Sans',system-ui,sans-serif;margin:0;color:#1d2330;background:#f4f6f9}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:bold;font-size:1.2em}
header .when{color:#b8c0cc;font-size:.9em}
main{padding:16px 24px;max-width:1280px}
h1{font-size:1.4em;margin:.4em 0} h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff;width:100%;font-size:.9em}
th,td{border-bottom:1px solid #e1e5eb;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:.85em;font-weight:bold;color:#fff}
.green{background:#2e8540}.amber{background:#d98c00}.red{background:#c62828}
.flag{color:#c62828;font-weight:bold}
.muted{color:#6b7480} .badge.muted{color:#fff;background:#9aa3ad}
.why{font-size:.85em;color:#4b5563;margin:2px 0 0;padding-left:16px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;background:#fff;border:1px solid #e1e5eb;padding:4px}
figcaption{font-size:.85em;color:#4b5563;padding:2px 4px}
dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px;background:#fff;padding:10px;margin:0}
dt{font-weight:600} dd{margin:0}
progress{width:160px}
footer{padding:16px 24px;color:#6b7480;font-size:.8em}
";

/// A whole page. `refresh` reloads it every 15 seconds (live progress without scripts).
pub fn page(title: &str, now: DateTime<Utc>, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content="15"; }
                title { (title) " · lifeboat" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a href="/" { "lifeboat" }
                    span { "recovery status" }
                    span.when { "as of " (short_time(now)) " UTC" }
                }
                main { (body) }
                footer { "lifeboat " (env!("CARGO_PKG_VERSION")) " · read-only view, every visit is audited" }
            }
        }
    }
}

pub fn badge(h: Health) -> Markup {
    html! { span class={ "badge " (h.as_str()) } data-health=(h.as_str()) { (h.as_str()) } }
}

/// "2026-03-04 05:06" from an RFC 3339 text (the text itself if it does not parse).
pub fn short(ts: &str) -> String {
    crate::units::parse_time(ts).map_or_else(|| ts.to_string(), short_time)
}

pub fn short_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// "3h 5m ago" / "in 2h".
pub fn relative(ts: &str, now: DateTime<Utc>) -> String {
    let Some(t) = crate::units::parse_time(ts) else {
        return ts.to_string();
    };
    let secs = (now - t).num_seconds();
    if secs >= 0 {
        format!("{} ago", crate::units::human_age(secs))
    } else {
        format!("in {}", crate::units::human_age(-secs))
    }
}

pub fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "—".into(), crate::actions::drill_report::human)
}

pub fn bytes(b: Option<u64>) -> String {
    b.map_or_else(|| "—".into(), crate::units::human_bytes)
}

/// "12m of 30m" colored by how the measurement compares with its objective.
pub fn against(measured: Option<f64>, objective: Option<f64>) -> Markup {
    let class = match (measured, objective) {
        (Some(m), Some(o)) if m > o => "red",
        (Some(m), Some(o)) if m > o * crate::actions::status::AMBER_SHARE => "amber",
        (Some(_), Some(_)) => "green",
        _ => "muted",
    };
    html! {
        span class={ "badge " (class) } { (seconds(measured)) }
        @if let Some(o) = objective { span.muted { " / " (seconds(Some(o))) } }
    }
}
