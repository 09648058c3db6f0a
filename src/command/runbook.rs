//! `/runbook list` · `/runbook run <name>`.

use super::{Command, ParseError};

pub const USAGE: &[&str] = &["/runbook list", "/runbook run <name> [<param>=<value> ...]"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunbookArgs {
    List,
    Run {
        name: String,
        /// `name=value` words after the runbook's name, for its declared params.
        params: Vec<(String, String)>,
    },
}

pub fn parse(words: &[&str]) -> Result<Command, ParseError> {
    let err = |problem: String, usage| Err(ParseError { problem, usage });
    match words {
        ["list"] => Ok(Command::Runbook(RunbookArgs::List)),
        ["run"] => err("name the runbook to run".into(), USAGE[1]),
        ["run", name, rest @ ..] => {
            let mut params = Vec::new();
            for w in rest {
                match w.split_once('=') {
                    Some((k, v)) if !k.is_empty() => params.push((k.to_string(), v.to_string())),
                    _ => {
                        return err(format!("{w:?} is not a parameter (name=value)"), USAGE[1]);
                    }
                }
            }
            Ok(Command::Runbook(RunbookArgs::Run {
                name: name.to_string(),
                params,
            }))
        }
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
                name: "sqlite-restore".into(),
                params: vec![]
            }))
        );
        assert_eq!(
            parse(&["run", "pitr", "before=2026-11-22T09:55:00Z"]),
            Ok(Command::Runbook(RunbookArgs::Run {
                name: "pitr".into(),
                params: vec![("before".into(), "2026-11-22T09:55:00Z".into())]
            }))
        );
        assert!(parse(&["run", "pitr", "oops"]).is_err());
        assert_eq!(parse(&["run"]).unwrap_err().usage, USAGE[1]);
        assert!(parse(&["walk", "x"]).unwrap_err().problem.contains("walk"));
    }
}
