//! The domain's error type, and the rules every module follows when it fails.
//!
//! **User errors** are the request's fault and are shown as they are: `Usage` (unknown
//! target or backup, a path not allowed, a bad parameter: exit code 2, a private chat
//! reply) and `Busy` (another job holds the target). Their text is the whole answer, so it
//! says what to do instead.
//!
//! **Internal errors** are everything else: the operation ran and failed (`Failed`, `Io`,
//! `StorageFull`, `Sqlite`, `Store`, `Db`) or was `Cancelled`. Chat shows them after
//! "that did not work:", the CLI after "lifeboat:" with exit code 1, and both are logged.
//!
//! - A failure caused by another error keeps that error as its `#[source]` (`Error::io`,
//!   `Error::sqlite`, `#[from]`), never only its text; the message shows the cause's
//!   text once, after the context, so users read one line.
//! - Context says what was being done, in lower case and without a trailing period:
//!   `reading /srv/app.db`, `cannot listen on 0.0.0.0:8080`, then `: <cause>`.
//! - Modules with failures of their own (stores, db, probes, runbook files) have a
//!   `thiserror` enum of their own that converts into this one; no domain function
//!   returns `Result<_, String>`.
//! - `anyhow`-style catch-alls stay at the edges (main, tests); a user never sees a
//!   `Debug` rendering.

use crate::db::DbError;
use crate::stores::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong: unknown target or backup, a path not allowed.
    #[error("{0}")]
    Usage(String),
    /// Another job holds the target.
    #[error("{0}")]
    Busy(String),
    /// The operation ran and failed; the text says why in plain words.
    #[error("{0}")]
    Failed(String),
    /// An I/O operation failed: what was being done, and the error itself.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The disk or store being written is full.
    #[error("{context}: no space left on device")]
    StorageFull {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A SQLite operation on a database lifeboat backs up or restores failed.
    #[error("{context}: {source}")]
    Sqlite {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap an I/O error with what was being done, recognising cancellation and a full disk.
    pub fn io(context: impl std::fmt::Display, e: std::io::Error) -> Error {
        if crate::progress::is_cancellation(&e) {
            return Error::Cancelled;
        }
        let context = context.to_string();
        if crate::pipe::is_storage_full(&e) {
            return Error::StorageFull { context, source: e };
        }
        Error::Io { context, source: e }
    }

    pub fn sqlite(context: impl std::fmt::Display, e: rusqlite::Error) -> Error {
        Error::Sqlite {
            context: context.to_string(),
            source: e,
        }
    }

    /// Whether lifeboat's own state database was found damaged on the way.
    pub fn is_state_damage(&self) -> bool {
        matches!(self, Error::Db(d) if d.is_damage())
    }

    /// Exit code for the CLI: 2 for a wrong request, 1 for a failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Db(DbError::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn io_errors_keep_their_cause_and_read_as_before() {
        let e = Error::io(
            "reading /srv/app.db",
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        assert_eq!(e.to_string(), "reading /srv/app.db: gone");
        let cause = e.source().expect("the io::Error is kept");
        assert_eq!(cause.to_string(), "gone");
        let full = Error::io("writing", std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(full.to_string(), "writing: no space left on device");
        assert!(full.source().is_some());
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(full.exit_code(), 1);
    }
}
