//! `/drill <target> [<backup>]`.

use super::{Command, ParseError};

pub const USAGE: &str = "/drill <target> [<backup>|latest]";

pub fn parse(words: &[&str]) -> Result<Command, ParseError> {
    let err = |problem: &str| {
        Err(ParseError {
            problem: problem.into(),
            usage: USAGE,
        })
    };
    match words {
        [target] => Ok(Command::Drill {
            target: target.to_string(),
            backup: None,
        }),
        [target, backup] => Ok(Command::Drill {
            target: target.to_string(),
            backup: Some(backup.to_string()),
        }),
        [] => err("name the target to drill"),
        _ => err("too many arguments"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            parse(&["db"]),
            Ok(Command::Drill {
                target: "db".into(),
                backup: None
            })
        );
        assert_eq!(
            parse(&["db", "latest"]),
            Ok(Command::Drill {
                target: "db".into(),
                backup: Some("latest".into())
            })
        );
        assert_eq!(parse(&[]).unwrap_err().usage, USAGE);
        assert!(parse(&["a", "b", "c"]).is_err());
    }
}
