//! The drill card from real-shaped reports: verdicts per objective, the checks counted,
//! the colour by outcome; and the fixture of the largest drill the renderers' limit
//! tests use.

use super::*;
use crate::actions::drill_card::fixtures::drill;

#[test]
fn objectives_are_facts_with_their_verdict_and_the_colour_follows_the_outcome() {
    let passed = drill(3, true, Some(40.0), Some(300.0));
    let c = card(&passed, Some("slack:U0OPS1"));
    assert_eq!(c.tone, Tone::Good);
    assert_eq!(c.title, "✅ Drill of gitea-db passed");
    let fact = |c: &Card, label: &str| {
        c.facts
            .iter()
            .find(|f| f.label == label)
            .unwrap_or_else(|| panic!("no {label} in {c:?}"))
            .value
            .plain()
    };
    assert_eq!(fact(&c, "RTO"), "13 s · objective 5 min · ✅ met");
    assert_eq!(fact(&c, "RPO"), "40 s · objective 1 h · ✅ met");
    assert_eq!(fact(&c, "Checks"), "✅ 3 of 3 passed");
    assert_eq!(c.notified(), vec!["slack:U0OPS1".to_string()]);
    assert!(
        c.plain()
            .contains("the full report follows as `drill-gitea-db-"),
        "{}",
        c.plain()
    );

    // The restore was sound but the backup was too old: amber, the RPO missed.
    let stale = drill(3, true, Some(7200.0), Some(300.0));
    let c = card(&stale, None);
    assert_eq!(c.tone, Tone::Warning);
    assert_eq!(fact(&c, "RPO"), "2 h · objective 1 h · ❌ missed by 1 h");
    assert!(c.lead[0].plain().starts_with("Scheduled drill: backup `"));
    assert!(c.notified().is_empty(), "a scheduled drill pings nobody");

    // A check failed: red, the check named among the steps.
    let failed = drill(4, false, Some(40.0), Some(300.0));
    let c = card(&failed, None);
    assert_eq!(c.tone, Tone::Bad);
    assert_eq!(fact(&c, "Checks"), "❌ 3 of 4 passed");
    assert_eq!(
        fact(&c, "RTO"),
        "not reached · objective 5 min · ❌ not reached"
    );
    assert!(
        c.steps.iter().any(|s| s.plain().starts_with("❌ check 4")),
        "{:?}",
        c.steps
    );
    assert!(c.body.iter().any(|l| l.plain().starts_with("• check 4")));

    // No objectives set: said as such, never judged.
    let unset = drill(0, true, None, None);
    let c = card(&unset, None);
    assert_eq!(fact(&c, "RTO"), "13 s · no objective set");
    assert_eq!(fact(&c, "Checks"), "none configured");
}

#[test]
fn a_drill_to_a_moment_names_it_its_base_copy_and_what_its_rpo_means() {
    let mut r = drill(0, true, Some(7200.0), Some(300.0));
    r.restored_to = Some(crate::actions::drill_steps::RestoredTo {
        at: "2026-12-05T11:27:00.000Z".into(),
        asked: true,
        base_backup: "20261205T110000Z".into(),
        first_base: false,
        generation: "g1".into(),
        transactions: 12,
        segments: 3,
        up_to_txid: 812,
    });
    let c = card(&r, Some("slack:U0OPS1"));
    let lead = c.lead[0].plain();
    assert!(
        lead.contains("restored to ")
            && lead.contains("`20261205T110000Z`")
            && lead.contains("12 shipped transactions"),
        "{lead}"
    );
    assert!(c.facts.iter().any(|f| f.label == "Restored to"));
    let md = crate::actions::drill_report::render(&r);
    assert!(
        md.contains("- restored to: 2026-12-05T11:27:00.000Z (the moment asked for): base copy 20261205T110000Z (the newest at or before the moment) and 12 shipped transactions from 3 segments, up to transaction 812 of generation g1"),
        "{md}"
    );
    assert!(md.contains("| RPO (replication lag at the moment restored to"));
    let missed = crate::actions::drill_report::missed_objectives(&r);
    assert!(
        missed[0].contains("the moment restored to, 2026-12-05T11:27:00.000Z, was 2h"),
        "{missed:?}"
    );
    // Its action item is about the moment chosen, not a backup schedule.
    let cfg: crate::config::TargetConfig =
        toml::from_str("kind = \"sqlite\"\npath = \"/srv/app.db\"\n").unwrap();
    let items = crate::actions::drill_report::action_items(&r, &cfg);
    assert!(
        items.iter().any(|i| i.contains("the moment drilled"))
            && !items.iter().any(|i| i.contains("backup older than RPO")),
        "{items:?}"
    );
}
