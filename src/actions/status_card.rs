//! `/backup status` for chat: a card counting the targets by health, with a line per
//! target (the unhealthy first), and when there are more targets than a message should
//! list, the whole status as a Markdown file beside it.

use super::status::{Health, TargetStatus};
use crate::card::{Card, Line, Tone};
use crate::notify::{Body, Document};
use crate::units::{count, human_age, human_duration};

/// How many targets the card lists before the rest go to the file only.
pub const LISTED: usize = 15;

/// The card, and the file when some targets are not listed in it.
pub fn card(all: &[TargetStatus]) -> (Card, Option<Document>) {
    if all.is_empty() {
        return (Card::new(Tone::Neutral, "No targets are configured"), None);
    }
    let of = |h: Health| all.iter().filter(|s| s.health == h).count() as u64;
    let (red, amber, green) = (of(Health::Red), of(Health::Amber), of(Health::Green));
    let tone = match (red, amber) {
        (0, 0) => Tone::Good,
        (0, _) => Tone::Warning,
        _ => Tone::Bad,
    };
    let mut card = Card::new(
        tone,
        format!("Status of {}", count(all.len() as u64, "target", None)),
    )
    .fact("🔴 Red", red.to_string())
    .fact("🟡 Amber", amber.to_string())
    .fact("🟢 Green", green.to_string());
    let overdue = all.iter().filter(|s| s.overdue).count();
    if overdue > 0 {
        card = card.fact("Overdue", count(overdue as u64, "target", None));
    }
    let running = all.iter().filter(|s| s.running.is_some()).count();
    if running > 0 {
        card = card.fact("Running", count(running as u64, "job", None));
    }
    // The worst first: what needs someone is never cut off the end.
    let mut order: Vec<&TargetStatus> = all.iter().collect();
    order.sort_by_key(|s| std::cmp::Reverse(s.health));
    for s in order.iter().take(LISTED) {
        card = card.body(line(s));
    }
    if all.len() <= LISTED {
        return (card, None);
    }
    let filename = "status.md".to_string();
    card = card.context(
        Line::new()
            .text(format!(
                "{} listed here, the worst first; all {} with their reasons are in ",
                LISTED,
                all.len()
            ))
            .code(&filename)
            .text(", posted to the channel."),
    );
    let doc = Document {
        filename,
        title: format!("Status of {} targets", all.len()),
        content: Body::Text(markdown(&order)),
    };
    (card, Some(doc))
}

/// One target: health, name, kind, newest backup and its age, overdue, last drill,
/// what is running.
pub fn line(s: &TargetStatus) -> Line {
    let mut line = Line::new()
        .text(format!("{} ", dot(s.health)))
        .strong(&s.target)
        .text(format!(" ({}): ", s.kind));
    line = match (&s.last_backup, s.last_backup_age_seconds) {
        (Some(id), Some(age)) => line.code(id).text(format!(", {} ago", human_age(age))),
        _ => line.text("no backup yet"),
    };
    if let Some(to) = &s.replicated_to {
        line = line.text("; replicated to ").stored_time(to);
        if let Some(lag) = s.lag_seconds {
            line = line.text(format!(" (lag {})", human_duration(lag)));
        }
    }
    if let Some(why) = &s.replication_problem {
        line = line.text(format!("; replication position unknown: {why}"));
    }
    if s.overdue {
        line = line.text(" — OVERDUE");
    }
    if let Some(d) = &s.last_drill {
        line = line.text(format!("; last drill {d}"));
    }
    if let Some(r) = &s.running {
        line = line.text(format!("; running {r}"));
    }
    line
}

fn dot(h: Health) -> &'static str {
    match h {
        Health::Green => "🟢",
        Health::Amber => "🟡",
        Health::Red => "🔴",
    }
}

/// Every target as a Markdown table row, with the reasons for its health.
fn markdown(order: &[&TargetStatus]) -> String {
    let cell = |t: &str| t.replace(['\r', '\n'], " ").replace('|', "\\|");
    let mut md = format!(
        "# Status of {} targets\n\n| health | target | kind | newest backup | age | overdue | last drill | why |\n|---|---|---|---|---|---|---|---|\n",
        order.len()
    );
    for s in order {
        md.push_str(&format!(
            "| {} {} | {} | {} | {} | {} | {} | {} | {} |\n",
            dot(s.health),
            s.health.as_str(),
            cell(&s.target),
            cell(&s.kind),
            s.last_backup.as_deref().map_or("—".into(), cell),
            s.last_backup_age_seconds.map_or("—".into(), human_age),
            if s.overdue { "yes" } else { "no" },
            s.last_drill.as_deref().map_or("—".into(), cell),
            cell(&s.health_reasons.join("; ")),
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_targets_list_the_worst_fifteen_and_attach_the_whole_status() {
        let all = fixtures::targets(50);
        let (card, doc) = card(&all);
        assert_eq!(card.title, "Status of 50 targets");
        assert_eq!(card.tone, Tone::Bad);
        assert_eq!(card.body.len(), LISTED);
        assert!(card.body[0].plain().starts_with("🔴 "), "the worst first");
        assert!(
            card.plain()
                .contains("all 50 with their reasons are in `status.md`")
        );
        let doc = doc.expect("the whole status as a file");
        let Body::Text(md) = doc.content else {
            panic!("text")
        };
        assert_eq!(
            md.lines()
                .filter(|l| l.starts_with("| 🔴") || l.starts_with("| 🟡") || l.starts_with("| 🟢"))
                .count(),
            50
        );
        assert!(md.contains("| target-49 |"), "{md}");
        // A few targets: all listed, nothing attached.
        let (card, doc) = super::card(&all[..3]);
        assert_eq!(card.body.len(), 3);
        assert!(doc.is_none());
        assert!(
            card.plain()
                .contains("replicated to 2026-12-05 13:27 UTC (lag 0.6 s)"),
            "a continuous target shows how far it is replicated: {}",
            card.plain()
        );
        assert!(
            card.plain()
                .contains("target-0 (sqlite): `20261205T124620Z`"),
            "{}",
            card.plain()
        );
    }
}

/// Statuses of any number of targets, for tests here and in the renderers' limit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn targets(n: usize) -> Vec<TargetStatus> {
        (0..n)
            .map(|i| {
                let health = match i % 7 {
                    0 => Health::Red,
                    1 | 2 => Health::Amber,
                    _ => Health::Green,
                };
                TargetStatus {
                    target: format!("target-{i}"),
                    kind: "sqlite".into(),
                    store: Some("local".into()),
                    last_backup: Some("20261205T124620Z".into()),
                    last_backup_at: Some("2026-12-05T12:46:20.010Z".into()),
                    last_backup_age_seconds: Some(2460 + i as i64),
                    last_backup_size_bytes: Some(4_404_019),
                    last_backup_changed_while_read: None,
                    backups: 30,
                    owed_hooks_since: None,
                    next_due: None,
                    overdue: i % 7 == 0,
                    overdue_since: None,
                    last_job: None,
                    last_verify: None,
                    last_drill: Some(format!(
                        "passed at 2026-12-0{} 03:00 UTC (RTO 13s, RPO 41m){}",
                        1 + i % 5,
                        " and more words".repeat(i % 4 * 10)
                    )),
                    last_drill_at: None,
                    last_drill_ok: Some(true),
                    last_drill_rto_seconds: Some(13.0),
                    last_drill_rpo_seconds: Some(2460.0),
                    rto_objective_seconds: Some(300.0),
                    rpo_objective_seconds: Some(3600.0),
                    last_backup_state: Some("succeeded".into()),
                    last_verify_ok: Some(true),
                    running: (i % 11 == 0).then(|| "backup (job 9)".into()),
                    state_offsite: None,
                    running_job: None,
                    replicated_to: (i % 5 == 0).then(|| "2026-12-05T13:27:19.410Z".into()),
                    lag_seconds: (i % 5 == 0).then_some(0.6),
                    replication_problem: None,
                    unverified_generation: None,
                    spooled_bytes: None,
                    max_lag_seconds: (i % 5 == 0).then_some(60.0),
                    health,
                    health_reasons: vec!["the newest backup is 41m old".into()],
                }
            })
            .collect()
    }
}
