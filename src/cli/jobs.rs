//! `lifeboat backup`, `verify`, `drill` and `status`: run one job now in this terminal and
//! print its result, or show every target's state.

use crate::actions::{self, catalog::Selector};
use crate::app::App;
use crate::cli::render::{print_json, run_job};
use crate::error::Error;
use crate::executor::job::Job;

pub fn backup(app: &App, actor: &str, target: &str, json: bool) -> Result<i32, Error> {
    let job = Job::Backup {
        target: target.to_string(),
    };
    run_job(app, actor, &job, json)
}

pub fn verify(
    app: &App,
    actor: &str,
    target: &str,
    backup: Option<&str>,
    read_data: bool,
    json: bool,
) -> Result<i32, Error> {
    let job = Job::Verify {
        target: target.to_string(),
        selector: Selector::from_args(backup, None)?,
        read_data,
    };
    run_job(app, actor, &job, json)
}

pub fn drill(
    app: &App,
    actor: &str,
    target: &str,
    backup: Option<&str>,
    at: Option<&str>,
    json: bool,
) -> Result<i32, Error> {
    let job = Job::Drill {
        target: target.to_string(),
        selector: Selector::from_args(backup, at)?,
    };
    run_job(app, actor, &job, json)
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
        if s.health != actions::status::Health::Green {
            println!(
                "  health: {}: {}",
                s.health.as_str(),
                s.health_reasons.join("; ")
            );
        }
        match (&s.replicated_to, s.lag_seconds, &s.replication_problem) {
            (Some(at), Some(lag), _) => {
                println!("  replicated to {at} (lag {} s)", lag.round() as i64)
            }
            (_, _, Some(problem)) => println!("  replication: {problem}"),
            _ => {}
        }
        if let Some(paths) = &s.last_backup_changed_while_read {
            println!("  INCONSISTENT: {}", actions::backup::changed_files(paths));
        }
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
