//! Seed 001's application with the real DuckDB engine (PyPI `duckdb`, see scripts/test.sh):
//! a Python process writing batches to a `system.duckdb` and checkpointing every few
//! batches, driven over its stdin (checkpoint now, pause, resume, wait for rows, stop) with
//! every command acknowledged on its stdout, so a test acts at a known point and never
//! waits on the clock; and a checker that opens a restored copy in DuckDB and compares its
//! contents with the running tally written in the same transactions.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The writer and checker script beside this file.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/common/duckdb_writer.py")
}

/// A running writer of one DuckDB database.
pub struct DuckWriter {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub db: PathBuf,
}

impl DuckWriter {
    /// Start writing to `db` (created if absent), checkpointing every `checkpoint_every`
    /// batches (0: only when told); returns once the first batch is checkpointed.
    pub fn start(db: &Path, checkpoint_every: u32) -> DuckWriter {
        let mut child = Command::new("python3")
            .arg(script())
            .arg("write")
            .arg(db)
            .args(["--checkpoint-every", &checkpoint_every.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (scripts/test.sh installs it and duckdb)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut w = DuckWriter {
            child,
            stdin,
            stdout,
            db: db.to_path_buf(),
        };
        let first = w.line();
        assert!(
            first.starts_with("ready "),
            "the writer did not start: {first:?}"
        );
        w
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the writer answers");
        assert!(
            !line.is_empty(),
            "the DuckDB writer exited: {:?}",
            self.child.try_wait()
        );
        line.trim_end().to_string()
    }

    /// Send one command and return the rows committed, from its acknowledgement.
    fn ask(&mut self, command: &str) -> u64 {
        writeln!(self.stdin, "{command}").expect("the writer reads its commands");
        self.stdin.flush().unwrap();
        let answer = self.line();
        answer
            .strip_prefix("ok ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{command}: the writer answered {answer:?}"))
    }

    /// Commit one more batch and CHECKPOINT now (the `.duckdb` file is rewritten and the
    /// `.wal` emptied before this returns); the rows committed.
    pub fn checkpoint(&mut self) -> u64 {
        self.ask("checkpoint")
    }

    /// CHECKPOINT and stop writing: the files are quiet when this returns.
    pub fn pause(&mut self) -> u64 {
        self.ask("pause")
    }

    /// Start writing again.
    pub fn resume(&mut self) -> u64 {
        self.ask("resume")
    }

    /// Wait until at least `rows` rows are committed.
    pub fn wait_rows(&mut self, rows: u64) -> u64 {
        self.ask(&format!("wait {rows}"))
    }

    /// Close the database and end the process; the rows committed.
    pub fn stop(mut self) -> u64 {
        let n = self.ask("stop");
        let _ = self.child.wait();
        n
    }
}

impl Drop for DuckWriter {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Open a copy of a database in DuckDB (replaying its WAL, as the app would at start) and
/// check its contents agree with the tally: `Ok(rows)` or what DuckDB or the check said.
pub fn check(db: &Path) -> Result<u64, String> {
    let out = Command::new("python3")
        .arg(script())
        .arg("check")
        .arg(db)
        .output()
        .expect("python3 runs");
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match said.strip_prefix("ok ").and_then(|n| n.parse().ok()) {
        Some(rows) if out.status.success() => Ok(rows),
        _ => Err(format!(
            "{said} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Write a parquet extract of `rows` rows at `path`, as the app's sync does.
pub fn write_parquet(path: &Path, rows: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(script())
        .args(["parquet"])
        .arg(path)
        .arg(rows.to_string())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "writing {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Seed 001's data volume under `data`: parquet extracts of two sources and the app's
/// `state/system.duckdb`, which the returned writer keeps writing.
pub fn seed_volume(data: &Path, checkpoint_every: u32) -> DuckWriter {
    for source in ["keboola", "bigquery"] {
        write_parquet(
            &data.join(format!("extracts/{source}/data/orders.parquet")),
            5_000,
        );
    }
    std::fs::create_dir_all(data.join("state")).unwrap();
    DuckWriter::start(&data.join("state/system.duckdb"), checkpoint_every)
}
