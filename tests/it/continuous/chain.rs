//! `verify` of a continuous target proves its shipped history: a healthy chain replays
//! onto its base copy; a segment deleted from the middle is a gap naming the missing
//! transaction numbers; a flipped byte in a segment names that segment.

use std::path::PathBuf;

use super::*;

/// The segments of the one generation in the local store, in transaction order.
fn segments(home: &Home) -> Vec<PathBuf> {
    let wal = home.path("backups/app.wal");
    let mut out = Vec::new();
    for g in std::fs::read_dir(&wal).unwrap().flatten() {
        if g.path().is_dir() {
            for f in std::fs::read_dir(g.path()).unwrap().flatten() {
                if f.file_name().to_string_lossy().ends_with(".seg.zst") {
                    out.push(f.path());
                }
            }
        }
    }
    out.sort();
    out
}

/// A segment's transaction numbers, from its name `<first>-<last>-<ms>.seg.zst` (hex).
fn txids(segment: &std::path::Path) -> (u64, u64) {
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    let mut parts = name.split('-');
    let first = u64::from_str_radix(parts.next().unwrap(), 16).unwrap();
    let last = u64::from_str_radix(parts.next().unwrap(), 16).unwrap();
    (first, last)
}

pub(super) fn verify(home: &Home) -> (bool, serde_json::Value) {
    verify_with(|args| home.run(args))
}

/// `verify app --json` run by `run` (any home): whether it passed, and its report.
pub(super) fn verify_with(
    run: impl Fn(&[&str]) -> std::process::Output,
) -> (bool, serde_json::Value) {
    let out = run(&["verify", "app", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    (out.status.success(), report)
}

pub(super) fn texts(v: &serde_json::Value) -> String {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn verify_proves_the_chain_and_names_a_gap_and_a_damaged_segment() {
    let home = Home::with_config(&ConfigBuilder::new().raw(&target("local")));
    let db = db_path(&home);
    create_db(&db, true);
    let mut rep = Replicator::start(home.command(&["replicate", "app"]));
    rep.wait_for("replicating app every 200ms");
    let log = home.path("data/commits.log");
    finish(writer(&db, 1500, &log, &[]));
    let rows = commits(&log);
    let status = home.wait_replicated_past(rows.last().unwrap().committed);
    assert!(rep.stop().success(), "{status}");

    // Healthy: no gap, every segment whole, the replay passes integrity_check; the
    // comparison with a later base it cannot make is said, not claimed.
    let (ok, report) = verify(&home);
    let chain = &report["chain"];
    assert!(ok, "{report}");
    let proved = texts(&chain["proved"]);
    assert!(proved.contains("with no gap"), "{proved}");
    assert!(
        proved.contains("replayed onto base copy") && proved.contains("integrity_check ok"),
        "{proved}"
    );
    // One transaction per row the writer committed.
    assert!(
        proved.contains(&format!("transactions 1 to {} with no gap", rows.len())),
        "{proved}"
    );
    assert!(
        texts(&chain["not_proved"]).contains("no later base copy"),
        "{chain}"
    );

    let all = segments(&home);
    assert!(all.len() >= 3, "several shipping rounds: {all:?}");

    // A segment deleted from the middle: a gap naming its transactions.
    let middle = all[all.len() / 2].clone();
    let (first, last) = txids(&middle);
    let kept = std::fs::read(&middle).unwrap();
    std::fs::remove_file(&middle).unwrap();
    let (ok, report) = verify(&home);
    assert!(!ok, "{report}");
    let problems = texts(&report["problems"]);
    assert!(
        problems.contains(&format!("transactions {first} to {last} are missing")),
        "{problems}"
    );
    assert!(
        !texts(&report["chain"]["proved"]).contains("integrity_check ok"),
        "{report}"
    );
    std::fs::write(&middle, &kept).unwrap();
    assert!(
        verify(&home).0,
        "the segment put back, the chain is whole again"
    );

    // One flipped byte in a segment: that segment is named as damaged.
    let mut bytes = kept.clone();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&middle, &bytes).unwrap();
    let (ok, report) = verify(&home);
    assert!(!ok, "{report}");
    let problems = texts(&report["problems"]);
    let name = middle.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        problems.contains(&format!(
            "{name} (transactions {first} to {last}): damaged segment"
        )),
        "{problems}"
    );
    assert!(
        problems.contains(&format!(
            "transactions {first} to {last} are missing from the store (only damaged segments hold them)"
        )),
        "{problems}"
    );
}
