//! `lifeboat web hash-password`: make the argon2 hash a `[web] users` entry needs, from a
//! password read on standard input (so it stays out of the shell history and `ps`).

use std::io::BufRead;

use argon2::password_hash::{PasswordHasher, SaltString};
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
            match hash_password(password) {
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

/// An argon2id hash (the crate's default parameters) with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.is_empty() {
        return Err("the password is empty (give it on stdin)".into());
    }
    let mut salt = [0u8; 16];
    getrandom(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("making a salt: {e}"))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

fn getrandom(buf: &mut [u8]) -> Result<(), String> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| format!("reading /dev/urandom: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        let parsed = PasswordHash::new(&a).unwrap();
        let argon = argon2::Argon2::default();
        assert!(argon.verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon.verify_password(b"wrong", &parsed).is_err());
        assert!(hash_password("").is_err());
    }
}
