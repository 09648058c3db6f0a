//! Seed 001 end to end without hooks: the analytics app's `/data` volume (parquet extracts
//! and `state/system.duckdb`) while the real DuckDB engine writes and checkpoints. A
//! checkpoint while the backup reads `system.duckdb` rewrites it under the reader: the
//! backup is kept, flagged, and names it.

use super::*;
use crate::common::duckdb;

#[test]
fn a_checkpoint_during_the_read_flags_the_backup_naming_system_duckdb() {
    let home = Home::new();
    home.write_config(
        "[targets.data-volume]\nkind = \"directory\"\npath = \"../data/volume\"\nstore = \"local\"\n",
    );
    let data = home.path("data/volume");
    let mut writer = duckdb::seed_volume(&data, 10);
    writer.wait_rows(5_000);
    let app = open_app(&home);

    // The walk reads extracts/ before state/: past the extracts' bytes, it is reading
    // state/system.duckdb, and that is when the app checkpoints.
    let extracts: u64 = ["bigquery", "keboola"]
        .iter()
        .map(|s| {
            std::fs::metadata(data.join(format!("extracts/{s}/data/orders.parquet")))
                .unwrap()
                .len()
        })
        .sum();
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = std::sync::Arc::new(std::sync::Mutex::new(writer));
    let w = writer.clone();
    let m = backup_changing_after(&app, "data-volume", extracts, move || {
        tx.send(w.lock().unwrap().checkpoint()).unwrap();
    })
    .expect("kept: on_change is warn by default");
    let checkpointed_at = rx.recv().unwrap();
    assert!(checkpointed_at > 5_000);

    let changed = flagged(&m);
    assert!(
        changed.contains(&"state/system.duckdb".to_string()),
        "{changed:?}"
    );
    assert!(
        !changed.iter().any(|p| p.starts_with("extracts/")),
        "the extracts did not change: {changed:?}"
    );
    let warning = lifeboat::actions::backup::inconsistency_warning(&m).unwrap();
    assert!(warning.contains("state/system.duckdb"), "{warning}");
    let status = home.json(&["status"]);
    assert_eq!(status[0]["health"], "amber", "{status}");

    let writer = std::sync::Arc::try_unwrap(writer)
        .ok()
        .unwrap()
        .into_inner()
        .unwrap();
    let rows = writer.stop();
    // The live database itself is sound: the flag is about the copy.
    assert_eq!(duckdb::check(&data.join("state/system.duckdb")), Ok(rows));
}

/// The harness itself: a paused writer leaves a copy DuckDB opens with every row the
/// writer reported; a checkpoint moves the data out of the WAL.
#[test]
fn the_duckdb_harness_pauses_checkpoints_and_checks_copies() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = duckdb::seed_volume(dir.path(), 5);
    let before = w.wait_rows(2_000);
    assert!(before >= 2_000);
    let paused = w.pause();
    let copy = dir.path().join("copy.duckdb");
    std::fs::copy(&w.db, &copy).unwrap();
    let wal = w.db.with_extension("duckdb.wal");
    if wal.exists() {
        std::fs::copy(&wal, dir.path().join("copy.duckdb.wal")).unwrap();
    }
    assert_eq!(duckdb::check(&copy), Ok(paused));
    w.resume();
    let after = w.checkpoint();
    assert!(after > paused);
    let stopped = w.stop();
    assert!(stopped >= after);
    assert_eq!(
        duckdb::check(&dir.path().join("state/system.duckdb")),
        Ok(stopped)
    );
}
