//! `GET /`: every target in one table (health, last backup and its age, next due, flags,
//! last verify and drill against the objectives), open alerts, open incidents with their
//! latest timeline entries, and running jobs with their live progress.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::layout::{against, badge, bytes, page, relative, short};
use crate::actions::status::{self, TargetStatus};
use crate::app::App;
use crate::db::incidents::{IncidentRecord, TimelineEvent};
use crate::db::jobs::JobRecord;
use crate::error::Result;
use crate::executor::LiveProgress;
use crate::schedule::open_alerts::{OpenAlert, open_alerts};

/// Timeline entries of an open incident shown on the overview (its page has them all).
const TIMELINE_TAIL: usize = 8;

pub struct Overview {
    pub now: DateTime<Utc>,
    pub targets: Vec<TargetStatus>,
    pub alerts: Vec<OpenAlert>,
    pub incidents: Vec<(IncidentRecord, Vec<TimelineEvent>)>,
    pub running: Vec<(JobRecord, Option<LiveProgress>)>,
}

pub fn gather(app: &App, now: DateTime<Utc>) -> Result<Overview> {
    let mut incidents = Vec::new();
    for i in app.db.incidents()? {
        if i.closed_at.is_none() {
            let timeline = app.db.incident_timeline(i.id)?;
            incidents.push((i, timeline));
        }
    }
    let running = app
        .db
        .jobs_running(None)?
        .into_iter()
        .map(|j| {
            let live = app.executor.progress_of(j.id);
            (j, live)
        })
        .collect();
    Ok(Overview {
        now,
        targets: status::all(app, now)?,
        alerts: open_alerts(app)?,
        incidents,
        running,
    })
}

pub fn render(o: &Overview) -> Markup {
    let worst = o.targets.iter().map(|t| t.health).max();
    let refresh = !o.running.is_empty();
    page(
        "Status",
        o.now,
        refresh,
        html! {
            h1 {
                "Recovery status "
                @if let Some(w) = worst { (badge(w)) }
            }
            (targets(o))
            h2 { "Open alerts" }
            (alerts(&o.alerts, o.now))
            h2 { "Open incidents" }
            (incidents(&o.incidents, o.now))
            h2 { "Running jobs" }
            (running(&o.running, o.now))
        },
    )
}

fn targets(o: &Overview) -> Markup {
    html! {
        @if o.targets.is_empty() {
            p.muted { "No targets are configured." }
        } @else {
            table #targets {
                thead { tr {
                    th { "Target" } th { "Health" } th { "Last backup" } th { "Next due" }
                    th { "Last verify" } th { "Last drill" } th { "Drill RTO / objective" }
                    th { "RPO now / objective" } th { "Running" }
                } }
                tbody {
                    @for t in &o.targets { (row(t, o.now)) }
                }
            }
        }
    }
}

fn row(t: &TargetStatus, now: DateTime<Utc>) -> Markup {
    let rpo_now = t.last_backup_age_seconds.map(|a| a as f64);
    html! {
        tr id={ "target-" (t.target) } data-health=(t.health.as_str()) {
            td {
                a href={ "/targets/" (t.target) } { (t.target) }
                br; span.muted { (t.kind) @if let Some(s) = &t.store { " → " (s) } }
            }
            td {
                (badge(t.health))
                @if !t.health_reasons.is_empty() {
                    ul.why { @for r in &t.health_reasons { li { (r) } } }
                }
            }
            td {
                @match (&t.last_backup_at, &t.last_backup) {
                    (Some(at), _) => {
                        (relative(at, now))
                        br; span.muted { (short(at)) " · " (bytes(t.last_backup_size_bytes)) }
                    }
                    _ => { span.flag { "no backup yet" } }
                }
                @if t.last_backup_state.as_deref() == Some("failed") {
                    br; span.flag { "LAST BACKUP FAILED" }
                }
            }
            td {
                @if let Some(n) = &t.next_due { (relative(n, now)) } @else { span.muted { "not scheduled" } }
                @if t.overdue { br; span.flag { "OVERDUE" } }
            }
            td title=[t.last_verify.as_deref()] {
                @match t.last_verify_ok {
                    Some(true) => { "ok" }
                    Some(false) => { span.flag { "FAILED" } }
                    None => { span.muted { "never" } }
                }
            }
            td {
                @match (&t.last_drill_at, t.last_drill_ok) {
                    (Some(at), Some(ok)) => {
                        @if ok { "passed " } @else { span.flag { "FAILED " } }
                        (relative(at, now))
                    }
                    _ => { span.muted { "never" } }
                }
            }
            td { (against(t.last_drill_rto_seconds, t.rto_objective_seconds)) }
            td { (against(rpo_now, t.rpo_objective_seconds)) }
            td { @if let Some(r) = &t.running { (r) } @else { span.muted { "—" } } }
        }
    }
}

fn alerts(alerts: &[OpenAlert], now: DateTime<Utc>) -> Markup {
    html! {
        @if alerts.is_empty() {
            p.muted #alerts { "No open alerts." }
        } @else {
            table #alerts {
                thead { tr { th { "Target" } th { "Problem" } th { "Since" } th { "Last alerted" } } }
                tbody { @for a in alerts {
                    tr {
                        td { a href={ "/targets/" (a.target) } { (a.target) } }
                        td.flag { (a.problems.join(", ")) }
                        td { @if let Some(s) = &a.since { (relative(s, now)) } }
                        td { @if let Some(s) = &a.alerted_at { (short(s)) } }
                    }
                } }
            }
        }
    }
}

fn incidents(list: &[(IncidentRecord, Vec<TimelineEvent>)], now: DateTime<Utc>) -> Markup {
    html! {
        @if list.is_empty() {
            p.muted #incidents { "No open incidents." }
        }
        @for (i, timeline) in list {
            section.incident id={ "incident-" (i.id) } {
                h2 {
                    a href={ "/incidents/" (i.id) } { "#" (i.id) " " (i.title) }
                    span.muted { " opened " (relative(&i.opened_at, now)) " by " (i.opened_by) }
                }
                (super::incident::timeline_table(&timeline[timeline.len().saturating_sub(TIMELINE_TAIL)..]))
                @if timeline.len() > TIMELINE_TAIL {
                    p.muted { a href={ "/incidents/" (i.id) } { "all " (timeline.len()) " entries" } }
                }
            }
        }
    }
}

fn running(jobs: &[(JobRecord, Option<LiveProgress>)], now: DateTime<Utc>) -> Markup {
    html! {
        @if jobs.is_empty() {
            p.muted #running { "No jobs are running." }
        } @else {
            table #running {
                thead { tr { th { "Job" } th { "Target" } th { "By" } th { "Started" } th { "Progress" } } }
                tbody { @for (j, live) in jobs {
                    tr id={ "job-" (j.id) } {
                        td { (j.id) " " (j.kind) }
                        td { (j.target) }
                        td { (j.actor) }
                        td { (relative(&j.started_at, now)) }
                        td { (progress(live.as_ref())) }
                    }
                } }
            }
        }
    }
}

fn progress(live: Option<&LiveProgress>) -> Markup {
    html! {
        @match live {
            None => { span.muted { "running in another lifeboat process" } }
            Some(p) => {
                (p.phase) ": "
                @if let Some(total) = p.total_bytes.filter(|t| *t > 0) {
                    progress value=(p.done_bytes.min(total)) max=(total) {}
                    " " (bytes(Some(p.done_bytes))) " of " (bytes(Some(total)))
                } @else {
                    (bytes(Some(p.done_bytes)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64) -> JobRecord {
        JobRecord {
            id,
            kind: "backup".into(),
            target: "app-db".into(),
            actor: "slack:U1".into(),
            state: crate::db::jobs::JobState::Running,
            started_at: "2026-03-01T10:00:00.000Z".into(),
            finished_at: None,
            backup_id: None,
            message: None,
            pid: 1,
        }
    }

    #[test]
    fn running_jobs_show_their_live_progress() {
        let now = crate::units::parse_time("2026-03-01T10:05:00.000Z").unwrap();
        let live = LiveProgress {
            phase: "compressing and storing".into(),
            done_bytes: 3 << 20,
            total_bytes: Some(12 << 20),
        };
        let html = running(&[(job(7), Some(live)), (job(8), None)], now).into_string();
        assert!(html.contains("id=\"job-7\""), "{html}");
        assert!(html.contains("compressing and storing"));
        assert!(html.contains(&format!(
            "<progress value=\"{}\" max=\"{}\">",
            3 << 20,
            12 << 20
        )));
        assert!(html.contains("3.0 MiB of 12.0 MiB") && html.contains("5m ago"));
        assert!(
            html.contains("another lifeboat process"),
            "job 8 runs elsewhere"
        );
        assert!(
            running(&[], now)
                .into_string()
                .contains("No jobs are running")
        );
    }
}
