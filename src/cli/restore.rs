//! `lifeboat list`, `lifeboat restore` and `lifeboat prune`: the backups kept, a restore
//! plan printed (and with --yes carried out), and the backups retention no longer keeps
//! removed.

use std::path::PathBuf;

use clap::Args;

use crate::actions;
use crate::actions::catalog::Selector;
use crate::app::App;
use crate::cli::render::{print_json, print_report, run_job};
use crate::error::Error;
use crate::executor::job::Job;
use crate::progress::JobContext;
use crate::units::human_bytes;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub target: String,
    pub backup: Option<String>,
    /// Newest backup at or before this time (RFC 3339 or "YYYY-MM-DD HH:MM", UTC)
    #[arg(long)]
    pub at: Option<String>,
    /// Restore to this new path instead of in place (gcp-disk: the new disk's name)
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// gcp-disk: attach the new disk to this instance
    #[arg(long)]
    pub instance: Option<String>,
    /// Directory targets: restore only this path (a file or a folder, relative to the
    /// target's root) into a new folder given by --to; repeat for more paths
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Only print the plan
    #[arg(long)]
    pub dry_run: bool,
    /// Carry out the plan
    #[arg(long)]
    pub yes: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn list(app: &App, target: Option<&str>, json: bool) -> Result<i32, Error> {
    let targets = app.targets_or_all(target)?;
    let mut all = Vec::new();
    for t in &targets {
        all.extend(
            actions::catalog::backups(app, t)?
                .into_iter()
                .map(|m| m.summary()),
        );
    }
    all.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    if json {
        print_json(&all);
    } else if all.is_empty() {
        println!("no backups yet");
    } else {
        println!(
            "{:<20} {:<24} {:<10} {:>10}  {:<24}",
            "TARGET", "ID", "KIND", "SIZE", "CREATED (UTC)"
        );
        for m in &all {
            let flag = if m.is_consistent() {
                String::new()
            } else {
                format!("  INCONSISTENT: {}", m.changed_paths().len()) + " changed while read"
            };
            println!(
                "{:<20} {:<24} {:<10} {:>10}  {:<24}{flag}",
                m.target,
                m.id,
                m.kind,
                human_bytes(m.size_bytes),
                m.created_at
            );
        }
    }
    Ok(0)
}

pub fn restore(app: &App, actor: &str, args: RestoreArgs) -> Result<i32, Error> {
    let RestoreArgs {
        target,
        backup,
        at,
        to,
        instance,
        paths,
        dry_run,
        yes,
        json,
    } = args;
    let selector = Selector::from_args(backup.as_deref(), at.as_deref())?;
    let plan: Box<dyn actions::kind::PlannedRestore> = if paths.is_empty() {
        // The kind reads `--to` (a path, or a new disk's name) and `--instance`.
        actions::kind::for_target(app, &target)?.cli_restore_plan(
            app,
            &target,
            &selector,
            to.as_deref(),
            instance.as_deref(),
        )?
    } else {
        if instance.is_some() {
            return Err(Error::Usage(
                "--instance is only for gcp-disk targets, --path only for directory targets".into(),
            ));
        }
        Box::new(actions::partial::plan(
            app,
            &target,
            &selector,
            &paths,
            to.as_deref(),
        )?)
    };
    if dry_run || !yes {
        if json {
            println!("{}", plan.to_json());
        } else {
            print!("{}", plan.describe());
            if !dry_run {
                println!("Nothing was changed. Run again with --yes to carry out this plan.");
            }
        }
        return Ok(0);
    }
    if !json {
        eprint!("{}", plan.describe());
    }
    let job = Job::PlannedRestore { plan: plan.into() };
    run_job(app, actor, &job, json)
}

pub fn prune(app: &App, target: Option<&str>, dry_run: bool, actor: &str) -> Result<i32, Error> {
    let targets = app.targets_or_all(target)?;
    for t in targets {
        if !dry_run {
            let job = Job::Prune { target: t };
            let report = job.run(app, actor, &JobContext::silent())?;
            print_report(&job, &report, false);
            continue;
        }
        let plan = actions::prune::plan(app, &t)?;
        print!("{}", plan.describe());
        if !plan.remove.is_empty() {
            println!("  (dry run: nothing was removed)");
        }
    }
    Ok(0)
}
