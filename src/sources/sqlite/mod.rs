//! SQLite targets: a database file, kept as the file itself with the facts of the copy
//! (version, pages, quick_check, rows per table). What both places a database can be
//! (this host: `local`, another host: `ssh`) share lives here: the facts, and what a
//! backup's content is on this host (one file, checked with `integrity_check` and row
//! counts).
//!
//! A local database with `continuous` set also has its WAL shipped between full copies
//! (`crate::replicate`); [`wal`] reads and validates the log it ships.

mod copy;
pub mod held;
pub mod local;
mod remote;
pub mod replicator_pin;
pub mod ssh;
pub mod wal;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::pipe::DurableFile;
use crate::stores::manifest::{Manifest, SqliteFacts};

pub use copy::{Method, Pinned, backup, pin};

/// The manifest facts of a database: version, pages, quick_check and rows per table.
pub fn describe(conn: &Connection) -> Result<SqliteFacts> {
    let sqlite_version: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0))?;
    let page_size = conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))? as u64;
    let page_count = conn.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))? as u64;
    let quick_check = pragma_check(conn, "quick_check")?;
    let tables = row_counts(conn)?;
    Ok(SqliteFacts {
        sqlite_version,
        page_size,
        page_count,
        quick_check,
        tables,
    })
}

/// Run `PRAGMA quick_check` or `integrity_check`: "ok" or the problems, one per line.
pub fn pragma_check(conn: &Connection, pragma: &str) -> Result<String> {
    let mut stmt = conn.prepare(&format!("PRAGMA {pragma}"))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows.join("\n"))
}

/// Rows in every ordinary table (virtual tables excluded: their modules may be absent).
pub fn row_counts(conn: &Connection) -> Result<BTreeMap<String, u64>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
         AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
    )?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut counts = BTreeMap::new();
    for name in names {
        let quoted = name.replace('"', "\"\"");
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM \"{quoted}\""), [], |r| {
            r.get(0)
        })?;
        counts.insert(name, n as u64);
    }
    Ok(counts)
}

/// Check a restored copy against its manifest: full `integrity_check`, tables and rows.
/// Returns the problems found (empty = good).
pub fn check_copy(path: &Path, expected: &SqliteFacts, full: bool) -> Result<Vec<String>> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| Error::sqlite("opening the restored copy", e))?;
    let mut problems = Vec::new();
    let pragma = if full {
        "integrity_check"
    } else {
        "quick_check"
    };
    match pragma_check(&conn, pragma) {
        Ok(r) if r == "ok" => {}
        Ok(r) => problems.push(format!("{pragma} found problems: {}", first_lines(&r, 5))),
        Err(e) => {
            problems.push(format!("{pragma} could not run: {e}"));
            return Ok(problems);
        }
    }
    let counts = match row_counts(&conn) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("counting rows failed: {e}"));
            return Ok(problems);
        }
    };
    problems.extend(compare_counts(&counts, expected));
    Ok(problems)
}

/// What a copy's check result and row counts say about it compared with its manifest.
pub fn compare(
    pragma: &str,
    check: &str,
    counts: &BTreeMap<String, u64>,
    expected: &SqliteFacts,
) -> Vec<String> {
    let mut problems = Vec::new();
    if check != "ok" {
        problems.push(format!(
            "{pragma} found problems: {}",
            first_lines(check, 5)
        ));
    }
    problems.extend(compare_counts(counts, expected));
    problems
}

fn compare_counts(counts: &BTreeMap<String, u64>, expected: &SqliteFacts) -> Vec<String> {
    let mut problems = Vec::new();
    for (table, want) in &expected.tables {
        match counts.get(table) {
            None => problems.push(format!("table {table} is missing")),
            Some(got) if got != want => problems.push(format!(
                "table {table} has {got} rows, the manifest records {want}"
            )),
            Some(_) => {}
        }
    }
    for table in counts.keys().filter(|t| !expected.tables.contains_key(*t)) {
        problems.push(format!("table {table} is not in the manifest"));
    }
    problems
}

fn first_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines.iter().take(n).copied().collect::<Vec<_>>().join("; ");
    if lines.len() > n {
        out.push_str(&format!("; and {} more", lines.len() - n));
    }
    out
}

/// A backup's content written as the new database file `dest` on this host: a drill's
/// sandbox copy, a restore's staging file, or lifeboat's own state on a new host.
pub fn write_copy(m: &Manifest, content: &mut dyn Read, dest: &Path) -> Result<()> {
    let read_err = |e| Error::io(format!("backup {} is damaged or unreadable", m.id), e);
    let file = std::fs::File::create_new(dest)
        .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    let mut file = DurableFile::new(file);
    crate::pipe::copy(content, &mut file).map_err(read_err)?;
    file.finish()
        .map_err(|e| Error::io(format!("writing {}", dest.display()), e))
}

/// A backup's content checked as it streams (verify): written to `scratch`, then
/// `integrity_check` and the row counts against the manifest.
pub(crate) fn check_content(
    m: &Manifest,
    content: &mut dyn Read,
    scratch: &Path,
) -> Result<Vec<String>> {
    let Some(facts) = &m.sqlite else {
        return Ok(vec!["the manifest has no database facts".into()]);
    };
    let path = scratch.join("verify.sqlite");
    let mut file =
        std::fs::File::create_new(&path).map_err(|e| Error::io("creating the scratch copy", e))?;
    crate::pipe::copy(content, &mut file).map_err(|e| Error::io("decompressing", e))?;
    drop(file);
    check_copy(&path, facts, true)
}

/// What checking a restored database is called on a drill's timeline.
pub(crate) const COPY_CHECK: &str = "integrity_check and row counts";

/// A restored database on this host checked against its manifest: `Ok(what was seen)`
/// or `Err(problems)`.
pub(crate) fn check_restored(
    m: &Manifest,
    copy: &Path,
) -> Result<std::result::Result<String, Vec<String>>> {
    let Some(facts) = &m.sqlite else {
        return Ok(Err(vec![
            "the manifest has nothing to check the copy against".into(),
        ]));
    };
    let found = check_copy(copy, facts, true)?;
    Ok(if found.is_empty() {
        Ok(format!(
            "integrity_check ok; {} tables, {} rows, as in the manifest",
            facts.tables.len(),
            facts.tables.values().sum::<u64>()
        ))
    } else {
        Err(found)
    })
}

/// The recorded facts of a staged copy compared with the manifest. The copy's bytes were
/// just proven identical to the backup's content (SHA-256), so its quick_check and row
/// counts are those recorded when the backup was taken; reading it again would only
/// repeat them (`verify` and drills do re-run them). A backup whose recorded check found
/// problems still fails here.
pub(crate) fn check_recorded(m: &Manifest) -> Vec<String> {
    match &m.sqlite {
        Some(f) => compare("quick_check", &f.quick_check, &f.tables, f),
        None => Vec::new(),
    }
}

/// The name a database has inside a backup: its own file name.
pub(crate) fn content_name(target: &str, path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{target}.sqlite"))
}

/// A SQLite file as backup content: checked with `integrity_check` and the manifest's
/// row counts, written out as the file itself.
pub struct SqliteContent;

impl super::Content for SqliteContent {
    fn check_content(
        &self,
        m: &Manifest,
        content: &mut dyn Read,
        scratch: &Path,
        _ctx: &crate::progress::JobContext,
    ) -> Result<Vec<String>> {
        check_content(m, content, scratch)
    }

    fn write_copy(
        &self,
        m: &Manifest,
        content: &mut dyn Read,
        dest: &Path,
        _ctx: &crate::progress::JobContext,
    ) -> Result<()> {
        write_copy(m, content, dest)
    }

    fn copy_check_name(&self) -> &'static str {
        COPY_CHECK
    }

    fn check_copy(
        &self,
        m: &Manifest,
        copy: &Path,
        _ctx: &crate::progress::JobContext,
    ) -> Result<super::Checked> {
        check_restored(m, copy)
    }
}
