//! `/drill <target> [<backup>]`.

use super::{Command, ParseError};

pub const USAGE: &str = "/drill <target> [<backup>|latest]";

pub fn parse(words: &[&str]) -> Result<Command, ParseError> {
    let (target, backup) = super::target_and_backup(words, "drill", USAGE)?;
    Ok(Command::Drill { target, backup })
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
