//! gcp-disk backups as Compute Engine snapshots: backup, list, verify, restore to a new
//! disk and prune through the API, failed operations in plain words, and `serve`
//! noticing a snapshot deleted behind lifeboat's back.

use serde_json::Value;

use super::fake::FakeCompute;
use super::*;
use crate::common::*;

#[test]
fn backup_list_verify_restore_and_prune_through_the_compute_api() {
    let fake = FakeCompute::start();
    let home = gcp_home(&fake, false);

    let b = home.json(&["backup", "data-disk"]);
    assert_eq!(b["kind"], "gcp-disk");
    assert_eq!(b["status"], "complete");
    assert_eq!(
        b["size_bytes"], 3221225472u64,
        "int64 read from a JSON string"
    );
    let snap = b["gcp"]["snapshot"].as_str().unwrap().to_string();
    assert_eq!(b["gcp"]["snapshot_status"], "READY");
    assert!(snap.starts_with("lifeboat-data-disk-"), "{snap}");
    let labels = fake.state.lock().unwrap().snapshots[&snap]["labels"].clone();
    assert_eq!(labels["lifeboat"], "1");
    assert_eq!(labels["lifeboat-target"], "data-disk");
    assert_eq!(
        labels["lifeboat-id"],
        b["id"].as_str().unwrap().to_lowercase()
    );
    let calls = fake.calls();
    assert!(
        calls.contains(&format!(
            "POST /compute/v1/projects/{PROJECT}/zones/{ZONE}/disks/data-disk/createSnapshot"
        )),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.contains("/zones/europe-north1-a/operations/")),
        "waited: {calls:?}"
    );

    // Another target's snapshots are not this one's backups.
    home.json(&["backup", "home-disk"]);
    let listed = home.json(&["list", "data-disk"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], b["id"]);
    assert_eq!(home.json(&["list"]).as_array().unwrap().len(), 2);

    let v = home.json(&["verify", "data-disk"]);
    assert_eq!(v["ok"], true, "{v}");

    // The plan reads and lists every call; it changes nothing.
    let before = fake.calls().len();
    let plan = home.ok(&[
        "restore",
        "data-disk",
        "--to",
        "data-restored",
        "--instance",
        "analytics-vm",
        "--dry-run",
    ]);
    for expected in [
        format!("GET  projects/{PROJECT}/global/snapshots/{snap}"),
        format!("POST projects/{PROJECT}/zones/{ZONE}/disks  {{\"name\": \"data-restored\""),
        format!("POST projects/{PROJECT}/zones/{ZONE}/instances/analytics-vm/attachDisk"),
    ] {
        assert!(plan.contains(&expected), "{expected} missing from:\n{plan}");
    }
    assert!(plan.contains("not touched"), "{plan}");
    assert!(
        fake.calls()[before..].iter().all(|c| c.starts_with("GET ")),
        "plan wrote: {:?}",
        &fake.calls()[before..]
    );

    let out = home.run(&["restore", "data-disk", "--to", "data-disk", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "the own disk is refused");
    let out = home.run(&[
        "restore",
        "data-disk",
        "--instance",
        "no-such-vm",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no such instance"),
        "{}",
        stderr(&out)
    );

    let r = home.json(&[
        "restore",
        "data-disk",
        "--to",
        "data-restored",
        "--instance",
        "analytics-vm",
        "--yes",
    ]);
    assert_eq!(r["ok"], true);
    {
        let s = fake.state.lock().unwrap();
        let disk = &s.disks["data-restored"];
        assert_eq!(
            disk["sourceSnapshot"],
            format!("{BASE}/projects/{PROJECT}/global/snapshots/{snap}")
        );
        assert_eq!(
            s.inserted_disks[0]["sourceSnapshot"],
            format!("projects/{PROJECT}/global/snapshots/{snap}")
        );
        let attached = &s.instances["analytics-vm"];
        assert_eq!(attached.len(), 1);
        assert_eq!(
            attached[0]["source"],
            format!("projects/{PROJECT}/zones/{ZONE}/disks/data-restored")
        );
        assert_eq!(attached[0]["deviceName"], "data-restored");
        assert_eq!(attached[0]["autoDelete"], false);
        assert_eq!(
            s.disks["data-disk"]["sizeGb"], "10",
            "the original disk is untouched"
        );
    }
    assert!(
        fake.calls()
            .iter()
            .all(|c| !(c.starts_with("DELETE") && c.contains("/disks/"))),
        "no disk was ever deleted"
    );

    // Retention: keep the two newest.
    let b2 = home.json(&["backup", "data-disk"]);
    let b3 = home.json(&["backup", "data-disk"]);
    let dry = home.ok(&["prune", "data-disk", "--dry-run"]);
    assert!(
        dry.contains(&format!("remove  {}", b["id"].as_str().unwrap())),
        "{dry}"
    );
    home.ok(&["prune", "data-disk"]);
    let ids: Vec<Value> = home
        .json(&["list", "data-disk"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, vec![b3["id"].clone(), b2["id"].clone()]);
    assert!(
        !fake.snapshot_names().contains(&snap),
        "the old snapshot was deleted"
    );
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.starts_with("GET") && c.contains("/global/operations/")),
        "waited for the delete"
    );
    assert_eq!(fake.snapshot_names().len(), 3, "home-disk's snapshot stays");

    // A snapshot deleted behind lifeboat's back fails verify.
    let gone = b3["gcp"]["snapshot"].as_str().unwrap().to_string();
    fake.state.lock().unwrap().snapshots.remove(&gone);
    let out = home.run(&["verify", "data-disk", b3["id"].as_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("deleted outside lifeboat"),
        "{report}"
    );
    let data = status_of(&home, "data-disk");
    // status answers from the catalog, which keeps what was taken; verify is what
    // notices the snapshot is gone.
    assert_eq!(data["last_backup"], b3["id"]);
    fake.assert_nothing_unexpected();
}

#[test]
fn failed_operations_end_the_job_in_plain_words() {
    let fake = FakeCompute::start();
    let home = gcp_home(&fake, true);

    fake.state.lock().unwrap().fail_next_snapshot = Some((
        "QUOTA_EXCEEDED".into(),
        "Quota 'SNAPSHOTS' exceeded. Limit: 10.0 globally.".into(),
    ));
    let out = home.run(&["backup", "data-disk"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("quota exceeded: Quota 'SNAPSHOTS' exceeded"),
        "{err}"
    );
    assert!(err.contains("data-disk"), "{err}");
    assert!(
        home.json(&["list", "data-disk"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    let err = stderr(&home.run(&["backup", "gone-disk"]));
    assert!(err.contains("not found"), "{err}");
    assert!(err.contains("no-such-disk"), "{err}");

    let out = home.run(&["backup", "locked"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("permission denied"), "{err}");

    // The job record says the same.
    let data = status_of(&home, "data-disk");
    assert!(
        data["last_job"]
            .as_str()
            .unwrap()
            .contains("quota exceeded"),
        "{data}"
    );

    // The next attempt succeeds.
    assert_eq!(home.json(&["backup", "data-disk"])["status"], "complete");
    fake.assert_nothing_unexpected();
}

#[test]
fn serve_notices_a_snapshot_deleted_behind_lifeboats_back_and_alerts() {
    use crate::common::fakes::{FakeApi, Serve};
    let fake = FakeCompute::start();
    let api = FakeApi::start();
    let home = Home::with_config(
        &gcp_config(&fake, false, "verify_schedule = \"*/2 * * * * *\"")
            .channels(&["slack:C0ALERTS"])
            .slack(&api, Some("C0ALERTS")),
    );
    let b = home.json(&["backup", "data-disk"]);
    let snap = b["gcp"]["snapshot"].as_str().unwrap().to_string();
    let alerts = || -> Vec<String> {
        api.calls_to("chat.postMessage")
            .into_iter()
            .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    };

    let serve = Serve::start(&home);
    // While the snapshot exists, scheduled verifies pass and nothing is said.
    let db = rusqlite::Connection::open(home.path("var/lifeboat.db")).unwrap();
    wait_for(20, "a passing scheduled verify", || {
        db.query_row(
            "SELECT count(*) FROM jobs WHERE kind = 'verify' AND target = 'data-disk' AND state = 'succeeded'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            >= 1
    });
    assert!(alerts().is_empty(), "{:?}", alerts());
    fake.state.lock().unwrap().snapshots.remove(&snap);
    api.wait_until(20, "the verify alert", |_| {
        alerts()
            .iter()
            .any(|t| t.contains("verification of data-disk failed") && t.contains(&snap))
    });
    serve.stop();
    let verifies = fake
        .calls()
        .iter()
        .filter(|c| **c == format!("GET /compute/v1/projects/{PROJECT}/global/snapshots"))
        .count();
    assert!(
        verifies >= 2,
        "looked up before and after the deletion: {:#?}",
        fake.calls()
    );
}

/// A disk frozen around its snapshot (`fsfreeze` in real life, files here): the
/// after_backup hook thaws it once the snapshot has left CREATING, while it is still
/// uploading — the fake keeps it UPLOADING until the hook has run.
#[test]
fn the_after_backup_hook_runs_once_the_snapshot_has_left_creating() {
    let fake = FakeCompute::start();
    let home = Home::new();
    let log = home.path("hooks.log");
    fake.state.lock().unwrap().uploading_until = Some(log.clone());
    gcp_config(&fake, false, "")
        .raw(&format!(
            "[targets.data-disk.hooks]\nbefore_backup = [[\"sh\", \"-c\", \"echo frozen > {l}.frozen\"]]\nafter_backup = [[\"sh\", \"-c\", \"echo thawed $LIFEBOAT_RESULT $LIFEBOAT_BACKUP >> {l}\"]]\n",
            l = log.display()
        ))
        .write(&home);
    let b = home.json(&["backup", "data-disk"]);
    assert_eq!(b["gcp"]["snapshot_status"], "READY");
    assert_eq!(
        fake.state.lock().unwrap().ready_with_file,
        Some(true),
        "the after_backup hook had run while the snapshot was still uploading"
    );
    assert!(home.path("hooks.log.frozen").exists());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("thawed ok {}\n", b["id"].as_str().unwrap())
    );
}
