//! The domain's error type: user errors (shown as they are), failures with a plain-words
//! reason, busy targets, cancellation, and the stores' and database's own errors.

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
        if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<StoreError>()) {
            return Error::Failed(format!("{context}: {inner}"));
        }
        if crate::pipe::is_storage_full(&e) {
            return Error::Failed(format!("{context}: no space left on device"));
        }
        Error::Failed(format!("{context}: {e}"))
    }

    pub fn sqlite(context: impl std::fmt::Display, e: rusqlite::Error) -> Error {
        Error::Failed(format!("{context}: {e}"))
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
        Error::Db(DbError::Sql(e))
    }
}
