//! command targets: a dump command whose output is the backup. Not backed up by this
//! build of lifeboat; the source says so, and why a drill cannot load one back.

use crate::config::TargetKind;
use crate::sources::Source;

pub struct Command {
    pub target: String,
    /// The dump command's argv.
    pub argv: Vec<String>,
}

impl Source for Command {
    fn target(&self) -> &str {
        &self.target
    }

    fn kind(&self) -> TargetKind {
        TargetKind::Command
    }

    fn content_name(&self) -> String {
        format!("{}.bin", self.target)
    }

    fn drill_refusal(&self) -> Option<&'static str> {
        Some(
            "drills of command targets are not available: lifeboat cannot load their dump back; restore with the application's own tool",
        )
    }
}
