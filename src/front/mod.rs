//! Front-ends over the same dispatch: HTTP (health, metrics, hooks, the chat routes), Slack
//! and Discord (each over signed HTTP requests or an outgoing connection: Socket Mode, the
//! Gateway), and the read-only status page. `serve` wires them together at start-up.

pub mod alert_metrics; // /metrics: the open alerts
pub mod chat; // what Slack and Discord share: chat jobs, approvals, runbooks, the outbox
pub mod discord; // Discord: signed interactions, the Gateway, the HTTP client
pub mod hooks; // /hooks: heartbeat pings and Alertmanager webhooks
pub mod http; // the router: health, metrics, hooks, the chat routes; body limits
pub mod listener; // accepting connections: the cap below the file limit, header and request deadlines
pub mod metrics; // /metrics: Prometheus text
pub mod registration; // the Slack app manifest and Discord commands, from the code
pub mod serve; // `lifeboat serve`: start-up wiring, connections, graceful shutdown
pub mod slack; // Slack: signed requests, Socket Mode, inbound payloads, the Web API
pub mod state_alarm; // one chat alert when the state database is found damaged
pub mod web; // the status page: HTML views and charts, behind a login
