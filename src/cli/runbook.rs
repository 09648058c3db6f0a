//! `lifeboat runbook …`: list runbooks, or run one in this terminal. Manual steps and
//! restores ask on the terminal (stdin); the report goes to stdout.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Mutex;

use clap::Subcommand;

use crate::actions::restore::RestorePlan;
use crate::app::App;
use crate::cli::render::{finish_progress, job_context};
use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::runbook::run::{Answer, RunHooks, RunState, StepState};
use crate::runbook::{self, Step};

#[derive(Subcommand, Debug)]
pub enum RunbookCommand {
    /// The runbooks, with their steps' count and estimated time
    List,
    /// Run a runbook step by step; parameters as name=value
    Run {
        name: String,
        #[arg(value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
}

/// Split `name=value` words.
pub fn parse_params(words: &[String]) -> Result<Vec<(String, String)>> {
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::Usage(format!(
                "runbook parameters are name=value; got {w:?}"
            ))),
        })
        .collect()
}

pub fn run(app: &App, actor: &str, command: RunbookCommand) -> Result<i32> {
    match command {
        RunbookCommand::List => {
            print!("{}", runbook::list_text(&app.config)?);
            Ok(0)
        }
        RunbookCommand::Run { name, params } => {
            let book = runbook::find(&app.config, &name)?;
            let values = book.check_params(&parse_params(&params)?)?;
            let hooks = Terminal {
                actor: actor.to_string(),
                ctx: job_context(false),
                shown: Mutex::new(BTreeMap::new()),
            };
            eprintln!(
                "Running runbook {} — {} ({} steps)",
                book.name,
                book.title,
                book.steps.len()
            );
            let state = runbook::run::run(app, &book, &values, actor, None, &hooks)?;
            finish_progress(&hooks.ctx);
            print!("{}", runbook::report::markdown(&state));
            Ok(if state.ok() { 0 } else { 1 })
        }
    }
}

/// Asks on the terminal; prints each step as it starts and ends.
struct Terminal {
    actor: String,
    ctx: JobContext,
    /// The state each step was last shown in, so each change is printed once.
    shown: Mutex<BTreeMap<usize, StepState>>,
}

impl Terminal {
    /// One line from stdin, or None at its end.
    fn ask(&self, prompt: &str) -> Option<String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim().to_string()),
        }
    }
}

impl RunHooks for Terminal {
    fn update(&self, run: &RunState) {
        let mut shown = self.shown.lock().unwrap();
        for s in &run.steps {
            if shown.get(&s.index) == Some(&s.state) {
                continue;
            }
            shown.insert(s.index, s.state);
            match s.state {
                StepState::Running => eprintln!("▶ step {}: {}", s.index, s.title),
                StepState::Done => eprintln!(
                    "✔ step {} done in {:.1}s: {}",
                    s.index,
                    s.actual_seconds.unwrap_or_default(),
                    s.detail.as_deref().unwrap_or_default()
                ),
                StepState::Failed => eprintln!(
                    "✘ step {} failed: {}",
                    s.index,
                    s.detail.as_deref().unwrap_or_default()
                ),
                _ => {}
            }
        }
    }

    fn manual(
        &self,
        _run: &RunState,
        index: usize,
        step: &Step,
        instructions: &str,
    ) -> Result<Answer> {
        eprintln!(
            "✋ step {} is for you: {}\n{instructions}",
            index + 1,
            step.title
        );
        let answer = self.ask("Type `done` when it is done, or `fail <why>` to stop the run: ");
        Ok(match answer {
            Some(a) if a == "done" || a == "d" || a == "yes" => Answer {
                ok: true,
                detail: format!("marked done by {}", self.actor),
            },
            Some(a) => Answer {
                ok: false,
                detail: format!(
                    "marked failed by {}{}",
                    self.actor,
                    a.strip_prefix("fail")
                        .map(str::trim)
                        .filter(|w| !w.is_empty())
                        .map(|w| format!(": {w}"))
                        .unwrap_or_default()
                ),
            },
            None => Answer {
                ok: false,
                detail: "no answer (stdin closed)".into(),
            },
        })
    }

    fn approve_restore(&self, _run: &RunState, plan: &RestorePlan) -> Result<Answer> {
        eprint!("{}", plan.describe());
        let answer = self.ask("Type `yes` to carry out this restore: ");
        Ok(if answer.as_deref() == Some("yes") {
            Answer {
                ok: true,
                detail: format!("confirmed by {} at the terminal", self.actor),
            }
        } else {
            Answer {
                ok: false,
                detail: format!("{} did not confirm it", self.actor),
            }
        })
    }

    fn job_context(&self) -> JobContext {
        self.ctx.clone()
    }
}
