//! S3 stores when the network fails, on moto's and rclone's servers: the server lost
//! mid-upload, dropped connections retried, downloads that break off and resume (or keep
//! breaking off), an interrupted backup's multipart upload aborted, and request bodies
//! signed over plain HTTP.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::common::moto::*;
use crate::common::*;

use super::forwarder::*;

crate::on_moto_and_rclone!(losing_the_server_mid_upload_fails_cleanly_and_keeps_earlier_backups);
fn losing_the_server_mid_upload_fails_cleanly_and_keeps_earlier_backups(kind: S3Kind) {
    let (s3, mut fwd, home) = behind_forwarder(kind, "flaky");
    let db_path = home.path("data/app.db");
    drop(make_app_db(&db_path, 500));
    let first = home.json(&["backup", "app-db"]);
    let first_id = first["id"].as_str().unwrap().to_string();

    // A big backup, cut off when some of it has gone up.
    make_big_db(&home.path("data/big.db"), 60);
    std::fs::rename(home.path("data/big.db"), &db_path).unwrap();
    let _ = std::fs::remove_file(home.path("data/app.db-wal"));
    let _ = std::fs::remove_file(home.path("data/app.db-shm"));
    let before = fwd.sent.load(Ordering::SeqCst);
    let child = home
        .command(&["backup", "app-db"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(120, "20 MiB to go up", || {
        fwd.sent.load(Ordering::SeqCst) > before + (20 << 20)
    });
    fwd.kill();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("s3://flaky/lifeboat/app-db/"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "gave up in time"
    );

    // The server is back: only the first backup is listed, and it is whole.
    fwd.restart();
    assert_eq!(home.ids("app-db"), vec![first_id.clone()]);
    let keys: Vec<String> = s3.objects("flaky").into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 2, "no partial object is visible: {keys:?}");
    assert_eq!(home.json(&["verify", "app-db", &first_id])["ok"], true);
    let dest = home.path("restores/first.db");
    home.json(&[
        "restore",
        "app-db",
        &first_id,
        "--to",
        dest.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(count(&Connection::open(&dest).unwrap(), "repository"), 500);

    // The abort could not reach the server; the next backup removes what was left open.
    let second = home.json(&["backup", "app-db"]);
    assert!(
        s3.open_uploads("flaky").is_empty(),
        "no multipart upload left open"
    );
    assert_eq!(home.ids("app-db").len(), 2);
    assert_eq!(
        home.json(&["verify", "app-db", second["id"].as_str().unwrap()])["ok"],
        true
    );
}

crate::on_moto_and_rclone!(over_plain_http_every_request_body_is_signed_with_its_sha256);
fn over_plain_http_every_request_body_is_signed_with_its_sha256(kind: S3Kind) {
    let (_moto, fwd, home) = behind_forwarder(kind, "signed");
    make_big_db(&home.path("data/app.db"), 20); // incompressible: three 8 MiB parts
    let backup = home.json(&["backup", "app-db"]);
    let parts = (backup["size_bytes"].as_u64().unwrap() as usize).div_ceil(8 << 20);
    assert!(parts >= 3, "{backup}");

    // Nothing protects a body over plain HTTP but the signature: every request carries
    // the SHA-256 of its body, never UNSIGNED-PAYLOAD.
    let hashes = fwd.payload_hashes.lock().unwrap().clone();
    assert!(
        hashes
            .iter()
            .all(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())),
        "{hashes:?}"
    );
    const EMPTY_BODY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let with_body: std::collections::BTreeSet<_> =
        hashes.iter().filter(|h| h.as_str() != EMPTY_BODY).collect();
    // The parts, the request that completes the upload, the manifest.
    assert!(with_body.len() >= parts + 2, "{hashes:?}");
}

crate::on_moto_and_rclone!(dropped_connections_are_retried_and_the_backup_completes);
fn dropped_connections_are_retried_and_the_backup_completes(kind: S3Kind) {
    let (s3, fwd, home) = behind_forwarder(kind, "retry");
    make_big_db(&home.path("data/app.db"), 40);
    let child = home
        .command(&["backup", "app-db", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(120, "10 MiB to go up", || {
        fwd.sent.load(Ordering::SeqCst) > 10 << 20
    });
    fwd.reset_connections();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(home.json(&["verify", "app-db"])["ok"], true);
    assert!(s3.open_uploads("retry").is_empty());
}

crate::on_moto_and_rclone!(a_download_that_breaks_off_resumes_where_it_stopped);
fn a_download_that_breaks_off_resumes_where_it_stopped(kind: S3Kind) {
    let (_moto, fwd, home) = behind_forwarder(kind, "resume");
    make_big_db(&home.path("data/app.db"), 40);
    home.json(&["backup", "app-db"]);

    // Two answers break off a few MiB into their bodies; the rest of each is asked for
    // again and the restore, checked against its checksums, completes.
    fwd.cut_answers(3 << 20, 2);
    let dest = home.path("restores/app.db");
    let out = home.run(&["restore", "app-db", "--to", dest.to_str().unwrap(), "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("broke off"), "{}", stderr(&out));
    assert_eq!(
        fwd.cut.left.load(Ordering::SeqCst),
        0,
        "both answers were cut"
    );
    assert_eq!(count(&Connection::open(&dest).unwrap(), "blobs"), 40 * 16);
}

crate::on_moto_and_rclone!(
    a_download_that_keeps_breaking_off_fails_naming_the_object_and_changes_nothing
);
fn a_download_that_keeps_breaking_off_fails_naming_the_object_and_changes_nothing(kind: S3Kind) {
    let (_moto, fwd, home) = behind_forwarder(kind, "broken");
    make_big_db(&home.path("data/app.db"), 40);
    let backup = home.json(&["backup", "app-db"]);

    fwd.cut_answers(1 << 20, u64::MAX);
    let dest = home.path("restores/app.db");
    let out = home.run(&["restore", "app-db", "--to", dest.to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let artifact = backup["artifact"].as_str().unwrap();
    assert!(
        err.contains(&format!("s3://broken/lifeboat/{artifact}")),
        "{err}"
    );
    assert!(!dest.exists(), "nothing restored");
}

crate::on_moto_and_rclone!(an_interrupted_backup_aborts_its_multipart_upload);
fn an_interrupted_backup_aborts_its_multipart_upload(kind: S3Kind) {
    let (s3, fwd, home) = behind_forwarder(kind, "cancel");
    make_big_db(&home.path("data/app.db"), 60);
    let child = home
        .command(&["backup", "app-db"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(120, "20 MiB to go up", || {
        fwd.sent.load(Ordering::SeqCst) > 20 << 20
    });
    assert!(
        !s3.open_uploads("cancel").is_empty(),
        "the upload is in progress"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    assert!(s3.open_uploads("cancel").is_empty(), "aborted at once");
    assert!(s3.objects("cancel").is_empty());
    assert!(home.ids("app-db").is_empty());
}
