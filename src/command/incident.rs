//! `/incident start <title>` · `note <text>` · `action <text>` · `status` · `close` ·
//! `export [md|json]`.

use super::{Command, ParseError};

pub const USAGE: &[&str] = &[
    "/incident start <title>",
    "/incident note <text>",
    "/incident action <text>",
    "/incident status",
    "/incident close",
    "/incident export [md|json]",
];

const ANY: &str =
    "/incident start <title> | note <text> | action <text> | status | close | export [md|json]";

/// The incident subcommands; free text keeps the user's spacing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentArgs {
    Start { title: String },
    Note { text: String },
    Action { text: String },
    Status,
    Close,
    Export { format: ExportFormat },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportFormat {
    #[default]
    Markdown,
    Json,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s {
            "md" | "markdown" => Some(ExportFormat::Markdown),
            "json" => Some(ExportFormat::Json),
            _ => None,
        }
    }
}

impl IncidentArgs {
    pub fn usage(&self) -> &'static str {
        match self {
            IncidentArgs::Start { .. } => USAGE[0],
            IncidentArgs::Note { .. } => USAGE[1],
            IncidentArgs::Action { .. } => USAGE[2],
            IncidentArgs::Status => USAGE[3],
            IncidentArgs::Close => USAGE[4],
            IncidentArgs::Export { .. } => USAGE[5],
        }
    }
}

/// Parse the whole text (not split into words) so notes keep their spacing.
pub fn parse(text: &str) -> Result<Command, ParseError> {
    let text = text.trim();
    let (sub, rest) = match text.split_once(char::is_whitespace) {
        Some((sub, rest)) => (sub, rest.trim()),
        None => (text, ""),
    };
    let err = |problem: String, usage| Err(ParseError { problem, usage });
    let free = |usage, what: &str| {
        if rest.is_empty() {
            Err(ParseError {
                problem: format!("give the {what}"),
                usage,
            })
        } else {
            Ok(rest.to_string())
        }
    };
    let args = match sub {
        "start" => IncidentArgs::Start {
            title: free(USAGE[0], "incident's title")?,
        },
        "note" => IncidentArgs::Note {
            text: free(USAGE[1], "note's text")?,
        },
        "action" => IncidentArgs::Action {
            text: free(USAGE[2], "action item's text")?,
        },
        "status" if rest.is_empty() => IncidentArgs::Status,
        "close" if rest.is_empty() => IncidentArgs::Close,
        "status" | "close" => return err(format!("{sub} takes no arguments"), ANY),
        "export" => match ExportFormat::parse(if rest.is_empty() { "md" } else { rest }) {
            Some(format) => IncidentArgs::Export { format },
            None => return err(format!("unknown export format {rest:?}"), USAGE[5]),
        },
        "" => return err("say what to do".into(), ANY),
        other => return err(format!("unknown subcommand {other:?}"), ANY),
    };
    Ok(Command::Incident(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> IncidentArgs {
        match parse(text).unwrap() {
            Command::Incident(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_each_form_keeping_free_text() {
        assert_eq!(
            args("start  Gitea VPS unreachable"),
            IncidentArgs::Start {
                title: "Gitea VPS unreachable".into()
            }
        );
        assert_eq!(
            args("note DNS TTL is 1h,  not 5m"),
            IncidentArgs::Note {
                text: "DNS TTL is 1h,  not 5m".into()
            }
        );
        assert_eq!(
            args("action lower the TTL"),
            IncidentArgs::Action {
                text: "lower the TTL".into()
            }
        );
        assert_eq!(args("status"), IncidentArgs::Status);
        assert_eq!(args("close"), IncidentArgs::Close);
        assert_eq!(
            args("export"),
            IncidentArgs::Export {
                format: ExportFormat::Markdown
            }
        );
        assert_eq!(
            args("export json"),
            IncidentArgs::Export {
                format: ExportFormat::Json
            }
        );
    }

    #[test]
    fn malformed_text_gets_the_usage() {
        assert_eq!(parse("start").unwrap_err().usage, USAGE[0]);
        assert_eq!(parse("note   ").unwrap_err().usage, USAGE[1]);
        assert_eq!(parse("export pdf").unwrap_err().usage, USAGE[5]);
        assert!(parse("").unwrap_err().problem.contains("say what"));
        assert!(parse("close now").is_err());
        assert!(parse("reopen").unwrap_err().problem.contains("reopen"));
    }
}
