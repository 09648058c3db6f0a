//! Outliving the bot's own host, end to end with real SQLite files and moto's S3 server:
//! the catalog rebuilt from the bucket (twice, with damaged and incomplete uploads in
//! it), `lifeboat recover` on a fresh directory with only the config, a state backup
//! that fails its checksum, `serve` offering a rebuild, and the drill of lifeboat itself.

use std::fs::File;
use std::io::Write;
use std::process::Stdio;

use crate::common::fakes::FakeApi;
use crate::common::moto::*;
use crate::common::*;
use rusqlite::Connection;

const TARGETS: &str = "[targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"offsite\"\nschedule = \"*/2 * * * * *\"\nrestore_roots = [\"../restores\"]\n";

fn moto_home(bucket: &str) -> (Moto, S3Home) {
    let moto = Moto::start();
    moto.create_bucket(bucket, false);
    let home = S3Home::new(&moto.url(), bucket, "", TARGETS);
    (moto, home)
}

fn put_object(moto: &Moto, bucket: &str, key: &str, body: Vec<u8>) {
    let c = moto.client();
    moto.rt
        .block_on(
            c.put_object()
                .bucket(bucket)
                .key(format!("lifeboat/{key}"))
                .body(body.into())
                .send(),
        )
        .unwrap();
}

fn get_object(moto: &Moto, bucket: &str, key: &str) -> Vec<u8> {
    let c = moto.client();
    moto.rt.block_on(async {
        let out = c
            .get_object()
            .bucket(bucket)
            .key(format!("lifeboat/{key}"))
            .send()
            .await
            .unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    })
}

/// Every catalog row, in order, as text: what "changes nothing" is checked against.
fn catalog_rows(home: &S3Home) -> Vec<String> {
    let db = Connection::open(home.path("var/lifeboat.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT target, id, store, kind, created_at, size_bytes, sha256, manifest FROM catalog ORDER BY target, id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn the_catalog_is_rebuilt_from_the_bucket_skipping_damaged_and_incomplete_uploads() {
    let (moto, home) = moto_home("rebuild");
    let conn = make_app_db(&home.path("data/app.db"), 50);
    let mut ids = Vec::new();
    for _ in 0..3 {
        insert_rows(&conn, 10);
        ids.push(
            home.json(&["backup", "app-db"])["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Behind lifeboat's back: a manifest cut short, an artifact whose manifest never came
    // (an interrupted backup), and a multipart upload never completed.
    let manifest = get_object(
        &moto,
        "rebuild",
        &format!("app-db/{}.manifest.json", ids[0]),
    );
    put_object(
        &moto,
        "rebuild",
        "app-db/20200101T000000Z.manifest.json",
        manifest[..60].to_vec(),
    );
    put_object(
        &moto,
        "rebuild",
        "app-db/20300101T000000Z.sqlite.zst",
        vec![1; 100],
    );
    let c = moto.client();
    moto.rt
        .block_on(
            c.create_multipart_upload()
                .bucket("rebuild")
                .key("lifeboat/app-db/20310101T000000Z.manifest.json")
                .send(),
        )
        .unwrap();

    // The state database is lost: a fresh one has an empty catalog.
    std::fs::remove_dir_all(home.path("var")).unwrap();
    let out = home.run(&["catalog", "rebuild", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warn = stderr(&out);
    assert!(
        warn.contains("skipped app-db/20200101T000000Z.manifest.json: unreadable manifest"),
        "the truncated manifest is named: {warn}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let offsite = &report["stores"].as_array().unwrap()[1];
    assert_eq!(offsite["store"], "offsite");
    assert_eq!(offsite["backups"], 3);
    assert_eq!(offsite["added"], 3);
    assert_eq!(offsite["skipped"].as_array().unwrap().len(), 1);
    let listed: Vec<String> = home.ids("app-db");
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first, "exactly the complete backups");
    let rows = catalog_rows(&home);
    assert_eq!(rows.len(), 3);

    // Again: nothing changes, row for row.
    let again: serde_json::Value =
        serde_json::from_str(&home.ok(&["catalog", "rebuild", "--json", "--store", "offsite"]))
            .unwrap();
    let offsite = &again["stores"][0];
    assert_eq!(
        (
            &offsite["added"],
            &offsite["updated"],
            &offsite["removed"],
            &offsite["unchanged"]
        ),
        (&0.into(), &0.into(), &0.into(), &3.into())
    );
    assert_eq!(catalog_rows(&home), rows);

    // A backup pruned behind lifeboat's back goes from the catalog on the next rebuild.
    let c = moto.client();
    moto.rt
        .block_on(
            c.delete_object()
                .bucket("rebuild")
                .key(format!("lifeboat/app-db/{}.manifest.json", ids[1]))
                .send(),
        )
        .unwrap();
    let third: serde_json::Value =
        serde_json::from_str(&home.ok(&["catalog", "rebuild", "--json"])).unwrap();
    assert_eq!(third["stores"][1]["removed"], 1);
    assert_eq!(catalog_rows(&home).len(), 2);
}

/// Hold a target's lock as a running job's process would.
fn hold_lock(home: &S3Home, target: &str) -> File {
    std::fs::create_dir_all(home.path("var/locks")).unwrap();
    let f = File::create(home.path(&format!("var/locks/{target}.lock"))).unwrap();
    f.lock().unwrap();
    f
}

/// Restore requests as the chat front-end stores them: one still pending, one whose
/// time ran out while the bot was down, one that had already expired.
fn add_approvals(home: &S3Home) {
    let db = Connection::open(home.path("var/lifeboat.db")).unwrap();
    for (id, status, expires) in [
        ("req-pending", "pending", "+1 hour"),
        ("req-ran-out", "pending", "-1 minute"),
        ("req-expired", "expired", "-2 hours"),
    ] {
        db.execute(
            "INSERT INTO approvals (id, target, platform, channel, requester, required, plan, status, created_at, expires_at)
             VALUES (?1, 'app-db', 'slack', 'C0OPS', 'slack:U0ADMIN1', 1, '{}', ?2,
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-5 minutes'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?3))",
            rusqlite::params![id, status, expires],
        )
        .unwrap();
    }
}

#[test]
fn recover_on_a_fresh_directory_brings_back_state_catalog_incident_and_approvals() {
    let (moto, old) = moto_home("recover");
    let conn = make_app_db(&old.path("data/app.db"), 100);
    old.ok(&["backup", "app-db"]);
    old.ok(&["incident", "start", "Database", "host", "down"]);
    old.ok(&[
        "incident", "note", "failing", "over", "to", "the", "replica",
    ]);
    add_approvals(&old);
    // A restore in progress on the old host when its state was last backed up.
    let lock = hold_lock(&old, "app-db");
    let db = Connection::open(old.path("var/lifeboat.db")).unwrap();
    db.execute(
        "INSERT INTO jobs (kind, target, actor, state, started_at, pid) VALUES ('restore', 'app-db', 'slack:U0ADMIN2', 'running', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 1)",
        [],
    )
    .unwrap();
    let running_job = db.last_insert_rowid();
    drop(db);
    let state_id = old.json(&["backup", "lifeboat-state"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    drop(lock);
    // Backups taken after that state backup: the catalog must list them too.
    insert_rows(&conn, 10);
    old.ok(&["backup", "app-db"]);
    insert_rows(&conn, 10);
    old.ok(&["backup", "app-db"]);
    let old_list = old.ids("app-db");
    assert_eq!(old_list.len(), 3);

    // The host is gone; a new one has the config and the credentials only.
    drop(old);
    let new = S3Home::new(&moto.url(), "recover", "", TARGETS);
    assert!(!new.path("var").exists());
    let report = new.json(&["recover", "--store", "offsite"]);
    assert_eq!(report["state_backup"]["id"], state_id.as_str());
    assert_eq!(report["newer_than_state"], 2, "{report:#}");
    assert_eq!(report["catalog"]["stores"][1]["backups"], 4, "{report:#}");
    let interrupted: Vec<i64> = report["interrupted_jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(interrupted, vec![running_job], "{report:#}");
    let incidents = report["open_incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["title"], "Database host down");
    let pending: Vec<&str> = report["pending_approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(pending, vec!["req-pending"], "expired ones stay expired");
    assert_eq!(report["expired_approvals"], 2);

    // Everything is back: every backup listed, the incident and its timeline.
    assert_eq!(new.ids("app-db"), old_list);
    let export = new.ok(&["incident", "export", "--format", "json"]);
    let export: serde_json::Value = serde_json::from_str(&export).unwrap();
    let texts: Vec<String> = export["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("failing over to the replica")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("recover")), "{texts:?}");
    let db = Connection::open(new.path("var/lifeboat.db")).unwrap();
    let state_job: String = db
        .query_row(
            "SELECT state FROM jobs WHERE kind = 'backup' AND target = 'lifeboat-state'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        state_job, "succeeded",
        "the state backup's own job completed"
    );
    drop(db);

    // A restore of any listed backup works: the oldest, next to the new host's data.
    let oldest = old_list.last().unwrap();
    let to = new.path("restores/app.db");
    new.ok(&[
        "restore",
        "app-db",
        oldest,
        "--to",
        to.to_str().unwrap(),
        "--yes",
    ]);
    let restored = Connection::open(new.path("restores/app.db")).unwrap();
    assert_eq!(count(&restored, "repository"), 100);

    // The next scheduled backup runs.
    std::fs::copy(new.path("restores/app.db"), new.path("data/app.db")).unwrap();
    let serve = crate::common::fakes::Serve::from_command(new.command(&["serve"]));
    wait_for(30, "a scheduled backup after recovery", || {
        new.ids("app-db").len() > 3
    });
    serve.stop();
}

#[test]
fn a_state_backup_failing_its_checksum_is_refused_and_the_next_newest_offered() {
    let home = Home::new();
    home.write_config("[server.state_backup]\nstore = \"local\"\n");
    let ok = home.ok(&["config", "check"]);
    assert!(ok.contains("ok"), "{ok}");
    let warn = stderr(&home.run(&["config", "check"]));
    assert!(
        warn.contains("only backed up onto this host (local store \"local\")"),
        "{warn}"
    );
    let older = home.json(&["backup", "lifeboat-state"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    home.ok(&["incident", "start", "after", "the", "first", "backup"]);
    let newer = home.json(&["backup", "lifeboat-state"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(older, newer);
    // Flip bytes in the newest state backup's artifact, keeping its size.
    let artifact = home.path(&format!("backups/lifeboat-state/{newer}.sqlite.zst"));
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    bytes[mid + 1] ^= 0xff;
    std::fs::File::create(&artifact)
        .unwrap()
        .write_all(&bytes)
        .unwrap();

    std::fs::remove_dir_all(home.path("var")).unwrap();
    let out = home.run(&["recover", "--store", "local"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_contains_all(
        &err,
        &[
            &format!("state backup {newer}"),
            "refused",
            "nothing was changed",
            &format!("the next-newest is {older}"),
            &format!("lifeboat recover --store local --backup {older}"),
        ],
    );
    assert!(
        !home.path("var/lifeboat.db").exists(),
        "nothing was put in place"
    );
    let leftovers: Vec<_> = std::fs::read_dir(home.path("var"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let out = home.run(&["recover", "--store", "local", "--backup", &older, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["state_backup"]["id"], older.as_str());
    assert!(report["open_incidents"].as_array().unwrap().is_empty());
}

#[test]
fn serve_with_an_empty_catalog_but_backups_in_a_store_offers_a_rebuild() {
    let api = FakeApi::start();
    let home = Home::with_config(
        &ConfigBuilder::new()
            .slack(&api, Some("C0ALERTS"))
            .sqlite_target("app-db", "../data/app.db"),
    );
    make_app_db(&home.path("data/app.db"), 10);
    home.ok(&["backup", "app-db"]);
    home.ok(&["backup", "app-db"]);
    std::fs::remove_dir_all(home.path("var")).unwrap();

    let log = home.path("serve.log");
    let mut child = home
        .command(&["serve"])
        .env("LIFEBOAT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let calls = api.wait_until(20, "the catalog notice", |calls| {
        calls.iter().any(|c| {
            c.path.ends_with("chat.postMessage")
                && c.body["text"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("empty catalog")
        })
    });
    let notice = calls
        .iter()
        .find(|c| c.path.ends_with("chat.postMessage"))
        .unwrap();
    assert_eq!(notice.body["channel"], "C0ALERTS");
    assert_contains_all(
        notice.body["text"].as_str().unwrap(),
        &[
            "2 in store local",
            "lifeboat catalog rebuild",
            "lifeboat recover --store local",
        ],
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("empty catalog"), "{logged}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();

    // With the catalog rebuilt, the next start says nothing.
    home.ok(&["catalog", "rebuild"]);
    let before = api.calls_to("chat.postMessage").len();
    let serve = crate::common::fakes::Serve::start(&home);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(api.calls_to("chat.postMessage").len(), before);
    serve.stop();
}

#[test]
fn the_drill_of_lifeboat_itself_recovers_into_a_sandbox_and_never_touches_the_live_state() {
    let home = Home::new();
    home.write_config(
        "[server.state_backup]\nstore = \"local\"\n\n\
         [targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\n",
    );
    make_app_db(&home.path("data/app.db"), 10);
    home.ok(&["backup", "app-db"]);
    home.ok(&["backup", "app-db"]);
    home.ok(&["backup", "lifeboat-state"]);
    let live = home.path("var/lifeboat.db");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&live).unwrap());

    let (code, report) = drill(&home, "lifeboat-state");
    assert_eq!(code, 0, "{report:#}");
    let steps = report["steps"].as_array().unwrap();
    let recovery = steps
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with("recover the copy"))
        .expect("a recovery step");
    assert_eq!(recovery["ok"], true, "{recovery}");
    assert!(
        recovery["detail"]
            .as_str()
            .unwrap()
            .contains("3 backups of 2 targets, as in the live catalog"),
        "{recovery}"
    );
    assert!(report["rto_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["report"].as_str().unwrap().contains("RTO"));
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&live).unwrap()),
        inode,
        "the live state file is the same file"
    );
    let db = Connection::open(&live).unwrap();
    let touched: i64 = db
        .query_row(
            "SELECT count(*) FROM jobs WHERE message LIKE '%drill of the recovery%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(touched, 0, "the sandbox's changes stay in the sandbox");
    drop(db);

    // A backup gone from the store behind lifeboat's back: the counts disagree, named.
    let listed = home.json(&["list", "app-db"]);
    let gone = listed[0]["id"].as_str().unwrap().to_string();
    std::fs::remove_file(home.path(&format!("backups/app-db/{gone}.manifest.json"))).unwrap();
    let (code, report) = drill(&home, "lifeboat-state");
    assert_eq!(code, 1, "{report:#}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains(
            "app-db: the catalog rebuilt from the stores lists 1 backups, the live catalog 2"
        ),
        "{problems}"
    );
}
