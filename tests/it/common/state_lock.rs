//! The state database's write lock held by another process (a real `sqlite3`), so that
//! whatever lifeboat writes next waits for it: a chat answer then misses the platform's
//! 3-second window for certain, however fast the machine is.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

use super::Home;

/// `sqlite3` inside `BEGIN IMMEDIATE` on the home's state database, until released.
pub struct StateLock {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl StateLock {
    /// Returns once `sqlite3` says it holds the lock.
    pub fn hold(home: &Home) -> StateLock {
        let mut child = Command::new("sqlite3")
            .arg(home.path("var/lifeboat.db"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sqlite3 (scripts/test.sh installs it)");
        let mut stdin = child.stdin.take().unwrap();
        // Wait for a write lifeboat may be making (`.timeout`), and stop at an error
        // (`.bail`): "locked" is printed only once the lock is really held.
        writeln!(
            stdin,
            ".bail on\n.timeout 30000\nBEGIN IMMEDIATE;\nCREATE TABLE lock_probe(x);\n.print locked"
        )
        .unwrap();
        let mut said = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut said)
            .unwrap();
        assert_eq!(
            said.trim(),
            "locked",
            "sqlite3 could not take the write lock"
        );
        StateLock {
            child,
            stdin: Some(stdin),
        }
    }

    /// Roll back (nothing was changed) and let `sqlite3` exit.
    pub fn release(mut self) {
        let mut stdin = self.stdin.take().unwrap();
        writeln!(stdin, "ROLLBACK;").unwrap();
        drop(stdin);
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // A test that failed while holding it: do not leave the process behind.
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
