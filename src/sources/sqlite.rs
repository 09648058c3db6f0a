//! SQLite databases: an online, consistent copy through SQLite's backup API (never a
//! plain file copy), facts about the copy for the manifest, and checks of restored copies.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::stores::manifest::SqliteFacts;

/// Copy the live database at `src` into the new file `dest` with the backup API, then
/// describe the copy. The application may keep writing meanwhile: the copy is the
/// database as of one transaction.
pub fn snapshot(src: &Path, dest: &Path, ctx: &JobContext) -> Result<SqliteFacts> {
    check_source(src)?;
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::sqlite(format!("cannot open {}", src.display()), e))?;
    source
        .busy_timeout(Duration::from_secs(30))
        .map_err(|e| Error::sqlite("setting a busy timeout", e))?;
    let pages = source
        .query_row("PRAGMA page_count", [], |r| {
            r.get::<_, i64>(0).map(|v| v as u64)
        })
        .map_err(|e| not_a_database(src, e))?;
    let page_size = source
        .query_row("PRAGMA page_size", [], |r| {
            r.get::<_, i64>(0).map(|v| v as u64)
        })
        .map_err(|e| not_a_database(src, e))?;
    ctx.progress.phase("copying database");
    ctx.progress.total(Some(pages * page_size));

    let mut copy = Connection::open(dest)
        .map_err(|e| Error::sqlite(format!("cannot create {}", dest.display()), e))?;
    // The copy is scratch: durability of this file does not matter, speed does.
    copy.pragma_update(None, "journal_mode", "OFF")?;
    copy.pragma_update(None, "synchronous", "OFF")?;
    run_backup(&source, &mut copy, ctx)?;
    drop(source);
    ctx.progress.advance(pages * page_size);
    ctx.cancel.check().map_err(|e| Error::io("copying", e))?;
    describe(&copy)
}

/// One backup step of all pages: stepping in slices restarts whenever the application
/// writes, which never finishes on a busy database; a single step reads one snapshot.
fn run_backup(source: &Connection, copy: &mut Connection, _ctx: &JobContext) -> Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let backup = Backup::new(source, copy).map_err(|e| Error::sqlite("starting the copy", e))?;
    for _ in 0..600 {
        match backup.step(-1) {
            Ok(StepResult::Done) => return Ok(()),
            Ok(StepResult::More) => continue,
            Ok(StepResult::Busy) | Ok(StepResult::Locked) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(_) => continue,
            Err(e) => return Err(Error::sqlite("copying the database", e)),
        }
    }
    Err(Error::Failed(
        "copying the database: it stayed locked for a minute; is a long write transaction open?"
            .into(),
    ))
}

fn check_source(src: &Path) -> Result<()> {
    match std::fs::File::open(src) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Failed(format!(
            "the database {} does not exist",
            src.display()
        ))),
        Err(e) => Err(Error::Failed(format!(
            "cannot read the database {}: {e}",
            src.display()
        ))),
    }
}

fn not_a_database(path: &Path, e: rusqlite::Error) -> Error {
    Error::Failed(format!(
        "{} is not a usable SQLite database: {e}",
        path.display()
    ))
}

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
