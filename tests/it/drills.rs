//! Drills end to end: the real binary restoring real backups into a sandbox, checks that
//! run against the restored copy, objectives met and missed, damaged artifacts, `/drill`
//! from Slack with the report uploaded, scheduled drills and the watchdog's drill alerts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::fakes::*;
use crate::common::*;
use serde_json::Value;

const OPS: &str = "U0OPS1";
const CHANNEL: &str = "C0OPS";

/// SHA-256 of every file under `root` (or of `root` itself), by path.
fn checksums(root: &Path) -> Vec<(PathBuf, String)> {
    use sha2::Digest;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if p.exists() {
            let bytes = std::fs::read(&p).unwrap();
            out.push((p, hex::encode(sha2::Sha256::digest(&bytes))));
        }
    }
    out.sort();
    out
}

fn sqlite_target(extra: &str) -> String {
    format!(
        "[targets.db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\n{extra}"
    )
}

/// The one artifact of a target in the local store.
fn artifact(home: &Home, target: &str) -> PathBuf {
    let found: Vec<String> = home
        .store_files(target)
        .into_iter()
        .filter(|f| f.ends_with(".zst"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    home.path("backups").join(target).join(&found[0])
}

#[test]
fn a_sqlite_drill_restores_a_live_database_into_a_sandbox_and_passes_its_checks() {
    let home = Home::new();
    let seen = home.path("seen-sandbox");
    home.write_config(&sqlite_target(&format!(
        "rto = \"10m\"\nrpo = \"1h\"\nchecks = [\n  {{ sql = \"SELECT count(*) FROM repository\", min = 100 }},\n  {{ sql = \"SELECT count(*) FROM issue\", equals = 0 }},\n  {{ command = [\"sh\", \"-c\", \"test -s \\\"$LIFEBOAT_SANDBOX\\\" && echo \\\"$LIFEBOAT_SANDBOX\\\" > {}\"] }},\n]\n",
        seen.display()
    )));
    // The application keeps writing while the backup runs.
    let db = home.path("data/app.db");
    drop(make_app_db(&db, 200));
    let writer = AppWriter::start(&db);
    home.ok(&["backup", "db"]);
    writer.stop();
    let before = checksums(&home.path("data"));

    let (code, r) = drill(&home, "db");
    // The issue table has rows: check 2 (equals = 0) must fail, the others pass.
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["restore_ok"], false);
    let problems = r["problems"].to_string();
    assert!(
        problems.contains("check 2") && problems.contains("expected 0"),
        "{problems}"
    );
    assert!(
        !problems.contains("check 1") && !problems.contains("check 3"),
        "{problems}"
    );

    // Fixed check: the drill passes.
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    std::fs::write(home.config_path(), text.replace("equals = 0", "min = 1")).unwrap();
    let (code, r) = drill(&home, "db");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["ok"], true);
    assert_eq!(r["problems"], serde_json::json!([]));
    assert_eq!(r["rto_objective_seconds"], 600.0);
    assert_eq!(r["rpo_objective_seconds"], 3600.0);
    let rto = r["rto_seconds"].as_f64().unwrap();
    assert!(rto > 0.0 && rto < 600.0, "{rto}");
    assert!(r["rpo_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(r["backup"]["id"], r["backup_id"]);

    // The report: objectives, a timeline of every step, problems and action items.
    let report = r["report"].as_str().unwrap();
    assert_contains_all(
        report,
        &[
            "# Recovery drill of db: ✅ PASSED",
            "## Objectives",
            "| RTO (drill start → verified restore) | 10m |",
            "| RPO (age of the restored data at drill start) | 1h |",
            "✅ met",
            "## Timeline (UTC)",
            "find the backup",
            "fetch, decompress and restore into the sandbox",
            "integrity_check and row counts",
            "check 1: sql `SELECT count(*) FROM repository` ≥ 100",
            "check 3: command `sh -c",
            "remove the sandbox",
            "## Problems found\n\n- none",
            "## Action items\n\n- none",
        ],
    );
    assert_eq!(r["steps"].as_array().unwrap().len(), 7);

    // The command check saw the restored copy, inside the sandbox, which is gone now.
    let sandbox_copy = PathBuf::from(std::fs::read_to_string(&seen).unwrap().trim());
    assert!(
        sandbox_copy.ends_with("app.db"),
        "{}",
        sandbox_copy.display()
    );
    assert!(sandbox_copy.starts_with(PathBuf::from(r["sandbox"].as_str().unwrap())));
    assert!(sandbox_copy.starts_with(home.path("var/scratch")));
    assert!(!Path::new(r["sandbox"].as_str().unwrap()).exists());
    assert_eq!(r["sandbox_removed"], true);
    // The live data is untouched.
    assert_eq!(checksums(&home.path("data")), before);

    // Status shows the last drill.
    let status = home.json(&["status"]);
    assert_eq!(status[0]["last_drill_ok"], true, "{status:#}");
    assert!(
        status[0]["last_drill"]
            .as_str()
            .unwrap()
            .starts_with("passed at")
    );
    let text = home.ok(&["status"]);
    assert!(text.contains("last drill:  passed"), "{text}");
}

#[test]
fn a_corrupted_artifact_fails_the_drill_and_the_report_says_why() {
    let home = Home::new();
    home.write_config(&sqlite_target("rto = \"10m\"\n"));
    drop(make_app_db(&home.path("data/app.db"), 500));
    home.ok(&["backup", "db"]);
    let path = artifact(&home, "db");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    std::fs::write(&path, bytes).unwrap();

    let out = home.run(&["drill", "db"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("❌ FAILED"), "{report}");
    assert!(
        report.contains("stored bytes differ from the manifest"),
        "{report}"
    );
    assert!(report.contains("❌ not reached"), "{report}");
    assert!(
        report.contains("could not be restored: take a new backup now"),
        "{report}"
    );
    assert!(
        stderr(&out).contains("drill of db FAILED"),
        "{}",
        stderr(&out)
    );

    let (code, r) = drill(&home, "db");
    assert_eq!(code, 1);
    assert_eq!(r["ok"], false);
    assert_eq!(r["rto_seconds"], Value::Null);
    assert!(!Path::new(r["sandbox"].as_str().unwrap()).exists());
    let status = home.json(&["status"]);
    assert_eq!(status[0]["last_drill_ok"], false);
}

#[test]
fn an_old_backup_misses_the_rpo_and_fails_the_drill() {
    let home = Home::new();
    home.write_config(&sqlite_target("rpo = \"1s\"\n"));
    drop(make_app_db(&home.path("data/app.db"), 50));
    home.ok(&["backup", "db"]);
    std::thread::sleep(Duration::from_millis(2100));
    let (code, r) = drill(&home, "db");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["restore_ok"], true, "the restore itself was fine");
    assert_eq!(r["ok"], false);
    assert_eq!(
        r["rto_objective_seconds"],
        Value::Null,
        "not set, never a failure"
    );
    assert!(r["rpo_seconds"].as_f64().unwrap() >= 2.0);
    let report = r["report"].as_str().unwrap();
    assert!(report.contains("RPO missed by"), "{report}");
    assert!(
        report.contains("| RTO (drill start → verified restore) | not set |"),
        "{report}"
    );
    assert!(
        report.contains("backup older than RPO: db has no `schedule`"),
        "{report}"
    );
}

#[test]
fn a_directory_drill_checks_every_restored_file_and_leaves_the_tree_alone() {
    let home = Home::new();
    let tree = home.path("data/site");
    std::fs::create_dir_all(tree.join("conf/deep")).unwrap();
    std::fs::write(tree.join("conf/app.ini"), "[server]\nport = 3000\n").unwrap();
    std::fs::write(tree.join("conf/deep/big.bin"), vec![7u8; 300_000]).unwrap();
    std::os::unix::fs::symlink("conf/app.ini", tree.join("current.ini")).unwrap();
    home.write_config(
        "[targets.site]\nkind = \"directory\"\npath = \"../data/site\"\nstore = \"local\"\nrto = \"1h\"\nrpo = \"1d\"\n\
         checks = [ { command = [\"sh\", \"-c\", \"grep -q 'port = 3000' \\\"$LIFEBOAT_SANDBOX/conf/app.ini\\\"\"], exit_code = 0 } ]\n",
    );
    home.ok(&["backup", "site"]);
    let before = checksums(&tree);
    let (code, r) = drill(&home, "site");
    assert_eq!(code, 0, "{r:#}");
    let report = r["report"].as_str().unwrap();
    assert!(
        report.contains("every file's SHA-256 on the restored copy"),
        "{report}"
    );
    assert!(report.contains("2 files match the manifest"), "{report}");
    assert!(report.contains("check 1: command"), "{report}");
    assert!(!Path::new(r["sandbox"].as_str().unwrap()).exists());
    assert_eq!(checksums(&tree), before);

    // A config naming a sql check on a directory target is refused at load.
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    std::fs::write(
        home.config_path(),
        text.replace("checks = [", "checks = [ { sql = \"SELECT 1\" },"),
    )
    .unwrap();
    let out = home.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("targets.site.checks[0].sql"),
        "{}",
        stderr(&out)
    );
}

fn chat_home(api: &FakeApi, targets: &str) -> Home {
    Home::with_config(
        &ConfigBuilder::new()
            .operators(&["slack:U0OPS1"])
            .channels(&["slack:C0OPS"])
            .slack(api, Some(CHANNEL))
            .raw(targets),
    )
}

fn texts(calls: &[Call], suffix: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.path.ends_with(suffix))
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn uploads(api: &FakeApi) -> Vec<String> {
    api.uploads()
}

#[test]
fn drill_from_slack_updates_one_message_and_uploads_the_report() {
    let api = FakeApi::start();
    let home = chat_home(&api, &sqlite_target("rto = \"30m\"\nrpo = \"1h\"\n"));
    drop(make_app_db(&home.path("data/app.db"), 100));
    home.ok(&["backup", "db"]);
    let serve = Serve::start(&home);

    let (status, body) = slack_command(&serve, "U0NOBODY", CHANNEL, "/drill", "db");
    assert_eq!(status, 200);
    assert!(body.contains("not on lifeboat's access list"), "{body}");

    let (status, body) = slack_command(&serve, OPS, CHANNEL, "/drill", "db");
    assert_eq!(status, 200);
    assert!(body.contains("Drilling db"), "{body}");
    let calls = api.wait_until(30, "the report upload", |calls| {
        calls
            .iter()
            .any(|c| c.path.ends_with("files.completeUploadExternal"))
    });
    let posted = texts(&calls, "chat.postMessage");
    assert_eq!(posted.len(), 1, "one message per job: {posted:?}");
    assert!(posted[0].contains("drill of db"), "{posted:?}");
    let updates = texts(&calls, "chat.update");
    let last = updates.last().unwrap();
    // The result is a card: the objectives as facts with their verdicts, the requester
    // mentioned; its notification text carries the same facts.
    assert!(last.starts_with("✅ Drill of db passed"), "{last}");
    assert!(last.contains("Requested by <@U0OPS1>"), "{last}");
    assert!(
        last.contains("RTO: ") && last.contains(" · objective 30 min · ✅ met"),
        "{last}"
    );
    assert!(
        last.contains("RPO: ") && last.contains(" · objective 1 h · ✅ met"),
        "{last}"
    );
    let result = calls
        .iter()
        .rfind(|c| c.path.ends_with("chat.update"))
        .unwrap();
    let blocks = result.body["blocks"].to_string();
    assert!(blocks.contains(r#""type":"header""#), "{blocks}");
    assert!(blocks.contains("*RTO*"), "{blocks}");
    assert!(blocks.contains("<!date^"), "{blocks}");
    crate::common::block_kit::assert_slack_sdk_reads(&calls);
    let files = uploads(&api);
    assert_eq!(files.len(), 1);
    assert!(
        files[0].starts_with("# Recovery drill of db: ✅ PASSED"),
        "{}",
        files[0]
    );
    assert!(files[0].contains("## Timeline (UTC)"));
    let ask = api.calls_to("files.getUploadURLExternal");
    assert_eq!(ask.len(), 1);
    let done = api.calls_to("files.completeUploadExternal");
    assert!(done[0].raw.contains(CHANNEL), "{}", done[0].raw);
    assert!(done[0].raw.contains("Drill report"), "{}", done[0].raw);

    // Status from chat shows it.
    let (_, body) = slack_command(&serve, OPS, CHANNEL, "/backup", "status");
    assert!(body.contains("last drill passed at"), "{body}");
    serve.stop();
}

fn alerts(api: &FakeApi) -> Vec<String> {
    texts(&api.calls(), "chat.postMessage")
}

fn count_matching(api: &FakeApi, needle: &str) -> usize {
    alerts(api).iter().filter(|t| t.contains(needle)).count()
}

#[test]
fn scheduled_drills_report_to_the_alert_channel_and_a_failing_one_alerts() {
    let api = FakeApi::start();
    let home = chat_home(
        &api,
        &sqlite_target("drill_schedule = \"*/2 * * * * *\"\nrealert = \"1h\"\n"),
    );
    drop(make_app_db(&home.path("data/app.db"), 100));
    home.ok(&["backup", "db"]);
    let serve = Serve::start(&home);
    api.wait_until(15, "a scheduled drill's result", |_| {
        count_matching(&api, "✅ Drill of db passed") >= 1
    });
    api.wait_until(10, "its report", |_| !uploads(&api).is_empty());
    assert_eq!(count_matching(&api, "the last drill of db failed"), 0);

    // Damage the backup: the next scheduled drill fails and the watchdog says so, once.
    let path = artifact(&home, "db");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n / 3..n / 3 + 32] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
    api.wait_until(15, "the failed-drill alert", |_| {
        count_matching(&api, "the last drill of db failed") == 1
    });
    let alert = alerts(&api)
        .into_iter()
        .find(|t| t.contains("the last drill of db failed"))
        .unwrap();
    assert!(alert.contains("stored bytes differ"), "{alert}");
    // Two more scheduled drills report after the alert: had they alerted again, those
    // alerts would be in by then.
    let failed = count_matching(&api, "❌ Drill of db failed");
    api.wait_until(20, "two more failed drills", |_| {
        count_matching(&api, "❌ Drill of db failed") >= failed + 2
    });
    assert_eq!(
        count_matching(&api, "the last drill of db failed"),
        1,
        "no flood while drills keep failing: {:?}",
        alerts(&api)
    );
    assert!(
        count_matching(&api, "❌ Drill of db failed") >= 2,
        "each scheduled drill reports"
    );
    serve.stop();
}

#[test]
fn drills_that_keep_failing_are_one_drill_alert_until_one_passes() {
    let api = FakeApi::start();
    // Drills every 3 s with a 1 s grace, and no backup yet: every drill fails, and the
    // target also has no passing drill on record. Failed and stale drills share one alert.
    let home = chat_home(
        &api,
        &sqlite_target("drill_schedule = \"*/3 * * * * *\"\ngrace = \"1s\"\nrealert = \"1h\"\n"),
    );
    drop(make_app_db(&home.path("data/app.db"), 100));
    let serve = Serve::start(&home);
    api.wait_until(20, "the failed-drill alert", |_| {
        count_matching(&api, "the last drill of db failed") >= 1
    });
    assert_eq!(
        count_matching(&api, "stale drill: db has had no passing drill"),
        0,
        "a stale drill is the same alert as the failing drills, not a second one"
    );

    // A backup (retried while a drill holds the target): the next drill passes.
    wait_for(20, "a backup between drills", || {
        home.run(&["backup", "db"]).status.success()
    });
    api.wait_until(20, "the recovery notice", |_| {
        count_matching(&api, "drills of db pass again") == 1
    });
    serve.stop();
}
