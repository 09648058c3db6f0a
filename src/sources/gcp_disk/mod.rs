//! gcp-disk targets: a Compute Engine persistent disk, whose copies are the cloud's own
//! snapshots rather than byte streams in a store. The API client is in [`api`]; taking,
//! listing, verifying, restoring (always to a new disk) and drilling snapshots is
//! `actions::gcp`, which the actions reach because this source says its backups are
//! [`Kept::AsSnapshots`].

mod api;

use std::time::Duration;

pub use api::*;

use crate::config::TargetKind;
use crate::error::Error;
use crate::sources::{Kept, Source};

/// How often the newest snapshot of a gcp-disk target without a `verify_schedule` is
/// checked: a snapshot deleted in the console is noticed within this, at the cost of one
/// API read.
pub const SNAPSHOT_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// The kind a snapshot backup's manifest records.
pub const KIND: TargetKind = TargetKind::GcpDisk;

pub struct GcpDisk {
    pub target: String,
}

impl Source for GcpDisk {
    fn target(&self) -> &str {
        &self.target
    }

    fn kind(&self) -> TargetKind {
        KIND
    }

    fn kept(&self) -> Kept {
        Kept::AsSnapshots
    }

    fn unscheduled_verify_every(&self) -> Option<Duration> {
        Some(SNAPSHOT_CHECK_INTERVAL)
    }

    /// A snapshot is not a stream with a name inside.
    fn content_name(&self) -> String {
        String::new()
    }

    /// A new disk from a snapshot has a plan of its own, on the command line only.
    fn no_restores(&self) -> Error {
        let target = &self.target;
        Error::Usage(format!(
            "{target} is a gcp-disk target; restore it from the command line: lifeboat restore {target} [<backup>] --to <new disk name> [--instance <vm>]"
        ))
    }
}
