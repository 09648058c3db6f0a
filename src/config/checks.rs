//! `[[targets.*.checks]]`: the extra checks a drill runs on a restored copy — an SQL
//! count, an HTTP status or a command's exit code — and which keys each one takes.

use serde::Deserialize;

use super::{HumanDuration, TargetKind, is_http_url};

/// An extra check a drill runs on a restored copy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub sql: Option<String>,
    pub min: Option<i64>,
    pub equals: Option<i64>,
    pub http: Option<String>,
    pub status: Option<u16>,
    pub command: Option<Vec<String>>,
    pub exit_code: Option<i32>,
    /// http and command: how long the check may take (default 30s for http, 10m for a
    /// command).
    pub timeout: Option<HumanDuration>,
}

impl Check {
    /// The check in words, for reports: `sql "SELECT …" >= 1`, `GET http://… → 200`.
    pub fn describe(&self) -> String {
        if let Some(sql) = &self.sql {
            let mut out = format!("sql `{sql}`");
            if let Some(min) = self.min {
                out.push_str(&format!(" ≥ {min}"));
            }
            if let Some(eq) = self.equals {
                out.push_str(&format!(" = {eq}"));
            }
            return out;
        }
        if let Some(url) = &self.http {
            return format!("GET {url} → {}", self.status.unwrap_or(200));
        }
        let argv = self.command.clone().unwrap_or_default().join(" ");
        format!("command `{argv}` → exit {}", self.exit_code.unwrap_or(0))
    }

    /// Keys that only belong to another kind of check, and what each check needs.
    pub(super) fn validate(&self, key: &str, kind: TargetKind) -> Result<(), String> {
        let kinds = [
            self.sql.is_some(),
            self.http.is_some(),
            self.command.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(format!(
                "{key}: give exactly one of `sql`, `http` or `command`"
            ));
        }
        let stray = |set: bool, k: &str, with: &str| -> Result<(), String> {
            if set {
                Err(format!("{key}.{k}: only used with `{with}`"))
            } else {
                Ok(())
            }
        };
        stray(self.sql.is_none() && self.min.is_some(), "min", "sql")?;
        stray(self.sql.is_none() && self.equals.is_some(), "equals", "sql")?;
        stray(
            self.http.is_none() && self.status.is_some(),
            "status",
            "http",
        )?;
        stray(
            self.command.is_none() && self.exit_code.is_some(),
            "exit_code",
            "command",
        )?;
        stray(
            self.sql.is_some() && self.timeout.is_some(),
            "timeout",
            "http` or `command",
        )?;
        if self.sql.is_some() && kind != TargetKind::Sqlite {
            return Err(format!(
                "{key}.sql: sql checks run on a restored SQLite copy; this target is of kind \"{}\"",
                kind.as_str()
            ));
        }
        if let Some(url) = &self.http
            && !is_http_url(url)
        {
            return Err(format!(
                "{key}.http: must be a URL starting with http:// or https://"
            ));
        }
        if self.command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(format!("{key}.command: give the program and its arguments"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_test as parse;

    #[test]
    fn drill_checks_are_checked_at_load() {
        let base = "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.t]\nstore=\"l\"\npath=\"/tmp/x\"\n";
        let with =
            |kind: &str, check: &str| parse(&format!("{base}kind=\"{kind}\"\nchecks=[{check}]\n"));
        assert!(with("sqlite", "{ sql = \"SELECT 1\", min = 1 }").is_ok());
        assert!(with("directory", "{ command = [\"true\"], exit_code = 0 }").is_ok());
        for (kind, check, named) in [
            (
                "directory",
                "{ sql = \"SELECT 1\", min = 1 }",
                "checks[0].sql",
            ),
            ("sqlite", "{ http = \"localhost\" }", "checks[0].http"),
            (
                "sqlite",
                "{ http = \"http://x\", exit_code = 1 }",
                "checks[0].exit_code",
            ),
            ("sqlite", "{ command = [] }", "checks[0].command"),
            (
                "sqlite",
                "{ sql = \"SELECT 1\", http = \"http://x\" }",
                "exactly one",
            ),
        ] {
            let e = with(kind, check).unwrap_err().to_string();
            assert!(e.contains(named), "{check}: {e}");
        }
    }
}
