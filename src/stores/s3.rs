//! A store in an S3 bucket (or any S3-compatible server): streaming multipart uploads with
//! bounded memory, ranged downloads with read-ahead, and errors that name bucket and key.
//!
//! The `Store` trait is synchronous (actions run on blocking threads); the store owns a
//! small tokio runtime of its own and blocks on it only from those threads.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockMode,
    ServerSideEncryption,
};
use bytes::{Buf, Bytes};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{ObjectInfo, ObjectWriter, Store, StoreError, check_key};
use crate::config::StoreConfig;

/// Size of the first 1000 parts; every further 1000 parts double it, so the 10 000-part
/// limit of S3 is never reached (8 MiB × 1000 + 16 MiB × 1000 + ... > 8 TiB).
const PART_SIZE: usize = 8 << 20;
/// Parts uploaded at once. Memory bound of a write: (1 + this) × part size.
const PARTS_IN_FLIGHT: usize = 4;
/// Ranged GETs of this size, this many ahead of the reader.
const READ_CHUNK: u64 = 8 << 20;
const READS_AHEAD: usize = 4;
/// The body of a ranged GET can break after its headers (outside the SDK's retries).
const BODY_ATTEMPTS: u32 = 3;

/// Encryption and retention applied to every object written.
#[derive(Debug, Clone, Default)]
struct WriteSettings {
    sse: Option<ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
    lock: Option<(ObjectLockMode, u32)>,
}

/// What the writer, the reader and their background tasks share.
struct Shared {
    client: Client,
    bucket: String,
    prefix: String,
    describe: String,
    settings: WriteSettings,
}

pub struct S3Store {
    shared: Arc<Shared>,
    handle: Handle,
    /// Kept to stop the runtime's threads when the store goes; `Option` so that `Drop`
    /// can shut it down without blocking (dropping a runtime may happen on any thread).
    runtime: Option<Runtime>,
}

impl S3Store {
    /// Build the client from the config section and the standard AWS credential chain.
    /// Nothing is sent to the server here.
    pub fn new(name: &str, cfg: &StoreConfig) -> Result<S3Store, StoreError> {
        let bucket = cfg
            .bucket
            .clone()
            .ok_or_else(|| StoreError::Other(format!("stores.{name}: no bucket")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lifeboat-s3")
            .enable_all()
            .build()
            .map_err(|e| {
                StoreError::Other(format!("stores.{name}: starting the S3 runtime: {e}"))
            })?;
        let handle = runtime.handle().clone();
        let client = block(&handle, client_for(cfg.clone()));
        let describe = format!("s3 store {name:?} (s3://{bucket}/{})", cfg.prefix);
        let settings = WriteSettings {
            sse: cfg.sse.as_deref().map(ServerSideEncryption::from),
            sse_kms_key_id: cfg.sse_kms_key_id.clone(),
            lock: cfg
                .object_lock_mode
                .as_deref()
                .map(ObjectLockMode::from)
                .zip(cfg.object_lock_days),
        };
        Ok(S3Store {
            shared: Arc::new(Shared {
                client,
                bucket,
                prefix: cfg.prefix.clone(),
                describe,
                settings,
            }),
            handle,
            runtime: Some(runtime),
        })
    }
}

impl Drop for S3Store {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn client_for(cfg: StoreConfig) -> Client {
    let region = RegionProviderChain::first_try(cfg.region.map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static("us-east-1"));
    // Standard retries (throttling, 5xx, broken connections) with exponential backoff.
    let retry = RetryConfig::standard()
        .with_max_attempts(5)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(10));
    // A connection that stalls must fail (and be retried) rather than hang the job.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(endpoint) = &cfg.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared);
    if cfg.endpoint.is_some() {
        // S3-compatible servers rarely resolve bucket names as host names.
        builder = builder.force_path_style(true);
    }
    Client::from_conf(builder.build())
}

/// Run a future on the store's runtime from a blocking thread. Called from inside some
/// other runtime by mistake, it waits on a scoped thread instead of panicking.
fn block<F>(handle: &Handle, fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| handle.block_on(fut))
                .join()
                .expect("S3 call panicked")
        })
    } else {
        handle.block_on(fut)
    }
}

impl Shared {
    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    /// Turn an SDK error into a message that says what was tried on which object, and
    /// what to do about the usual causes.
    fn error<E>(&self, action: &str, key: &str, err: SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let url = self.url(key);
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().unwrap_or_default().to_string();
        let message = err.message().unwrap_or_default().to_string();
        let detail = if code.is_empty() {
            DisplayErrorContext(&err).to_string()
        } else {
            format!("{code}: {message}")
        };
        let text = match (code.as_str(), status) {
            ("NoSuchBucket", _) => format!(
                "{}: the bucket {:?} does not exist (check `bucket`, `region` and `endpoint`)",
                self.describe, self.bucket
            ),
            ("NoSuchKey", _) | ("NotFound", _) | (_, Some(404)) if !key.is_empty() => {
                return StoreError::NotFound {
                    store: self.describe.clone(),
                    key: key.into(),
                };
            }
            (
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken"
                | "AllAccessDisabled",
                _,
            )
            | (_, Some(401 | 403)) => format!(
                "{}: access denied {action} {url} ({detail}); check the AWS credentials and the bucket's policy",
                self.describe
            ),
            _ if status.is_none() && is_credentials_problem(&err) => format!(
                "{}: no usable AWS credentials {action} {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the host an instance role ({})",
                self.describe,
                DisplayErrorContext(&err)
            ),
            _ if status.is_none() => format!(
                "{}: {action} {url} failed after retries: {}",
                self.describe,
                DisplayErrorContext(&err)
            ),
            _ => format!("{}: {action} {url} failed: {detail}", self.describe),
        };
        StoreError::Other(text)
    }

    fn put_request(&self, key: &str, body: Bytes) -> impl Future<Output = Result<(), StoreError>> {
        let s = &self.settings;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(body))
            .set_server_side_encryption(s.sse.clone())
            .set_ssekms_key_id(s.sse_kms_key_id.clone())
            .set_object_lock_mode(s.lock.as_ref().map(|(m, _)| m.clone()))
            .set_object_lock_retain_until_date(s.lock.as_ref().map(|(_, d)| retain_until(*d)));
        async move {
            req.send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("writing", key, e))
        }
    }
}

fn is_credentials_problem<E: std::error::Error + 'static>(err: &SdkError<E>) -> bool {
    let text = DisplayErrorContext(err).to_string().to_lowercase();
    text.contains("credential")
}

/// The retain-until date of an object written now.
fn retain_until(days: u32) -> DateTime {
    let until = chrono::Utc::now() + chrono::Duration::days(days.into());
    DateTime::from_secs(until.timestamp())
}

fn part_size(part_number: i32) -> usize {
    PART_SIZE << ((part_number.max(1) - 1) / 1000).min(10)
}

/// An open multipart upload and its parts in flight.
struct Upload {
    id: String,
    next_part: i32,
    slots: Arc<Semaphore>,
    tasks: Vec<JoinHandle<()>>,
    done: Arc<Mutex<Vec<CompletedPart>>>,
    failed: Arc<Mutex<Option<StoreError>>>,
}

struct S3Writer {
    shared: Arc<Shared>,
    handle: Handle,
    key: String,
    buf: Vec<u8>,
    upload: Option<Upload>,
    finished: bool,
}

impl S3Writer {
    fn limit(&self) -> usize {
        part_size(self.upload.as_ref().map_or(1, |u| u.next_part))
    }

    /// Start the multipart upload on the first full part.
    fn start_upload(&mut self) -> Result<(), StoreError> {
        let s = &self.shared.settings;
        let req = self
            .shared
            .client
            .create_multipart_upload()
            .bucket(&self.shared.bucket)
            .key(self.shared.full_key(&self.key))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .set_server_side_encryption(s.sse.clone())
            .set_ssekms_key_id(s.sse_kms_key_id.clone())
            .set_object_lock_mode(s.lock.as_ref().map(|(m, _)| m.clone()))
            .set_object_lock_retain_until_date(s.lock.as_ref().map(|(_, d)| retain_until(*d)));
        let out = block(&self.handle, req.send())
            .map_err(|e| self.shared.error("starting the upload of", &self.key, e))?;
        let id = out.upload_id().unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(StoreError::Other(format!(
                "{}: the server returned no upload id for {}",
                self.shared.describe,
                self.shared.url(&self.key)
            )));
        }
        self.upload = Some(Upload {
            id,
            next_part: 1,
            slots: Arc::new(Semaphore::new(PARTS_IN_FLIGHT)),
            tasks: Vec::new(),
            done: Arc::new(Mutex::new(Vec::new())),
            failed: Arc::new(Mutex::new(None)),
        });
        Ok(())
    }

    /// Hand the buffered bytes to a background upload, waiting while all slots are busy.
    fn send_part(&mut self) -> Result<(), StoreError> {
        if self.upload.is_none() {
            self.start_upload()?;
        }
        let next_limit = part_size(self.upload.as_ref().map_or(1, |u| u.next_part + 1));
        let body = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(next_limit),
        ));
        let upload = self.upload.as_mut().expect("started above");
        if let Some(e) = upload.failed.lock().unwrap().take() {
            return Err(e);
        }
        let permit = block(&self.handle, upload.slots.clone().acquire_owned())
            .expect("the semaphore is never closed");
        let number = upload.next_part;
        upload.next_part += 1;
        let req = self
            .shared
            .client
            .upload_part()
            .bucket(&self.shared.bucket)
            .key(self.shared.full_key(&self.key))
            .upload_id(&upload.id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body));
        let (shared, key) = (self.shared.clone(), self.key.clone());
        let (done, failed) = (upload.done.clone(), upload.failed.clone());
        upload.tasks.push(self.handle.spawn(async move {
            let _permit = permit;
            match req.send().await {
                Ok(out) => done.lock().unwrap().push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                        .build(),
                ),
                Err(e) => {
                    let what = format!("uploading part {number} of");
                    let err = shared.error(&what, &key, e);
                    failed.lock().unwrap().get_or_insert(err);
                }
            }
        }));
        Ok(())
    }

    fn finish_upload(&mut self) -> Result<(), StoreError> {
        if !self.buf.is_empty() {
            self.send_part()?;
        }
        let upload = self.upload.as_mut().expect("multipart upload started");
        for task in upload.tasks.drain(..) {
            let _ = block(&self.handle, task);
        }
        if let Some(e) = upload.failed.lock().unwrap().take() {
            return Err(e);
        }
        let mut parts = std::mem::take(&mut *upload.done.lock().unwrap());
        parts.sort_by_key(|p| p.part_number());
        let req = self
            .shared
            .client
            .complete_multipart_upload()
            .bucket(&self.shared.bucket)
            .key(self.shared.full_key(&self.key))
            .upload_id(&upload.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        block(&self.handle, req.send())
            .map(|_| ())
            .map_err(|e| self.shared.error("completing the upload of", &self.key, e))
    }
}

impl Write for S3Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.limit() - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= self.limit() {
            self.send_part().map_err(io::Error::other)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // parts go out when full; commit sends the rest
    }
}

impl ObjectWriter for S3Writer {
    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if self.upload.is_none() {
            // Small objects (manifests) go in one request.
            let body = Bytes::from(std::mem::take(&mut self.buf));
            block(&self.handle, self.shared.put_request(&self.key, body))?;
        } else {
            self.finish_upload()?;
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(upload) = self.upload.take() else {
            return; // nothing was sent
        };
        // Not committed: stop the parts in flight and abort, so no parts stay billed.
        for task in &upload.tasks {
            task.abort();
        }
        let req = self
            .shared
            .client
            .abort_multipart_upload()
            .bucket(&self.shared.bucket)
            .key(self.shared.full_key(&self.key))
            .upload_id(&upload.id);
        if let Err(e) = block(&self.handle, req.send()) {
            let e = self.shared.error("aborting the upload of", &self.key, e);
            tracing::warn!("{e}; the next backup of this target removes the incomplete upload");
        }
    }
}

/// Reads an object by ranged GETs, a few chunks ahead of the caller.
struct S3Reader {
    shared: Arc<Shared>,
    handle: Handle,
    key: String,
    etag: Option<String>,
    size: u64,
    next: u64,
    ahead: VecDeque<JoinHandle<Result<Bytes, StoreError>>>,
    current: Bytes,
}

impl S3Reader {
    fn fill(&mut self) {
        while self.ahead.len() < READS_AHEAD && self.next < self.size {
            let start = self.next;
            let end = (start + READ_CHUNK).min(self.size);
            self.next = end;
            let (shared, key, etag) = (self.shared.clone(), self.key.clone(), self.etag.clone());
            self.ahead.push_back(
                self.handle
                    .spawn(async move { fetch_range(&shared, &key, etag, start, end).await }),
            );
        }
    }
}

async fn fetch_range(
    shared: &Shared,
    key: &str,
    etag: Option<String>,
    start: u64,
    end: u64,
) -> Result<Bytes, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = shared
            .client
            .get_object()
            .bucket(&shared.bucket)
            .key(shared.full_key(key))
            .range(format!("bytes={start}-{}", end - 1))
            // The object must not change under a reader that is half way through it.
            .set_if_match(etag.clone())
            .send()
            .await
            .map_err(|e| shared.error("reading", key, e))?;
        match out.body.collect().await {
            Ok(data) if data.remaining() as u64 == end - start => return Ok(data.into_bytes()),
            Ok(data) => {
                return Err(StoreError::Other(format!(
                    "{}: reading {}: asked for {} bytes at {start}, got {}",
                    shared.describe,
                    shared.url(key),
                    end - start,
                    data.remaining()
                )));
            }
            Err(e) if attempt < BODY_ATTEMPTS => {
                tracing::warn!(
                    "{}: reading {} broke off ({e}); retrying",
                    shared.describe,
                    shared.url(key)
                );
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => {
                return Err(StoreError::Other(format!(
                    "{}: reading {}: the download broke off: {e}",
                    shared.describe,
                    shared.url(key)
                )));
            }
        }
    }
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.current.has_remaining() {
            self.fill();
            let Some(task) = self.ahead.pop_front() else {
                return Ok(0);
            };
            self.current = block(&self.handle, task)
                .map_err(io::Error::other)?
                .map_err(io::Error::other)?;
            self.fill();
        }
        let n = buf.len().min(self.current.remaining());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

impl Drop for S3Reader {
    fn drop(&mut self) {
        for task in &self.ahead {
            task.abort();
        }
    }
}

impl Store for S3Store {
    fn describe(&self) -> String {
        self.shared.describe.clone()
    }

    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError> {
        check_key(key)?;
        Ok(Box::new(S3Writer {
            shared: self.shared.clone(),
            handle: self.handle.clone(),
            key: key.into(),
            buf: Vec::new(),
            upload: None,
            finished: false,
        }))
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        check_key(key)?;
        let s = &self.shared;
        let req = s
            .client
            .head_object()
            .bucket(&s.bucket)
            .key(s.full_key(key));
        let head = match block(&self.handle, req.send()) {
            Ok(h) => h,
            Err(e) => {
                let err = s.error("opening", key, e);
                // A HEAD has no error body: a 404 may also mean the bucket is missing.
                if err.is_not_found() {
                    self.check_bucket()?;
                }
                return Err(err);
            }
        };
        Ok(Box::new(S3Reader {
            shared: s.clone(),
            handle: self.handle.clone(),
            key: key.into(),
            etag: head.e_tag().map(str::to_string),
            size: head.content_length().unwrap_or(0).max(0) as u64,
            next: 0,
            ahead: VecDeque::new(),
            current: Bytes::new(),
        }))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let s = &self.shared;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = s
                .client
                .list_objects_v2()
                .bucket(&s.bucket)
                .prefix(s.full_key(prefix))
                .set_continuation_token(token.take());
            let page =
                block(&self.handle, req.send()).map_err(|e| s.error("listing", prefix, e))?;
            for obj in page.contents() {
                let Some(key) = obj.key().and_then(|k| k.strip_prefix(&s.prefix)) else {
                    continue;
                };
                out.push(ObjectInfo {
                    key: key.to_string(),
                    size: obj.size().unwrap_or(0).max(0) as u64,
                });
            }
            token = page.next_continuation_token().map(str::to_string);
            if !page.is_truncated().unwrap_or(false) || token.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let s = &self.shared;
        let req = s
            .client
            .delete_object()
            .bucket(&s.bucket)
            .key(s.full_key(key));
        match block(&self.handle, req.send()) {
            Ok(_) => Ok(()),
            Err(e) => match s.error("deleting", key, e) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    fn sweep_incomplete(&self, prefix: &str) -> Result<usize, StoreError> {
        let s = &self.shared;
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let req = s
                .client
                .list_multipart_uploads()
                .bucket(&s.bucket)
                .prefix(s.full_key(prefix))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take());
            let page = block(&self.handle, req.send())
                .map_err(|e| s.error("listing incomplete uploads under", prefix, e))?;
            for u in page.uploads() {
                if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                    uploads.push((k.to_string(), id.to_string()));
                }
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if !page.is_truncated().unwrap_or(false) || key_marker.is_none() {
                break;
            }
        }
        for (key, id) in &uploads {
            let req = s
                .client
                .abort_multipart_upload()
                .bucket(&s.bucket)
                .key(key)
                .upload_id(id);
            block(&self.handle, req.send()).map_err(|e| {
                let short = key.strip_prefix(&s.prefix).unwrap_or(key);
                s.error("aborting the incomplete upload of", short, e)
            })?;
        }
        Ok(uploads.len())
    }
}

impl S3Store {
    /// Tell a missing bucket from a missing object.
    fn check_bucket(&self) -> Result<(), StoreError> {
        let s = &self.shared;
        let req = s.client.head_bucket().bucket(&s.bucket);
        match block(&self.handle, req.send()) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                Err(StoreError::Other(format!(
                    "{}: the bucket {:?} does not exist (check `bucket`, `region` and `endpoint`)",
                    s.describe, s.bucket
                )))
            }
            Err(e) => Err(s.error("checking the bucket of", "", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_grow_so_ten_thousand_parts_are_never_needed() {
        assert_eq!(part_size(1), 8 << 20);
        assert_eq!(part_size(1000), 8 << 20);
        assert_eq!(part_size(1001), 16 << 20);
        let total: u64 = (1..=10_000).map(|n| part_size(n) as u64).sum();
        assert!(total > 5 << 40, "{total}");
    }

    #[test]
    fn building_the_store_sends_nothing() {
        let cfg = StoreConfig {
            kind: crate::config::StoreKind::S3,
            path: None,
            bucket: Some("b".into()),
            prefix: "p/".into(),
            region: None,
            endpoint: Some("http://127.0.0.1:9".into()),
            sse: None,
            sse_kms_key_id: None,
            object_lock_mode: None,
            object_lock_days: None,
            compression_level: None,
        };
        let store = S3Store::new("off", &cfg).unwrap();
        assert_eq!(store.describe(), "s3 store \"off\" (s3://b/p/)");
        assert_eq!(store.shared.url("t/x"), "s3://b/p/t/x");
    }
}
