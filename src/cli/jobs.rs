//! `lifeboat backup`, `verify`, `drill` and `status`: run one job now in this terminal and
//! print its result, or show every target's state.

use crate::actions::{self, catalog::Selector};
use crate::app::App;
use crate::cli::render::{finish_progress, job_context, print_json};
use crate::error::Error;
use crate::units::human_bytes;

pub fn backup(app: &App, actor: &str, target: &str, json: bool) -> Result<i32, Error> {
    let ctx = job_context(json);
    let m = actions::backup::run(app, target, actor, &ctx)?;
    finish_progress(&ctx);
    if json {
        print_json(&m.summary());
    } else {
        println!(
            "backup {} of {} complete: {} stored ({} before compression) in {:.1}s",
            m.id,
            m.target,
            human_bytes(m.size_bytes),
            human_bytes(m.content_bytes),
            m.duration_seconds
        );
    }
    Ok(0)
}

pub fn verify(
    app: &App,
    actor: &str,
    target: &str,
    backup: Option<&str>,
    read_data: bool,
    json: bool,
) -> Result<i32, Error> {
    let selector = Selector::from_args(backup, None)?;
    let ctx = job_context(json);
    let report = actions::verify::run_reading(app, target, &selector, read_data, actor, &ctx)?;
    finish_progress(&ctx);
    if json {
        print_json(&report);
    } else if report.ok {
        println!(
            "backup {} of {} verified: all checks passed",
            report.backup.id, target
        );
    } else {
        println!(
            "backup {} of {} FAILED verification:",
            report.backup.id, target
        );
        for p in &report.problems {
            println!("  - {p}");
        }
    }
    Ok(if report.ok { 0 } else { 1 })
}

pub fn drill(
    app: &App,
    actor: &str,
    target: &str,
    backup: Option<&str>,
    json: bool,
) -> Result<i32, Error> {
    let selector = Selector::from_args(backup, None)?;
    let ctx = job_context(json);
    let report = actions::drill::run(app, target, &selector, actor, &ctx)?;
    finish_progress(&ctx);
    if json {
        print_json(&report);
    } else {
        eprintln!("{}", report.headline());
        print!("{}", report.report);
    }
    Ok(if report.ok { 0 } else { 1 })
}

pub fn status(app: &App, json: bool) -> Result<i32, Error> {
    let all = actions::status::all(app, chrono::Utc::now())?;
    let unusable = app.db.chat_channels_unusable()?;
    if json {
        let mut all = serde_json::to_value(&all).unwrap_or_default();
        // Every target's alerts go to every alert channel, so each target names the ones
        // they cannot reach (added only then: the output stays one entry per target).
        for target in all.as_array_mut().into_iter().flatten() {
            if !unusable.is_empty() {
                target["unreachable_alert_channels"] = serde_json::json!(unusable);
            }
        }
        print_json(&all);
    } else {
        print_status(&all);
        let chat = crate::front::chat::links::status_lines(&app.db.chat_links()?);
        let channels = crate::front::chat::links::unusable_lines(&unusable);
        chat.iter().chain(&channels).for_each(|l| println!("{l}"));
    }
    Ok(0)
}

fn print_status(all: &[actions::status::TargetStatus]) {
    let now = chrono::Utc::now();
    for s in all {
        let last = match (&s.last_backup, s.last_backup_age_seconds) {
            (Some(id), Some(age)) => format!("{id} ({} ago)", crate::units::human_age(age)),
            (None, Some(age)) => format!("reported {} ago", crate::units::human_age(age)),
            _ => "never".into(),
        };
        let flag = if s.overdue { "  OVERDUE" } else { "" };
        println!("{} ({}){flag}", s.target, s.kind);
        println!("  last backup: {last}, {} kept", s.backups);
        match (s.state_offsite, s.store.as_deref()) {
            (Some(true), Some(store)) => {
                println!("  lifeboat's own state, backed up off this host (store {store})")
            }
            (Some(false), Some(store)) => println!(
                "  lifeboat's own state, backed up ONLY ON THIS HOST (store {store}): see `lifeboat config check`"
            ),
            _ => {}
        }
        if let Some(next) = &s.next_due {
            let when = crate::units::parse_time(next)
                .map(|t| (t - now).num_seconds())
                .unwrap_or(0);
            println!(
                "  next due:    {next} (in {})",
                crate::units::human_age(when)
            );
        }
        if let Some(since) = &s.overdue_since {
            println!("  overdue:     a backup was due at {since}");
        }
        if let Some(j) = &s.last_job {
            println!("  last job:    {j}");
        }
        if let Some(v) = &s.last_verify {
            println!("  last verify: {v}");
        }
        if let Some(d) = &s.last_drill {
            println!("  last drill:  {d}");
        }
        if let Some(r) = &s.running {
            println!("  running:     {r}");
        }
    }
}
