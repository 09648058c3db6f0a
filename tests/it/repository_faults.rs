//! Faults on the repository store: flipped bytes in a pack, a SIGKILL and a SIGTERM
//! mid-backup, a full disk and a network cut to S3, each checked afterwards with the real
//! `restic check` and by restoring earlier backups.

use std::path::PathBuf;
use std::process::Command;

use crate::common::cutter::Cutter;
use crate::common::moto::{S3Kind, S3Server};
use crate::common::vault::{Vault, count_packs, largest_pack, sha256_file, sqlite_target};
use crate::common::{Home, make_app_db, make_big_db, stderr, stdout, wait_for};

#[test]
fn flipped_pack_bytes_are_found_by_verify_and_drill() {
    let v = Vault::local(&sqlite_target("app", "app.db"));
    make_big_db(&v.path("data/app.db"), 2);
    v.backup("app");
    assert_eq!(v.json(&["verify", "app"])["ok"], true);

    let pack = largest_pack(&v.path("vault"));
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();

    let out = v.run(&["verify", "app", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false);
    let problems = report["problems"].to_string();
    assert!(problems.contains("cannot be read back"), "{problems}");

    let out = v.run(&["drill", "app", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let drill: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(drill["ok"], false, "{drill}");

    // The repository's own full read names the damaged pack too.
    let out = v.run(&["store", "check", "vault", "--read-data"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("repository check"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_killed_backup_leaves_the_repository_consistent() {
    let v = Vault::local(&sqlite_target("big", "big.db"));
    drop(make_app_db(&v.path("data/big.db"), 300));
    let earlier = v.backup("big");
    let earlier_sha = sha256_file(&v.path("data/big.db"));
    std::fs::remove_file(v.path("data/big.db")).unwrap();
    let _ = std::fs::remove_file(v.path("data/big.db-wal"));
    let _ = std::fs::remove_file(v.path("data/big.db-shm"));
    make_big_db(&v.path("data/big.db"), 96);

    // SIGKILL once the new backup has written packs of its own.
    let packs_before = count_packs(&v.path("vault"));
    let mut child = v.command(&["backup", "big"]).spawn().unwrap();
    wait_for(120, "the backup to write packs", || {
        count_packs(&v.path("vault")) > packs_before + 2
    });
    child.kill().unwrap();
    child.wait().unwrap();

    // restic finds the repository consistent (packs no index names are not errors).
    v.restic_ok(&["check"]);
    let listed = v.json(&["list", "big"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // The next backup works and the earlier one still restores byte for byte.
    let next = v.backup("big");
    assert_eq!(
        v.json(&["verify", "big", next["id"].as_str().unwrap()])["ok"],
        true
    );
    let out = v.path("earlier");
    v.restic_ok(&[
        "restore",
        earlier["artifact"].as_str().unwrap(),
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(sha256_file(&out.join("big.db")), earlier_sha);
    v.restic_ok(&["check"]);
}

#[test]
fn a_cancelled_backup_leaves_nothing_listed() {
    let v = Vault::local(&sqlite_target("big", "big.db"));
    make_big_db(&v.path("data/big.db"), 96);
    v.ok(&["store", "init", "vault"]);
    let mut child = v.command(&["backup", "big"]).spawn().unwrap();
    wait_for(120, "the backup to write packs", || {
        count_packs(&v.path("vault")) > 2
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the backup finished before it was cancelled"
    );
    assert_eq!(v.json(&["list", "big"]).as_array().unwrap().len(), 0);
    let snaps: serde_json::Value =
        serde_json::from_str(&v.restic_ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 0, "{snaps}");
    v.restic_ok(&["check"]);
}

/// A real full disk: the repository on a 3 MiB tmpfs (needs root, as the test command runs).
#[test]
fn a_full_disk_fails_clearly_and_keeps_earlier_backups() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test mounts a tmpfs and must run as root"
    );
    let v = Vault::local(&sqlite_target("app", "app.db"));
    let repo = v.path("vault");
    std::fs::create_dir_all(&repo).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&repo)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(repo.clone());

    drop(make_app_db(&v.path("data/app.db"), 100));
    let small = v.backup("app");
    make_big_db(&v.path("data/app.db"), 8);
    let out = v.run(&["backup", "app"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .to_lowercase()
            .contains("no space left on device"),
        "{}",
        stderr(&out)
    );
    let listed = v.json(&["list", "app"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        v.json(&["verify", "app", small["id"].as_str().unwrap()])["ok"],
        true
    );
    v.restic_ok(&["check"]);
}

crate::on_moto_and_rclone!(a_network_cut_mid_backup_leaves_the_s3_repository_consistent);
fn a_network_cut_mid_backup_leaves_the_s3_repository_consistent(kind: S3Kind) {
    let s3 = S3Server::on(kind);
    s3.create_bucket("cut", false);
    // 4 MiB/s: the 64 MiB backup is surely still uploading when the cable is cut.
    let cable = Cutter::slow(s3.addr(), 4 << 20);
    let location = format!("s3:{}/cut/vault", cable.url());
    let v = Vault::with(Home::new(), location, &sqlite_target("big", "big.db"), true);
    drop(make_app_db(&v.path("data/big.db"), 300));
    let earlier = v.backup("big");
    for f in ["big.db", "big.db-wal", "big.db-shm"] {
        let _ = std::fs::remove_file(v.path("data").join(f));
    }
    make_big_db(&v.path("data/big.db"), 64);

    let before = s3.objects("cut").len();
    let child = v
        .command(&["backup", "big"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first 16 MiB pack is up; the next ones are on their way through the slow link.
    wait_for(120, "the backup to upload a pack", || {
        s3.objects("cut").len() > before
    });
    cable.cut();
    let out = child.wait_with_output().unwrap();

    // Link back: restic finds the bucket consistent. The cut backup is listed only if its
    // snapshot (the commit, written last) reached the store, and then it is whole; a
    // failure means it did not, unless only the answer to that last write was lost.
    cable.mend();
    v.restic_ok(&["check"]);
    let listed = v.json(&["list", "big"]);
    let listed = listed.as_array().unwrap();
    let cut_listed = listed.len() == 2;
    assert!(
        listed.len() == 1 || cut_listed,
        "{listed:?}\nthe cut backup said: {}",
        stderr(&out)
    );
    if out.status.success() {
        assert!(cut_listed, "a backup that succeeded is not listed");
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("backup"), "{}", stderr(&out));
    }
    for m in listed {
        let r = v.json(&["verify", "big", m["id"].as_str().unwrap()]);
        assert_eq!(r["ok"], true, "a listed backup is not whole: {r}");
    }
    let next = v.backup("big");
    assert_eq!(
        v.json(&["verify", "big", next["id"].as_str().unwrap()])["ok"],
        true
    );
    let r = v.json(&["verify", "big", earlier["id"].as_str().unwrap()]);
    assert_eq!(r["ok"], true, "{r}");
}
