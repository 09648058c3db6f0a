//! The chat grammar: one `Command` enum for every front-end, parsed from a slash command's
//! text (Discord options are turned into the same text first), with the role each needs
//! and a usage line for each. One file per command family.

pub mod backup;
pub mod drill;
pub mod incident;
pub mod restore;
pub mod runbook;
pub mod verify;

use crate::auth::Role;

/// Every chat command lifeboat understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    BackupNow {
        target: String,
    },
    BackupList {
        target: Option<String>,
    },
    BackupStatus {
        target: Option<String>,
    },
    /// `/backup ls <target> [<path>]`: a folder of the newest backup.
    BackupLs {
        target: String,
        path: Option<String>,
    },
    Verify {
        target: String,
        backup: Option<String>,
    },
    Restore(restore::RestoreArgs),
    Drill {
        target: String,
        backup: Option<String>,
        /// `at <time>`: RFC 3339 or `YYYY-MM-DD HH:MM` (two words in chat).
        at: Option<String>,
    },
    Incident(incident::IncidentArgs),
    Runbook(runbook::RunbookArgs),
    Help,
}

/// A command that could not be parsed: what was wrong and the usage that would work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub problem: String,
    pub usage: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}. Usage: {}", self.problem, self.usage)
    }
}

/// The slash commands, for help and registration: name, description, usage lines.
pub const SLASH_COMMANDS: &[(&str, &str, &[&str])] = &[
    (
        "backup",
        "Back up a target now, list backups, or show status",
        backup::USAGE,
    ),
    (
        "restore",
        "Restore a target from a backup, after admin approval",
        &[restore::USAGE],
    ),
    (
        "verify",
        "Verify a backup's checksums and contents",
        &[verify::USAGE],
    ),
    (
        "drill",
        "Restore a backup (or a moment of a continuous target) into a sandbox, check it, measure RTO/RPO",
        &[drill::USAGE],
    ),
    (
        "incident",
        "Open an incident, add notes and action items, export its timeline",
        incident::USAGE,
    ),
    (
        "runbook",
        "List runbooks or run one step by step",
        runbook::USAGE,
    ),
    (
        "lifeboat",
        "Help on lifeboat's commands",
        &["/lifeboat help"],
    ),
];

impl Command {
    /// Parse a slash command (`/backup`, or `backup`) and its text.
    pub fn parse(slash: &str, text: &str) -> Result<Command, ParseError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let name = slash.trim_start_matches('/');
        // These two take paths, which may hold spaces inside double quotes.
        let quoted = match name {
            "backup" | "restore" => quoted_words(text, name)?,
            _ => Vec::new(),
        };
        let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
        match name {
            "backup" => backup::parse(&quoted),
            "restore" => restore::parse(&quoted).map(Command::Restore),
            "verify" => verify::parse(&words),
            "drill" => drill::parse(&words),
            "incident" => incident::parse(text),
            "runbook" => runbook::parse(&words),
            "lifeboat" => match words.as_slice() {
                [] | ["help"] => Ok(Command::Help),
                _ => Err(ParseError {
                    problem: format!("unknown request {:?}", text.trim()),
                    usage: "/lifeboat help",
                }),
            },
            other => Err(ParseError {
                problem: format!("unknown command /{other}"),
                usage: "/lifeboat help",
            }),
        }
    }

    /// The least role allowed to run this command.
    pub fn required_role(&self) -> Role {
        match self {
            Command::BackupNow { .. }
            | Command::BackupLs { .. }
            | Command::Verify { .. }
            | Command::Drill { .. } => Role::Operator,
            Command::Restore(_) => Role::Admin,
            Command::Incident(incident::IncidentArgs::Note { .. }) => Role::Viewer,
            Command::Incident(_) => Role::Operator,
            Command::Runbook(runbook::RunbookArgs::List) => Role::Viewer,
            Command::Runbook(runbook::RunbookArgs::Run { .. }) => Role::Operator,
            Command::BackupList { .. } | Command::BackupStatus { .. } | Command::Help => {
                Role::Viewer
            }
        }
    }

    /// The target the command acts on, if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            Command::BackupNow { target }
            | Command::BackupLs { target, .. }
            | Command::Verify { target, .. }
            | Command::Drill { target, .. } => Some(target),
            Command::Restore(a) => Some(&a.target),
            Command::BackupList { target } | Command::BackupStatus { target } => target.as_deref(),
            Command::Incident(_) | Command::Runbook(_) | Command::Help => None,
        }
    }

    /// The usage line of this command's family.
    pub fn usage(&self) -> &'static str {
        match self {
            Command::BackupNow { .. } => backup::USAGE[0],
            Command::BackupList { .. } => backup::USAGE[1],
            Command::BackupStatus { .. } => backup::USAGE[2],
            Command::BackupLs { .. } => backup::USAGE[3],
            Command::Verify { .. } => verify::USAGE,
            Command::Restore(_) => restore::USAGE,
            Command::Drill { .. } => drill::USAGE,
            Command::Incident(a) => a.usage(),
            Command::Runbook(runbook::RunbookArgs::List) => runbook::USAGE[0],
            Command::Runbook(runbook::RunbookArgs::Run { .. }) => runbook::USAGE[1],
            Command::Help => "/lifeboat help",
        }
    }
}

/// The words of `text`, split at whitespace except inside double quotes (straight, or
/// the curly ones a chat client may type), which are removed: `"a b.txt"` is one word.
fn quoted_words(text: &str, command: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut open = false;
    for c in text.chars() {
        match c {
            '"' | '\u{201C}' | '\u{201D}' => {
                open = !open;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !open => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if open {
        return Err(ParseError {
            problem: "a double quote is not closed".into(),
            usage: match command {
                "restore" => restore::USAGE,
                _ => backup::USAGE[3],
            },
        });
    }
    words.extend(word);
    Ok(words)
}

/// The time after `at` (`/restore`, `/drill`) and how many words it took:
/// "2026-11-20 14:00" arrives as two words, an RFC 3339 time as one. The time itself is
/// read by the same parser as the command line's `--at` (`actions::shared::parse_at`).
fn time_words(tail: &[&str]) -> Option<(String, usize)> {
    match tail {
        [date, time, ..] if time.contains(':') && !date.contains('T') => {
            Some((format!("{date} {time}"), 2))
        }
        [one, ..] => Some((one.to_string(), 1)),
        [] => None,
    }
}

/// `<target> [<backup>]`, the arguments of `/verify` and `/drill`.
fn target_and_backup(
    words: &[&str],
    verb: &str,
    usage: &'static str,
) -> Result<(String, Option<String>), ParseError> {
    match words {
        [target] => Ok((target.to_string(), None)),
        [target, backup] => Ok((target.to_string(), Some(backup.to_string()))),
        [] => Err(ParseError {
            problem: format!("name the target to {verb}"),
            usage,
        }),
        _ => Err(ParseError {
            problem: "too many arguments".into(),
            usage,
        }),
    }
}

/// The help text: every command with its usage and the role it needs.
pub fn help_text() -> String {
    let mut out = String::from("lifeboat commands:\n");
    let lines = [
        (backup::USAGE[0], Role::Operator),
        (backup::USAGE[1], Role::Viewer),
        (backup::USAGE[2], Role::Viewer),
        (backup::USAGE[3], Role::Operator),
        (verify::USAGE, Role::Operator),
        (restore::USAGE, Role::Admin),
        (drill::USAGE, Role::Operator),
        (incident::USAGE[0], Role::Operator),
        (incident::USAGE[1], Role::Viewer),
        (incident::USAGE[2], Role::Operator),
        (incident::USAGE[3], Role::Operator),
        (incident::USAGE[4], Role::Operator),
        (incident::USAGE[5], Role::Operator),
        (runbook::USAGE[0], Role::Viewer),
        (runbook::USAGE[1], Role::Operator),
        ("/lifeboat help", Role::Viewer),
    ];
    for (usage, role) in lines {
        out.push_str(&format!("• `{usage}` ({})\n", role.as_str()));
    }
    out.push_str("Restores wait for approval by other admins; `dry-run` only shows the plan.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_contract() {
        assert_eq!(
            Command::parse("/backup", "now db").unwrap().required_role(),
            Role::Operator
        );
        assert_eq!(
            Command::parse("/backup", "list").unwrap().required_role(),
            Role::Viewer
        );
        assert_eq!(
            Command::parse("/backup", "status").unwrap().required_role(),
            Role::Viewer
        );
        assert_eq!(
            Command::parse("/verify", "db").unwrap().required_role(),
            Role::Operator
        );
        assert_eq!(
            Command::parse("/restore", "db").unwrap().required_role(),
            Role::Admin
        );
        assert_eq!(
            Command::parse("/drill", "db").unwrap().required_role(),
            Role::Operator
        );
        assert_eq!(
            Command::parse("/incident", "note disk full")
                .unwrap()
                .required_role(),
            Role::Viewer
        );
        assert_eq!(
            Command::parse("/incident", "start outage")
                .unwrap()
                .required_role(),
            Role::Operator
        );
        assert_eq!(
            Command::parse("/runbook", "list").unwrap().required_role(),
            Role::Viewer
        );
        assert_eq!(
            Command::parse("/runbook", "run x").unwrap().required_role(),
            Role::Operator
        );
        assert_eq!(
            Command::parse("/lifeboat", "help").unwrap().required_role(),
            Role::Viewer
        );
    }

    #[test]
    fn quotes_keep_spaces_in_one_word() {
        let w = quoted_words(r#"site path "a b.txt" to /r/x"#, "restore").unwrap();
        assert_eq!(w, ["site", "path", "a b.txt", "to", "/r/x"]);
        let w = quoted_words("site path \u{201C}dir/with space\u{201D}", "restore").unwrap();
        assert_eq!(w, ["site", "path", "dir/with space"]);
        assert!(quoted_words(r#"site path "open"#, "restore").is_err());
        assert_eq!(
            Command::parse("/backup", "ls site")
                .unwrap()
                .required_role(),
            Role::Operator
        );
    }

    #[test]
    fn unknown_commands_point_to_help() {
        let e = Command::parse("/launch", "missiles").unwrap_err();
        assert_eq!(e.usage, "/lifeboat help");
        assert!(Command::parse("/lifeboat", "dance").is_err());
    }

    #[test]
    fn help_lists_every_usage() {
        let h = help_text();
        for (_, _, usages) in SLASH_COMMANDS {
            for u in *usages {
                assert!(h.contains(u), "{u}");
            }
        }
    }
}
