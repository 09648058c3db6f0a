//! `/restore <target> [<backup>|latest] [at <time>] [path <p> ...] [to <path>] [dry-run]`:
//! with `path` (repeatable; in double quotes when it holds spaces), only those paths of a
//! directory target, into the new folder `to` names.

use super::ParseError;

pub const USAGE: &str =
    "/restore <target> [<backup>|latest] [at <time>] [path <p> ...] [to <path>] [dry-run]";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreArgs {
    pub target: String,
    pub backup: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD HH:MM` (two words in chat).
    pub at: Option<String>,
    pub to: Option<String>,
    /// A partial restore: these paths of the tree only.
    pub paths: Vec<String>,
    pub dry_run: bool,
}

pub fn parse(words: &[&str]) -> Result<RestoreArgs, ParseError> {
    let err = |problem: String| ParseError {
        problem,
        usage: USAGE,
    };
    let Some((target, mut rest)) = words.split_first() else {
        return Err(err("name the target to restore".into()));
    };
    let mut args = RestoreArgs {
        target: target.to_string(),
        backup: None,
        at: None,
        to: None,
        paths: Vec::new(),
        dry_run: false,
    };
    let is_keyword = |w: &str| matches!(w, "at" | "to" | "path" | "dry-run");
    if let Some((first, tail)) = rest.split_first()
        && !is_keyword(first)
    {
        args.backup = Some(first.to_string());
        rest = tail;
    }
    while let Some((word, tail)) = rest.split_first() {
        match *word {
            "dry-run" => {
                args.dry_run = true;
                rest = tail;
            }
            "at" => {
                let Some((value, used)) = super::time_words(tail) else {
                    return Err(err("`at` needs a time".into()));
                };
                args.at = Some(value);
                rest = &tail[used..];
            }
            "path" => {
                let [path, after @ ..] = tail else {
                    return Err(err("`path` needs a path".into()));
                };
                args.paths.push(path.to_string());
                rest = after;
            }
            "to" => {
                let [path, after @ ..] = tail else {
                    return Err(err("`to` needs a path".into()));
                };
                args.to = Some(path.to_string());
                rest = after;
            }
            other => return Err(err(format!("unexpected {other:?}"))),
        }
    }
    if args.backup.is_some() && args.backup.as_deref() != Some("latest") && args.at.is_some() {
        return Err(err("give either a backup id or `at`, not both".into()));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_form() {
        let a = parse(&[
            "db",
            "latest",
            "at",
            "2026-11-20",
            "14:00",
            "to",
            "/var/tmp/restores/x.db",
            "dry-run",
        ])
        .unwrap();
        assert_eq!(a.target, "db");
        assert_eq!(a.backup.as_deref(), Some("latest"));
        assert_eq!(a.at.as_deref(), Some("2026-11-20 14:00"));
        assert_eq!(a.to.as_deref(), Some("/var/tmp/restores/x.db"));
        assert!(a.dry_run);
    }

    #[test]
    fn short_forms() {
        let a = parse(&["db"]).unwrap();
        assert_eq!((a.backup, a.at, a.to, a.dry_run), (None, None, None, false));
        let a = parse(&["db", "20261122T083000Z"]).unwrap();
        assert_eq!(a.backup.as_deref(), Some("20261122T083000Z"));
        let a = parse(&["db", "at", "2026-11-20T14:00:00Z"]).unwrap();
        assert_eq!(a.at.as_deref(), Some("2026-11-20T14:00:00Z"));
    }

    #[test]
    fn paths_repeat() {
        let a = parse(&[
            "site", "latest", "path", "a b.txt", "path", "dir", "to", "/r/x",
        ])
        .unwrap();
        assert_eq!(a.paths, ["a b.txt", "dir"]);
        assert_eq!(a.to.as_deref(), Some("/r/x"));
        let a = parse(&["site", "path", "x"]).unwrap();
        assert_eq!((a.backup, a.paths), (None, vec!["x".to_string()]));
        assert!(parse(&["site", "path"]).is_err());
    }

    #[test]
    fn malformed() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["db", "to"]).is_err());
        assert!(parse(&["db", "at"]).is_err());
        assert!(parse(&["db", "x", "at", "2026-01-01T00:00:00Z"]).is_err());
        assert!(parse(&["db", "x", "y"]).is_err());
    }
}
