//! `/backup now <target>` · `/backup list [<target>]` · `/backup status [<target>]` ·
//! `/backup ls <target> [<path>]`.

use super::{Command, ParseError};

pub const USAGE: &[&str] = &[
    "/backup now <target>",
    "/backup list [<target>]",
    "/backup status [<target>]",
    "/backup ls <target> [<path>]",
];

const ALL: &str =
    "/backup now <target> | list [<target>] | status [<target>] | ls <target> [<path>]";

pub fn parse(words: &[&str]) -> Result<Command, ParseError> {
    let err = |problem: String, usage| Err(ParseError { problem, usage });
    match words {
        ["now", target] => Ok(Command::BackupNow {
            target: target.to_string(),
        }),
        ["now"] => err("name the target to back up".into(), USAGE[0]),
        ["now", ..] => err("give exactly one target".into(), USAGE[0]),
        ["list"] => Ok(Command::BackupList { target: None }),
        ["list", target] => Ok(Command::BackupList {
            target: Some(target.to_string()),
        }),
        ["list", ..] => err("give at most one target".into(), USAGE[1]),
        ["status"] => Ok(Command::BackupStatus { target: None }),
        ["status", target] => Ok(Command::BackupStatus {
            target: Some(target.to_string()),
        }),
        ["status", ..] => err("give at most one target".into(), USAGE[2]),
        ["ls", target] => Ok(Command::BackupLs {
            target: target.to_string(),
            path: None,
        }),
        ["ls", target, path] => Ok(Command::BackupLs {
            target: target.to_string(),
            path: Some(path.to_string()),
        }),
        ["ls"] => err("name the target to look into".into(), USAGE[3]),
        ["ls", ..] => err(
            "give a target and at most one path (in double quotes if it holds spaces)".into(),
            USAGE[3],
        ),
        [] => err("say what to do: now, list, status or ls".into(), ALL),
        [other, ..] => err(format!("unknown subcommand {other:?}"), ALL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        assert_eq!(
            parse(&["now", "gitea-db"]),
            Ok(Command::BackupNow {
                target: "gitea-db".into()
            })
        );
        assert_eq!(parse(&["list"]), Ok(Command::BackupList { target: None }));
        assert_eq!(
            parse(&["list", "x"]),
            Ok(Command::BackupList {
                target: Some("x".into())
            })
        );
        assert_eq!(
            parse(&["status"]),
            Ok(Command::BackupStatus { target: None })
        );
        assert_eq!(
            parse(&["status", "app-db"]),
            Ok(Command::BackupStatus {
                target: Some("app-db".into())
            })
        );
        assert!(parse(&["status", "a", "b"]).is_err());
        assert_eq!(
            parse(&["ls", "site", "a b/c"]),
            Ok(Command::BackupLs {
                target: "site".into(),
                path: Some("a b/c".into())
            })
        );
        assert!(parse(&["ls"]).is_err());
        assert!(parse(&["ls", "site", "a", "b"]).is_err());
    }

    #[test]
    fn malformed_text_gets_the_usage() {
        assert_eq!(parse(&["now"]).unwrap_err().usage, USAGE[0]);
        assert_eq!(parse(&["now", "a", "b"]).unwrap_err().usage, USAGE[0]);
        assert!(
            parse(&[])
                .unwrap_err()
                .problem
                .contains("now, list, status or ls")
        );
        assert!(parse(&["nwo", "x"]).unwrap_err().problem.contains("nwo"));
    }
}
