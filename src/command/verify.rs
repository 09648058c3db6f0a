//! `/verify <target> [<backup>]`.

use super::{Command, ParseError};

pub const USAGE: &str = "/verify <target> [<backup>|latest]";

pub fn parse(words: &[&str]) -> Result<Command, ParseError> {
    let (target, backup) = super::target_and_backup(words, "verify", USAGE)?;
    Ok(Command::Verify { target, backup })
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
