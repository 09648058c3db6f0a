//! `GET /targets/<name>`: one target's status in full and its history charts over the
//! last 90 days (backup size and duration, RPO against its objective, drill RTO against
//! its objective), with its recent drills.

use chrono::{DateTime, Utc};
use maud::{Markup, PreEscaped, html};

use super::layout::{against, badge, bytes, page, relative, seconds, short};
use crate::actions::history::{self, CHART_DAYS, History};
use crate::actions::status::{self, TargetStatus};
use crate::app::App;
use crate::charts::{self, Chart};
use crate::error::Result;

pub struct TargetPage {
    pub now: DateTime<Utc>,
    pub status: TargetStatus,
    pub history: History,
    /// Each chart's SVG, or why it could not be drawn.
    pub charts: Vec<(Chart, std::result::Result<String, String>)>,
}

/// None when no target has this name.
pub fn gather(app: &App, name: &str, now: DateTime<Utc>) -> Result<Option<TargetPage>> {
    let Some(cfg) = app.config.targets.get(name) else {
        return Ok(None);
    };
    let status = status::one(app, name, cfg, now)?;
    let history = history::history(app, name, now, CHART_DAYS)?;
    let charts = Chart::ALL
        .into_iter()
        .map(|c| (c, charts::svg(c, &history)))
        .collect();
    Ok(Some(TargetPage {
        now,
        status,
        history,
        charts,
    }))
}

pub fn render(p: &TargetPage) -> Markup {
    let t = &p.status;
    page(
        &t.target,
        p.now,
        t.running.is_some(),
        html! {
            h1 { (t.target) " " (badge(t.health)) }
            @if !t.health_reasons.is_empty() {
                ul.why #reasons { @for r in &t.health_reasons { li { (r) } } }
            }
            (facts(t, p.now))
            h2 { "History, last " (CHART_DAYS) " days" }
            div.charts {
                @for (chart, svg) in &p.charts {
                    figure id={ "chart-" (chart.id()) } aria-label=(chart.title()) {
                        @match svg {
                            // Drawn by plotters from numbers and fixed words only.
                            Ok(svg) => { (PreEscaped(svg)) }
                            Err(e) => { p.flag { "chart unavailable: " (e) } }
                        }
                    }
                }
            }
            h2 { "Drills" }
            (drills(&p.history))
        },
    )
}

fn facts(t: &TargetStatus, now: DateTime<Utc>) -> Markup {
    html! {
        dl #facts {
            dt { "Kind" } dd { (t.kind) }
            dt { "Store" } dd { (t.store.as_deref().unwrap_or("—")) }
            dt { "Backups kept" } dd { (t.backups) }
            dt { "Last backup" } dd {
                @if let Some(at) = &t.last_backup_at {
                    (short(at)) " (" (relative(at, now)) "), " (bytes(t.last_backup_size_bytes))
                    @if let Some(id) = &t.last_backup { " · " code { (id) } }
                } @else { span.flag { "no backup yet" } }
            }
            dt { "Last backup job" } dd { (t.last_job.as_deref().unwrap_or("—")) }
            dt { "Next due" } dd {
                (t.next_due.as_deref().map_or("not scheduled".to_string(), short))
                @if t.overdue { " " span.flag { "OVERDUE since " (t.overdue_since.as_deref().map(short).unwrap_or_default()) } }
            }
            dt { "Last verify" } dd { (t.last_verify.as_deref().unwrap_or("never")) }
            dt { "Last drill" } dd { (t.last_drill.as_deref().unwrap_or("never")) }
            dt { "RTO (last drill / objective)" } dd { (against(t.last_drill_rto_seconds, t.rto_objective_seconds)) }
            dt { "RPO (now / objective)" } dd { (against(t.last_backup_age_seconds.map(|a| a as f64), t.rpo_objective_seconds)) }
            dt { "Running" } dd { (t.running.as_deref().unwrap_or("—")) }
        }
    }
}

fn drills(h: &History) -> Markup {
    html! {
        @if h.drills.is_empty() {
            p.muted { "No drills in this period." }
        } @else {
            table #drills {
                thead { tr { th { "Started" } th { "Result" } th { "RTO" } th { "RPO" } } }
                tbody { @for d in h.drills.iter().rev() {
                    tr {
                        td { (super::layout::short_time(d.at)) }
                        td { @if d.ok { "passed" } @else { span.flag { "FAILED" } } }
                        td { (against(d.rto_seconds, h.rto_objective_seconds)) }
                        td { (seconds(d.rpo_seconds)) }
                    }
                } }
            }
        }
    }
}

/// The name as asked for is echoed as text only.
pub fn not_found(name: &str, now: DateTime<Utc>) -> Markup {
    page(
        "Not found",
        now,
        false,
        html! { h1 { "No target named " q #asked { (name) } } p { a href="/" { "All targets" } } },
    )
}
