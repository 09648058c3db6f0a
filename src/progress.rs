//! Progress and cancellation, passed into every long operation as arguments so the same
//! code reports to a terminal, to chat, or to nothing (tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Receives progress of one job. Implementations must be cheap: `advance` is called for
/// every chunk of data.
pub trait Progress: Send + Sync {
    /// A new phase begins, e.g. "copying database", "compressing and uploading".
    fn phase(&self, name: &str);
    /// The expected number of bytes of the current phase, if known.
    fn total(&self, bytes: Option<u64>);
    /// `bytes` more were processed in the current phase.
    fn advance(&self, bytes: u64);
    /// A line worth showing as it happens (a hook command's outcome and output tail);
    /// shown where a person watches (the terminal), ignored elsewhere.
    fn note(&self, _text: &str) {}
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _: &str) {}
    fn total(&self, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
}

/// A cancellation flag shared between whoever may cancel a job and the job itself.
#[derive(Clone, Default, Debug)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// The flag itself, for signal handlers.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
    /// An error to return from I/O when cancelled. Not `ErrorKind::Interrupted`: copy loops
    /// (the standard library's among them) retry those, and would spin instead of stopping.
    pub fn check(&self) -> std::io::Result<()> {
        if self.is_cancelled() {
            Err(std::io::Error::other(Cancelled))
        } else {
            Ok(())
        }
    }
}

/// The I/O error a cancelled job's readers and writers return.
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Whether an I/O error is [`Cancel::check`]'s, possibly re-wrapped by a library on the way.
pub fn is_cancellation(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Cancelled>()) || e.to_string() == "cancelled"
}

/// What a running job is handed: where to report, and how to know it should stop.
#[derive(Clone)]
pub struct JobContext {
    pub progress: Arc<dyn Progress>,
    pub cancel: Cancel,
}

impl JobContext {
    pub fn silent() -> JobContext {
        JobContext {
            progress: Arc::new(Silent),
            cancel: Cancel::new(),
        }
    }
}
