//! When each target must be looked at next, ordered by time, so a tick finds the due
//! ones without walking every target; and the handle that asks for a look at one target
//! at once (a report came in, a job ended).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

#[derive(Default)]
pub struct Plan {
    at: HashMap<String, DateTime<Utc>>,
    order: BTreeSet<(DateTime<Utc>, String)>,
}

impl Plan {
    pub fn set(&mut self, name: &str, t: DateTime<Utc>) {
        if let Some(old) = self.at.insert(name.to_string(), t) {
            self.order.remove(&(old, name.to_string()));
        }
        self.order.insert((t, name.to_string()));
    }

    /// Every target whose time has come (at or before `now`), soonest first.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<String> {
        self.order
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// The soonest planned time.
    pub fn first(&self) -> Option<DateTime<Utc>> {
        self.order.first().map(|(t, _)| *t)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.at.contains_key(name)
    }

    /// Look at everything at `now`.
    pub fn all_at(&mut self, now: DateTime<Utc>) {
        let names: Vec<String> = self.at.keys().cloned().collect();
        for n in names {
            self.set(&n, now);
        }
    }
}

/// Asks the scheduler to look at one target now.
#[derive(Clone, Default)]
pub struct TargetWake {
    pub(super) notify: Arc<tokio::sync::Notify>,
    pub(super) names: Arc<Mutex<Vec<String>>>,
}

impl TargetWake {
    pub fn wake(&self, target: &str) {
        self.names.lock().unwrap().push(target.to_string());
        self.notify.notify_one();
    }

    pub(super) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.names.lock().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_targets_come_in_time_order_and_a_new_time_replaces_the_old() {
        let t = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
        let mut p = Plan::default();
        p.set("a", t("2026-11-22T04:00:00Z"));
        p.set("b", t("2026-11-22T03:00:00Z"));
        p.set("c", t("2026-11-22T05:00:00Z"));
        assert_eq!(p.due(t("2026-11-22T04:00:00Z")), vec!["b", "a"]);
        p.set("b", t("2026-11-23T00:00:00Z"));
        assert_eq!(p.due(t("2026-11-22T04:30:00Z")), vec!["a"]);
        p.all_at(t("2026-11-22T01:00:00Z"));
        assert_eq!(p.due(t("2026-11-22T01:00:00Z")).len(), 3);
    }
}
