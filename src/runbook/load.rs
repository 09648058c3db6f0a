//! The runbooks directory: every `*.toml` in it loaded and checked, one found by name,
//! and the list `/runbook list` and `lifeboat runbook list` show.

use std::path::PathBuf;

use super::{Runbook, RunbookError, report};
use crate::config::Config;
use crate::error::{Error, Result};

/// One file of the runbooks directory: its runbook, or why it cannot be used.
#[derive(Debug)]
pub struct Loaded {
    pub name: String,
    pub path: PathBuf,
    pub runbook: std::result::Result<Runbook, RunbookError>,
}

/// Every `*.toml` in the config's runbooks directory, sorted by name. A missing
/// directory is no runbooks.
pub fn load_all(config: &Config) -> Result<Vec<Loaded>> {
    let dir = &config.server.runbooks;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let runbook = std::fs::read_to_string(&path)
            .map_err(RunbookError::Read)
            .and_then(|text| Runbook::parse(&name, &text, dir, config));
        found.push(Loaded {
            name,
            path,
            runbook,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The runbook called `name`, ready to run.
pub fn find(config: &Config, name: &str) -> Result<Runbook> {
    let all = load_all(config)?;
    let names: Vec<String> = all.iter().map(|l| l.name.clone()).collect();
    match all.into_iter().find(|l| l.name == name) {
        Some(l) => l
            .runbook
            .map_err(|e| Error::Usage(format!("runbook {name} cannot run: {e}"))),
        None => Err(Error::Usage(format!(
            "no runbook named {name:?}; runbooks: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))),
    }
}

/// The list `/runbook list` and `lifeboat runbook list` show.
pub fn list_text(config: &Config) -> Result<String> {
    let all = load_all(config)?;
    if all.is_empty() {
        return Ok("no runbooks yet".into());
    }
    let mut out = String::new();
    for l in &all {
        match &l.runbook {
            Ok(r) => {
                let params: String = r.params.keys().map(|k| format!(" {k}=…")).collect();
                out.push_str(&format!(
                    "• {}{params} — {} ({} steps, about {})\n",
                    l.name,
                    r.title,
                    r.steps.len(),
                    report::estimate_text(r.estimate().as_secs())
                ));
            }
            Err(e) => out.push_str(&format!("• {} — cannot run: {e}\n", l.name)),
        }
    }
    Ok(out)
}
