//! Front-ends over the same dispatch: HTTP (health, chat routes), Slack and Discord.

pub mod alert_metrics;
pub mod chat;
pub mod discord;
pub mod hooks;
pub mod http;
pub mod metrics;
pub mod registration;
pub mod runbooks;
pub mod slack;
