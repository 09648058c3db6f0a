//! `lifeboat web hash-password`: make the argon2 hash a `[web] users` entry needs, from a
//! password read on standard input (so it stays out of the shell history and `ps`).

use std::io::BufRead;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum WebCommand {
    /// Read a password on stdin and print its argon2id hash for `[web] users`
    HashPassword,
}

/// Run a `web` subcommand; returns the exit code. Needs no config.
pub fn run(command: &WebCommand) -> i32 {
    match command {
        WebCommand::HashPassword => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
                eprintln!("lifeboat: reading the password from stdin: {e}");
                return 1;
            }
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            match crate::password::hash_password(password) {
                Ok(hash) => {
                    println!("{hash}");
                    0
                }
                Err(e) => {
                    eprintln!("lifeboat: {e}");
                    2
                }
            }
        }
    }
}
