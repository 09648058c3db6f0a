//! The one alert of a target whose newest backup changed while read: opened by the first
//! flagged backup, counted (not posted again) by the next, closed by a consistent one with
//! one recovery notice. lifeboat's real scheduler and watchdog in this process, a real
//! state database, a recording alert channel.

use super::*;
use crate::common::sim::Sim;

#[tokio::test(start_paused = true)]
async fn one_alert_over_two_flagged_backups_closed_by_a_consistent_one() {
    let home = Home::new();
    home.write_config(
        "[targets.volume]\nkind = \"directory\"\npath = \"../data/volume\"\nstore = \"local\"\nrealert = \"24h\"\n",
    );
    let root = home.path("data/volume");
    make_volume(&root);
    let sim = Sim::start(&home.config_path(), chrono::Utc::now());
    let flagged_backup = |n: u8| {
        let r = root.clone();
        let m = backup_changing(&sim.app, "volume", move || {
            append(&r.join("a.bin"), &[n]);
        })
        .unwrap();
        assert_eq!(flagged(&m), ["a.bin"]);
        m
    };

    let first = flagged_backup(1);
    sim.wake("volume");
    sim.pass(2).await;
    let opened = sim.posts("inconsistent");
    assert_eq!(opened.len(), 1, "{:#?}", sim.sent());
    assert_contains_all(
        &opened[0].text,
        &[&first.id, "a.bin", "before_backup", "exclude", "alert A1"],
    );

    let second = flagged_backup(2);
    sim.wake("volume");
    sim.pass(2).await;
    assert_eq!(
        sim.posts("inconsistent").len(),
        1,
        "not posted again: {:#?}",
        sim.sent()
    );
    let edits: Vec<_> = sim.sent().into_iter().filter(|s| s.edit).collect();
    assert!(
        edits
            .iter()
            .any(|e| e.text.contains(&second.id) && e.text.contains("2 backups in a row")),
        "{edits:#?}"
    );

    let clean =
        lifeboat::actions::backup::run(&sim.app, "volume", "cli:test", &JobContext::silent())
            .unwrap();
    assert_eq!(clean.consistent, Some(true));
    sim.wake("volume");
    sim.pass(2).await;
    let recovered = sim.posts("consistent again");
    assert_eq!(recovered.len(), 1, "{:#?}", sim.sent());
    assert_contains_all(
        &recovered[0].text,
        &[
            &format!("a consistent backup, {}", clean.id),
            "alert A1",
            "2 backups changed while read",
        ],
    );
    // Quiet afterwards, and that was the only alert.
    sim.pass(3600).await;
    assert_eq!(sim.posts("").len(), 2, "{:#?}", sim.sent());
    let alerts = home.state_strings("SELECT kind || ' ' || (closed_at IS NOT NULL) FROM alerts");
    assert_eq!(alerts, ["inconsistent 1"]);
}
