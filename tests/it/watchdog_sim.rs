//! The watchdog over days of daily schedules on a simulated clock: lifeboat's real
//! scheduler, a real state database, reports and drills written as they would be, and a
//! recording alert channel. Every message is counted: one alert per outage, its repeats
//! every `realert`, edits as its count grows, and exactly one recovery notice.

use crate::common::sim::Sim;
use crate::common::*;
use chrono::{DateTime, Utc};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn home(targets: &str) -> Home {
    let home = Home::new();
    home.write_config(targets);
    home
}

const NIGHTLY: &str = "[targets.nightly]\nkind = \"external\"\nschedule = \"0 0 3 * * *\"\ngrace = \"1h\"\nrealert = \"5h\"\ntoken = \"${SLACK_BOT_TOKEN}\"\n";

#[tokio::test(start_paused = true)]
async fn a_daily_outage_is_one_alert_repeated_every_realert_and_one_recovery() {
    let home = home(NIGHTLY);
    let sim = Sim::start(&home.config_path(), t("2026-11-22T00:00:00Z"));
    sim.run_until(t("2026-11-22T03:59:59Z")).await;
    assert!(sim.sent().is_empty(), "within the grace: {:?}", sim.sent());
    sim.run_until(t("2026-11-22T04:00:02Z")).await;
    let opened = sim.posts("missed backup: nightly");
    assert_eq!(opened.len(), 1, "{:?}", sim.sent());
    assert_eq!(opened[0].at, t("2026-11-22T04:00:00Z"), "on the deadline");
    assert!(opened[0].text.contains("alert A1"), "{}", opened[0].text);

    // Two more due times pass without a report: no "healthy again" when each comes due,
    // the count grows in the posted message, repeats only every 5 hours.
    sim.run_until(t("2026-11-24T12:00:00Z")).await;
    assert!(sim.posts("healthy again").is_empty(), "{:#?}", sim.sent());
    let posts = sim.posts("nightly");
    // 04:00 on the 22nd, then every 5 h until noon on the 24th: 11 repeats.
    assert_eq!(posts.len(), 12, "{:#?}", posts);
    assert!(posts[1..].iter().all(|p| p.text.starts_with("(still)")));
    assert_eq!(posts[1].at, t("2026-11-22T09:00:00Z"));
    let edits: Vec<_> = sim.sent().into_iter().filter(|s| s.edit).collect();
    assert!(
        edits.iter().any(|e| e.text.contains("2 due times missed"))
            && edits.iter().any(|e| e.text.contains("3 due times missed")),
        "{edits:#?}"
    );

    sim.report("nightly", true);
    sim.pass(2).await;
    let recovered = sim.posts("healthy again");
    assert_eq!(recovered.len(), 1);
    assert!(
        recovered[0].text.contains("alert A1 was open for 2days8h")
            && recovered[0]
                .text
                .contains("a success report at 2026-11-24T12:00:00"),
        "{}",
        recovered[0].text
    );
    // Healthy from then on: daily reports after each due time keep it quiet.
    for day in ["2026-11-25T03:30:00Z", "2026-11-26T03:30:00Z"] {
        sim.run_until(t(day)).await;
        sim.report("nightly", true);
    }
    sim.run_until(t("2026-11-27T00:00:00Z")).await;
    assert_eq!(sim.posts("").len(), 13, "{:#?}", sim.sent());
}

#[tokio::test(start_paused = true)]
async fn failed_and_missed_of_one_target_are_one_alert_through_a_restart() {
    let home = home(&NIGHTLY.replace("realert = \"5h\"", "realert = \"10h\""));
    let mut sim = Sim::start(&home.config_path(), t("2026-11-22T00:00:00Z"));
    // The job runs at 03:20 each day and fails, so at 04:00 the due time is missed too.
    sim.run_until(t("2026-11-22T03:20:00Z")).await;
    sim.report("nightly", false);
    sim.run_until(t("2026-11-22T04:00:05Z")).await;
    let posts = sim.posts("");
    assert_eq!(posts.len(), 1, "{:#?}", sim.sent());
    assert!(
        posts[0]
            .text
            .contains("failed (1 in a row): pg_dump: connection refused")
    );
    let edit = sim
        .sent()
        .into_iter()
        .find(|s| s.edit)
        .expect("an edit at 04:00");
    assert_eq!(edit.message, posts[0].message, "the alert's own message");
    assert!(edit.text.contains("missed backup") && edit.text.contains("failed (1 in a row)"));

    // lifeboat restarts in the middle of the outage: nothing is said again.
    sim.run_until(t("2026-11-22T08:00:00Z")).await;
    sim = sim.restart().await;
    sim.run_until(t("2026-11-22T13:19:00Z")).await;
    assert_eq!(sim.posts("").len(), 1, "{:#?}", sim.sent());
    sim.run_until(t("2026-11-22T13:20:01Z")).await;
    assert_eq!(
        sim.posts("(still)").len(),
        1,
        "repeated 10 h after the opening"
    );

    sim.run_until(t("2026-11-23T03:20:00Z")).await;
    sim.report("nightly", false);
    sim.pass(5).await;
    let last = sim.sent().pop().unwrap();
    assert!(
        last.edit && last.text.contains("failed (2 in a row)"),
        "{last:?}"
    );
    sim.run_until(t("2026-11-24T02:00:00Z")).await;
    sim.report("nightly", true);
    sim.pass(5).await;
    // Opened 22nd 03:20; repeats 13:20, 23:20, 23rd 09:20, 19:20; recovery.
    let all = sim.posts("");
    assert_eq!(all.len(), 6, "{:#?}", all);
    assert!(
        all[5].text.contains("nightly is healthy again"),
        "{}",
        all[5].text
    );
    assert!(
        all[5].text.contains("2 failed runs") && all[5].text.contains("2 due times missed"),
        "{}",
        all[5].text
    );
    let audited = home.state_strings(
        "SELECT outcome || ' ' || detail FROM audit WHERE action IN ('alert', 'recovery') ORDER BY id",
    );
    assert!(
        audited.iter().all(|a| a.contains("A1 backup")),
        "{audited:#?}"
    );
    assert!(audited.first().unwrap().starts_with("opened"));
    assert!(audited.last().unwrap().starts_with("closed"));
}

#[tokio::test(start_paused = true)]
async fn flapping_reports_give_exactly_one_alert_and_one_recovery_each_time() {
    let home = home(NIGHTLY);
    let sim = Sim::start(&home.config_path(), t("2026-11-22T00:00:00Z"));
    sim.run_until(t("2026-11-22T03:10:00Z")).await;
    sim.report("nightly", true);
    sim.pass(60).await;
    sim.report("nightly", false);
    sim.pass(60).await;
    sim.report("nightly", true);
    sim.pass(60).await;
    let texts: Vec<String> = sim.posts("").into_iter().map(|s| s.text).collect();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert!(texts[0].contains("backup of nightly failed") && texts[0].contains("alert A1"));
    assert!(
        texts[1].contains("nightly is healthy again") && texts[1].contains("A1 was open for 1m")
    );
    // The next failure is a new outage with a new id.
    sim.report("nightly", false);
    sim.pass(2).await;
    let again = sim.posts("alert A2");
    assert_eq!(again.len(), 1, "{:#?}", sim.sent());
    sim.run_until(t("2026-11-23T00:00:00Z")).await;
    assert_eq!(
        sim.posts("").len(),
        3 + 4,
        "open, then repeats at +5h, +10h, +15h, +20h"
    );
}

#[tokio::test(start_paused = true)]
async fn verify_drill_and_too_long_alerts_close_only_on_their_evidence() {
    let home = home(
        "[targets.db]\nkind = \"sqlite\"\npath = \"../data/db.sqlite\"\nstore = \"local\"\n\
         max_duration = \"30m\"\nrealert = \"1d\"\n\n\
         [targets.drilled]\nkind = \"sqlite\"\npath = \"../data/drilled.sqlite\"\nstore = \"local\"\n\
         drill_schedule = \"0 0 5 * * *\"\ngrace = \"1h\"\nrealert = \"1d\"\n",
    );
    // The scheduled drill really runs (and fails: there is no backup), and records its
    // own wall-clock times: the simulation starts tomorrow so those stay in its past
    // (and that target has no max_duration its real job could be held to).
    let day = (Utc::now() + chrono::Duration::days(1)).date_naive();
    let at = |d: i64, hms: &str| -> DateTime<Utc> {
        let time: chrono::NaiveTime = hms.parse().unwrap();
        (day + chrono::Duration::days(d)).and_time(time).and_utc()
    };
    let sim = Sim::start(&home.config_path(), at(0, "00:00:00"));
    let watchdog =
        |sim: &Sim| -> Vec<String> { sim.posts("alert A").into_iter().map(|s| s.text).collect() };
    // Verification fails, then passes.
    sim.pass(60).await;
    sim.job("verify", "db", "failed", "content SHA-256 mismatch");
    sim.pass(2).await;
    assert_eq!(sim.posts("verification of db failed").len(), 1);
    sim.pass(3600).await;
    sim.job("verify", "db", "succeeded", "ok");
    sim.pass(2).await;
    let ok = sim.posts("verification of db passes again");
    assert_eq!(ok.len(), 1, "{:#?}", sim.sent());
    assert!(ok[0].text.contains("open for 1h"), "{}", ok[0].text);

    // A job outgrows max_duration: alerted once at the limit, closed when it ends.
    let job = sim.start_job("backup", "db");
    sim.pass(30 * 60 + 2).await;
    let long = sim.posts("longer than its max_duration");
    assert_eq!(long.len(), 1, "{:#?}", sim.sent());
    sim.pass(600).await;
    sim.end_job(job, "db");
    sim.pass(2).await;
    let ended = sim.posts("runs past its max_duration now");
    assert_eq!(ended.len(), 1);
    assert!(
        ended[0].text.contains(&format!("job {job} has ended")),
        "{}",
        ended[0].text
    );

    // The drill due at 05:00 runs and fails: an alert. At 06:00 it is stale too: the
    // same alert, edited. Only a passing drill closes it. The drill is real work on a
    // thread of its own: the simulated clock waits for it.
    sim.run_until(at(0, "05:00:01")).await;
    sim.wait_finished("drill", "drilled").await;
    sim.run_until(at(0, "05:30:00")).await;
    let failed = sim.posts("the last drill of drilled failed");
    assert_eq!(failed.len(), 1, "{:#?}", sim.sent());
    sim.run_until(at(0, "06:00:02")).await;
    assert!(sim.posts("stale drill").is_empty(), "{:#?}", sim.sent());
    let edit = sim.sent().into_iter().rfind(|s| s.edit).expect("an edit");
    assert!(
        edit.text.contains("stale drill: drilled") && edit.message == failed[0].message,
        "{edit:?}"
    );
    sim.run_until(at(1, "04:00:00")).await;
    sim.drill("drilled", true);
    sim.pass(2).await;
    let passed = sim.posts("drills of drilled pass again");
    assert_eq!(passed.len(), 1, "{:#?}", sim.sent());
    assert!(
        passed[0].text.contains("a passing drill at"),
        "{}",
        passed[0].text
    );
    sim.run_until(at(1, "04:30:00")).await;
    let said = watchdog(&sim);
    assert_eq!(said.len(), 6, "one alert and one recovery each: {said:#?}");
}
