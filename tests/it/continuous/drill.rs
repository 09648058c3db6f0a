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

#[test]
fn a_drill_to_a_chosen_moment_restores_exactly_to_it() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app every 200ms");
    let log = home.path("data/commits.log");
    finish(writer(&db, 1500, &log, &[]));
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);
    assert!(rep.stop().success());

    // A moment in the middle, between two commits.
    let i = rows.len() / 2;
    let at = (rows[i].committed + rows[i + 1].began) / 2.0;
    let out = home.run(&["drill", "app", "--at", &rfc3339(at), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    assert!(
        out.status.success() && report["restore_ok"] == true,
        "{report}"
    );
    let steps = report["steps"].as_array().unwrap();
    let found = steps
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with("find the backup"))
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    // Transactions are rows: every row committed more than the slack before the moment is
    // in, none that began after it.
    let upto: u64 = found
        .rsplit_once(" to ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{found}"));
    let surely_in = rows.iter().filter(|c| c.committed + slack() <= at).count() as u64;
    let began_by = rows.iter().filter(|c| c.began <= at).count() as u64;
    assert!(
        surely_in <= upto && upto <= began_by,
        "{upto} not in {surely_in}..={began_by}: {found}"
    );
    assert!(upto < rows.len() as u64, "a moment in the middle: {found}");
    assert!(
        steps.iter().any(|s| s["name"]
            .as_str()
            .unwrap()
            .starts_with("replay shipped transactions to ")),
        "{report}"
    );
    // The RPO is the lag at the moment: no more than the moment minus the last row it
    // holds (seen committed after that row began), far less than the moment's age
    // when the drill started.
    let rpo = report["rpo_seconds"].as_f64().unwrap();
    let last_in = rows[upto as usize - 1].began;
    assert!(
        // (Times in the store are to the millisecond.)
        (0.0..=at - last_in + 0.002).contains(&rpo),
        "rpo {rpo}, moment minus last row {}",
        at - last_in
    );

    // A moment past replication is refused before any drill, naming how far it reaches.
    let drills = || home.status()["last_drill_at"].clone();
    let before = drills();
    assert!(before.is_string(), "the drill above is recorded");
    let later = rfc3339(rows.last().unwrap().committed + 3600.0);
    let out = home.run(&["drill", "app", "--at", &later]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("replicated to") && err.contains("is past it"),
        "{err}"
    );
    assert_eq!(drills(), before, "no drill was recorded");
}
