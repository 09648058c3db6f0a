//! Backups kept in an object store (a local directory, an S3 bucket): one zstd artifact
//! and one JSON manifest per backup, the manifest published last, so a backup exists
//! exactly when its manifest does.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::backups::{BackupStore, BackupWriter, NewBackup};
use super::discover::Discovered;
use super::manifest::{Manifest, list_backups, orphan_artifacts};
use super::{ObjectWriter, Store, StoreError};
use crate::pipe::{HashWriter, ReadAhead, zstd_encoder};
use crate::progress::JobContext;

pub struct ObjectBackups {
    objects: Arc<dyn Store>,
    level: i32,
}

impl ObjectBackups {
    pub fn new(objects: Arc<dyn Store>, level: i32) -> ObjectBackups {
        ObjectBackups { objects, level }
    }

    /// The object store underneath, for tests and tools that look at single objects.
    pub fn objects(&self) -> &Arc<dyn Store> {
        &self.objects
    }
}

/// `sqlite` artifacts end in `.sqlite.zst`, directories in `.tar.zst`.
fn artifact_key(new: &NewBackup) -> String {
    format!("{}/{}.{}.zst", new.target, new.id, new.artifact_ext)
}

impl BackupStore for ObjectBackups {
    fn describe(&self) -> String {
        self.objects.describe()
    }

    fn begin(&self, new: &NewBackup) -> Result<Box<dyn BackupWriter>, StoreError> {
        let artifact = artifact_key(new);
        let writer = self.objects.create(&artifact)?;
        let encoder =
            zstd_encoder(HashWriter::new(writer), self.level).map_err(|source| StoreError::Io {
                store: self.describe(),
                action: "starting compression of",
                key: artifact.clone(),
                source,
            })?;
        Ok(Box::new(ArtifactWriter {
            objects: self.objects.clone(),
            artifact,
            encoder,
        }))
    }

    fn backups(&self, target: &str) -> Result<(Vec<Manifest>, Vec<String>), StoreError> {
        list_backups(self.objects.as_ref(), target)
    }

    fn read(&self, m: &Manifest) -> Result<Box<dyn Read + Send>, StoreError> {
        let raw = self.objects.open(&m.artifact)?;
        let stored = Arc::new(Mutex::new((0u64, Sha256::new())));
        // Fetching runs ahead on its own thread, beside decompression and hashing.
        let counted = StoredBytes {
            inner: ReadAhead::new(raw),
            seen: stored.clone(),
        };
        let decoder =
            zstd::stream::read::Decoder::new(counted).map_err(|source| StoreError::Io {
                store: self.describe(),
                action: "starting decompression of",
                key: m.artifact.clone(),
                source,
            })?;
        Ok(Box::new(CheckedContent {
            decoder,
            stored,
            expect_bytes: m.size_bytes,
            expect_sha256: m.sha256.clone(),
            checked: false,
        }))
    }

    fn remove(&self, m: &Manifest) -> Result<(), StoreError> {
        // The manifest first: a prune cut short leaves an orphan artifact, never a
        // listed backup without its data.
        self.objects.delete(&Manifest::key(&m.target, &m.id))?;
        self.objects.delete(&m.artifact)
    }

    fn clean_leftovers(&self, target: &str) -> Result<usize, StoreError> {
        let partial = self.objects.sweep_incomplete(&format!("{target}/"))?;
        let orphans = orphan_artifacts(self.objects.as_ref(), target)?;
        for key in &orphans {
            self.objects.delete(key)?;
        }
        Ok(partial + orphans.len())
    }

    fn discover(&self) -> Result<Discovered, StoreError> {
        self.objects.discover()
    }

    fn count(&self) -> Result<usize, StoreError> {
        let objects = self.objects.list("")?;
        Ok(objects
            .iter()
            .filter(|o| o.key.ends_with(super::manifest::MANIFEST_SUFFIX))
            .count())
    }
}

/// The pending artifact: content in, zstd and the stored bytes' hash on the way out.
struct ArtifactWriter {
    objects: Arc<dyn Store>,
    artifact: String,
    encoder: zstd::stream::write::Encoder<'static, HashWriter<Box<dyn ObjectWriter>>>,
}

impl Write for ArtifactWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encoder.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

impl BackupWriter for ArtifactWriter {
    fn publish(
        self: Box<Self>,
        mut manifest: Manifest,
        _ctx: &JobContext,
    ) -> Result<Manifest, StoreError> {
        let ArtifactWriter {
            objects,
            artifact,
            encoder,
        } = *self;
        let io_err = |source| StoreError::Io {
            store: objects.describe(),
            action: "writing",
            key: artifact.clone(),
            source,
        };
        let stored = encoder.finish().map_err(io_err)?;
        let (mut writer, size_bytes, sha256) = stored.finish();
        writer.flush().map_err(io_err)?;
        ObjectWriter::commit(writer)?;
        manifest.artifact = artifact.clone();
        manifest.compression = "zstd".into();
        manifest.size_bytes = size_bytes;
        manifest.sha256 = sha256;
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        if let Err(e) = objects.put_bytes(&Manifest::key(&manifest.target, &manifest.id), &json) {
            // Without its manifest the artifact is not a backup: do not leave it behind.
            let _ = objects.delete(&artifact);
            return Err(e);
        }
        Ok(manifest)
    }
}

/// Counts and hashes the stored (compressed) bytes as the decoder pulls them.
struct StoredBytes<R> {
    inner: R,
    seen: Arc<Mutex<(u64, Sha256)>>,
}

impl<R: Read> Read for StoredBytes<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut seen = self.seen.lock().unwrap();
        seen.0 += n as u64;
        seen.1.update(&buf[..n]);
        Ok(n)
    }
}

/// Decompressed content whose end (or failure) checks the stored bytes against the
/// manifest: a flipped byte is named as a stored-bytes mismatch, not as whatever the
/// decoder happened to trip over.
struct CheckedContent<R: Read> {
    decoder: zstd::stream::read::Decoder<'static, io::BufReader<StoredBytes<R>>>,
    stored: Arc<Mutex<(u64, Sha256)>>,
    expect_bytes: u64,
    expect_sha256: String,
    checked: bool,
}

impl<R: Read> CheckedContent<R> {
    /// Read the rest of the stored bytes and compare them with the manifest.
    fn check_stored(&mut self) -> io::Result<()> {
        self.checked = true;
        io::copy(self.decoder.get_mut(), &mut io::sink())?;
        let (bytes, sha) = {
            let seen = self.stored.lock().unwrap();
            (seen.0, hex::encode(seen.1.clone().finalize()))
        };
        if bytes != self.expect_bytes || sha != self.expect_sha256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "stored bytes differ from the manifest: {bytes} bytes with SHA-256 {}…, expected {} bytes with {}…",
                    &sha[..12],
                    self.expect_bytes,
                    &self.expect_sha256[..12.min(self.expect_sha256.len())]
                ),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for CheckedContent<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.decoder.read(buf) {
            Ok(0) if !buf.is_empty() && !self.checked => self.check_stored().map(|()| 0),
            Ok(n) => Ok(n),
            Err(e) if crate::progress::is_cancellation(&e) || self.checked => Err(e),
            Err(e) => Err(self.check_stored().err().unwrap_or(e)),
        }
    }
}
