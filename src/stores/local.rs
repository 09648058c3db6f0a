//! A store in a local directory: one file per object, written under a temporary name,
//! fsynced, then renamed into place (and the directory fsynced) on commit.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::{ObjectInfo, ObjectWriter, Store, StoreError, check_key};

/// Prefix of in-progress files; never listed, removed by `sweep_incomplete`.
const TEMP_PREFIX: &str = ".tmp-";

pub struct LocalStore {
    name: String,
    root: PathBuf,
}

impl LocalStore {
    pub fn new(name: &str, root: PathBuf) -> LocalStore {
        LocalStore {
            name: name.into(),
            root,
        }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn io(&self, action: &'static str, key: &str, source: io::Error) -> StoreError {
        StoreError::Io {
            store: self.describe(),
            action,
            key: key.into(),
            source,
        }
    }
}

struct LocalWriter {
    file: Option<BufWriter<File>>,
    temp: PathBuf,
    dest: PathBuf,
    describe: String,
    key: String,
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("writer open").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("writer open").flush()
    }
}

impl ObjectWriter for LocalWriter {
    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let err = |action, source| StoreError::Io {
            store: self.describe.clone(),
            action,
            key: self.key.clone(),
            source,
        };
        let file = self.file.take().expect("writer open");
        let file = file
            .into_inner()
            .map_err(|e| err("writing", e.into_error()))?;
        file.sync_all().map_err(|e| err("syncing", e))?;
        drop(file);
        fs::rename(&self.temp, &self.dest).map_err(|e| err("publishing", e))?;
        if let Some(dir) = self.dest.parent() {
            sync_dir(dir).map_err(|e| err("syncing the directory of", e))?;
        }
        Ok(())
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Not committed: discard the partial bytes.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Store for LocalStore {
    fn describe(&self) -> String {
        format!("local store {:?} ({})", self.name, self.root.display())
    }

    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError> {
        let dest = self.path_of(key)?;
        let dir = dest.parent().expect("key has a parent");
        fs::create_dir_all(dir).map_err(|e| self.io("creating the directory for", key, e))?;
        let base = dest.file_name().expect("key has a name").to_string_lossy();
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}-{nonce}-{base}",
            std::process::id()
        ));
        let file = File::create_new(&temp).map_err(|e| self.io("creating", key, e))?;
        Ok(Box::new(LocalWriter {
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            temp,
            dest,
            describe: self.describe(),
            key: key.into(),
        }))
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let path = self.path_of(key)?;
        match File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound {
                store: self.describe(),
                key: key.into(),
            }),
            Err(e) => Err(self.io("opening", key, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, prefix, &mut out)
            .map_err(|e| self.io("listing", prefix, e))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.path_of(key)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("deleting", key, e)),
        }
    }

    fn sweep_incomplete(&self, prefix: &str) -> Result<usize, StoreError> {
        let dir = self.root.join(prefix.trim_end_matches('/'));
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.io("listing", prefix, e)),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                fs::remove_file(entry.path()).map_err(|e| self.io("removing", prefix, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let ty = entry.file_type()?;
        let key = path
            .strip_prefix(root)
            .expect("walk stays under root")
            .to_string_lossy()
            .replace('\\', "/");
        if ty.is_dir() {
            // Only descend where the prefix can still match.
            let as_dir = format!("{key}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(root, &path, prefix, out)?;
            }
        } else if ty.is_file() && key.starts_with(prefix) {
            out.push(ObjectInfo {
                key,
                size: entry.metadata()?.len(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_writes_are_invisible_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new("t", dir.path().to_path_buf());
        let mut w = store.create("a/b.bin").unwrap();
        w.write_all(b"hello").unwrap();
        assert!(store.list("a/").unwrap().is_empty());
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("a")).unwrap().count(), 0);

        let mut w = store.create("a/b.bin").unwrap();
        w.write_all(b"hello").unwrap();
        w.commit().unwrap();
        let listed = store.list("a/").unwrap();
        assert_eq!(
            listed,
            vec![ObjectInfo {
                key: "a/b.bin".into(),
                size: 5
            }]
        );
        assert_eq!(store.get_bytes("a/b.bin").unwrap(), b"hello");
    }

    #[test]
    fn traversal_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new("t", dir.path().to_path_buf());
        for key in ["../x", "/etc/passwd", "a/../../x", "a//b"] {
            assert!(store.create(key).is_err(), "{key}");
            assert!(store.open(key).is_err(), "{key}");
        }
    }

    #[test]
    fn sweep_removes_leftover_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new("t", dir.path().to_path_buf());
        let w = store.create("t1/x").unwrap();
        std::mem::forget(w); // as if the process died mid-write
        assert_eq!(store.list("t1/").unwrap().len(), 0);
        assert_eq!(store.sweep_incomplete("t1/").unwrap(), 1);
    }
}
