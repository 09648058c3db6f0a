//! A damaged state database (a bad disk, a torn copy): recognised wherever SQLite reports
//! it, remembered for the process so `/healthz` and the chat alert can say so, checked
//! outright with `PRAGMA quick_check`, and explained with the way out (`lifeboat recover`
//! moves the damaged file aside and brings back the newest state backup).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// What this process has seen of its state database's damage (one state per process).
static SEEN: Mutex<Option<String>> = Mutex::new(None);
/// When the file was last checked whole, and what that found.
static CHECKED: Mutex<Option<(Instant, Option<String>)>> = Mutex::new(None);

/// Whether SQLite's error means the file is damaged (not busy, not missing, not full).
pub fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Remember that the state database is damaged, and why.
pub fn note(why: &str) {
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen.is_none() {
        tracing::error!("the state database is damaged: {why}");
        *seen = Some(why.to_string());
    }
}

/// Why the state database is damaged, if this process has seen it so.
pub fn seen() -> Option<String> {
    SEEN.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Check the whole file with `PRAGMA quick_check` on a connection of its own (so it reads
/// the file as it is on disk), at most once per `max_age`: the damage found, if any.
pub fn check(path: &Path, max_age: Duration) -> Option<String> {
    {
        let checked = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, found)) = checked.as_ref()
            && at.elapsed() < max_age
        {
            return found.clone().or_else(seen);
        }
    }
    let found = quick_check(path);
    if let Some(why) = &found {
        note(why);
    }
    *CHECKED.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), found.clone()));
    found.or_else(seen)
}

fn quick_check(path: &Path) -> Option<String> {
    let conn = match Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(c) => c,
        Err(e) if is_damage(&e) => return Some(e.to_string()),
        // Missing or unreadable is not damage; the other checks report it.
        Err(_) => return None,
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let result = conn.prepare("PRAGMA quick_check").and_then(|mut stmt| {
        stmt.query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()
    });
    match result {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => None,
        Ok(lines) => Some(lines.into_iter().take(3).collect::<Vec<_>>().join("; ")),
        Err(e) if is_damage(&e) => Some(e.to_string()),
        Err(_) => None,
    }
}

/// The way out, in words: `recover` from the store that keeps state backups (it moves the
/// damaged file aside itself), or else a catalog rebuild after moving it aside by hand.
pub fn advice(state: &Path, state_backup_store: Option<&str>) -> String {
    let state = state.display();
    match state_backup_store {
        Some(store) => format!(
            "run `lifeboat recover --store {store}`: it moves the damaged {state} aside (nothing \
             is deleted) and brings back the newest state backup, then rebuilds the catalog"
        ),
        None => format!(
            "move {state} aside (`mv {state} {state}.damaged`) and run `lifeboat catalog \
             rebuild` to list the stores' backups again (jobs, incidents and the audit log \
             are lost without a state backup: set [server] state_backup)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_pages_overwritten_fails_its_check_and_an_intact_one_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (x TEXT); CREATE INDEX t_x ON t(x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT hex(randomblob(40)) FROM n;",
        )
        .unwrap();
        drop(conn);
        assert_eq!(quick_check(&path), None);
        let mut bytes = std::fs::read(&path).unwrap();
        let page = 4096;
        for b in &mut bytes[2 * page..5 * page] {
            *b = 0x5a;
        }
        std::fs::write(&path, bytes).unwrap();
        let found = quick_check(&path).expect("damage found");
        assert!(!found.is_empty());
    }

    #[test]
    fn the_advice_names_the_way_out() {
        let with = advice(Path::new("/var/lib/lifeboat/state.db"), Some("offsite"));
        assert!(with.contains("lifeboat recover --store offsite"), "{with}");
        let without = advice(Path::new("/var/lib/lifeboat/state.db"), None);
        assert!(without.contains("lifeboat catalog rebuild"), "{without}");
        assert!(without.contains("/var/lib/lifeboat/state.db.damaged"));
    }
}
