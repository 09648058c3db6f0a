//! Compaction of shipped history and its end past `continuous_history`, with a real
//! writer in another process and the real replicator: the object count drops and every
//! moment restores exactly the same; the store as a replicator killed between writing a
//! merged object and deleting its parts leaves it restores exactly; a generation past
//! `continuous_history` goes whole with its base copy, `prune` keeps a base a kept
//! generation needs (saying so), and a moment before the kept history is refused saying so.

use std::collections::BTreeMap;

use super::*;

fn generation_dir(home: &Home) -> PathBuf {
    let text = std::fs::read_to_string(home.path("backups/app.wal/position.json")).unwrap();
    let p: serde_json::Value = serde_json::from_str(&text).unwrap();
    home.path(&format!(
        "backups/app.wal/{}",
        p["generation"].as_str().unwrap()
    ))
}

/// The segment files of a generation directory, by name.
fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg.zst"))
        .collect();
    names.sort();
    names
}

/// Segments per second they were seen in (the `continuous_compact = "1s"` spans).
fn per_span(names: &[String]) -> BTreeMap<i64, usize> {
    let mut spans = BTreeMap::new();
    for n in names {
        let seen: i64 = n
            .split('-')
            .nth(2)
            .unwrap()
            .trim_end_matches(".seg.zst")
            .parse()
            .unwrap();
        *spans.entry(seen / 1000).or_insert(0) += 1;
    }
    spans
}

/// Wait until every one-second span holds a single object: compaction has caught up.
fn wait_compacted(dir: &Path) -> Vec<String> {
    let start = Instant::now();
    loop {
        let names = segments(dir);
        if per_span(&names).values().all(|&n| n == 1) {
            return names;
        }
        assert!(start.elapsed() < DEADLINE, "never compacted: {names:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(super) fn set_config(home: &Home, from: &str, to: &str) {
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(home.config_path(), text.replace(from, to)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn compaction_drops_the_object_count_and_every_moment_restores_the_same() {
    let config = format!("{}continuous_compact = \"1h\"\n", target("local"));
    let home = Home::with_config(&ConfigBuilder::new().raw(&config));
    let db = db_path(&home);
    create_db(&db, true);
    // Shipped with no compaction yet (an hour's span is never over here).
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let log = home.path("data/commits.log");
    finish(writer(&db, 1500, &log, &[]));
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);
    assert!(rep.stop().success());
    let dir = generation_dir(&home);
    let before = segments(&dir);
    assert!(
        per_span(&before).values().any(|&n| n > 1),
        "several segments a second to merge: {before:?}"
    );
    let moments: Vec<f64> = [100, 700, 1100, 1499]
        .iter()
        .map(|&i| (rows[i - 1].committed + rows[i].began) / 2.0)
        .collect();
    let restore_all = |label: &str| -> Vec<Vec<i64>> {
        moments
            .iter()
            .enumerate()
            .map(|(i, &at)| {
                let copy = home.path(&format!("restores/{label}-{i}.db"));
                home.restore_at(&rfc3339(at), &copy);
                let ids = restored_ids(&copy);
                assert_exactly_by(&ids, &rows, at, slack());
                ids
            })
            .collect()
    };
    let restored_before = restore_all("parts");
    // The store as it is now, parts only: the crash case below starts from it.
    let parts_only = home.path("parts-only");
    copy_dir(&dir, &parts_only);

    // One-second spans: the replicator merges each once it is a second old.
    set_config(
        &home,
        "continuous_compact = \"1h\"",
        "continuous_compact = \"1s\"",
    );
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let after = wait_compacted(&dir);
    rep.wait_for("compacted");
    assert!(rep.stop().success());
    eprintln!("{} segments compacted into {}", before.len(), after.len());
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert!(after.iter().any(|n| n.ends_with("-m.seg.zst")), "{after:?}");
    assert_eq!(restore_all("merged"), restored_before);

    // Killed between writing the merged objects and deleting their parts: both there.
    for n in after.iter().filter(|n| n.ends_with("-m.seg.zst")) {
        std::fs::copy(dir.join(n), parts_only.join(n)).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&parts_only, &dir);
    assert_eq!(
        segments(&dir).len(),
        before.len() + after.iter().filter(|n| n.ends_with("-m.seg.zst")).count()
    );
    assert_eq!(restore_all("both"), restored_before);
    assert_chain_proved(&home, "merged objects beside their parts");
    // The next replicator finishes the pass: the parts go, every moment the same.
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let finished = wait_compacted(&dir);
    assert!(rep.stop().success());
    assert_eq!(finished.len(), after.len(), "{finished:?}");
    assert_eq!(restore_all("finished"), restored_before);
    assert_chain_proved(&home, "merged objects alone");
}

/// `verify` reads merged objects as the chain they replaced: no gap, nothing damaged.
fn assert_chain_proved(home: &Home, state: &str) {
    let (ok, report) = super::chain::verify(home);
    let chain = &report["chain"];
    assert!(ok, "{state}: {report:#}");
    assert!(
        super::chain::texts(&chain["problems"]).is_empty(),
        "{state}: {report:#}"
    );
    assert!(
        super::chain::texts(&chain["proved"]).contains("with no gap"),
        "{state}: {report:#}"
    );
}

#[test]
fn history_past_continuous_history_goes_whole_and_prune_keeps_the_bases_it_needs() {
    let config = format!(
        "{}continuous_history = \"1h\"\ncontinuous_compact = \"1s\"\n[targets.app.retention]\nlast = 1\n",
        target("local")
    );
    let home = Home::with_config(&ConfigBuilder::new().raw(&config));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let first = generation_dir(&home);
    let log = home.path("data/commits.log");
    finish(writer(&db, 300, &log, &["noauto"]));
    let before = commits(&log);
    home.wait_replicated_past(before.last().unwrap().committed);
    rep.kill();
    // The log truncated while no replicator runs: the next one starts a new generation.
    finish(writer(&db, 100, &log, &["noauto", "truncate=400"]));
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("new replication generation");
    assert_ne!(generation_dir(&home), first);
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);
    assert!(rep.stop().success());
    let in_first = (before[149].committed + before[150].began) / 2.0;

    // Within continuous_history: `last = 1` alone would prune the first base copy.
    let out = home.ok(&["prune", "app"]);
    assert!(
        out.contains("base of kept continuous history"),
        "prune says why it keeps the first base: {out}"
    );
    assert_eq!(home.ok(&["list", "app"]).lines().count() - 1, 2, "{out}");
    let copy = home.path("restores/first.db");
    home.restore_at(&rfc3339(in_first), &copy);
    assert_exactly_by(&restored_ids(&copy), &rows, in_first, slack());

    // Past it: the first generation ended more than 2 s ago (its record says when).
    set_config(
        &home,
        "continuous_history = \"1h\"",
        "continuous_history = \"2s\"",
    );
    let ended: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("generation.json")).unwrap())
            .unwrap();
    let ended_at = unix(ended["ended"]["replicated_to"].as_str().unwrap());
    while (chrono::Utc::now().timestamp_micros() as f64 / 1e6) < ended_at + 2.5 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = home.ok(&["prune", "app"]);
    assert!(
        out.contains("removed shipped history of generation"),
        "{out}"
    );
    let left: Vec<_> = std::fs::read_dir(&first)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "the first generation went whole: {left:?}\n{out}"
    );
    assert_eq!(home.ok(&["list", "app"]).lines().count() - 1, 1, "{out}");
    let refused = home.out(&[
        "restore",
        "app",
        "--at",
        &rfc3339(in_first),
        "--to",
        "/tmp/never",
    ]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(err.contains("past the kept history"), "{err}");
    // What is kept still restores.
    let newest = home.status()["replicated_to"].as_str().unwrap().to_string();
    let all = home.path("restores/all.db");
    home.restore_at(&newest, &all);
    assert_eq!(restored_ids(&all), (1..=400).collect::<Vec<i64>>());
}

#[test]
fn a_fresh_base_every_half_continuous_history_lets_older_history_go_with_no_gap_between() {
    let config = format!(
        "{}continuous_history = \"4s\"\ncontinuous_compact = \"1s\"\n",
        target("local")
    );
    let home = Home::with_config(&ConfigBuilder::new().raw(&config));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app");
    let log = home.path("data/commits.log");
    finish(writer(&db, 1500, &log, &[]));
    let rows = commits(&log);
    home.wait_replicated_past(rows.last().unwrap().committed);
    // Fresh bases every 2 s; a generation that ended more than 4 s ago goes.
    rep.wait_for("a fresh base copy, so history older than continuous_history can go");
    rep.wait_for("replication history removed");
    assert!(rep.stop().success());
    // A routine fresh base continues the history: it names no generation it took over
    // from, so the watchdog's "had to start a new generation" alert stays quiet.
    let mut fresh = 0;
    for entry in std::fs::read_dir(home.path("backups/app.wal")).unwrap() {
        let record = entry.unwrap().path().join("generation.json");
        let Ok(text) = std::fs::read_to_string(&record) else {
            continue;
        };
        let g: serde_json::Value = serde_json::from_str(&text).unwrap();
        if g["reason"]
            .as_str()
            .unwrap_or("")
            .contains("a fresh base copy")
        {
            fresh += 1;
            assert!(g.get("previous").is_none(), "{record:?}: {g}");
        }
    }
    assert!(fresh > 0, "a fresh base generation is kept");
    let floor: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.path("backups/app.wal/history.json")).unwrap(),
    )
    .unwrap();
    let kept_from = unix(floor["kept_from"].as_str().unwrap());
    let (mut kept, mut past) = (0, 0);
    for i in std::iter::once(1).chain((50..1500).step_by(50)) {
        let at = (rows[i - 1].committed + rows[i].began) / 2.0;
        let copy = home.path(&format!("restores/at-{i}.db"));
        let out = home.out(&[
            "restore",
            "app",
            "--at",
            &rfc3339(at),
            "--to",
            &copy.display().to_string(),
            "--yes",
        ]);
        // Before the kept history: refused saying so. After it, exact: never a gap
        // between one generation's end and the next base copy.
        if at < kept_from {
            assert!(!out.status.success(), "row {i}: restored before the floor");
            let err = stderr(&out);
            assert!(err.contains("past the kept history"), "row {i}: {err}");
            past += 1;
        } else {
            assert!(out.status.success(), "row {i}: {}", stderr(&out));
            assert_exactly_by(&restored_ids(&copy), &rows, at, slack());
            kept += 1;
        }
    }
    eprintln!("{past} moments past the kept history, {kept} restored exactly");
    assert!(kept > 0, "the newest moments are kept: {floor}");
    let newest = home.status()["replicated_to"].as_str().unwrap().to_string();
    let all = home.path("restores/all.db");
    home.restore_at(&newest, &all);
    assert_eq!(restored_ids(&all).len(), 1500);
}
