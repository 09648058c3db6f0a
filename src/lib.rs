//! lifeboat: a disaster-recovery bot. Module map (data flows top to bottom):
//! front-ends (`cli`, `front`) → actions → sources/stores → state (`db`).

pub mod actions; // backup, verify, restore, prune, status: what lifeboat does to targets
pub mod app; // the shared context: config, db, executor, stores
pub mod approvals; // restore approvals: clicks, quorum, expiry, the request's message
pub mod auth; // roles and channel allow-list
pub mod charts; // history charts: SVG for the status page, PNG for chat
pub mod cli; // the command line: clap definitions, one file per command family, rendering
pub mod command; // the chat grammar: Command, parse, roles, usage
pub mod config; // TOML config, ${ENV} interpolation, validation
pub mod db; // the bot's own SQLite state: jobs, catalog, audit
pub mod dispatch; // Invocation → authorize → Reply, with audit
pub mod error; // the domain error type
pub mod executor; // jobs: records, per-target locks, cancellation, crash sweep
pub mod front; // HTTP front-end
pub mod incident; // incidents: timelines fed by the audit log, post-mortem export
pub mod notify; // chat-neutral messaging: Notifier trait, retries, coalesced updates
pub mod password; // status page password hashes: made by the CLI, checked by the login
pub mod pipe; // streaming hash/progress/compression building blocks
pub mod probe; // HTTP GET and time-limited commands shared by drill checks and runbook steps
pub mod progress; // progress reporting and cancellation
pub mod runbook; // runbook files, running them step by step, their reports
pub mod schedule; // cron backups, the watchdog and its alerts
pub mod sources; // how each target kind is copied and put back
pub mod ssh; // other hosts: the system ssh client, one connection per job, quoting
pub mod stores; // where backups are kept: local directory, S3, memory (tests)
pub mod units; // how times, ages and sizes are written: a leaf every layer may use
