//! Database files this process keeps open while it holds SQLite connections to them
//! (continuous replication's read transaction). A process that closes any descriptor of
//! a file loses every POSIX lock it has on it — SQLite's shared lock included — and then
//! another process's last connection to close believes it is alone, checkpoints the whole
//! WAL and deletes it under the read transaction. So while a file is held here, lifeboat's
//! own reads of it (a backup streaming the file) go through the held descriptor and never
//! open and close one of their own.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

static HELD: Mutex<Option<HashMap<PathBuf, Arc<File>>>> = Mutex::new(None);

/// The held descriptor of `path`, when this process holds one.
pub fn open_here(path: &Path) -> Option<Arc<File>> {
    HELD.lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(path).cloned())
}

/// A file held open until this is dropped.
pub struct Held {
    path: PathBuf,
    _file: Arc<File>,
}

impl Held {
    /// The file held: its device and inode, to tell when another file took its path.
    pub fn identity(&self) -> std::io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = self._file.metadata()?;
        Ok((m.dev(), m.ino()))
    }

    pub fn open(path: &Path) -> std::io::Result<Held> {
        let file = Arc::new(File::open(path)?);
        HELD.lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(path.to_path_buf(), file.clone());
        Ok(Held {
            path: path.to_path_buf(),
            _file: file,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Only its own entry: a replicator that reopened a replaced file holds the
        // path anew before the old hold goes.
        if let Some(m) = HELD.lock().unwrap().as_mut()
            && m.get(&self.path)
                .is_some_and(|f| Arc::ptr_eq(f, &self._file))
        {
            m.remove(&self.path);
        }
    }
}
