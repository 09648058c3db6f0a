//! Front-ends over the same dispatch: HTTP (health, chat routes), Slack and Discord (each
//! over signed HTTP requests or an outgoing connection: Socket Mode, the Gateway), and the
//! read-only status page.

pub mod alert_metrics;
pub mod chat;
pub mod connections;
pub mod discord;
pub mod discord_gateway;
pub mod hooks;
pub mod http;
pub mod links;
pub mod listener;
pub mod metrics;
pub mod outbox;
pub mod registration;
pub mod runbooks;
pub mod slack;
pub mod slack_inbound;
pub mod slack_socket;
pub mod web; // the status page: HTML views and charts, behind a login
