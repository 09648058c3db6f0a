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
