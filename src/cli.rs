//! The command line: clap definitions, running each command as the local operator
//! (`cli:<unix user>`), and rendering results as text, `--json`, and terminal progress.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::actions::catalog::Selector;
use crate::actions::{self, backup::human_bytes};
use crate::app::App;
use crate::config::{Config, DEFAULT_PATH};
use crate::error::Error;
use crate::progress::{Cancel, JobContext, Progress, Silent};

#[derive(Parser, Debug)]
#[command(
    name = "lifeboat",
    version,
    about = "Disaster-recovery bot: back up, verify, restore and drill from chat or the command line"
)]
pub struct Cli {
    /// Config file [default: config/lifeboat.toml, or the built-in default when absent]
    #[arg(long, global = true, env = "LIFEBOAT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP endpoints until SIGTERM or SIGINT
    Serve,
    /// Back up a target now
    Backup {
        target: String,
        #[arg(long)]
        json: bool,
    },
    /// List backups, newest first
    List {
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every target: last backup and its age, next due, overdue, last verify, last drill
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Verify a backup (default: latest)
    Verify {
        target: String,
        backup: Option<String>,
        /// Also have the store read back every byte it holds (a repository: every pack)
        #[arg(long)]
        read_data: bool,
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup (default: latest) into a sandbox, verify it, run the target's
    /// checks and measure RTO/RPO against its objectives; prints the drill report
    Drill {
        target: String,
        backup: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a restore plan; with --yes, carry it out
    Restore(crate::cli_restore::RestoreArgs),
    /// Apply retention rules
    Prune {
        target: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Incidents and their timelines
    Incident {
        #[command(subcommand)]
        command: crate::cli_incident::IncidentCommand,
    },
    /// Runbooks: list them, or run one step by step
    Runbook {
        #[command(subcommand)]
        command: crate::cli_runbook::RunbookCommand,
    },
    /// The catalog of backups: rebuild it from the stores
    Catalog {
        #[command(subcommand)]
        command: crate::cli_recover::CatalogCommand,
    },
    /// On a new host: restore lifeboat's state from a store, then rebuild the catalog
    Recover(crate::cli_recover::RecoverArgs),
    /// Backup stores: create a repository store's structure
    Store {
        #[command(subcommand)]
        command: crate::cli_store::StoreCommand,
    },
    /// Configuration
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The status page: make password hashes for `[web] users`
    Web {
        #[command(subcommand)]
        command: crate::cli_web::WebCommand,
    },
    /// Chat platform registration files
    Commands {
        #[command(subcommand)]
        command: CommandsCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum CommandsCommand {
    /// Write the Slack app manifest and Discord commands into commands/
    Export {
        /// Directory to write into
        #[arg(long, default_value = "commands")]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the config: syntax, keys, cron, durations, references, paths
    Check,
}

/// Parse arguments, run, and return the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    if let Command::Web { command } = &cli.command {
        return crate::cli_web::run(command);
    }
    init_logging(matches!(cli.command, Command::Serve));
    let explicit = cli.config.is_some();
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    let config = match Config::load(&path, explicit) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lifeboat: {e}");
            return 2;
        }
    };
    if let Command::Recover(args) = cli.command {
        return crate::cli_recover::recover(config, args);
    }
    match &cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => return config_check(&config),
        Command::Commands {
            command: CommandsCommand::Export { dir },
        } => {
            return match crate::front::registration::export(&config, dir) {
                Ok(paths) => {
                    for p in paths {
                        println!("wrote {}", p.display());
                    }
                    0
                }
                Err(e) => {
                    eprintln!("lifeboat: writing {}: {e}", dir.display());
                    1
                }
            };
        }
        _ => {}
    }
    let (app, swept) = match App::open(config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lifeboat: {e}");
            return 1;
        }
    };
    for job in swept {
        eprintln!(
            "lifeboat: note: job {} ({} of {}, started {} by {}) was interrupted before it finished",
            job.id, job.kind, job.target, job.started_at, job.actor
        );
    }
    match run(&app, cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lifeboat: {e}");
            e.exit_code()
        }
    }
}

fn init_logging(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The identity the CLI acts as: `cli:<unix user>`.
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid{}", unsafe { libc::geteuid() }));
    format!("cli:{user}")
}

fn config_check(config: &Config) -> i32 {
    for w in config.state_backup_warnings() {
        eprintln!("lifeboat: {}: warning: {w}", config.source);
    }
    let problems = config.check_reachable();
    if problems.is_empty() {
        println!(
            "{}: ok ({} stores, {} targets)",
            config.source,
            config.stores.len(),
            config.targets.len()
        );
        0
    } else {
        for p in problems {
            eprintln!("lifeboat: {}: {p}", config.source);
        }
        2
    }
}

fn run(app: &App, command: Command) -> Result<i32, Error> {
    let actor = actor();
    match command {
        Command::Serve => serve(app.clone()),
        Command::Backup { target, json } => {
            let ctx = job_context(json);
            let m = actions::backup::run(app, &target, &actor, &ctx)?;
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
        Command::List { target, json } => crate::cli_restore::list(app, target.as_deref(), json),
        Command::Incident { command } => crate::cli_incident::run(app, &actor, command),
        Command::Runbook { command } => crate::cli_runbook::run(app, &actor, command),
        Command::Catalog { command } => crate::cli_recover::catalog(app, &actor, command),
        Command::Store { command } => crate::cli_store::run(app, command),
        Command::Status { json } => {
            let all = actions::status::all(app, chrono::Utc::now())?;
            if json {
                print_json(&all);
            } else {
                print_status(&all);
                crate::front::links::status_lines(&app.db.chat_links()?)
                    .iter()
                    .for_each(|l| println!("{l}"));
            }
            Ok(0)
        }
        Command::Verify {
            target,
            backup,
            read_data,
            json,
        } => {
            let selector = Selector::from_args(backup.as_deref(), None)?;
            let ctx = job_context(json);
            let report =
                actions::verify::run_reading(app, &target, &selector, read_data, &actor, &ctx)?;
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
        Command::Drill {
            target,
            backup,
            json,
        } => {
            let selector = Selector::from_args(backup.as_deref(), None)?;
            let ctx = job_context(json);
            let report = actions::drill::run(app, &target, &selector, &actor, &ctx)?;
            finish_progress(&ctx);
            if json {
                print_json(&report);
            } else {
                eprintln!("{}", report.headline());
                print!("{}", report.report);
            }
            Ok(if report.ok { 0 } else { 1 })
        }
        Command::Restore(args) => crate::cli_restore::restore(app, &actor, args),
        Command::Prune { target, dry_run } => {
            crate::cli_restore::prune(app, target.as_deref(), dry_run, &actor)
        }
        Command::Config { .. }
        | Command::Commands { .. }
        | Command::Web { .. }
        | Command::Recover(_) => {
            unreachable!("handled before the state is opened")
        }
    }
}

fn print_status(all: &[actions::status::TargetStatus]) {
    let now = chrono::Utc::now();
    for s in all {
        let last = match (&s.last_backup, s.last_backup_age_seconds) {
            (Some(id), Some(age)) => format!("{id} ({} ago)", actions::restore::human_age(age)),
            (None, Some(age)) => format!("reported {} ago", actions::restore::human_age(age)),
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
            let when = crate::db::parse_time(next)
                .map(|t| (t - now).num_seconds())
                .unwrap_or(0);
            println!(
                "  next due:    {next} (in {})",
                actions::restore::human_age(when)
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

pub(crate) fn print_json<T: Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
}

/// A job context for the CLI: progress on a terminal only, and Ctrl-C cancels cleanly
/// (a second Ctrl-C exits at once).
pub(crate) fn job_context(json: bool) -> JobContext {
    let cancel = Cancel::new();
    let flag = cancel.flag();
    let _ = signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        flag.clone(),
    );
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone());
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, flag);
    let progress: Arc<dyn Progress> = if !json && std::io::stdout().is_terminal() {
        Arc::new(TerminalProgress::default())
    } else {
        Arc::new(Silent)
    };
    JobContext { progress, cancel }
}

pub(crate) fn finish_progress(_ctx: &JobContext) {
    if std::io::stdout().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

/// Phase, bytes, rate and ETA on one line of stderr, redrawn at most ten times a second.
#[derive(Default)]
struct TerminalProgress {
    state: std::sync::Mutex<TermState>,
}

#[derive(Default)]
struct TermState {
    phase: String,
    total: Option<u64>,
    done: u64,
    started: Option<std::time::Instant>,
    drawn: Option<std::time::Instant>,
}

impl Progress for TerminalProgress {
    fn phase(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        *s = TermState {
            phase: name.to_string(),
            started: Some(std::time::Instant::now()),
            ..TermState::default()
        };
        draw(&mut s, true);
    }
    fn total(&self, bytes: Option<u64>) {
        self.state.lock().unwrap().total = bytes;
    }
    fn advance(&self, bytes: u64) {
        let mut s = self.state.lock().unwrap();
        s.done += bytes;
        draw(&mut s, false);
    }
}

fn draw(s: &mut TermState, force: bool) {
    let now = std::time::Instant::now();
    if !force
        && s.drawn
            .is_some_and(|d| now - d < std::time::Duration::from_millis(100))
    {
        return;
    }
    s.drawn = Some(now);
    let secs = s
        .started
        .map_or(0.0, |t| (now - t).as_secs_f64())
        .max(0.001);
    let rate = s.done as f64 / secs;
    let mut line = format!("{}: {}", s.phase, human_bytes(s.done));
    if let Some(total) = s.total.filter(|t| *t > 0) {
        let pct = (s.done as f64 / total as f64 * 100.0).min(100.0);
        line.push_str(&format!(" of {} ({pct:.0}%)", human_bytes(total)));
        if rate > 0.0 && s.done < total {
            line.push_str(&format!(", ETA {:.0}s", (total - s.done) as f64 / rate));
        }
    }
    line.push_str(&format!(", {}/s", human_bytes(rate as u64)));
    eprint!("\r\x1b[2K{line}");
}

fn serve(app: App) -> Result<i32, Error> {
    // Before anything opens files: HTTP clients, the state and the stores share the limit.
    crate::front::listener::raise_file_limit();
    app.db
        .checkpoint_in_background(&app.config.server.state, std::time::Duration::from_secs(5))?;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| Error::io("starting the runtime", e))?;
    runtime.block_on(async move {
        // Handlers first, so a SIGTERM right after start is a clean stop, not a kill.
        let stop = shutdown_signal();
        let listen = app.config.server.listen.clone();
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| Error::Failed(format!("cannot listen on {listen}: {e}")))?;
        tracing::info!(
            "lifeboat {} listening on http://{} (config {})",
            env!("CARGO_PKG_VERSION"),
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or(listen),
            app.config.source
        );
        let executor = app.executor.clone();
        crate::front::http::serve(app, listener, async move {
            stop.await;
            tracing::info!(
                "shutting down: cancelling {} running jobs",
                executor.running_count()
            );
            executor.cancel_all();
        })
        .await
        .map_err(|e| Error::io("serving HTTP", e))?;
        tracing::info!("stopped");
        Ok(0)
    })
}

/// Resolves at SIGTERM or SIGINT; the handlers are in place once this returns.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
