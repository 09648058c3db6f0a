//! A Discord command's options as the text the same command has in Slack, so one grammar
//! parses both.

use serenity::all::{CommandDataOption, CommandDataOptionValue};

/// Turn Discord's options into the text the same command has in Slack, so one grammar
/// parses both: `/backup now target:x` → `now x`; `/restore target:x at:… dry_run:true` →
/// `x at … dry-run`.
pub fn options_to_text(command: &str, options: &[CommandDataOption]) -> String {
    let mut words: Vec<String> = Vec::new();
    for opt in options {
        match &opt.value {
            CommandDataOptionValue::SubCommand(inner)
            | CommandDataOptionValue::SubCommandGroup(inner) => {
                words.push(opt.name.clone());
                words.push(options_to_text(command, inner));
            }
            value => {
                let text = match value {
                    CommandDataOptionValue::String(s) => s.clone(),
                    CommandDataOptionValue::Integer(i) => i.to_string(),
                    CommandDataOptionValue::Boolean(b) => b.to_string(),
                    _ => continue,
                };
                match (command, opt.name.as_str()) {
                    ("restore" | "drill", "at") => words.push(format!("at {text}")),
                    ("restore", "to") => words.push(format!("to {}", quoted(&text))),
                    // A path may hold spaces: the grammar takes it in double quotes.
                    ("restore", "path") => words.push(format!("path {}", quoted(&text))),
                    ("backup", "path") => words.push(quoted(&text)),
                    ("restore", "dry_run") => {
                        if text == "true" {
                            words.push("dry-run".into())
                        }
                    }
                    _ => words.push(text),
                }
            }
        }
    }
    // Keyword options must follow the positional ones in the grammar.
    let (keywords, positional): (Vec<String>, Vec<String>) =
        words.into_iter().filter(|w| !w.is_empty()).partition(|w| {
            w.starts_with("at ") || w.starts_with("to ") || w.starts_with("path ") || w == "dry-run"
        });
    positional
        .into_iter()
        .chain(keywords)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A path as one word of the chat grammar.
fn quoted(text: &str) -> String {
    format!("\"{text}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opt(name: &str, value: CommandDataOptionValue) -> CommandDataOption {
        serde_json::from_value(json!({"name": name, "type": 3, "value": "x"}))
            .map(|mut o: CommandDataOption| {
                o.value = value;
                o
            })
            .unwrap()
    }

    #[test]
    fn options_become_the_slack_text() {
        let s = |v: &str| CommandDataOptionValue::String(v.into());
        let backup = [opt(
            "now",
            CommandDataOptionValue::SubCommand(vec![opt("target", s("gitea-db"))]),
        )];
        assert_eq!(options_to_text("backup", &backup), "now gitea-db");
        let restore = [
            opt("target", s("gitea-db")),
            opt("dry_run", CommandDataOptionValue::Boolean(true)),
            opt("at", s("2026-11-20 14:00")),
            opt("backup", s("latest")),
        ];
        let text = options_to_text("restore", &restore);
        assert_eq!(
            crate::command::Command::parse("/restore", &text).unwrap(),
            crate::command::Command::parse(
                "/restore",
                "gitea-db latest at 2026-11-20 14:00 dry-run"
            )
            .unwrap(),
            "{text}"
        );
        // A drill at a moment: the option after the target, as Slack's text has it.
        let drill = [opt("at", s("2026-11-20 14:00")), opt("target", s("app"))];
        assert_eq!(
            crate::command::Command::parse("/drill", &options_to_text("drill", &drill)).unwrap(),
            crate::command::Command::Drill {
                target: "app".into(),
                backup: None,
                at: Some("2026-11-20 14:00".into())
            }
        );
        let partial = [
            opt("target", s("site")),
            opt("to", s("/r/back")),
            opt("path", s("a b.txt")),
        ];
        let text = options_to_text("restore", &partial);
        let crate::command::Command::Restore(args) =
            crate::command::Command::parse("/restore", &text).unwrap()
        else {
            panic!("{text}")
        };
        assert_eq!(
            (args.paths, args.to),
            (vec!["a b.txt".to_string()], Some("/r/back".into()))
        );
        let ls = [opt(
            "ls",
            CommandDataOptionValue::SubCommand(vec![
                opt("target", s("site")),
                opt("path", s("my docs")),
            ]),
        )];
        let text = options_to_text("backup", &ls);
        assert_eq!(
            crate::command::Command::parse("/backup", &text).unwrap(),
            crate::command::Command::BackupLs {
                target: "site".into(),
                path: Some("my docs".into())
            },
            "{text}"
        );
        let status = [opt("status", CommandDataOptionValue::SubCommand(vec![]))];
        assert_eq!(options_to_text("backup", &status), "status");
        let note = [opt(
            "note",
            CommandDataOptionValue::SubCommand(vec![opt("text", s("DNS TTL is 1h"))]),
        )];
        assert_eq!(options_to_text("incident", &note), "note DNS TTL is 1h");
        let run = [opt(
            "run",
            CommandDataOptionValue::SubCommand(vec![
                opt("name", s("pitr-before-bad-write")),
                opt("params", s("before=2026-11-22T09:55:00Z")),
            ]),
        )];
        let text = options_to_text("runbook", &run);
        assert!(
            matches!(
                crate::command::Command::parse("/runbook", &text).unwrap(),
                crate::command::Command::Runbook(crate::command::runbook::RunbookArgs::Run { name, params })
                    if name == "pitr-before-bad-write" && params.len() == 1
            ),
            "{text}"
        );
    }
}
