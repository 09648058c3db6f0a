//! What lifeboat does to targets: back up, list, verify, restore (plan, then apply),
//! prune by retention, and report status. Every action takes the App and a JobContext.

pub mod backup;
pub mod browse; // ls, diff and the paths of a partial restore, from manifests alone
pub mod catalog;
pub mod drill; // restore into a sandbox, verify, checks, RTO/RPO, the report
pub mod drill_card; // a finished drill as a card: objectives as facts with their verdict
pub mod drill_checks;
pub mod drill_point; // a continuous target's drill: to the newest moment, RPO the lag
pub mod drill_report;
pub mod drill_state; // a drill of lifeboat itself: state, catalog rebuild, counts
pub mod drill_steps; // a drill's timeline, shared by the drill and each kind's restore half
pub mod gcp; // gcp-disk targets: backups are Compute Engine snapshots
pub mod history; // a target's backups and drills over time, for charts
pub mod kind; // what differs by where a target's backups are kept: a store or snapshots
pub mod leftovers; // what crashed backups left beside targets, removed at `serve` start
pub mod partial; // some paths of a tree restored into a new folder
pub mod prune;
pub mod rebuild; // the catalog made again from the stores
pub mod recover; // a new host: the state from a store, then the catalog
pub mod restore;
pub mod restore_point; // a restore to a moment: the replay checked, staged here or on the host
pub mod retention;
pub mod shared; // the words actions and kinds share: Selector, VerifyReport
pub mod status;
pub mod status_card; // `/backup status` in chat: a card, the whole status as a file when long
pub mod verify;
