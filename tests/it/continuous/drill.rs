//! A drill of a continuous target restores to the newest moment replicated while a real
//! replicator runs and a real application has written, and reports the replication lag
//! at that moment as its RPO, not the base copy's age.

use super::*;

#[test]
fn a_drill_restores_to_the_newest_moment_and_its_rpo_is_the_lag() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app every 200ms");
    let log = home.path("data/commits.log");
    // 1500 rows with a 2 ms pause after each: at least 3 s from the first to the last.
    finish(writer(&db, 1500, &log, &[]));
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);

    let out = home.run(&["drill", "app", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    assert!(
        out.status.success() && report["restore_ok"] == true,
        "{report}"
    );
    let steps = report["steps"].as_array().unwrap();
    let detail = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no step {name:?}: {report}"))["detail"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let found = detail("find the backup");
    // Every row the writer committed is among the replayed transactions (the drill
    // started after replication passed the last commit).
    let upto: u64 = found
        .rsplit_once(" to ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{found}"));
    assert!(upto >= rows.len() as u64, "{found}");
    let replay = detail("replay shipped transactions to ");
    assert!(replay.contains("transactions replayed"), "{replay}");
    assert!(detail("integrity_check of the replayed copy").contains("ok"));

    // The RPO is drill start minus the moment restored to: the lag then, measured from
    // the same clock; the base copy predates the first row, over 3 s before the last.
    let moment = steps
        .iter()
        .find_map(|s| {
            s["name"]
                .as_str()
                .unwrap()
                .strip_prefix("replay shipped transactions to ")
        })
        .unwrap()
        .to_string();
    let rpo = report["rpo_seconds"].as_f64().unwrap();
    let lag_then = unix(report["started_at"].as_str().unwrap()) - unix(&moment);
    assert!(
        (rpo - lag_then).abs() < 0.002,
        "rpo {rpo}, lag {lag_then}: {report}"
    );
    let base_age = unix(report["started_at"].as_str().unwrap())
        - unix(report["backup"]["created_at"].as_str().unwrap());
    assert!(
        base_age - rpo >= 3.0,
        "rpo {rpo} is not the base's age {base_age}"
    );
    assert!(
        report["report"]
            .as_str()
            .unwrap()
            .contains("replay shipped transactions"),
        "{report}"
    );
    drop(rep);
}
