//! `/runbook list` · `/runbook run <name>`.

use super::{Command, ParseError};

pub const USAGE: &[&str] = &["/runbook list", "/runbook run <name>"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunbookArgs {
    List,
    Run { name: String },
}

pub fn parse(words: &[&str]) -> Result<Command, ParseError> {
    let err = |problem: String, usage| Err(ParseError { problem, usage });
    match words {
        ["list"] => Ok(Command::Runbook(RunbookArgs::List)),
        ["run", name] => Ok(Command::Runbook(RunbookArgs::Run {
            name: name.to_string(),
        })),
        ["run"] => err("name the runbook to run".into(), USAGE[1]),
        ["run", ..] => err("give exactly one runbook name".into(), USAGE[1]),
        ["list", ..] => err("list takes no arguments".into(), USAGE[0]),
        [] => err(
            "say what to do: list or run".into(),
            "/runbook list | run <name>",
        ),
        [other, ..] => err(
            format!("unknown subcommand {other:?}"),
            "/runbook list | run <name>",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse(&["list"]), Ok(Command::Runbook(RunbookArgs::List)));
        assert_eq!(
            parse(&["run", "sqlite-restore"]),
            Ok(Command::Runbook(RunbookArgs::Run {
                name: "sqlite-restore".into()
            }))
        );
        assert_eq!(parse(&["run"]).unwrap_err().usage, USAGE[1]);
        assert!(parse(&["walk", "x"]).unwrap_err().problem.contains("walk"));
    }
}
