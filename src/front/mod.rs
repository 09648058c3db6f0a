//! Front-ends over the same actions: HTTP (health now; chat and hooks later).

pub mod http;
