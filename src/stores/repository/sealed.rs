//! The objects lifeboat keeps of its own in a repository store (continuous replication's
//! segments, position, generation records, base records and lease), never in plaintext:
//! each sealed with the repository's master key in restic's encryption ([`super::seal`]),
//! in frames, so a segment of any size streams through in bounded memory.
//!
//! They are kept beside the restic layout, in the repository's own backend, under a
//! `lifeboat/` folder of its location (`<path>/lifeboat/…`, or `<prefix>/lifeboat/…` in
//! the bucket of an `s3:` location), through the ordinary local and S3 object stores.
//! restic and rustic look only at their own folders (`config`, `data/`, `index/`,
//! `keys/`, `locks/`, `snapshots/`), so `check` and `prune` neither count nor touch them.
//!
//! Object names stay readable: they are the target's name, generation ids (start times)
//! and transaction numbers with the times they were seen committed, which listing and
//! planning need without a key; what the database holds is only ever in sealed bytes.
//! A sealed object is also bound to its name, so renaming one reads as damaged.
//!
//! The master key is needed only to write or read an object's bytes (listing, deleting
//! and a missing object need none); the first write into a location where no repository
//! exists yet creates it, as a first backup would. The key is kept for the process once
//! the password opened it, so status and metrics do not run the key derivation each time
//! (a repository deleted and created again at the same location under the same password
//! is seen by a running process only once it restarts, as for its snapshots).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use rustic_core::repofile::MasterKey;
use sha2::{Digest, Sha256};

use super::seal::{Sealer, Sealing, Unsealer};
use super::{Location, RepositoryStore};
use crate::config::StoreConfig;
use crate::stores::local::LocalStore;
use crate::stores::s3::S3Store;
use crate::stores::{ObjectInfo, ObjectWriter, Store, StoreError};

/// The folder of a repository's location that holds lifeboat's own objects.
pub const FOLDER: &str = "lifeboat";

/// Master keys opened in this process, by location and a digest of the password.
static OPENED: Mutex<BTreeMap<(String, [u8; 32]), MasterKey>> = Mutex::new(BTreeMap::new());

pub struct SealedStore {
    describe: String,
    /// Where the objects are, as a person would find them: `<location>/lifeboat/`.
    shown_root: String,
    /// Where the sealed bytes are: the repository's backend, at its `lifeboat/` folder.
    inner: Arc<dyn Store>,
    /// The repository itself, for its master key.
    repository: RepositoryStore,
    opened_as: (String, [u8; 32]),
    sealing: Mutex<Option<Sealing>>,
}

impl SealedStore {
    /// The sealed objects of the repository at `location`; `compression_level`: the
    /// repository's, should the first write here be what creates it.
    pub fn new(
        name: &str,
        location: &str,
        password: &str,
        compression_level: Option<i32>,
    ) -> Result<SealedStore, StoreError> {
        let repository = RepositoryStore::new(name, location, password, compression_level)?;
        let parsed = Location::parse(location)
            .map_err(|e| StoreError::Other(format!("stores.{name}: {e}")))?;
        let inner: Arc<dyn Store> = match parsed {
            Location::Local(path) => Arc::new(LocalStore::new(name, path.join(FOLDER))),
            Location::S3 {
                endpoint,
                bucket,
                prefix,
            } => {
                let prefix = if prefix.is_empty() {
                    format!("{FOLDER}/")
                } else {
                    format!("{prefix}/{FOLDER}/")
                };
                // The same endpoint and bucket, credentials and region from the same
                // AWS variables.
                let beside = StoreConfig::s3_at(endpoint, bucket, prefix);
                Arc::new(S3Store::new(name, &beside)?)
            }
        };
        Ok(SealedStore {
            shown_root: format!("{}/{FOLDER}/", location.trim_end_matches('/')),
            describe: format!(
                "repository store \"{name}\" ({location}, sealed objects in {FOLDER}/)"
            ),
            inner,
            repository,
            opened_as: (
                location.to_string(),
                Sha256::digest(password.as_bytes()).into(),
            ),
            sealing: Mutex::new(None),
        })
    }

    /// The repository's cipher; `create`: make the repository first when there is none.
    fn sealing(&self, create: bool) -> Result<Sealing, StoreError> {
        if let Some(s) = self.sealing.lock().unwrap().clone() {
            return Ok(s);
        }
        let known = OPENED.lock().unwrap().get(&self.opened_as).cloned();
        let master = match known {
            Some(m) => m,
            None => {
                let m = self.repository.master_key(create)?;
                OPENED
                    .lock()
                    .unwrap()
                    .insert(self.opened_as.clone(), m.clone());
                m
            }
        };
        let sealing = Sealing::new(&master)
            .map_err(|why| StoreError::Other(format!("{}: {why}", self.describe)))?;
        *self.sealing.lock().unwrap() = Some(sealing.clone());
        Ok(sealing)
    }

    /// An object as errors name it: where it is, whole.
    fn what(&self, key: &str) -> String {
        format!("sealed object {}{key}", self.shown_root)
    }

    fn io(&self, action: &'static str, key: &str, source: std::io::Error) -> StoreError {
        StoreError::Io {
            store: self.describe.clone(),
            action,
            key: key.to_string(),
            source,
        }
    }
}

struct SealedWriter {
    sealer: Option<Sealer<Box<dyn ObjectWriter>>>,
    describe: String,
    key: String,
}

impl Write for SealedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sealer.as_mut().expect("writer open").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sealer.as_mut().expect("writer open").flush()
    }
}

impl ObjectWriter for SealedWriter {
    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let sealer = self.sealer.take().expect("writer open");
        let inner = sealer.finish().map_err(|source| StoreError::Io {
            store: self.describe.clone(),
            action: "sealing",
            key: self.key.clone(),
            source,
        })?;
        inner.commit()
    }
}

impl Store for SealedStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError> {
        crate::stores::check_key(key)?;
        // The key first: a wrong password leaves nothing behind in the store.
        let sealing = self.sealing(true)?;
        let inner = self.inner.create(key)?;
        let sealer = Sealer::new(inner, sealing, key).map_err(|e| self.io("sealing", key, e))?;
        Ok(Box::new(SealedWriter {
            sealer: Some(sealer),
            describe: self.describe.clone(),
            key: key.to_string(),
        }))
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        // A missing object is missing whatever the password.
        let from = self.inner.open(key)?;
        let sealing = self.sealing(false)?;
        Ok(Box::new(Unsealer::new(from, sealing, key, self.what(key))))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }

    fn sweep_incomplete(&self, prefix: &str) -> Result<usize, StoreError> {
        self.inner.sweep_incomplete(prefix)
    }

    fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        crate::stores::check_key(key)?;
        let sealing = self.sealing(true)?;
        let mut sealer =
            Sealer::new(Vec::new(), sealing, key).map_err(|e| self.io("sealing", key, e))?;
        sealer
            .write_all(bytes)
            .map_err(|e| self.io("sealing", key, e))?;
        let sealed = sealer.finish().map_err(|e| self.io("sealing", key, e))?;
        self.inner.put_bytes(key, &sealed)
    }

    fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        // One read of the whole object (on S3 one GET, as the inner store does it).
        let sealed = self.inner.get_bytes(key)?;
        let sealing = self.sealing(false)?;
        let mut out = Vec::new();
        Unsealer::new(&sealed[..], sealing, key, self.what(key))
            .read_to_end(&mut out)
            .map_err(|e| StoreError::Other(format!("{}: {e}", self.describe)))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path, password: &str) -> SealedStore {
        SealedStore::new("vault", dir.to_str().unwrap(), password, None).unwrap()
    }

    #[test]
    fn objects_are_sealed_on_disk_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("vault");
        let s = store(&repo, "pw");
        // Reading needs no repository and creates none: nothing is there yet.
        assert!(s.list("app.wal/").unwrap().is_empty());
        assert!(
            s.open("app.wal/position.json")
                .err()
                .unwrap()
                .is_not_found()
        );
        assert!(!repo.exists());

        let record = br#"{"secret":"position record plaintext"}"#;
        s.put_bytes("app.wal/position.json", record).unwrap();
        assert!(
            repo.join("config").exists(),
            "the first write made the repository"
        );
        let on_disk = std::fs::read(repo.join("lifeboat/app.wal/position.json")).unwrap();
        assert!(on_disk.starts_with(super::super::seal::MAGIC));
        assert!(!on_disk.windows(9).any(|w| w == b"plaintext"));
        assert_eq!(s.get_bytes("app.wal/position.json").unwrap(), record);

        // A streamed object of several frames, through open as a reader.
        let big: Vec<u8> = (0..(5 << 19) + 7).map(|i| (i % 253) as u8).collect();
        let mut w = s.create("app.wal/g/1-2-3.seg.zst").unwrap();
        w.write_all(&big).unwrap();
        w.commit().unwrap();
        let mut back = Vec::new();
        s.open("app.wal/g/1-2-3.seg.zst")
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, big);
        let keys: Vec<String> = s
            .list("app.wal/")
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["app.wal/g/1-2-3.seg.zst", "app.wal/position.json"]);

        // Renamed on disk, an object reads as damaged, naming where it is.
        std::fs::copy(
            repo.join("lifeboat/app.wal/position.json"),
            repo.join("lifeboat/app.wal/lease.json"),
        )
        .unwrap();
        let e = s.get_bytes("app.wal/lease.json").unwrap_err().to_string();
        assert!(
            e.contains("lifeboat/app.wal/lease.json is damaged") && e.contains("another object"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_password_reads_nothing_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("vault");
        store(&repo, "right").put_bytes("app.wal/a", b"x").unwrap();
        let wrong = store(&repo, "wrong");
        let e = wrong.get_bytes("app.wal/a").unwrap_err().to_string();
        assert!(e.contains("the password does not open"), "{e}");
        let e = wrong
            .put_bytes("app.wal/b", b"y")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("the password does not open"), "{e}");
        assert!(wrong.create("app.wal/c").is_err());
        let keys: Vec<String> = wrong.list("").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["app.wal/a"]);
    }
}
