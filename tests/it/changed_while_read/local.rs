//! A directory on this host changing while it is backed up.

use std::fs::{self, File};
use std::process::{Child, Stdio};

use super::*;
use crate::common::stopped::{full_pipe, release};

fn volume_home(extra: &str) -> Home {
    let home = Home::new();
    home.write_config(&format!(
        "[targets.volume]\nkind = \"directory\"\npath = \"../data/volume\"\nstore = \"local\"\n\
         exclude = [\"*.tmp\"]\nrestore_roots = [\"../restores\"]\n{extra}"
    ));
    make_volume(&home.path("data/volume"));
    home
}

#[test]
fn a_file_written_while_read_flags_the_backup_and_names_it() {
    let home = volume_home("");
    let app = open_app(&home);
    let clean = home.json(&["backup", "volume"]);
    assert_eq!(clean["consistent"], true, "{clean}");
    assert_eq!(clean["changed_while_read"], serde_json::json!([]));

    let root = home.path("data/volume");
    let m = backup_changing(&app, "volume", move || {
        append(&root.join("a.bin"), b"more"); // being read now
        append(&root.join("state/app.log"), b"later\n"); // not read yet: copied as it is then
        fs::write(root.join("scratch.tmp"), "excluded").unwrap();
    })
    .expect("kept with on_change = warn");
    assert_eq!(flagged(&m), ["a.bin"]);
    // The copy holds the size it stat-ed, and the log as it was when read.
    let a = m
        .directory
        .as_ref()
        .unwrap()
        .entries
        .iter()
        .find(|e| e.path == "a.bin")
        .unwrap();
    assert_eq!(a.size, Some(3 << 20));

    // --json (the manifest without its file list) and the store's own manifest say so.
    let json = serde_json::to_value(m.summary()).unwrap();
    assert_eq!(json["consistent"], false);
    assert_eq!(json["changed_while_read"], serde_json::json!(["a.bin"]));
    let listed = home.json(&["list", "volume"]);
    let newest = &listed[0];
    assert_eq!(newest["id"], m.id.as_str());
    assert_eq!(newest["status"], "complete");
    assert_eq!(newest["consistent"], false, "{newest}");
    let table = home.ok(&["list", "volume"]);
    assert!(
        table.contains("INCONSISTENT: 1 changed while read"),
        "{table}"
    );

    // The words every front-end uses: the count, the file, the two ways out.
    let warning = lifeboat::actions::backup::inconsistency_warning(&m).unwrap();
    assert_contains_all(
        &warning,
        &[
            "INCONSISTENT",
            "1 file changed while read (a.bin)",
            "before_backup",
            "exclude",
        ],
    );

    // Status: amber, saying why.
    let status = home.json(&["status"]);
    let volume = &status.as_array().unwrap()[0];
    assert_eq!(volume["last_backup"], m.id.as_str());
    assert_eq!(volume["health"], "amber", "{volume}");
    let reasons = volume["health_reasons"].to_string();
    assert!(
        reasons.contains("inconsistent") && reasons.contains("a.bin"),
        "{reasons}"
    );

    let text = home.ok(&["status"]);
    assert!(
        text.contains("INCONSISTENT: 1 file changed while read (a.bin)"),
        "{text}"
    );

    // A restore plan and a drill of the newest say so and name the clean backup.
    let dest = home.path("restores/copy");
    let plan = home.ok(&["restore", "volume", "--to", dest.to_str().unwrap()]);
    assert_contains_all(
        &plan,
        &[
            &format!("backup {} is INCONSISTENT", m.id),
            &format!(
                "the newest consistent backup is {}",
                clean["id"].as_str().unwrap()
            ),
        ],
    );
    assert!(!dest.exists(), "a plan changes nothing");
    let (code, drill) = drill(&home, "volume");
    assert_eq!(code, 0, "{drill}");
    let notes = drill["notes"].to_string();
    assert!(
        notes.contains("INCONSISTENT") && notes.contains(clean["id"].as_str().unwrap()),
        "{notes}"
    );
    assert!(
        drill["report"]
            .as_str()
            .unwrap()
            .contains("changed while it was read")
    );

    // A consistent backup afterwards: green again on that count.
    let again = home.json(&["backup", "volume"]);
    assert_eq!(again["consistent"], true, "{again}");
    let status = home.json(&["status"]);
    let reasons = status[0]["health_reasons"].to_string();
    assert!(!reasons.contains("inconsistent"), "{reasons}");
}

#[test]
fn files_deleted_during_the_backup_are_named_and_the_rest_is_kept() {
    let home = volume_home("");
    let app = open_app(&home);
    let root = home.path("data/volume");
    let m = backup_changing(&app, "volume", move || {
        fs::remove_file(root.join("a.bin")).unwrap(); // open and being read
        fs::remove_file(root.join("b.txt")).unwrap(); // listed, not read yet
    })
    .expect("a deleted file does not fail the backup");
    assert_eq!(flagged(&m), ["a.bin", "b.txt"]);
    let paths: Vec<&str> = m
        .directory
        .as_ref()
        .unwrap()
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(paths, ["a.bin", "state", "state/app.log"]);
    // What was stored is whole: it verifies.
    let verify = home.json(&["verify", "volume"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn a_file_created_in_a_listed_folder_is_named() {
    let home = volume_home("");
    let app = open_app(&home);
    let root = home.path("data/volume");
    let m = backup_changing(&app, "volume", move || {
        fs::write(root.join("system.duckdb.wal"), "wal").unwrap(); // its folder was listed
        fs::write(root.join("state/later.txt"), "x").unwrap(); // not listed yet: backed up
    })
    .unwrap();
    assert_eq!(flagged(&m), ["system.duckdb.wal"]);
    let entries = &m.directory.as_ref().unwrap().entries;
    assert!(entries.iter().any(|e| e.path == "state/later.txt"));
    assert!(!entries.iter().any(|e| e.path == "system.duckdb.wal"));
}

#[test]
fn on_change_fail_publishes_nothing_and_names_the_files() {
    let home = volume_home("on_change = \"fail\"\n");
    let app = open_app(&home);
    let root = home.path("data/volume");
    let e = backup_changing(&app, "volume", move || append(&root.join("a.bin"), b"x"))
        .expect_err("refused");
    assert_eq!(e.exit_code(), 1, "the CLI exits 1 with it");
    assert_contains_all(
        &e.to_string(),
        &[
            "not kept",
            "on_change = \"fail\"",
            "a.bin",
            "nothing was published",
            "before_backup",
        ],
    );
    assert!(
        home.store_files("volume").is_empty(),
        "{:?}",
        home.store_files("volume")
    );
    assert_eq!(home.json(&["list", "volume"]).as_array().unwrap().len(), 0);
    let status = home.json(&["status"]);
    assert_eq!(status[0]["last_backup_state"], "failed");
    assert_eq!(status[0]["health"], "red");
    // Untouched, the same target backs up.
    let ok = home.json(&["backup", "volume"]);
    assert_eq!(ok["consistent"], true);
}

#[test]
fn on_change_is_refused_on_other_kinds_and_checked() {
    let home = Home::new();
    home.write_config(
        "[targets.db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\non_change = \"warn\"\n",
    );
    let out = home.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_contains_all(&stderr(&out), &["targets.db.on_change", "\"directory\""]);
    home.write_config(
        "[targets.v]\nkind = \"directory\"\npath = \"../data\"\nstore = \"local\"\non_change = \"sometimes\"\n",
    );
    let out = home.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("on_change"), "{}", stderr(&out));
}

#[test]
fn a_file_truncated_while_read_is_kept_whole_and_named() {
    let home = volume_home("");
    let app = open_app(&home);
    let root = home.path("data/volume");
    // A database's checkpoint can shrink its file under the reader.
    let m = backup_changing(&app, "volume", move || {
        fs::OpenOptions::new()
            .write(true)
            .open(root.join("a.bin"))
            .unwrap()
            .set_len(10)
            .unwrap();
    })
    .expect("a file cut short does not break the archive");
    assert_eq!(flagged(&m), ["a.bin"]);
    let a = m
        .directory
        .as_ref()
        .unwrap()
        .entries
        .iter()
        .find(|e| e.path == "a.bin")
        .unwrap();
    assert_eq!(
        a.size,
        Some(3 << 20),
        "padded to the size it was stat-ed at"
    );
    let verify = home.json(&["verify", "volume"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

/// `lifeboat backup volume --json` (the real binary) stopped once it has read every file,
/// before it looks at them again: it blocks on the one log line written then, into a
/// full stderr pipe whose read end releases it.
fn backup_stopped_before_the_second_look(home: &Home) -> (Child, File) {
    let (stderr_read, stderr_write) = full_pipe();
    let child = home
        .command(&["backup", "volume", "--json"])
        .env(
            "LIFEBOAT_LOG",
            "lifeboat::sources::directory::changes=debug",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr_write))
        .spawn()
        .unwrap();
    // Read-only and tolerant: the binary may not have made its state database yet.
    let reached = || -> rusqlite::Result<bool> {
        let db = rusqlite::Connection::open_with_flags(
            home.path("var/lifeboat.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        db.query_row(
            "SELECT count(*) FROM audit WHERE target = 'volume' AND outcome = 'running' \
             AND detail LIKE '%looking for files that changed while read'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    wait_for(60, "the backup to have read every file", || {
        reached().unwrap_or(false)
    });
    (child, stderr_read)
}

#[test]
fn the_binary_keeps_and_flags_or_refuses_a_copy_whose_file_changed_after_it_was_read() {
    for (on_change, exit_code) in [("warn", 0), ("fail", 1)] {
        let home = volume_home(&format!("on_change = \"{on_change}\"\n"));
        let (child, err_pipe) = backup_stopped_before_the_second_look(&home);
        append(
            &home.path("data/volume/a.bin"),
            b"written after it was read",
        );
        let said = release(err_pipe);
        let out = child.wait_with_output().unwrap();
        let said = said.join().unwrap();
        assert_eq!(out.status.code(), Some(exit_code), "{on_change}: {said}");
        if on_change == "warn" {
            let backup: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(backup["status"], "complete");
            assert_eq!(backup["consistent"], false, "{backup}");
            assert_eq!(backup["changed_while_read"], serde_json::json!(["a.bin"]));
            assert_eq!(home.json(&["list", "volume"]).as_array().unwrap().len(), 1);
            // The stored copy checks out, and verify still does not call it verified.
            let verify = home.run(&["verify", "volume"]);
            assert!(verify.status.success(), "{}", stderr(&verify));
            let text = format!("{}{}", stdout(&verify), stderr(&verify));
            assert!(
                text.contains("INCONSISTENT (1 file changed while read (a.bin))"),
                "{text}"
            );
            assert!(!text.contains("verified"), "{text}");
        } else {
            assert_contains_all(&said, &["a.bin", "nothing was published"]);
            assert!(
                home.store_files("volume").is_empty(),
                "{:?}",
                home.store_files("volume")
            );
            assert_eq!(home.json(&["list", "volume"]).as_array().unwrap().len(), 0);
        }
    }
}
