//! Front-ends over the same dispatch: HTTP (health, chat routes), Slack and Discord, and
//! the read-only status page.

pub mod chat;
pub mod discord;
pub mod hooks;
pub mod http;
pub mod metrics;
pub mod registration;
pub mod runbooks;
pub mod slack;
pub mod web; // the status page: HTML views and charts, behind a login
