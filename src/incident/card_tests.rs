//! The incident cards from a real timeline: people as mentions, times as times, the
//! newest entries, state and colour; and the largest timeline the renderers' limit tests
//! use.

use super::*;
use crate::incident::card::fixtures::{incident, timeline};

#[test]
fn status_names_people_and_times_and_lists_the_latest_entries() {
    let now = parse_time("2026-12-05T14:00:00.000Z").unwrap();
    let t = timeline(200);
    let c = status(&incident(false), &t, now);
    assert_eq!(c.tone, Tone::Bad);
    assert_eq!(c.title, "🚨 Incident #3: Gitea is down");
    let plain = c.plain();
    assert!(plain.contains("State: open for 1 h 13 min"), "{plain}");
    assert!(plain.contains("Timeline: 200 entries"), "{plain}");
    assert!(plain.contains("Action items: 20 action items"), "{plain}");
    assert!(
        plain.contains("Opened: 2026-12-05 12:46 UTC by slack:U0OPS1"),
        "{plain}"
    );
    // The people as persons (mentions on the platforms), each once, lifeboat's own
    // jobs left out.
    let people = &c.facts.iter().find(|f| f.label == "People").unwrap().value;
    let named: Vec<_> = people
        .0
        .iter()
        .filter_map(|p| match p {
            crate::card::Piece::Person { identity, notify } => Some((identity.as_str(), *notify)),
            _ => None,
        })
        .collect();
    assert_eq!(
        named,
        vec![
            ("slack:U0OPS1", false),
            ("slack:U0ADMIN1", false),
            ("slack:U0VIEW1", false)
        ]
    );
    assert!(c.notified().is_empty(), "a status pings nobody");
    // The newest ten entries, oldest first, each with its time as a time.
    assert_eq!(c.steps.len(), LATEST);
    assert!(c.steps[9].plain().contains("entry 199"), "{:?}", c.steps[9]);
    assert!(c.steps[0].plain().contains("entry 190"));
    assert!(matches!(c.steps[0].0[0], crate::card::Piece::Time { .. }));
    assert!(plain.contains("The latest 10 of 200 entries."), "{plain}");

    let closed = status(&incident(true), &t[..3], now);
    assert_eq!(closed.tone, Tone::Good);
    assert!(
        closed
            .plain()
            .contains("State: closed after 41 min by slack:U0ADMIN1"),
        "{}",
        closed.plain()
    );
    assert!(!closed.plain().contains("The latest"));
}

#[test]
fn opening_notes_and_closing_name_people_and_times_without_pinging() {
    let now = parse_time("2026-12-05T14:00:00.000Z").unwrap();
    let opened = opened(&incident(false));
    assert_eq!(opened.title, "🚨 Incident #3 opened: Gitea is down");
    assert_eq!(
        opened.lead[0].plain(),
        "Opened by slack:U0OPS1 at 2026-12-05 12:46 UTC."
    );
    let e = &timeline(6)[5];
    let note = added(&incident(false), e);
    assert_eq!(note.title, "📝 Noted on incident #3");
    assert!(
        note.lead[0]
            .plain()
            .starts_with("entry 5: users see 502s <since 09:50>")
    );
    assert!(matches!(
        note.context[0].0[1],
        crate::card::Piece::Person { ref identity, notify: false } if identity == "slack:U0VIEW1"
    ));
    let action = added(&incident(false), &timeline(1)[0]);
    assert_eq!(action.title, "📌 Action item on incident #3");
    let closed = closed(&incident(true), now);
    assert_eq!(closed.tone, Tone::Good);
    assert_eq!(closed.title, "✅ Incident #3 closed: Gitea is down");
    assert!(
        closed
            .plain()
            .contains("State: closed after 41 min by slack:U0ADMIN1")
    );
    for card in [opened, note, action, closed] {
        assert!(card.notified().is_empty(), "{card:?}");
    }
}
