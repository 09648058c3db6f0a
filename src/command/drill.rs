//! `/drill <target> [<backup>|latest] [at <time>]`: `at` drills a continuously replicated
//! target as of that moment (its base copy and the shipped transactions up to it), as
//! `lifeboat drill <target> --at TIME` does.

use super::{Command, ParseError};

pub const USAGE: &str = "/drill <target> [<backup>|latest] [at <time>]";

pub fn parse(words: &[&str]) -> Result<Command, ParseError> {
    let err = |problem: String| ParseError {
        problem,
        usage: USAGE,
    };
    let (before, at) = match words.iter().position(|w| *w == "at") {
        Some(i) => {
            let tail = &words[i + 1..];
            let Some((time, used)) = super::time_words(tail) else {
                return Err(err("`at` needs a time".into()));
            };
            if used < tail.len() {
                return Err(err(format!("unexpected {:?} after the time", tail[used])));
            }
            (&words[..i], Some(time))
        }
        None => (words, None),
    };
    let (target, backup) = super::target_and_backup(before, "drill", USAGE)?;
    if at.is_some() && backup.as_deref().is_some_and(|b| b != "latest") {
        return Err(err("give either a backup id or `at`, not both".into()));
    }
    Ok(Command::Drill { target, backup, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drill(target: &str, backup: Option<&str>, at: Option<&str>) -> Command {
        Command::Drill {
            target: target.into(),
            backup: backup.map(Into::into),
            at: at.map(Into::into),
        }
    }

    #[test]
    fn parses() {
        assert_eq!(parse(&["db"]), Ok(drill("db", None, None)));
        assert_eq!(
            parse(&["db", "latest"]),
            Ok(drill("db", Some("latest"), None))
        );
        assert_eq!(parse(&[]).unwrap_err().usage, USAGE);
        assert!(parse(&["a", "b", "c"]).is_err());
    }

    #[test]
    fn at_a_moment_as_restore_takes_it() {
        assert_eq!(
            parse(&["db", "at", "2026-11-20", "14:00"]),
            Ok(drill("db", None, Some("2026-11-20 14:00")))
        );
        assert_eq!(
            parse(&["db", "at", "2026-11-20T14:00:00.250Z"]),
            Ok(drill("db", None, Some("2026-11-20T14:00:00.250Z")))
        );
        assert_eq!(
            parse(&["db", "latest", "at", "2026-11-20T14:00:00Z"]),
            Ok(drill("db", Some("latest"), Some("2026-11-20T14:00:00Z")))
        );
        for bad in [
            &["db", "at"][..],
            &["at", "2026-11-20T14:00:00Z"],
            &["db", "20261120T1400Z", "at", "2026-11-20T14:00:00Z"],
            &["db", "at", "2026-11-20T14:00:00Z", "extra"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.usage, USAGE, "{bad:?}");
        }
        // The same words `/restore` takes after `at`.
        let restore = super::super::restore::parse(&["db", "at", "2026-11-20", "14:00"]).unwrap();
        let Ok(Command::Drill { at, .. }) = parse(&["db", "at", "2026-11-20", "14:00"]) else {
            panic!()
        };
        assert_eq!(at, restore.at);
    }
}
