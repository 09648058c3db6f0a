//! Directory targets read from btrfs snapshots (`snapshot = "btrfs"`), on a real btrfs on
//! a loop device: the copy has the live tree's paths and the snapshot's contents, the
//! snapshot is gone afterwards (also after a failure, Ctrl-C, or a kill: at the next
//! backup and at `serve` start), and paths that are no subvolume root are refused clearly.
//!
//! To act while a backup is inside its snapshot, the real binary is given a stderr whose
//! pipe is already full and a log filter that lets through only the line it writes once
//! the snapshot is taken: it stops there, deterministically, until the test drains the pipe.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::common::btrfs::{self, Btrfs};
use crate::common::fakes::Serve;
use crate::common::stopped::{full_pipe, release};
use crate::common::*;

/// The log line the binary writes right after taking a snapshot, alone.
const AFTER_SNAPSHOT_LOG: &str = "lifeboat::sources::directory::snapshot=debug";

/// A small tree like an app's data volume.
fn fill(root: &Path) {
    fs::create_dir_all(root.join("parquet/2026")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    for i in 0..8 {
        let body: Vec<u8> = (0..(i * 4099 + 7)).map(|n| (n * 13 % 251) as u8).collect();
        fs::write(root.join(format!("parquet/2026/part-{i}.parquet")), body).unwrap();
    }
    fs::write(root.join("system.duckdb"), vec![3u8; 200_000]).unwrap();
    fs::write(root.join("notes.txt"), b"keep me\n").unwrap();
    symlink("parquet/2026/part-1.parquet", root.join("latest.parquet")).unwrap();
}

/// Every entry under `root`: relative path and content (or link target, or "dir").
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        paths.sort();
        for p in paths {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.push((
                    rel,
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                ));
            } else if m.is_dir() {
                out.push((rel, b"dir".to_vec()));
                walk(root, &p, out);
            } else {
                out.push((rel, fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// A home whose target `vol` is the tree at `path`, read from a btrfs snapshot.
fn snapshot_home(path: &Path) -> Home {
    let home = Home::new();
    ConfigBuilder::new()
        .target(
            "vol",
            "directory",
            &format!(
                "path = \"{}\"\nstore = \"local\"\nsnapshot = \"btrfs\"\nrestore_roots = [\"../restores\"]",
                path.display()
            ),
        )
        .write(&home);
    home
}

/// The names beside `live` that look like lifeboat's snapshots.
fn snapshots_beside(live: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(live.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".lifeboat-snapshot."))
        .collect();
    names.sort();
    names
}

/// `backup vol` started and stopped right after taking its snapshot, with the read end
/// of its stderr to release it.
fn backup_inside_its_snapshot(home: &Home, live: &Path) -> (Child, File) {
    let (stderr_read, stderr_write) = full_pipe();
    let child = home
        .command(&["backup", "vol", "--json"])
        .env("LIFEBOAT_LOG", AFTER_SNAPSHOT_LOG)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr_write))
        .spawn()
        .unwrap();
    // The command (and with it this process's copy of the write end) is gone: the pipe
    // ends when the child does.
    wait_for(60, "the backup's snapshot to be taken", || {
        !snapshots_beside(live).is_empty()
    });
    (child, stderr_read)
}

#[test]
fn a_backup_from_a_snapshot_has_the_live_trees_paths_and_leaves_no_snapshot() {
    let fs = Btrfs::new(256);
    let live = fs.subvolume("vol");
    fill(&live);
    let home = Home::new();
    let same = |snapshot: &str| {
        format!(
            "path = \"{}\"\nstore = \"local\"\nrestore_roots = [\"../restores\"]\n{snapshot}",
            live.display()
        )
    };
    ConfigBuilder::new()
        .target("vol", "directory", &same("snapshot = \"btrfs\""))
        .target("plain", "directory", &same(""))
        .write(&home);
    let before = tree(&live);

    let from_snapshot = home.json(&["backup", "vol"]);
    let from_live = home.json(&["backup", "plain"]);
    assert_eq!(from_snapshot["status"], "complete");
    // The same files under the same names, modes and checksums as a backup of the live tree.
    assert_eq!(
        from_snapshot["directory"]["entries"],
        from_live["directory"]["entries"]
    );
    assert_eq!(from_snapshot["directory"]["files"], 10);
    assert_eq!(snapshots_beside(&live), Vec::<String>::new());
    assert_eq!(fs.subvolumes(), vec!["vol".to_string()]);

    assert!(home.json(&["verify", "vol"])["ok"].as_bool().unwrap());
    let dest = home.path("restores/vol-copy");
    home.ok(&["restore", "vol", "--to", dest.to_str().unwrap(), "--yes"]);
    assert_eq!(tree(&dest), before);
}

#[test]
fn a_restore_in_place_leaves_the_path_a_subvolume_the_next_backup_snapshots() {
    let fs = Btrfs::new(256);
    let live = fs.subvolume("vol");
    fill(&live);
    let before = tree(&live);
    let home = snapshot_home(&live);
    home.json(&["backup", "vol"]);
    fs::write(live.join("system.duckdb"), b"overwritten by a bad deploy").unwrap();
    fs::remove_dir_all(live.join("parquet")).unwrap();

    let plan = home.ok(&["restore", "vol"]);
    assert!(plan.contains("new btrfs subvolume"), "{plan}");
    let out = home.json(&["restore", "vol", "--yes"]);
    assert_eq!(tree(&live), before);
    let aside = out["move_aside"][0]["to"].as_str().unwrap();
    let aside_name = Path::new(aside)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    // The restored tree is a subvolume of its own, the damaged one kept beside it.
    assert_eq!(fs.subvolumes(), vec!["vol".to_string(), aside_name.clone()]);
    assert_eq!(
        fs::read(Path::new(aside).join("system.duckdb")).unwrap(),
        b"overwritten by a bad deploy"
    );

    let again = home.json(&["backup", "vol"]);
    assert_eq!(again["status"], "complete");
    assert_eq!(fs.subvolumes(), vec!["vol".to_string(), aside_name]);
}

#[test]
fn a_file_deleted_or_changed_in_the_live_tree_during_the_backup_is_copied_as_it_was() {
    let fs = Btrfs::new(256);
    let live = fs.subvolume("vol");
    fill(&live);
    let before = tree(&live);
    let home = snapshot_home(&live);

    let (child, stderr) = backup_inside_its_snapshot(&home, &live);
    fs::remove_file(live.join("notes.txt")).unwrap();
    fs::remove_dir_all(live.join("parquet")).unwrap();
    fs::write(live.join("system.duckdb"), b"rewritten after the snapshot").unwrap();
    fs::write(live.join("new.wal"), b"created after the snapshot").unwrap();
    let log = release(stderr);
    let out = child.wait_with_output().unwrap();
    let log = log.join().unwrap();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("took the btrfs snapshot"), "{log}");
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["status"], "complete");
    assert_eq!(snapshots_beside(&live), Vec::<String>::new());

    let dest = home.path("restores/vol-copy");
    home.ok(&["restore", "vol", "--to", dest.to_str().unwrap(), "--yes"]);
    assert_eq!(tree(&dest), before);
}

#[test]
fn a_backup_killed_inside_its_snapshot_leaves_it_to_the_next_backup_to_remove() {
    let fs = Btrfs::new(256);
    let live = fs.subvolume("vol");
    fill(&live);
    let home = snapshot_home(&live);

    let (mut child, _stderr) = backup_inside_its_snapshot(&home, &live);
    child.kill().unwrap(); // SIGKILL: nothing of lifeboat's runs any more
    child.wait().unwrap();
    let left = snapshots_beside(&live);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(".vol.lifeboat-snapshot."), "{left:?}");
    assert_eq!(fs.subvolumes().len(), 2);

    let backup = home.json(&["backup", "vol"]);
    assert_eq!(backup["status"], "complete");
    assert_eq!(snapshots_beside(&live), Vec::<String>::new());
    assert_eq!(fs.subvolumes(), vec!["vol".to_string()]);
}

#[test]
fn ctrl_c_inside_the_snapshot_cancels_the_backup_and_removes_it() {
    let fs = Btrfs::new(256);
    let live = fs.subvolume("vol");
    fill(&live);
    let home = snapshot_home(&live);

    let (child, stderr) = backup_inside_its_snapshot(&home, &live);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let log = release(stderr);
    let out = child.wait_with_output().unwrap();
    let log = log.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("cancelled"), "{log}");
    assert_eq!(snapshots_beside(&live), Vec::<String>::new());
    assert_eq!(fs.subvolumes(), vec!["vol".to_string()]);
    assert_eq!(home.json(&["list", "vol"]).as_array().unwrap().len(), 0);
}

#[test]
fn a_backup_that_fails_writing_its_store_removes_its_snapshot() {
    let fs = Btrfs::new(256);
    let live = fs.subvolume("vol");
    fill(&live);
    // Incompressible, larger than the store's disk.
    let mut big = File::create(live.join("big.bin")).unwrap();
    std::io::copy(
        &mut File::open("/dev/urandom").unwrap().take(8 << 20),
        &mut big,
    )
    .unwrap();
    let home = snapshot_home(&live);
    let store = home.path("backups");
    btrfs::run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=2m",
            "tmpfs",
            store.to_str().unwrap(),
        ],
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(store);

    let out = home.run(&["backup", "vol"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no space left on device"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshots_beside(&live), Vec::<String>::new());
    assert_eq!(fs.subvolumes(), vec!["vol".to_string()]);
}

#[test]
fn serve_removes_the_snapshots_crashed_backups_left_and_nothing_else() {
    let fs = Btrfs::new(256);
    let live = fs.subvolume("vol");
    fill(&live);
    let home = snapshot_home(&live);
    // As lifeboat names its snapshots: one of this target's, one of another target's, and
    // a plain directory that only has the name.
    let ours = fs
        .mount
        .join(".vol.lifeboat-snapshot.20261205T101500123456Z");
    let theirs = fs
        .mount
        .join(".vol2.lifeboat-snapshot.20261205T101500123456Z");
    let lookalike = fs
        .mount
        .join(".vol.lifeboat-snapshot.20261205T101501000000Z");
    fs.snapshot(&live, &ours);
    fs.snapshot(&live, &theirs);
    fs::create_dir(&lookalike).unwrap();

    // serve says it listens only once the leftovers are dealt with.
    let serve = Serve::start(&home);
    assert!(!ours.exists());
    assert!(theirs.is_dir() && lookalike.is_dir());
    assert_eq!(
        fs.subvolumes(),
        vec![
            ".vol2.lifeboat-snapshot.20261205T101500123456Z".to_string(),
            "vol".to_string()
        ]
    );
    let audited = home.state_strings(
        "SELECT detail FROM audit WHERE action = 'backup leftovers removed' AND target = 'vol'",
    );
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert!(audited[0].contains(ours.to_str().unwrap()), "{audited:?}");
    serve.stop();
}

#[test]
fn paths_that_are_not_the_root_of_a_btrfs_subvolume_are_refused_clearly() {
    let fs = Btrfs::new(256);
    let live = fs.subvolume("vol");
    fill(&live);
    let nested_parent = fs.subvolume("outer");
    fs.subvolume("outer/inner");
    let tmpfs = tempfile::tempdir().unwrap();
    btrfs::run(
        "mount",
        &["-t", "tmpfs", "tmpfs", tmpfs.path().to_str().unwrap()],
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(tmpfs.path().to_path_buf());
    fs::write(tmpfs.path().join("f"), b"x").unwrap();

    for (path, why) in [
        (
            live.join("parquet"),
            "is a plain directory on btrfs, not the root of a subvolume",
        ),
        (tmpfs.path().to_path_buf(), "is on tmpfs, not on btrfs"),
        (fs.mount.clone(), "is where its btrfs filesystem is mounted"),
        (nested_parent.clone(), "holds 1 other btrfs subvolume(s)"),
    ] {
        let home = snapshot_home(&path);
        let check = home.run(&["config", "check"]);
        assert_eq!(check.status.code(), Some(2), "{}", stderr(&check));
        assert_contains_all(
            &stderr(&check),
            &["targets.vol.snapshot", why, "snapshot = \"btrfs\""],
        );

        let out = home.run(&["backup", "vol"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_contains_all(&stderr(&out), &[why, &path.display().to_string()]);
        assert!(
            home.store_files("vol").is_empty(),
            "{:?}",
            home.store_files("vol")
        );
    }
    // Nothing was snapshotted anywhere.
    assert_eq!(
        fs.subvolumes(),
        vec![
            "outer".to_string(),
            "outer/inner".to_string(),
            "vol".to_string()
        ]
    );
}

/// Seed 001: the analytics app's data volume as a btrfs subvolume, its DuckDB database
/// written and checkpointed without a pause while it is backed up. Each round stops the
/// backup right after its snapshot and forces a checkpoint on the live volume (the moment
/// a copy of the live files would catch the `.duckdb` and its `.wal` at different points),
/// then lets it read: every restored copy opens in DuckDB, its tally agrees with its
/// rows, and it holds exactly what was committed before the snapshot.
#[test]
fn seed_001_duckdb_written_without_a_pause_restores_consistent_five_times() {
    use crate::common::duckdb;
    let fs = Btrfs::new(1024);
    let live = fs.subvolume("analyst_data");
    let mut writer = duckdb::seed_volume(&live, 2);
    let home = snapshot_home(&live);
    let mut committed = writer.wait_rows(1_000);
    for round in 0..5 {
        // At least one batch more than the last round saw: the app is writing throughout.
        let before = writer.wait_rows(committed + 200);
        let (child, stderr) = backup_inside_its_snapshot(&home, &live);
        let after = writer.checkpoint();
        let log = release(stderr);
        let out = child.wait_with_output().unwrap();
        let log = log.join().unwrap();
        assert!(out.status.success(), "round {round}: {log}");
        let backup = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
        // The live files changed during the backup, the snapshot it read did not.
        assert_eq!(backup["consistent"], true, "round {round}: {backup}");
        let id = backup["id"].as_str().unwrap().to_string();

        let dest = home.path(&format!("restores/round-{round}"));
        home.ok(&[
            "restore",
            "vol",
            &id,
            "--to",
            dest.to_str().unwrap(),
            "--yes",
        ]);
        let rows = duckdb::check(&dest.join("state/system.duckdb"))
            .unwrap_or_else(|e| panic!("round {round}: the restored database: {e}"));
        assert!(
            (before..after).contains(&rows),
            "round {round}: {rows} rows restored; {before} were committed before the snapshot, {after} after it"
        );
        for source in ["keboola", "bigquery"] {
            assert!(
                dest.join(format!("extracts/{source}/data/orders.parquet"))
                    .is_file()
            );
        }
        committed = after;
    }
    assert!(writer.stop() > committed);
    assert_eq!(snapshots_beside(&live), Vec::<String>::new());
}

/// lifeboat as the shipped unit and image run it, an unprivileged user: refused before any
/// snapshot is taken, naming what it lacks; with those capabilities, it works.
#[test]
fn an_unprivileged_lifeboat_is_refused_naming_the_capabilities_it_needs() {
    let fs = Btrfs::new(256);
    let live = fs.subvolume("vol");
    fill(&live);
    let home = snapshot_home(&live);
    let nobody = "65534";
    btrfs::run(
        "chown",
        &[
            "-R",
            &format!("{nobody}:{nobody}"),
            home.dir.path().to_str().unwrap(),
        ],
    );
    btrfs::run("chmod", &["755", fs.outside().to_str().unwrap()]);
    let backup_as_nobody = |caps: Option<&str>| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid", nobody, "--regid", nobody, "--clear-groups"]);
        if let Some(caps) = caps {
            cmd.arg(format!("--inh-caps={caps}"))
                .arg(format!("--ambient-caps={caps}"));
        }
        cmd.arg(env!("CARGO_BIN_EXE_lifeboat"))
            .arg("--config")
            .arg(home.config_path())
            .args(["backup", "vol"])
            .env_remove("LIFEBOAT_CONFIG")
            .envs(secrets())
            .output()
            .unwrap()
    };

    let out = backup_as_nobody(None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_contains_all(&stderr(&out), &["CAP_SYS_ADMIN", "uid 65534", "CAP_FOWNER"]);
    assert_eq!(fs.subvolumes(), vec!["vol".to_string()]);
    assert!(
        home.store_files("vol").is_empty(),
        "{:?}",
        home.store_files("vol")
    );

    let out = backup_as_nobody(Some("+sys_admin,+fowner,+dac_override"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs.subvolumes(), vec!["vol".to_string()]);
    assert_eq!(home.json(&["list", "vol"]).as_array().unwrap().len(), 1);
}

#[test]
fn with_a_snapshot_the_after_backup_hook_resumes_the_app_before_the_tree_is_read() {
    let fs = Btrfs::new(256);
    let live = fs.subvolume("vol");
    fill(&live);
    let home = snapshot_home(&live);
    let seen = home.path("seen-by-after-hook");
    // The hook lists lifeboat's snapshots beside the tree (gone once reading ends) and
    // writes into the live tree as a resumed app would.
    let script = format!(
        "ls -a {parent} | grep -c lifeboat-snapshot > {seen}; echo resumed > {live}/after.txt",
        parent = live.parent().unwrap().display(),
        seen = seen.display(),
        live = live.display()
    );
    let argv = toml::Value::Array(
        ["sh", "-c", &script]
            .iter()
            .map(|s| toml::Value::String(s.to_string()))
            .collect(),
    );
    fs::write(
        home.config_path(),
        format!(
            "{}\n[targets.vol.hooks]\nbefore_backup = [[\"true\"]]\nafter_backup = [{argv}]\n",
            fs::read_to_string(home.config_path()).unwrap()
        ),
    )
    .unwrap();

    let backup = home.json(&["backup", "vol"]);
    assert_eq!(backup["status"], "complete");
    assert_eq!(
        fs::read_to_string(&seen).unwrap().trim(),
        "1",
        "after_backup should run once the snapshot exists, not after it is read and removed"
    );
    // The copy is the snapshot's: the app's write after resuming is not in it.
    let entries = backup["directory"]["entries"].to_string();
    assert!(!entries.contains("after.txt"), "{entries}");
    assert!(live.join("after.txt").exists());
    assert_eq!(snapshots_beside(&live), Vec::<String>::new());
}
