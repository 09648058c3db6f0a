//! The command line: clap definitions, and running each command as the local operator
//! (`cli:<unix user>`). One file per command family; `render` shows results (text,
//! `--json`, terminal progress) for all of them.

mod browse;
mod config;
mod incident;
mod jobs;
mod recover;
mod render;
mod replicate;
mod restore;
mod runbook;
mod store;
mod web;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::{Config, DEFAULT_PATH};
use std::time::Duration;

use crate::error::Error;

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
        /// The moment to drill: a continuous target restored to it (its base copy and the
        /// shipped transactions); another, its newest backup at or before it (RFC 3339 or
        /// "YYYY-MM-DD HH:MM", UTC)
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a restore plan; with --yes, carry it out (--path: only some paths of a
    /// directory target, into a new folder)
    Restore(restore::RestoreArgs),
    /// What one folder of a directory target's backup holds (default: the newest backup)
    Ls {
        target: String,
        /// A folder or file, relative to the target's root [default: the root]
        path: Option<String>,
        /// The backup's id, or latest
        #[arg(long)]
        backup: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// What was added, removed and changed between two backups of a directory target
    Diff {
        target: String,
        /// The earlier backup's id, or latest
        from: String,
        /// The later backup's id, or latest
        to: String,
        #[arg(long)]
        json: bool,
    },
    /// Apply retention rules
    Prune {
        target: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Incidents and their timelines
    Incident {
        #[command(subcommand)]
        command: incident::IncidentCommand,
    },
    /// Runbooks: list them, or run one step by step
    Runbook {
        #[command(subcommand)]
        command: runbook::RunbookCommand,
    },
    /// The catalog of backups: rebuild it from the stores
    Catalog {
        #[command(subcommand)]
        command: recover::CatalogCommand,
    },
    /// On a new host: restore lifeboat's state from a store, then rebuild the catalog
    Recover(recover::RecoverArgs),
    /// Ship a SQLite target's committed transactions into its store continuously (the
    /// target sets `continuous`), in the foreground until SIGTERM or SIGINT
    Replicate { target: String },
    /// Backup stores: create a repository store's structure
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Configuration
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The status page: make password hashes for `[web] users`
    Web {
        #[command(subcommand)]
        command: web::WebCommand,
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

/// Settings of glibc's allocator that keep the peak of a backup or restore near what it
/// holds, each left to the environment when set there (`MALLOC_ARENA_MAX`,
/// `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`):
/// - Arenas: glibc gives each thread that finds the allocator busy an arena of its own
///   (up to eight per core), and memory freed into one arena is not reused by the others.
///   A re-backup of 200,000 files peaked at 174 MiB with glibc's default and 160 MiB with
///   four arenas; two saved more but made some runs twice as slow, the archiver's threads
///   then waiting on the allocator's locks.
/// - Mapping and trimming: by default glibc raises its mmap threshold to the size of each
///   large block freed (up to 32 MiB), after which chunk and pack buffers of several MiB
///   come from the arenas and stay there, scattered. Held at 4 MiB, larger blocks go back
///   to the system when freed; the trim threshold is held at 6 MiB so that zstd's
///   per-blob context (between 1 and 4 MiB) is reused, not handed back and faulted in
///   again for every blob (at 128 KiB or 2 MiB a first backup of small files took twice
///   as long, all of it in the kernel).
///   Measured against glibc's default: whole restore of the 2 GiB tree 177 → 107 MiB,
///   re-backup of 200,000 files 168 → 141 MiB, first backup of 20,000 files the same
///   time (4.0 s).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only sets parameters of glibc's allocator; called before this
        // process starts any thread.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 4);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
            }
            if unset("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, 6 << 20);
            }
        }
    }
}

/// Parse arguments, run, and return the process exit code.
pub fn main() -> i32 {
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    if let Command::Web { command } = &cli.command {
        return web::run(command);
    }
    init_logging(matches!(
        cli.command,
        Command::Serve | Command::Replicate { .. }
    ));
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
        return recover::recover(config, args, &actor());
    }
    match &cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => return config::check(&config),
        Command::Commands {
            command: CommandsCommand::Export { dir },
        } => {
            return config::export_commands(&config, dir);
        }
        _ => {}
    }
    let recovery = crate::db::damage::advice(&config.server.state, config.state_backup_store());
    let failed = |e: &Error| {
        eprintln!("lifeboat: {e}");
        if e.is_state_damage() {
            eprintln!("lifeboat: to recover, {recovery}");
        }
        e.exit_code()
    };
    // Commands refuse a damaged state up front, naming the fix; `serve` runs on to answer
    // /healthz with 503 and tell the alert channels.
    if !matches!(cli.command, Command::Serve)
        && let Some(detail) = crate::db::damage::check(&config.server.state, Duration::ZERO)
    {
        let damaged = crate::db::DbError::Damaged {
            detail,
            source: None,
        };
        return failed(&Error::Db(damaged));
    }
    let (app, swept) = match App::open(config) {
        Ok(a) => a,
        Err(e) => return failed(&e),
    };
    for job in swept {
        eprintln!(
            "lifeboat: note: job {} ({} of {}, started {} by {}) was interrupted before it finished",
            job.id, job.kind, job.target, job.started_at, job.actor
        );
    }
    let code = match run(&app, cli.command) {
        Ok(code) => code,
        Err(e) => failed(&e),
    };
    // A backup's monitor pings go out from threads that would die with the process.
    crate::monitor::pings::wait_sent(EXIT_PING_WAIT);
    code
}

/// How long a command waits at exit for its backups' monitor pings (each has a 10s
/// timeout and a few retries): long enough for a slow monitor, bounded for a dead one.
const EXIT_PING_WAIT: Duration = Duration::from_secs(30);

fn init_logging(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal: a log file or the journal gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// The identity the CLI acts as: `cli:<unix user>`, named as the password database names
/// the effective user (`cli:root` under systemd too, where no `USER` is set); the uid only
/// when the user has no name there.
pub fn actor() -> String {
    // SAFETY: geteuid cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    let user = user_name(uid)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| format!("uid{uid}"));
    format!("cli:{user}")
}

/// The login name of `uid` from the password database (files, LDAP, ... as NSS says).
fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value to be overwritten; getpwuid_r writes
    // only into `pwd` and `buf` (whose length it is told) and sets `found` to `pwd` or null.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points into `buf`, NUL-terminated, while `buf` lives.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    name.to_str()
        .ok()
        .filter(|n| !n.is_empty())
        .map(String::from)
}

fn run(app: &App, command: Command) -> Result<i32, Error> {
    let actor = actor();
    match command {
        Command::Serve => crate::front::serve::run(app.clone()),
        Command::Replicate { target } => replicate::replicate(app, &target),
        Command::Backup { target, json } => jobs::backup(app, &actor, &target, json),
        Command::List { target, json } => restore::list(app, target.as_deref(), json),
        Command::Incident { command } => incident::run(app, &actor, command),
        Command::Runbook { command } => runbook::run(app, &actor, command),
        Command::Catalog { command } => recover::catalog(app, &actor, command),
        Command::Store { command } => store::run(app, command),
        Command::Status { json } => jobs::status(app, json),
        Command::Verify {
            target,
            backup,
            read_data,
            json,
        } => jobs::verify(app, &actor, &target, backup.as_deref(), read_data, json),
        Command::Drill {
            target,
            backup,
            at,
            json,
        } => jobs::drill(app, &actor, &target, backup.as_deref(), at.as_deref(), json),
        Command::Restore(args) => restore::restore(app, &actor, args),
        Command::Ls {
            target,
            path,
            backup,
            json,
        } => browse::ls(app, &target, path.as_deref(), backup.as_deref(), json),
        Command::Diff {
            target,
            from,
            to,
            json,
        } => browse::diff(app, &target, &from, &to, json),
        Command::Prune { target, dry_run } => {
            restore::prune(app, target.as_deref(), dry_run, &actor)
        }
        Command::Config { .. }
        | Command::Commands { .. }
        | Command::Web { .. }
        | Command::Recover(_) => {
            unreachable!("handled before the state is opened")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_local_user_is_named_as_the_password_database_names_it() {
        // uid 0 is `root` on every system the tests run on (they run as root).
        assert_eq!(super::user_name(0).as_deref(), Some("root"));
        assert!(super::actor().starts_with("cli:") && !super::actor().contains("uid"));
    }
}
