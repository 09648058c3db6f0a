//! `lifeboat incident …`: the same incidents as `/incident` in chat, for the local
//! operator. Without an id, commands act on the newest open incident.

use clap::Subcommand;

use crate::app::App;
use crate::command::incident::ExportFormat;
use crate::error::Error;
use crate::incident::{self, Scope};

#[derive(Subcommand, Debug)]
pub enum IncidentCommand {
    /// Open an incident
    Start {
        #[arg(required = true, num_args = 1..)]
        title: Vec<String>,
    },
    /// Add a note to the open incident's timeline
    Note {
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Add an action item to the open incident
    Action {
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Show the open incident and its latest events
    Status,
    /// Close the open incident
    Close,
    /// Every incident, newest first
    List,
    /// Print an incident as a post-mortem skeleton (default: the newest incident)
    Export {
        id: Option<i64>,
        /// md or json
        #[arg(long, default_value = "md", value_parser = parse_format)]
        format: ExportFormat,
    },
}

fn parse_format(s: &str) -> Result<ExportFormat, String> {
    ExportFormat::parse(s).ok_or_else(|| format!("unknown format {s:?}: use md or json"))
}

/// The CLI is not in a channel: it sees the newest open incident.
const CLI: Scope<'static> = Scope { channel: None };

pub fn run(app: &App, actor: &str, command: IncidentCommand) -> Result<i32, Error> {
    let db = &app.db;
    match command {
        IncidentCommand::Start { title } => {
            let i = incident::start(db, CLI, actor, &title.join(" "))?;
            println!("incident #{} opened: {}", i.id, i.title);
        }
        IncidentCommand::Note { text } => {
            let (i, e) = incident::add(db, CLI, actor, "note", &text.join(" "))?;
            println!(
                "noted on incident #{} at {} UTC",
                i.id,
                incident::export::clock(&e.at)
            );
        }
        IncidentCommand::Action { text } => {
            let (i, _) = incident::add(db, CLI, actor, "action", &text.join(" "))?;
            println!("action item added to incident #{}", i.id);
        }
        IncidentCommand::Status => println!("{}", incident::status_text(db, CLI)?),
        IncidentCommand::Close => {
            let i = incident::close(db, CLI, actor)?;
            println!("incident #{} closed", i.id);
        }
        IncidentCommand::List => {
            let all = db.incidents()?;
            if all.is_empty() {
                println!("no incidents yet");
            }
            for i in all {
                let state = match &i.closed_at {
                    Some(c) => format!("closed {} UTC", incident::export::clock(c)),
                    None => "OPEN".into(),
                };
                println!(
                    "#{}  {}  opened {} UTC by {}  {}",
                    i.id,
                    i.title,
                    incident::export::clock(&i.opened_at),
                    i.opened_by,
                    state
                );
            }
        }
        IncidentCommand::Export { id, format } => {
            let x = incident::export(db, CLI, id)?;
            match format {
                ExportFormat::Markdown => print!("{}", x.markdown()),
                ExportFormat::Json => println!("{}", x.json()),
            }
        }
    }
    Ok(0)
}
