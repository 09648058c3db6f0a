//! What lifeboat does to targets: back up, list, verify, restore (plan, then apply),
//! prune by retention, and report status. Every action takes the App and a JobContext.

pub mod backup;
pub mod catalog;
pub mod drill; // restore into a sandbox, verify, checks, RTO/RPO, the report
pub mod drill_checks;
pub mod drill_gcp; // a gcp-disk drill: a new disk from the snapshot, checked, deleted
pub mod drill_report;
pub mod gcp;
pub mod history; // a target's backups and drills over time, for charts
pub mod prune;
pub mod restore;
pub mod restore_remote;
pub mod retention;
pub mod status;
pub mod verify;

/// The file extension of a target kind's artifact (before `.zst`).
pub fn artifact_ext(kind: crate::config::TargetKind) -> &'static str {
    match kind {
        crate::config::TargetKind::Sqlite => "sqlite",
        crate::config::TargetKind::Directory => "tar",
        _ => "bin",
    }
}
