//! Which base copy a restore to a moment starts from: the newest one of the covering
//! generation whose state is at or before the moment — a later base copy (a standalone
//! replicator's scheduled one, or under `serve` a backup pinned by the replicator; both
//! recorded as `<target>.wal/<generation>/base-<txid>.json`, see [`super::scheduled`])
//! or else the generation's first — so only the transactions after it are replayed.
//!
//! A later base copy is the database exactly after its transaction, and that transaction
//! was shipped under the same write lock, so every transaction it holds was seen
//! committed by its time: starting from it gives the same database as replaying from the
//! generation's first base. A later base copy that cannot be used (its backup pruned or
//! gone, its record unreadable) is passed over, and the plan says why.

use chrono::{DateTime, Utc};

use super::record::Generation;
use super::scheduled::readable_later_bases;
use crate::error::Result;
use crate::stores::Store;
use crate::units::parse_time;

/// The base copy a replay starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct ChosenBase {
    pub backup: String,
    /// The transaction of the generation the copy is the database after.
    pub txid: u64,
    /// When its state was current.
    pub at: String,
    /// Whether it is the generation's first base copy.
    pub first: bool,
    /// Newer base copies at or before the moment that could not be used, with why.
    pub passed_over: Vec<String>,
}

/// Whether a backup can be restored from: `None` when it can, else why not.
pub type Usable<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The newest usable base copy of `g` whose state is at or before `at`.
pub fn choose(
    store: &dyn Store,
    target: &str,
    g: &Generation,
    at: DateTime<Utc>,
    usable: Usable<'_>,
) -> Result<ChosenBase> {
    let (later, unreadable) = readable_later_bases(store, target, &g.generation)?;
    let mut passed_over: Vec<String> = unreadable;
    let candidates = later.iter().rev().filter(|b| {
        b.generation == g.generation
            && b.txid > g.base_txid
            && parse_time(&b.at).is_some_and(|t| t <= at)
    });
    for b in candidates {
        match usable(&b.backup) {
            None => {
                return Ok(ChosenBase {
                    backup: b.backup.clone(),
                    txid: b.txid,
                    at: b.at.clone(),
                    first: false,
                    passed_over,
                });
            }
            Some(why) => passed_over.push(format!(
                "base copy {} (transaction {}, {}) {why}",
                b.backup, b.txid, b.at
            )),
        }
    }
    Ok(ChosenBase {
        backup: g.base_backup.clone(),
        txid: g.base_txid,
        at: g.base_at.clone(),
        first: true,
        passed_over,
    })
}

/// Whether each backup of `target` can be restored from, from one listing of its
/// backups and one of its objects: a backup not listed (pruned, removed, its manifest
/// damaged) cannot, nor one whose artifact is missing or not the size its manifest says.
/// (A flipped byte inside an artifact of the right size shows only when it is read: the
/// restore then fails with nothing changed, naming the backup.)
pub fn usable_in_store(
    app: &crate::app::App,
    target: &str,
) -> Result<impl Fn(&str) -> Option<String>> {
    let objects = super::objects_for(app, target)?;
    let sizes: std::collections::HashMap<String, u64> = objects
        .list(&format!("{target}/"))?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    let listed: std::collections::HashMap<String, Option<String>> =
        crate::actions::catalog::backups(app, target)?
            .into_iter()
            .map(|m| {
                let damage = match sizes.get(&m.artifact) {
                    _ if m.artifact.is_empty() => None,
                    None => Some(format!("has lost its artifact {}", m.artifact)),
                    Some(&size) if size != m.size_bytes => Some(format!(
                        "has an artifact of {size} bytes, its manifest says {}",
                        m.size_bytes
                    )),
                    Some(_) => None,
                };
                (m.id, damage)
            })
            .collect();
    Ok(move |id: &str| match listed.get(id) {
        None => {
            Some("is no longer in the store (pruned, removed, or its manifest damaged)".to_string())
        }
        Some(damage) => damage.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::record::write;
    use crate::replicate::scheduled::{LaterBase, later_base_key};
    use crate::stores::memory::MemoryStore;
    use crate::units::time_text;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn generation() -> Generation {
        Generation {
            generation: "g1".into(),
            started_at: time_text(t(0)),
            reason: "test".into(),
            page_size: 512,
            base_backup: "first".into(),
            base_txid: 0,
            base_at: time_text(t(0)),
            previous: None,
            ended: None,
        }
    }

    fn later(store: &MemoryStore, txid: u64, at: i64) {
        let b = LaterBase {
            backup: format!("b{txid}"),
            generation: "g1".into(),
            txid,
            at: time_text(t(at)),
        };
        write(store, &later_base_key("db", "g1", txid), &b).unwrap();
    }

    #[test]
    fn the_newest_usable_base_at_or_before_the_moment() {
        let store = MemoryStore::new();
        later(&store, 10, 100);
        later(&store, 20, 200);
        later(&store, 30, 300);
        let all = |_: &str| None;
        let g = generation();
        let pick = |at: i64, usable: Usable<'_>| choose(&store, "db", &g, t(at), usable).unwrap();

        let c = pick(250, &all);
        assert_eq!((c.backup.as_str(), c.txid, c.first), ("b20", 20, false));
        assert!(c.passed_over.is_empty());
        // Exactly at a base's moment: that base.
        assert_eq!(pick(300, &all).backup, "b30");
        // Before every later base: the generation's first.
        let c = pick(50, &all);
        assert_eq!((c.backup.as_str(), c.txid, c.first), ("first", 0, true));

        // The newest one pruned: the next older, and the plan says why.
        let pruned = |id: &str| (id == "b30").then(|| "is no longer in the store".to_string());
        let c = pick(400, &pruned);
        assert_eq!(c.backup, "b20");
        assert_eq!(c.passed_over.len(), 1);
        assert!(c.passed_over[0].contains("b30") && c.passed_over[0].contains("no longer"));

        // None usable: the generation's first, every one passed over named.
        let none = |_: &str| Some("is gone".to_string());
        let c = pick(400, &none);
        assert!(c.first);
        assert_eq!(c.passed_over.len(), 3);

        // An unreadable record is passed over, not fatal.
        store
            .put_bytes(&later_base_key("db", "g1", 40), b"{not json")
            .unwrap();
        let c = pick(400, &all);
        assert_eq!(c.backup, "b30");
        assert!(
            c.passed_over.iter().any(|p| p.contains("cannot be read")),
            "{:?}",
            c.passed_over
        );
    }
}
