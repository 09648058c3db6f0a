//! `lifeboat store init <name>` and `lifeboat store check <name> [--read-data]`: create a
//! repository store's structure ahead of the first backup, and run its own check.

use clap::Subcommand;

use crate::app::App;
use crate::cli::render::{finish_progress, job_context};
use crate::error::Result;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Create the store's structure (a repository's config and key); a store that has
    /// one already is left as it is
    Init { name: String },
    /// Run the store's own consistency check; --read-data reads every stored byte
    Check {
        name: String,
        #[arg(long)]
        read_data: bool,
    },
}

/// Run a `store` subcommand; returns the exit code (1: the check found problems).
pub fn run(app: &App, command: StoreCommand) -> Result<i32> {
    match command {
        StoreCommand::Init { name } => {
            let store = app.store(&name)?;
            if store.init()? {
                println!("initialised {}", store.describe());
            } else {
                println!("{} is ready; nothing to initialise", store.describe());
            }
            Ok(0)
        }
        StoreCommand::Check { name, read_data } => {
            let store = app.store(&name)?;
            let ctx = job_context(false);
            let problems = store.check(read_data, &ctx)?;
            finish_progress(&ctx);
            if problems.is_empty() {
                println!("{}: no problems found", store.describe());
                Ok(0)
            } else {
                for p in &problems {
                    println!("{}: {p}", store.describe());
                }
                Ok(1)
            }
        }
    }
}
