//! `lifeboat catalog rebuild` and `lifeboat recover`: the catalog made again from the
//! stores, and a new host brought back from a store with only the config.

use clap::{Args, Subcommand};

use crate::actions::{rebuild, recover};
use crate::app::App;
use crate::cli::render::{finish_progress, job_context, print_json};
use crate::config::Config;
use crate::error::Error;

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Rebuild the catalog of backups from the stores' manifests (all stores, or one)
    Rebuild {
        /// Only this store
        #[arg(long)]
        store: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct RecoverArgs {
    /// The store holding the state backups (an off-site one)
    #[arg(long)]
    pub store: String,
    /// This state backup instead of the newest
    #[arg(long)]
    pub backup: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn catalog(app: &App, actor: &str, command: CatalogCommand) -> Result<i32, Error> {
    let CatalogCommand::Rebuild { store, json } = command;
    let report = rebuild::run(app, store.as_deref(), actor)?;
    for w in report.warnings() {
        eprintln!("lifeboat: warning: {w}");
    }
    if json {
        print_json(&report);
    } else {
        print!("{}", report.describe());
        println!(
            "catalog rebuilt: {} backups in {:.1}s",
            report.total(),
            report.duration_seconds
        );
    }
    Ok(if report.ok() { 0 } else { 1 })
}

/// Runs before any state is opened: the state is what it brings back.
pub fn recover(config: Config, args: RecoverArgs, actor: &str) -> i32 {
    let ctx = job_context(args.json);
    let result = recover::run(config, &args.store, args.backup.as_deref(), actor, &ctx);
    finish_progress(&ctx);
    let (_app, report) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lifeboat: {e}");
            return e.exit_code();
        }
    };
    for w in report.warnings.iter().chain(&report.catalog.warnings()) {
        eprintln!("lifeboat: warning: {w}");
    }
    if args.json {
        print_json(&report);
    } else {
        print!("{}", describe(&report));
    }
    if report.catalog.ok() { 0 } else { 1 }
}

fn describe(r: &recover::RecoverReport) -> String {
    let b = &r.state_backup;
    let mut out = format!(
        "restored state backup {} (taken {}, {} old) from store {} to {}\n",
        b.id,
        b.created_at,
        crate::units::human_age(r.state_backup_age_seconds),
        r.store,
        r.state_path.display()
    );
    for m in &r.moved_aside {
        out.push_str(&format!(
            "moved aside: {} -> {}\n",
            m.from.display(),
            m.to.display()
        ));
    }
    for j in &r.interrupted_jobs {
        out.push_str(&format!(
            "interrupted: job {} ({} of {}, started {} by {})\n",
            j.id, j.kind, j.target, j.started_at, j.actor
        ));
    }
    out.push_str(&format!(
        "catalog: {} backups, {} of them newer than the state backup\n",
        r.catalog.total(),
        r.newer_than_state
    ));
    out.push_str(&r.catalog.describe());
    if r.open_incidents.is_empty() {
        out.push_str("open incidents: none\n");
    }
    for i in &r.open_incidents {
        out.push_str(&format!(
            "open incident #{}: {} (opened {}, {} timeline events)\n",
            i.id, i.title, i.opened_at, i.timeline_events
        ));
    }
    if r.pending_approvals.is_empty() {
        out.push_str("pending restore requests: none\n");
    }
    for a in &r.pending_approvals {
        out.push_str(&format!(
            "pending restore request {} of {} by {} (expires {})\n",
            a.id, a.target, a.requester, a.expires_at
        ));
    }
    out.push_str(&format!(
        "expired restore requests: {} (they stay expired)\n",
        r.expired_approvals
    ));
    out.push_str(&format!("recovered in {:.1}s\n", r.duration_seconds));
    out
}
