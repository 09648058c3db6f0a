//! lifeboat: a disaster-recovery bot. Data flows one way: front-end (`cli`, `front`) →
//! command (`command`, `dispatch`) → `executor` → `actions` → `sources`/`stores` → state
//! (`db`); events flow back: `executor` → `notify` → front-end. A module imports only from
//! its own layer or below; `config`, `units` and `progress` are the floor.

// Front-ends
pub mod cli; // the command line: clap definitions, one file per command family, rendering
pub mod front; // serve: HTTP router, Slack, Discord, chat jobs, hooks, metrics, status page

// Commands
pub mod approvals; // restore approvals: clicks, quorum, expiry, the request's message
pub mod auth; // roles and channel allow-list
pub mod card; // a chat-neutral structured message (facts, people, times, steps, outcome) and its limits
pub mod command; // the chat grammar: Command, parse, roles, usage
pub mod dispatch; // Invocation → authorize → Reply, with audit
pub mod notify; // chat-neutral messaging: Notifier trait, retries, coalesced updates
pub mod password; // status page password hashes: made by the CLI, checked by the login

// The domain
pub mod actions; // backup, verify, restore, prune, status: what lifeboat does to targets
pub mod app; // the shared context: config, db, executor, stores
pub mod charts; // history charts: SVG for the status page, PNG for chat
pub mod error; // the domain error type and the rules for using it
pub mod executor; // jobs: the Job runner, records, per-target locks, cancellation, crash sweep
pub mod incident; // incidents: timelines fed by the audit log, post-mortem export
pub mod monitor; // outside monitors: the heartbeat of serve, each backup's pings
pub mod replicate; // continuous replication of SQLite: the shipper, segments, lease, restore to a moment
pub mod runbook; // runbook files, running them step by step, their reports
pub mod schedule; // cron backups, the watchdog and its alerts
pub mod target_hooks; // [targets.<t>.hooks]: commands around backups and restores, owed after crashes

// Sources, stores and state
pub mod db; // the bot's own SQLite state: jobs, catalog, audit
pub mod probe; // HTTP GET and time-limited commands shared by drill checks and runbook steps
pub mod sources; // how each target kind is copied and put back
pub mod ssh; // other hosts: the system ssh client, one connection per job, quoting
pub mod stores; // where backups are kept: local directory, S3, memory (tests)

// The floor: used by every layer
pub mod config; // TOML config, ${ENV} interpolation, validation
pub mod pipe; // streaming hash/progress/compression building blocks
pub mod progress; // progress reporting and cancellation
pub mod units; // how times, ages and sizes are written: a leaf every layer may use
