//! Seed 001's data volume (parquet extracts and an app's live DuckDB database) backed up
//! while the app keeps writing and checkpointing, with `before_backup` / `after_backup`
//! hooks pausing and resuming its writes the way the seed's `docker exec` commands do:
//! every restored copy opens in DuckDB with contents that agree with themselves.

use crate::common::duckdb::{self, DuckWriter};
use crate::common::{ConfigBuilder, Home};

/// The data volume target `app-data` of `data/`, its hooks talking to the app over
/// `control`.
fn volume_with_pause_hooks(home: &Home, control: &std::path::Path) {
    ConfigBuilder::new()
        .directory_target("app-data", "../data")
        .with("restore_roots = [\"../restored\"]")
        .raw(&format!(
            "[targets.app-data.hooks]\nbefore_backup = [{}]\nafter_backup = [{}]\ntimeout = \"1m\"\n",
            duckdb::ctl(control, "pause"),
            duckdb::ctl(control, "resume"),
        ))
        .write(home);
}

#[test]
fn hooks_that_pause_the_writer_give_copies_duckdb_opens_in_every_round() {
    let home = Home::new();
    let control = home.path("app.sock");
    // A checkpoint every second batch: without a pause, copies tear often.
    let mut app: DuckWriter = duckdb::seed_volume_controlled(&home.path("data"), 2, &control);
    volume_with_pause_hooks(&home, &control);
    std::fs::create_dir_all(home.path("restored")).unwrap();

    let mut restored_rows = Vec::new();
    for round in 1..=5 {
        // Let the app commit and checkpoint a while before each backup.
        let before = app.checkpoint();
        app.wait_rows(before + 2_000);
        let backup = home.json(&["backup", "app-data"]);
        let id = backup["id"].as_str().unwrap().to_string();
        // Paused while read: nothing changed under the copy.
        assert_eq!(backup["consistent"], true, "round {round}: {backup}");
        // The after_backup hook resumed the app: it is writing again.
        assert!(
            !app.is_paused(),
            "round {round}: the app was left paused after the backup"
        );
        let after = app.checkpoint();

        let dest = home.path(&format!("restored/round-{round}"));
        home.ok(&[
            "restore",
            "app-data",
            &id,
            "--to",
            dest.to_str().unwrap(),
            "--yes",
        ]);
        let rows = duckdb::check(&dest.join("state/system.duckdb"))
            .unwrap_or_else(|e| panic!("round {round}: backup {id} restored unusable: {e}"));
        assert!(
            rows >= before + 2_000 && rows < after,
            "round {round}: restored {rows} rows, the app had {before}+2000 before the backup and {after} after"
        );
        for source in ["keboola", "bigquery"] {
            let extract = format!("extracts/{source}/data/orders.parquet");
            assert_eq!(
                std::fs::read(dest.join(&extract)).unwrap(),
                std::fs::read(home.path(&format!("data/{extract}"))).unwrap(),
                "round {round}: {extract}"
            );
        }
        restored_rows.push(rows);
    }
    assert!(
        restored_rows.windows(2).all(|w| w[0] < w[1]),
        "each round's copy holds more than the last: {restored_rows:?}"
    );
    app.stop();
}
