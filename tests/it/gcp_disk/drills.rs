//! gcp-disk drills: a disk made from the newest snapshot, checked and deleted again, and
//! drills that fail (a deleted snapshot, a disk that cannot be made) without leaving a disk.

use serde_json::{Value, json};

use super::fake::FakeCompute;
use super::*;
use crate::common::*;

#[test]
fn a_gcp_disk_drill_makes_a_disk_from_the_newest_snapshot_checks_it_and_deletes_it() {
    let fake = FakeCompute::start();
    let seen = tempfile::NamedTempFile::new().unwrap();
    let home = gcp_home_with(
        &fake,
        false,
        &format!(
            "rto = \"30m\"\nrpo = \"24h\"\ndrill_schedule = \"0 0 4 1 * *\"\nchecks = [ {{ command = [\"sh\", \"-c\", \"echo \\\"$LIFEBOAT_SANDBOX\\\" > {}\"] }} ]",
            seen.path().display()
        ),
    );
    home.json(&["backup", "data-disk"]);
    let newest = home.json(&["backup", "data-disk"]);
    home.json(&["backup", "home-disk"]);
    let snap = newest["gcp"]["snapshot"].as_str().unwrap().to_string();
    let source_before = fake.state.lock().unwrap().disks["data-disk"].clone();
    let before = fake.calls().len();

    let (code, r) = drill(&home, "data-disk");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["ok"], true);
    assert_eq!(r["kind"], "gcp-disk");
    assert_eq!(r["problems"], json!([]));
    assert_eq!(r["backup_id"], newest["id"], "the newest snapshot");
    assert_eq!(r["rto_objective_seconds"], 1800.0);
    assert_eq!(r["rpo_objective_seconds"], 86400.0);
    let rto = r["rto_seconds"].as_f64().unwrap();
    assert!(rto > 0.0 && rto < 1800.0, "{rto}");
    let rpo = r["rpo_seconds"].as_f64().unwrap();
    assert!((0.0..600.0).contains(&rpo), "{rpo}");
    assert_eq!(r["sandbox_created"], true);
    assert_eq!(r["sandbox_removed"], true);

    // A new disk from the snapshot, labelled as the drill's, in the target's zone.
    let drill_disk = {
        let s = fake.state.lock().unwrap();
        let body = s.inserted_disks.last().unwrap().clone();
        assert_eq!(
            body["sourceSnapshot"],
            format!("projects/{PROJECT}/global/snapshots/{snap}")
        );
        assert_eq!(body["labels"]["lifeboat"], "1");
        assert_eq!(body["labels"]["lifeboat-target"], "data-disk");
        assert_eq!(body["labels"]["lifeboat-drill"], "1");
        body["name"].as_str().unwrap().to_string()
    };
    assert!(
        drill_disk.starts_with("lifeboat-drill-data-disk-2"),
        "{drill_disk}"
    );
    let path = format!("projects/{PROJECT}/zones/{ZONE}/disks/{drill_disk}");
    assert_eq!(r["sandbox"], path);
    // The command check found the disk in LIFEBOAT_SANDBOX.
    assert_eq!(std::fs::read_to_string(seen.path()).unwrap().trim(), path);

    // Made, read back, deleted, each operation waited for; nothing else was written.
    let calls: Vec<String> = fake.calls()[before..].to_vec();
    let zone = format!("/compute/v1/projects/{PROJECT}/zones/{ZONE}");
    let at = |wanted: &str| {
        calls
            .iter()
            .position(|c| c == wanted)
            .unwrap_or_else(|| panic!("{wanted} missing from {calls:#?}"))
    };
    let insert = at(&format!("POST {zone}/disks"));
    let read = at(&format!("GET {zone}/disks/{drill_disk}"));
    let delete = at(&format!("DELETE {zone}/disks/{drill_disk}"));
    assert!(read < insert, "the name was checked free first: {calls:#?}");
    assert!(insert < delete);
    assert!(
        calls[insert..delete]
            .iter()
            .any(|c| c.starts_with(&format!("GET {zone}/operations/"))),
        "waited for the insert: {calls:#?}"
    );
    assert!(
        calls[delete..]
            .iter()
            .any(|c| c.starts_with(&format!("GET {zone}/operations/"))),
        "waited for the delete: {calls:#?}"
    );
    let writes: Vec<&String> = calls.iter().filter(|c| !c.starts_with("GET ")).collect();
    assert_eq!(writes.len(), 2, "{writes:?}");

    // No drill disk is left, and the target's own disk is untouched.
    assert_eq!(disk_names(&fake), ["data-disk", "home-disk"]);
    assert_eq!(fake.state.lock().unwrap().disks["data-disk"], source_before);

    let report = r["report"].as_str().unwrap();
    assert_contains_all(
        report,
        &[
            "# Recovery drill of data-disk: ✅ PASSED",
            &format!("- sandbox: new disk `{path}` (deleted afterwards)"),
            "## Objectives",
            "| RTO (drill start → verified restore) | 30m |",
            "| RPO (age of the restored data at drill start) | 1day |",
            "✅ met",
            "## Timeline (UTC)",
            "| 1 | find the snapshot |",
            &format!("create disk {drill_disk} from snapshot {snap}"),
            &format!("verify disk {drill_disk}: READY, the snapshot's size, made from it"),
            "READY, 10 GB as the snapshot's disk",
            "check 1: command `sh -c",
            &format!("delete disk {drill_disk}"),
            "## Problems found\n\n- none",
            "## Action items\n\n- none",
        ],
    );
    assert_eq!(r["steps"].as_array().unwrap().len(), 5);

    // The drill is recorded: status shows it.
    let data = status_of(&home, "data-disk");
    assert_eq!(data["last_drill_ok"], true, "{data:#}");
    fake.assert_nothing_unexpected();
}

#[test]
fn a_gcp_disk_drill_of_a_snapshot_deleted_behind_lifeboats_back_fails_naming_it() {
    let fake = FakeCompute::start();
    let home = gcp_home(&fake, false);
    let b = home.json(&["backup", "data-disk"]);
    let snap = b["gcp"]["snapshot"].as_str().unwrap().to_string();
    fake.state.lock().unwrap().snapshots.remove(&snap);

    let (code, r) = drill(&home, "data-disk");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["ok"], false);
    assert_eq!(
        r["backup_id"], b["id"],
        "the recorded backup is the one named"
    );
    let problems = r["problems"].to_string();
    assert!(
        problems.contains(&format!(
            "snapshot {snap} no longer exists: it was deleted outside lifeboat"
        )),
        "{problems}"
    );
    assert_eq!(r["rto_seconds"], Value::Null);
    assert_eq!(r["sandbox_created"], false);
    let report = r["report"].as_str().unwrap();
    assert!(report.contains("❌ FAILED"), "{report}");
    assert!(report.contains("(not made)"), "{report}");
    assert!(
        report.contains(&format!(
            "backup {} cannot be drilled",
            b["id"].as_str().unwrap()
        )),
        "{report}"
    );
    // No disk was made, and nothing was written.
    assert_eq!(disk_names(&fake), ["data-disk", "home-disk"]);
    assert!(
        fake.calls()
            .iter()
            .all(|c| !c.contains("/disks") || c.ends_with("/createSnapshot")),
        "{:#?}",
        fake.calls()
    );
    fake.assert_nothing_unexpected();
}

#[test]
fn a_gcp_disk_drill_whose_disk_creation_fails_says_why_and_leaves_no_disk() {
    let fake = FakeCompute::start();
    let home = gcp_home(&fake, false);
    home.json(&["backup", "data-disk"]);
    fake.state.lock().unwrap().fail_next_disk = Some((
        "QUOTA_EXCEEDED".into(),
        "Quota 'DISKS_TOTAL_GB' exceeded. Limit: 500.0 in region europe-north1.".into(),
    ));

    let (code, r) = drill(&home, "data-disk");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["ok"], false);
    let problems = r["problems"].to_string();
    assert!(
        problems.contains("quota exceeded: Quota 'DISKS_TOTAL_GB' exceeded"),
        "{problems}"
    );
    assert!(problems.contains("lifeboat-drill-data-disk-"), "{problems}");
    assert_eq!(r["rto_seconds"], Value::Null);
    let steps = r["steps"].as_array().unwrap();
    let create = steps
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with("create disk"))
        .unwrap();
    assert_eq!(create["ok"], false);
    assert!(
        r["report"]
            .as_str()
            .unwrap()
            .contains("could not be restored: take a new backup now"),
        "{}",
        r["report"]
    );
    // The failed operation left no disk, so there was nothing to delete.
    assert_eq!(disk_names(&fake), ["data-disk", "home-disk"]);
    assert!(
        fake.calls().iter().all(|c| !c.starts_with("DELETE")),
        "{:#?}",
        fake.calls()
    );
    let inserts = fake
        .calls()
        .iter()
        .filter(|c| c.ends_with("/disks"))
        .count();
    assert_eq!(inserts, 1);

    // A disk that already has the drill disk's name is refused and left alone (disks
    // for each second of the next minute, so the drill's start falls on one of them).
    let now = chrono::Utc::now();
    let taken: Vec<String> = (-2..60)
        .map(|s| {
            let at = now + chrono::Duration::seconds(s);
            format!("lifeboat-drill-data-disk-{}", at.format("%Y%m%dt%H%M%Sz"))
        })
        .collect();
    for name in &taken {
        fake.add_disk(name, 10);
    }
    let (code, r) = drill(&home, "data-disk");
    assert_eq!(code, 1, "{r:#}");
    let problems = r["problems"].to_string();
    assert!(
        problems.contains("already exists") && problems.contains("leaves it alone"),
        "{problems}"
    );
    assert_eq!(r["sandbox_created"], false);
    assert!(
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("DELETE") || c.ends_with("/disks"))
            .count()
            == inserts,
        "{:#?}",
        fake.calls()
    );
    assert_eq!(disk_names(&fake).len(), 2 + taken.len());
    for name in &taken {
        fake.state.lock().unwrap().disks.remove(name);
    }

    // The next drill passes.
    let (code, r) = drill(&home, "data-disk");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(disk_names(&fake), ["data-disk", "home-disk"]);
    fake.assert_nothing_unexpected();
}
