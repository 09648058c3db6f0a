//! The extra checks a drill runs on its restored copy (`checks` in a target's config):
//! a SQL query on the restored SQLite copy, an HTTP GET, or a command on this host that
//! finds the copy in `LIFEBOAT_SANDBOX`. Each returns what it saw, or why it failed.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::config::Check;
use crate::probe::CommandEnd;

/// Why a check failed, in words for the drill's timeline: an outcome of the check, not
/// an error of the drill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

impl From<String> for CheckFailed {
    fn from(why: String) -> Self {
        CheckFailed(why)
    }
}

/// How long an HTTP check may take when it sets no `timeout`.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a command check may run when it sets no `timeout`.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// Run one check against the restored copy at `copy`: `Ok(what was seen)` or `Err(why)`.
pub fn run(check: &Check, copy: &Path) -> Result<String, CheckFailed> {
    if let Some(sql) = &check.sql {
        return sql_check(sql, check.min, check.equals, copy);
    }
    let timeout = check.timeout.map(|t| t.0);
    if let Some(url) = &check.http {
        return http_check(
            url,
            check.status.unwrap_or(200),
            timeout.unwrap_or(HTTP_TIMEOUT),
        );
    }
    let argv = check.command.as_deref().unwrap_or_default();
    command_check(
        argv,
        check.exit_code.unwrap_or(0),
        copy,
        timeout.unwrap_or(COMMAND_TIMEOUT),
    )
}

fn sql_check(
    sql: &str,
    min: Option<i64>,
    equals: Option<i64>,
    copy: &Path,
) -> Result<String, CheckFailed> {
    let conn = Connection::open_with_flags(copy, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open the restored copy: {e}"))?;
    let value: i64 = conn
        .query_row(sql, [], |r| r.get(0))
        .map_err(|e| format!("the query failed: {e}"))?;
    if let Some(min) = min
        && value < min
    {
        return Err(format!("returned {value}, expected at least {min}").into());
    }
    if let Some(eq) = equals
        && value != eq
    {
        return Err(format!("returned {value}, expected {eq}").into());
    }
    Ok(format!("returned {value}"))
}

fn http_check(url: &str, want: u16, timeout: Duration) -> Result<String, CheckFailed> {
    let (got, _) =
        crate::probe::http_get(url, timeout, false).map_err(|e| format!("no answer: {e}"))?;
    if got == want {
        Ok(format!("HTTP {got}"))
    } else {
        Err(format!("HTTP {got}, expected {want}").into())
    }
}

fn command_check(
    argv: &[String],
    want: i32,
    copy: &Path,
    timeout: Duration,
) -> Result<String, CheckFailed> {
    let env = [("LIFEBOAT_SANDBOX", copy.as_os_str())];
    let (code, output) = match crate::probe::run_command(argv, &env, timeout)
        .map_err(|e| CheckFailed(e.to_string()))?
    {
        CommandEnd::Exited { code, output, .. } => (code, output),
        CommandEnd::TimedOut => {
            return Err(CheckFailed(format!(
                "still running after {}; stopped",
                humantime::format_duration(timeout)
            )));
        }
    };
    let tail = output_tail(&output);
    let shown = if tail.is_empty() {
        String::new()
    } else {
        format!("; output: {tail}")
    };
    match code {
        Some(c) if c == want => Ok(format!("exit {c}{shown}")),
        Some(c) => Err(format!("exit {c}, expected {want}{shown}").into()),
        None => Err(format!("ended by a signal{shown}").into()),
    }
}

/// The last few hundred characters a command wrote, on one line.
fn output_tail(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = flat.chars().count();
    if n > 300 {
        format!("…{}", flat.chars().skip(n - 300).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(argv: &[&str], exit_code: Option<i32>) -> Check {
        Check {
            sql: None,
            min: None,
            equals: None,
            http: None,
            status: None,
            command: Some(argv.iter().map(|s| s.to_string()).collect()),
            exit_code,
            timeout: None,
        }
    }

    #[test]
    fn commands_see_the_sandbox_and_their_exit_code_counts() {
        let dir = tempfile::tempdir().unwrap();
        let ok = cmd(
            &[
                "sh",
                "-c",
                "test \"$LIFEBOAT_SANDBOX\" = \"$0\" && echo fine",
                dir.path().to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(run(&ok, dir.path()).unwrap(), "exit 0; output: fine");
        let bad = cmd(&["sh", "-c", "echo broken >&2; exit 3"], None);
        let e = run(&bad, dir.path()).unwrap_err().0;
        assert!(
            e.contains("exit 3, expected 0") && e.contains("broken"),
            "{e}"
        );
        assert!(run(&cmd(&["sh", "-c", "exit 3"], Some(3)), dir.path()).is_ok());
        let mut slow = cmd(&["sleep", "5"], None);
        slow.timeout = Some(crate::config::HumanDuration(Duration::from_millis(200)));
        assert!(run(&slow, dir.path()).unwrap_err().0.contains("stopped"));
    }

    #[test]
    fn sql_checks_compare_with_min_and_equals() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let q = "SELECT count(*) FROM t";
        assert_eq!(sql_check(q, Some(1), None, &db).unwrap(), "returned 2");
        assert!(
            sql_check(q, Some(3), None, &db)
                .unwrap_err()
                .0
                .contains("at least 3")
        );
        assert!(
            sql_check(q, None, Some(1), &db)
                .unwrap_err()
                .0
                .contains("expected 1")
        );
        assert!(sql_check("SELECT count(*) FROM nope", None, None, &db).is_err());
    }
}
