//! An in-memory store for unit tests, with an optional capacity that makes writes fail
//! the way a full disk does.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, Mutex};

use super::{ObjectInfo, ObjectWriter, Store, StoreError, check_key};

#[derive(Default, Clone)]
pub struct MemoryStore {
    objects: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    capacity: Option<usize>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store that refuses to hold more than `bytes` in one object.
    pub fn with_capacity(bytes: usize) -> MemoryStore {
        MemoryStore {
            capacity: Some(bytes),
            ..MemoryStore::default()
        }
    }

    /// Replace a stored object's bytes (tests use it to corrupt artifacts).
    pub fn tamper(&self, key: &str, f: impl FnOnce(&mut Vec<u8>)) {
        let mut objects = self.objects.lock().unwrap();
        f(objects.get_mut(key).expect("object exists"));
    }
}

struct MemoryWriter {
    store: MemoryStore,
    key: String,
    buf: Vec<u8>,
}

impl Write for MemoryWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(cap) = self.store.capacity
            && self.buf.len() + data.len() > cap
        {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for MemoryWriter {
    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let this = *self;
        this.store
            .objects
            .lock()
            .unwrap()
            .insert(this.key, this.buf);
        Ok(())
    }
}

impl Store for MemoryStore {
    fn describe(&self) -> String {
        "memory store".into()
    }

    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError> {
        check_key(key)?;
        Ok(Box::new(MemoryWriter {
            store: self.clone(),
            key: key.into(),
            buf: Vec::new(),
        }))
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let objects = self.objects.lock().unwrap();
        match objects.get(key) {
            Some(bytes) => Ok(Box::new(Cursor::new(bytes.clone()))),
            None => Err(StoreError::NotFound {
                store: self.describe(),
                key: key.into(),
            }),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectInfo {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }

    fn sweep_incomplete(&self, _prefix: &str) -> Result<usize, StoreError> {
        Ok(0) // uncommitted writes never reach the map
    }
}
