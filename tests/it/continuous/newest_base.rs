//! A restore to a moment starts from the newest base copy of its generation at or before
//! the moment — a standalone replicator's scheduled copy, or under `serve` a scheduled
//! backup the replicator pinned — and replays only the transactions after it; a base
//! copy whose backup is gone, whose manifest is damaged or whose artifact is cut short is
//! passed over, named in the plan, and the restore still holds exactly the rows
//! committed by the moment.

use super::chain::{texts, verify};
use super::later_base::base_records;
use super::*;

/// A later base record's backup, transaction and moment, newest transaction last.
fn later_bases(home: &Home) -> Vec<(String, u64, f64)> {
    base_records(home)
        .into_iter()
        .filter(|(_, _, txid)| *txid > 0)
        .map(|(path, backup, txid)| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            (backup, txid, unix(v["at"].as_str().unwrap()))
        })
        .collect()
}

/// Every file of backup `id` in the local store, removed (as a prune or a lost disk would).
fn remove_backup(home: &Home, id: &str) {
    let mut removed = 0;
    for f in std::fs::read_dir(home.path("backups/app"))
        .unwrap()
        .flatten()
    {
        if f.file_name()
            .to_string_lossy()
            .starts_with(&format!("{id}."))
        {
            std::fs::remove_file(f.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "no files of backup {id}");
}

#[test]
fn a_late_restore_replays_from_the_newest_scheduled_base_and_passes_over_a_lost_one() {
    let (home, db) = scheduled_app("* * * * * *");
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app every 200ms");
    let log = home.path("data/commits.log");
    // A long history: three stretches of rows, a scheduled base copy after each of the
    // first two, then rows after the last copy.
    for _ in 0..2 {
        finish(writer(&db, 700, &log, &[]));
        let before = rep.times("scheduled base copy");
        rep.wait_times("scheduled base copy", before + 1);
    }
    finish(writer(&db, 300, &log, &[]));
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);
    assert!(rep.stop().success());

    // A moment late in the history, between two commits of the last stretch; the base
    // copies at or before it (the schedule goes on taking them after it too).
    let i = rows.len() - 100;
    let at = (rows[i].committed + rows[i + 1].began) / 2.0;
    let bases: Vec<(String, u64, f64)> = later_bases(&home)
        .into_iter()
        .filter(|b| b.2 <= at)
        .collect();
    let (newest, newest_txid, _) = bases.last().cloned().unwrap();
    assert!(newest_txid >= 1400 && bases.len() >= 2, "{bases:?}");
    let copy = home.path("restores/late.db");
    let plan = home.restore_at(&rfc3339(at), &copy);
    let point = &plan["point"];
    let n = assert_exactly_by(&restored_ids(&copy), &rows, at, slack()) as u64;
    assert_eq!(point["up_to_txid"].as_u64(), Some(n), "{plan}");
    assert_eq!(point["base_backup"], newest.as_str(), "{plan}");
    assert_eq!(plan["backup"]["id"], newest.as_str(), "{plan}");
    assert_eq!(point["first_base"], false, "{plan}");
    assert_eq!(point["base_txid"].as_u64(), Some(newest_txid), "{plan}");
    let replayed = point["transactions"].as_u64().unwrap();
    assert_eq!(replayed, n - newest_txid, "{plan}");
    // Only the last stretch is replayed, not the whole history since the first base.
    assert!(
        replayed <= 300 && replayed * 4 < n,
        "{replayed} of {n}: {plan}"
    );
    let segments_late = point["segments"].as_array().unwrap().len();

    // The newest base copy's backup gone: the one before it, and the plan says why.
    remove_backup(&home, &newest);
    let (older, older_txid, _) = bases[bases.len() - 2].clone();
    let copy = home.path("restores/older.db");
    let plan = home.restore_at(&rfc3339(at), &copy);
    let point = &plan["point"];
    assert_eq!(
        assert_exactly_by(&restored_ids(&copy), &rows, at, slack()) as u64,
        n
    );
    assert_eq!(point["base_backup"], older.as_str(), "{plan}");
    assert_eq!(point["base_txid"].as_u64(), Some(older_txid), "{plan}");
    let passed = texts(&point["passed_over"]);
    assert!(
        passed.contains(&newest) && passed.contains("no longer in the store"),
        "{plan}"
    );
    let words = home.ok(&[
        "restore",
        "app",
        "--at",
        &rfc3339(at),
        "--to",
        &home.path("restores/never.db").display().to_string(),
        "--dry-run",
    ]);
    assert!(
        words.contains(&format!("passed over: base copy {newest}")),
        "{words}"
    );

    // Every later base unusable (the oldest's artifact cut short, the others removed,
    // the newest left's manifest damaged): the generation's first base copy and the
    // whole history, still exactly right.
    let (short, _, _) = &bases[0];
    let artifact = home.path(&format!("backups/app/{short}.sqlite.zst"));
    let bytes = std::fs::read(&artifact).unwrap();
    std::fs::write(&artifact, &bytes[..bytes.len() / 2]).unwrap();
    for (gone, _, _) in &bases[1..bases.len() - 2] {
        remove_backup(&home, gone);
    }
    let manifest = home.path(&format!("backups/app/{older}.manifest.json"));
    assert!(manifest.exists(), "{}", manifest.display());
    std::fs::write(&manifest, b"{ damaged").unwrap();
    let copy = home.path("restores/first.db");
    let plan = home.restore_at(&rfc3339(at), &copy);
    let point = &plan["point"];
    assert_eq!(
        assert_exactly_by(&restored_ids(&copy), &rows, at, slack()) as u64,
        n
    );
    assert_eq!(point["first_base"], true, "{plan}");
    assert_eq!(point["transactions"].as_u64(), Some(n), "{plan}");
    let segments_all = point["segments"].as_array().unwrap().len();
    assert!(
        segments_late < segments_all,
        "{segments_late} {segments_all}"
    );
    assert_eq!(
        point["passed_over"].as_array().unwrap().len(),
        bases.len(),
        "{plan}"
    );
    let passed = texts(&point["passed_over"]);
    assert!(
        passed.contains(&format!("base copy {short} "))
            && passed.contains(&format!("has an artifact of {} bytes", bytes.len() / 2)),
        "{passed}"
    );
    eprintln!(
        "restore to a late moment: {replayed} transactions from {segments_late} segments after base copy {newest}, against {n} from {segments_all} segments from the generation's first"
    );
}

#[test]
fn under_serve_the_scheduled_backups_are_base_copies_a_restore_starts_from() {
    let (home, db) = scheduled_app("*/2 * * * * *");
    let serve = fakes::Serve::start(&home);
    let log = home.path("data/commits.log");
    // Rows, then at least one backup pinned by the replicator after them, then more rows.
    finish(writer(&db, 600, &log, &[]));
    let written = commits(&log).len() as u64;
    let start = Instant::now();
    while !later_bases(&home).iter().any(|b| b.1 >= written) {
        assert!(
            start.elapsed() < DEADLINE,
            "no backup recorded as a base copy: {}",
            serve.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    finish(writer(&db, 300, &log, &[]));
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);
    let logged = serve.log_text();
    serve.stop();
    assert!(logged.contains("is a base copy of generation"), "{logged}");

    // Every recorded base is one of the target's backups.
    let listed = home.ok(&["list", "app"]);
    let bases = later_bases(&home);
    for (backup, _, _) in &bases {
        assert!(listed.contains(backup.as_str()), "{backup}: {listed}");
    }
    let i = rows.len() - 50;
    let at = (rows[i].committed + rows[i + 1].began) / 2.0;
    let newest = bases.iter().rfind(|b| b.2 <= at).cloned().unwrap();
    let copy = home.path("restores/late.db");
    let plan = home.restore_at(&rfc3339(at), &copy);
    let n = assert_exactly_by(&restored_ids(&copy), &rows, at, slack()) as u64;
    let point = &plan["point"];
    assert_eq!(point["base_backup"], newest.0.as_str(), "{plan}");
    assert_eq!(point["first_base"], false, "{plan}");
    assert_eq!(point["transactions"].as_u64(), Some(n - newest.1), "{plan}");
    assert!(newest.1 >= 600, "{bases:?}");

    // verify replays the history and finds it equal to each such backup page for page.
    let (ok, report) = verify(&home);
    assert!(ok, "{report}");
    let proved = texts(&report["chain"]["proved"]);
    assert!(
        proved.contains(&format!(
            "to transaction {}, the database equals base copy {} page for page",
            newest.1, newest.0
        )),
        "{proved}"
    );
}
