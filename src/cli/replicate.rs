//! `lifeboat replicate <target>`: continuous replication of one SQLite target in the
//! foreground, until SIGTERM or SIGINT (then one last round and the lease given up),
//! taking the target's base copies on its `schedule`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::app::App;
use crate::error::Error;

pub fn replicate(app: &App, target: &str) -> Result<i32, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| Error::io("installing the signal handlers", e))?;
    }
    crate::replicate::run(app, target, &stop, true)?;
    tracing::info!(target = target, "replication stopped");
    Ok(0)
}
