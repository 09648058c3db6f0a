//! Finding every complete backup a store holds from the store alone, for rebuilding the
//! catalog: each manifest is read (several at once), checked against its key and its
//! artifact, and anything that does not hold together is named and skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::manifest::{MANIFEST_SUFFIX, Manifest};
use super::{Rejected, Store, StoreError};

/// Manifests read at once: a remote store answers each in a round trip.
const READERS: usize = 8;

/// What a store holds: its complete backups and what was skipped, and why.
#[derive(Debug, Default)]
pub struct Discovered {
    /// Complete backups, in key order.
    pub backups: Vec<Manifest>,
    /// `<key>: <why>` for every manifest that was not taken.
    pub skipped: Vec<String>,
}

/// Every complete backup in `store`: a manifest that parses, sits under its own target's
/// prefix with its own id, and whose artifact is in the store at its recorded size.
/// Artifacts without a manifest (interrupted uploads) are never listed; incomplete
/// multipart uploads are not objects at all.
pub fn discover<S: Store + ?Sized>(store: &S) -> Result<Discovered, StoreError> {
    let objects = store.list("")?;
    let sizes: HashMap<&str, u64> = objects.iter().map(|o| (o.key.as_str(), o.size)).collect();
    let keys: Vec<&str> = objects
        .iter()
        .map(|o| o.key.as_str())
        .filter(|k| k.ends_with(MANIFEST_SUFFIX))
        .collect();
    let read = read_all(store, &keys)?;
    let mut out = Discovered::default();
    for (key, bytes) in read {
        let Some(bytes) = bytes else { continue }; // pruned while we listed
        match check(key, &bytes, &sizes) {
            Ok(m) => out.backups.push(m),
            Err(why) => out.skipped.push(format!("{key}: {why}")),
        }
    }
    Ok(out)
}

/// Read the manifests on a few threads; in key order. A manifest gone since the listing
/// is `None`; any other error stops the discovery (the store is unreachable).
fn read_all<'k, S: Store + ?Sized>(
    store: &S,
    keys: &[&'k str],
) -> Result<BTreeMap<&'k str, Option<Vec<u8>>>, StoreError> {
    let next = Mutex::new(keys.iter());
    let found = Mutex::new(BTreeMap::new());
    let failed = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..READERS.min(keys.len()) {
            s.spawn(|| {
                loop {
                    if failed.lock().unwrap().is_some() {
                        return;
                    }
                    let Some(key) = next.lock().unwrap().next().copied() else {
                        return;
                    };
                    match store.get_bytes(key) {
                        Ok(b) => {
                            found.lock().unwrap().insert(key, Some(b));
                        }
                        Err(e) if e.is_not_found() => {
                            found.lock().unwrap().insert(key, None);
                        }
                        Err(e) => {
                            *failed.lock().unwrap() = Some(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(found.into_inner().unwrap()),
    }
}

/// One manifest, checked against where it was found and what the store holds.
fn check(key: &str, bytes: &[u8], sizes: &HashMap<&str, u64>) -> Result<Manifest, Rejected> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(|source| Rejected::Unreadable {
        what: format!(
            "unreadable manifest ({} bytes; truncated or damaged)",
            bytes.len()
        ),
        source,
    })?;
    if Manifest::key(&m.target, &m.id) != key {
        return Err(format!(
            "the manifest names backup {} of {}, which does not belong under this key",
            m.id, m.target
        )
        .into());
    }
    if m.status != "complete" {
        return Err(format!("status {:?}, not complete", m.status).into());
    }
    if crate::units::parse_time(&m.created_at).is_none() {
        return Err(format!("created_at {:?} is not a time", m.created_at).into());
    }
    // gcp-disk backups are snapshots: their record is the manifest alone.
    if m.gcp.is_none() {
        match sizes.get(m.artifact.as_str()) {
            None => return Err(format!("its artifact {} is missing", m.artifact).into()),
            Some(&size) if size != m.size_bytes => {
                return Err(format!(
                    "its artifact {} has {size} bytes, the manifest says {}",
                    m.artifact, m.size_bytes
                )
                .into());
            }
            Some(_) => {}
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::memory::MemoryStore;

    fn manifest(target: &str, id: &str, size: u64) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "format": 1, "id": id, "target": target, "kind": "sqlite", "store": "mem",
            "created_at": "2026-11-22T08:30:00.000Z", "finished_at": "2026-11-22T08:30:01.000Z",
            "duration_seconds": 1.0, "status": "complete",
            "artifact": format!("{target}/{id}.sqlite.zst"), "compression": "zstd",
            "size_bytes": size, "sha256": "00", "content_bytes": size, "content_sha256": "00",
            "lifeboat_version": "test"
        }))
        .unwrap()
    }

    fn publish(store: &MemoryStore, m: &Manifest) {
        store
            .put_bytes(&m.artifact, &vec![7; m.size_bytes as usize])
            .unwrap();
        store
            .put_bytes(
                &Manifest::key(&m.target, &m.id),
                &serde_json::to_vec(m).unwrap(),
            )
            .unwrap();
    }

    #[test]
    fn complete_backups_are_found_and_everything_else_is_named() {
        let store = MemoryStore::new();
        let good: Vec<Manifest> = (0..20)
            .map(|i| {
                manifest(
                    &format!("t{}", i % 3),
                    &format!("2026112{}T0000{i:02}Z", i % 10),
                    10,
                )
            })
            .collect();
        for m in &good {
            publish(&store, m);
        }
        // Cut short; artifact missing; artifact of another size; filed under another key;
        // an artifact whose manifest never came.
        let cut = manifest("t0", "20200101T000000Z", 10);
        publish(&store, &cut);
        store.tamper(&Manifest::key("t0", &cut.id), |b| b.truncate(b.len() / 2));
        let lost = manifest("t1", "20200101T000001Z", 10);
        store
            .put_bytes(
                &Manifest::key("t1", &lost.id),
                &serde_json::to_vec(&lost).unwrap(),
            )
            .unwrap();
        let short = manifest("t1", "20200101T000002Z", 10);
        publish(&store, &short);
        store.tamper(&short.artifact, |b| b.truncate(3));
        let moved = manifest("t2", "20200101T000003Z", 10);
        publish(&store, &moved);
        store
            .put_bytes(
                "t0/20200101T000003Z.manifest.json",
                &serde_json::to_vec(&moved).unwrap(),
            )
            .unwrap();
        store
            .put_bytes("t2/20300101T000000Z.sqlite.zst", b"partial")
            .unwrap();

        let found = store.discover().unwrap();
        let mut expected: Vec<String> = good
            .iter()
            .map(|m| Manifest::key(&m.target, &m.id))
            .collect();
        expected.push(Manifest::key("t2", &moved.id));
        expected.sort();
        let keys: Vec<String> = found
            .backups
            .iter()
            .map(|m| Manifest::key(&m.target, &m.id))
            .collect();
        assert_eq!(keys, expected);
        let skipped = found.skipped.join("\n");
        assert_eq!(found.skipped.len(), 4, "{skipped}");
        for needle in [
            "t0/20200101T000000Z.manifest.json: unreadable manifest",
            "t1/20200101T000001Z.manifest.json: its artifact t1/20200101T000001Z.sqlite.zst is missing",
            "t1/20200101T000002Z.manifest.json: its artifact t1/20200101T000002Z.sqlite.zst has 3 bytes",
            "t0/20200101T000003Z.manifest.json: the manifest names backup 20200101T000003Z of t2",
        ] {
            assert!(skipped.contains(needle), "{needle} in {skipped}");
        }
    }

    #[test]
    fn rebuilding_twice_changes_nothing_and_a_vanished_backup_is_removed() {
        let store = MemoryStore::new();
        for i in 0..5 {
            publish(&store, &manifest("app", &format!("2026112{i}T000000Z"), 10));
        }
        let db = crate::db::Db::in_memory();
        let first = store.discover().unwrap();
        let c = db.catalog_replace_store("mem", &first.backups).unwrap();
        assert_eq!((c.added, c.unchanged), (5, 0));
        let again = db
            .catalog_replace_store("mem", &store.discover().unwrap().backups)
            .unwrap();
        assert_eq!(
            (again.added, again.updated, again.removed, again.unchanged),
            (0, 0, 0, 5)
        );
        store.delete("app/20261122T000000Z.manifest.json").unwrap();
        let third = db
            .catalog_replace_store("mem", &store.discover().unwrap().backups)
            .unwrap();
        assert_eq!((third.removed, third.unchanged), (1, 4));
        assert_eq!(db.catalog_counts().unwrap()["app"], 4);
        // Another store's rows are not touched by this one's rebuild.
        db.catalog_replace_store("other", &[manifest("web", "20261101T000000Z", 1)])
            .unwrap();
        db.catalog_replace_store("mem", &store.discover().unwrap().backups)
            .unwrap();
        assert_eq!(db.catalog_counts().unwrap()["web"], 1);
    }
}
