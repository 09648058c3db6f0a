//! `/verify <target> [<backup>]`.

use super::{Command, ParseError};

pub const USAGE: &str = "/verify <target> [<backup>|latest]";

pub fn parse(words: &[&str]) -> Result<Command, ParseError> {
    match words {
        [target] => Ok(Command::Verify {
            target: target.to_string(),
            backup: None,
        }),
        [target, backup] => Ok(Command::Verify {
            target: target.to_string(),
            backup: Some(backup.to_string()),
        }),
        [] => Err(ParseError {
            problem: "name the target to verify".into(),
            usage: USAGE,
        }),
        _ => Err(ParseError {
            problem: "too many arguments".into(),
            usage: USAGE,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            parse(&["db"]),
            Ok(Command::Verify {
                target: "db".into(),
                backup: None
            })
        );
        assert_eq!(
            parse(&["db", "latest"]),
            Ok(Command::Verify {
                target: "db".into(),
                backup: Some("latest".into())
            })
        );
        assert!(parse(&[]).is_err());
        assert!(parse(&["a", "b", "c"]).is_err());
    }
}
