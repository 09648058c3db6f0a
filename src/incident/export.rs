//! An incident as a post-mortem skeleton: the facts lifeboat knows (timeline, people,
//! restores with their achieved RTO/RPO, action items) and the headings the team fills in.

use serde::Serialize;

use crate::db::Db;
use crate::db::incidents::{IncidentRecord, TimelineEvent};
use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct IncidentExport {
    pub id: i64,
    pub title: String,
    pub channel: Option<String>,
    pub opened_by: String,
    pub opened_at: String,
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
    /// Until closed, or until the export for an open incident.
    pub duration_seconds: i64,
    pub people: Vec<String>,
    pub timeline: Vec<TimelineEvent>,
    pub actions: Vec<String>,
    pub restores: Vec<RestoreFacts>,
    pub open_questions: Vec<String>,
}

/// A restore that ran while the incident was open, with what it achieved.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreFacts {
    pub target: String,
    pub backup_id: Option<String>,
    pub backup_created_at: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub state: String,
    /// From the incident's start to the restore's end: how long the service was without it.
    pub rto_seconds: Option<i64>,
    /// The restored backup's age when the restore started: the data written since is lost.
    pub rpo_seconds: Option<i64>,
}

/// Questions every post-mortem answers; notes ending in `?` are added after them.
const QUESTIONS: &[&str] = &[
    "What was the root cause?",
    "How was the problem detected, and could it have been detected sooner?",
    "Were the recovery objectives (RTO/RPO) met? If not, what would have met them?",
];

pub fn build(
    db: &Db,
    incident: IncidentRecord,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<IncidentExport> {
    let timeline = db.incident_timeline(incident.id)?;
    let opened = crate::units::parse_time(&incident.opened_at).unwrap_or(now);
    let end = incident
        .closed_at
        .as_deref()
        .and_then(crate::units::parse_time)
        .unwrap_or(now);
    let people = super::card::people(&timeline);
    let actions = timeline
        .iter()
        .filter(|e| e.kind == "action")
        .map(|e| e.text.clone())
        .collect();
    let mut open_questions: Vec<String> = QUESTIONS.iter().map(|q| q.to_string()).collect();
    open_questions.extend(
        timeline
            .iter()
            .filter(|e| e.kind == "note" && e.text.trim_end().ends_with('?'))
            .map(|e| e.text.clone()),
    );
    let mut restores = Vec::new();
    for job in db.jobs_started_between(
        "restore",
        &incident.opened_at,
        &crate::units::time_text(end),
    )? {
        let backup = match &job.backup_id {
            Some(id) => db
                .catalog_list(&job.target)?
                .into_iter()
                .find(|m| &m.id == id),
            None => None,
        };
        let started = crate::units::parse_time(&job.started_at);
        let finished = job
            .finished_at
            .as_deref()
            .and_then(crate::units::parse_time);
        restores.push(RestoreFacts {
            rto_seconds: finished
                .filter(|_| job.state == crate::db::jobs::JobState::Succeeded)
                .map(|f| (f - opened).num_seconds()),
            rpo_seconds: match (&backup, started) {
                (Some(b), Some(s)) => Some((s - b.created()).num_seconds()),
                _ => None,
            },
            backup_created_at: backup.map(|b| b.created_at),
            target: job.target,
            backup_id: job.backup_id,
            started_at: job.started_at,
            finished_at: job.finished_at,
            state: job.state.to_string(),
        });
    }
    Ok(IncidentExport {
        duration_seconds: (end - opened).num_seconds(),
        id: incident.id,
        title: incident.title,
        channel: incident.channel,
        opened_by: incident.opened_by,
        opened_at: incident.opened_at,
        closed_by: incident.closed_by,
        closed_at: incident.closed_at,
        people,
        timeline,
        actions,
        restores,
        open_questions,
    })
}

/// `2026-11-22T10:00:00.000Z` → `2026-11-22 10:00:00`.
pub fn clock(rfc3339: &str) -> String {
    match crate::units::parse_time(rfc3339) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => rfc3339.to_string(),
    }
}

/// Text for one table cell or list line: one line, no table breaks.
pub fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ").replace('|', "\\|")
}

fn age(seconds: Option<i64>) -> String {
    seconds.map_or("—".into(), crate::units::human_age)
}

impl IncidentExport {
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("export serializes")
    }

    pub fn markdown(&self) -> String {
        let mut md = format!("# Post-mortem: {}\n\n", one_line(&self.title));
        let state = match &self.closed_at {
            Some(c) => format!(
                "closed {} UTC by {}",
                clock(c),
                self.closed_by.as_deref().unwrap_or("?")
            ),
            None => "still open".into(),
        };
        md.push_str(&format!(
            "Incident #{} · opened {} UTC by {} · {} · duration {}\n\n",
            self.id,
            clock(&self.opened_at),
            self.opened_by,
            state,
            age(Some(self.duration_seconds))
        ));
        md.push_str("## Summary\n\n");
        md.push_str("_What happened and what it affected, in two or three sentences._\n\n");
        md.push_str(&format!(
            "- Timeline entries: {}\n- Restores during the incident: {}\n- Action items: {}\n\n",
            self.timeline.len(),
            self.restores.len(),
            self.actions.len()
        ));
        md.push_str("## People involved\n\n");
        for p in &self.people {
            let n = self.timeline.iter().filter(|e| &e.actor == p).count();
            md.push_str(&format!("- {p} ({n} timeline entries)\n"));
        }
        if self.people.is_empty() {
            md.push_str("- (nobody recorded)\n");
        }
        md.push_str("\n## Timeline (UTC)\n\n| time | actor | kind | event |\n|---|---|---|---|\n");
        for e in &self.timeline {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                clock(&e.at),
                one_line(&e.actor),
                e.kind,
                one_line(&e.text)
            ));
        }
        md.push_str("\n## Recovery objectives achieved\n\n");
        if self.restores.is_empty() {
            md.push_str("No restore ran during the incident.\n");
        } else {
            md.push_str("| target | backup | backup taken (UTC) | restore ended (UTC) | result | RTO (since incident start) | RPO (data lost) |\n|---|---|---|---|---|---|---|\n");
            for r in &self.restores {
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    r.target,
                    r.backup_id.as_deref().unwrap_or("—"),
                    r.backup_created_at.as_deref().map_or("—".into(), clock),
                    r.finished_at.as_deref().map_or("—".into(), clock),
                    r.state,
                    age(r.rto_seconds),
                    age(r.rpo_seconds)
                ));
            }
        }
        md.push_str("\n## Action items\n\n");
        for a in &self.actions {
            md.push_str(&format!("- [ ] {}\n", one_line(a)));
        }
        if self.actions.is_empty() {
            md.push_str("- [ ] _none recorded yet_\n");
        }
        md.push_str("\n## Open questions\n\n");
        for q in &self.open_questions {
            md.push_str(&format!("- {}\n", one_line(q)));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Scope, add, close, export, start};

    #[test]
    fn markdown_and_json_carry_every_event_in_order() {
        let db = Db::in_memory();
        let scope = Scope {
            channel: Some("slack:C1"),
        };
        start(&db, scope, "slack:U1", "Gitea | down").unwrap();
        add(&db, scope, "slack:U2", "note", "disk at 100%").unwrap();
        // An alert that started before anyone noticed keeps its own time.
        db.audit_event(&crate::db::audit::AuditEvent {
            actor: "hook:alertmanager",
            action: "alert",
            outcome: "firing",
            detail: Some("DiskFull"),
            at: Some("2020-01-01T00:00:00.000Z".into()),
            ..Default::default()
        })
        .unwrap();
        add(&db, scope, "slack:U1", "action", "alert on 90% disk").unwrap();
        add(&db, scope, "slack:U1", "note", "why no alert earlier?").unwrap();
        close(&db, scope, "slack:U1").unwrap();
        let x = export(&db, scope, None).unwrap();
        let kinds: Vec<&str> = x.timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["alert", "opened", "note", "action", "note", "closed"]
        );
        assert!(x.timeline.windows(2).all(|w| w[0].at <= w[1].at));
        assert_eq!(x.people, ["slack:U1", "slack:U2"]);
        assert_eq!(x.actions, ["alert on 90% disk"]);
        assert!(
            x.open_questions
                .iter()
                .any(|q| q == "why no alert earlier?")
        );
        let md = x.markdown();
        assert!(md.starts_with("# Post-mortem: Gitea \\| down"), "{md}");
        assert!(
            md.contains("| 2020-01-01 00:00:00 | hook:alertmanager | alert |"),
            "{md}"
        );
        assert!(md.contains("- [ ] alert on 90% disk"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&x.json()).unwrap();
        assert_eq!(json["timeline"].as_array().unwrap().len(), 6);
        assert!(json["closed_at"].is_string());
        assert_eq!(json["actions"][0], "alert on 90% disk");
    }
}
