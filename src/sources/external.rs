//! external targets: backups made elsewhere that report in (`POST /hooks/ping/<target>`).
//! lifeboat only watches them: it takes no copy and restores nothing.

use crate::config::TargetKind;
use crate::sources::Source;

pub struct External {
    pub target: String,
}

impl Source for External {
    fn target(&self) -> &str {
        &self.target
    }

    fn kind(&self) -> TargetKind {
        TargetKind::External
    }

    fn takes_backups(&self) -> bool {
        false
    }

    fn content_name(&self) -> String {
        format!("{}.bin", self.target)
    }

    fn drill_refusal(&self) -> Option<&'static str> {
        Some("external targets keep no backups lifeboat could restore")
    }
}
