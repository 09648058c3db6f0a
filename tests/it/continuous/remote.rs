//! A continuous target on another host: `lifeboat replicate` runs with the host's config
//! (the target's local path and the store), the bot's config names the same target with
//! `host` (the real sshd of the tests) and reads everything from the shared store — the
//! lag in `status --json` and `/metrics`, the lag alert once the replicator is killed
//! and the missed-backup alert once its base copies stop,
//! the base copies the replicator takes on the schedule (the bot takes none), a verify
//! that compares the replayed history with them, and a restore to a moment from the bot
//! (replayed on the bot, put in place on the host over SSH).

use super::chain::{texts, verify};
use super::*;
use crate::common::fakes::{Call, FakeApi};
use crate::common::sshd::Sshd;

const ALERTS: &str = "C0ALERTS";

/// The host's config: the target with its local path, a base copy every 5 s.
fn host_config() -> ConfigBuilder {
    ConfigBuilder::new().raw(&format!(
        "{}schedule = \"*/5 * * * * *\"\n",
        target("local")
    ))
}

/// The bot's config: the same target on the sshd host, into the host's store directory;
/// a base copy is missed 3 s after it was due (the watchdog judges the latest due time,
/// so the grace is shorter than the schedule's period).
fn bot_config(host: &Home, sshd: &Sshd, api: &FakeApi) -> ConfigBuilder {
    ConfigBuilder::new()
        .slack(api, Some(ALERTS))
        .local_store("shared", &host.path("backups").display().to_string())
        .raw(&format!(
            "[targets.app]\nkind = \"sqlite\"\npath = \"{}\"\nstore = \"shared\"\ncontinuous = \"{EVERY}\"\nmax_lag = \"2s\"\ngrace = \"3s\"\nschedule = \"*/5 * * * * *\"\nrestore_roots = [\"{}\"]\n{}",
            db_path(host).display(),
            host.path("restores").display(),
            sshd.target_keys()
        ))
}

fn alerts(calls: &[Call], needle: &str) -> usize {
    calls
        .iter()
        .filter(|c| {
            c.path.ends_with("chat.postMessage")
                && c.body["channel"] == ALERTS
                && c.body["text"].as_str().is_some_and(|t| t.contains(needle))
        })
        .count()
}

const LAG: &str = "replication of app is";
const MISSED: &str = "missed backup: app";

#[test]
fn a_target_on_another_host_is_replicated_there_and_watched_from_the_store() {
    let sshd = Sshd::start();
    let api = FakeApi::start();
    let host = Home::with_config(&host_config());
    let bot = Home::with_config(&bot_config(&host, &sshd, &api));
    let db = db_path(&host);
    create_db(&db, true);

    // The bot runs no replicator for it, and says where to run one.
    let out = bot.out(&["replicate", "app"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("app is on {}", sshd.url()))
            && err.contains("run `lifeboat replicate app` on that host"),
        "{err}"
    );

    let mut rep = Replicator::start(host.command(&["replicate", "app"]));
    rep.wait_for("replicating app every 200ms");
    let serve = fakes::Serve::start(&bot);
    let log = host.path("data/commits.log");
    finish(writer(&db, 300, &log, &[]));
    let rows = commits(&log);
    // The bot's status reads the lag from the store the replicator ships into.
    let status = bot.wait_replicated_past(rows.last().unwrap().committed);
    assert!(status["lag_seconds"].as_f64().unwrap() >= 0.0, "{status}");
    let (_, metrics) = serve.get("/metrics");
    assert!(
        metrics.contains("lifeboat_replication_lag_seconds{target=\"app\"} "),
        "{metrics}"
    );

    // Base copies on the schedule, taken by the replicator inside its generation; more
    // rows between them so each records a later transaction.
    rep.wait_times("scheduled base copy", 1);
    finish(writer(&db, 300, &log, &[]));
    let before = rep.times("scheduled base copy");
    rep.wait_times("scheduled base copy", before + 1);

    // Killed: nothing ships any more, and the bot's watchdog alerts once the lag passes
    // max_lag.
    // Meanwhile the bot, which took none itself, counted the replicator's base copies in
    // the store as the scheduled backups: no missed-backup alert.
    assert_eq!(alerts(&api.calls(), MISSED), 0, "{:?}", api.calls());
    let taken = rep.times("scheduled base copy");
    rep.kill();
    let calls = api.wait_until(60, "the lag alert", |calls| alerts(calls, LAG) > 0);
    assert_eq!(alerts(&calls, LAG), 1, "one alert");
    // With no more base copies, the schedule's due time passes its grace: missed.
    let calls = api.wait_until(60, "the missed-backup alert", |calls| {
        alerts(calls, MISSED) > 0
    });
    // The fix it suggests is the replicator on the host, not a backup from chat, which
    // the bot does not take of this target.
    assert_eq!(
        alerts(&calls, "check that `lifeboat replicate app` runs on"),
        1,
        "{calls:?}"
    );
    assert_eq!(alerts(&calls, "/backup now app"), 0, "{calls:?}");
    let status = bot.status();
    assert_eq!(status["health"], "red", "{status}");
    serve.stop();

    // The bot's scheduler took no backup over SSH: it never logged into the host (the
    // restore below shows a login is logged). The backups in the store are the
    // replicator's: the first generation's base and the scheduled ones.
    assert!(!sshd.log().contains("Accepted"), "{}", sshd.log());
    let listed = bot.ok(&["list", "app"]);
    let backups = listed.lines().count().saturating_sub(1);
    assert!(backups > taken, "{listed}");

    // The bot's verify proves the chain from the store, each scheduled base included.
    let (ok, report) = verify(&bot);
    assert!(ok, "{report}");
    let proved = texts(&report["chain"]["proved"]);
    assert!(proved.matches("page for page").count() >= 1, "{proved}");

    // A restore to a moment from the bot: replayed and checked here, staged on the host
    // over SSH and checked there, renamed into place; every row.
    let newest = bot.status()["replicated_to"].as_str().unwrap().to_string();
    let from_bot = host.path("restores/from-bot.db");
    let plan = bot.restore_at(&newest, &from_bot);
    assert_eq!(plan["point"]["up_to_txid"].as_u64(), Some(600), "{plan}");
    assert!(plan["host"].is_string(), "a plan on the host: {plan}");
    assert_eq!(restored_ids(&from_bot), (1..=600).collect::<Vec<i64>>());
    assert!(sshd.log().contains("Accepted"), "{}", sshd.log());

    // A backup asked for by hand is still taken over SSH; on the host the restore to a
    // moment works as well.
    bot.ok(&["backup", "app"]);
    let all = host.path("restores/all.db");
    host.restore_at(&newest, &all);
    assert_eq!(restored_ids(&all).len(), 600);

    // A damaged segment: the replay on the bot fails, and nothing reaches the host.
    let mut segments: Vec<PathBuf> = std::fs::read_dir(host.path("backups/app.wal"))
        .unwrap()
        .flatten()
        .filter(|g| g.path().is_dir())
        .flat_map(|g| std::fs::read_dir(g.path()).unwrap().flatten())
        .map(|f| f.path())
        .filter(|p| p.to_string_lossy().ends_with(".seg.zst"))
        .collect();
    segments.sort();
    let last = segments.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(last, &bytes).unwrap();
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(host.path("restores"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let damaged = host.path("restores/damaged.db").display().to_string();
    let out = bot.out(&["restore", "app", "--at", &newest, "--to", &damaged, "--yes"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(before, listing(), "nothing was written on the host: {err}");
}
