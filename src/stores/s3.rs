//! A store in an S3 bucket (or any S3-compatible server): streaming multipart uploads with
//! bounded memory, ranged downloads with read-ahead, and errors that name bucket and key.
//!
//! The `Store` trait is synchronous (actions run on blocking threads); the store owns a
//! small tokio runtime of its own. Requests run on that runtime; the data paths hand
//! bytes between it and the caller's thread through std channels and a condition
//! variable, so streaming never needs `block_on` (which, on a thread inside a runtime
//! context such as a job thread of `serve`, costs a thread per call).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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
use bytes::{Buf, Bytes, BytesMut};
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

use super::{ObjectInfo, ObjectWriter, Store, StoreError, check_key};
use crate::config::StoreConfig;

/// Size of the first 1000 parts; every further 1000 parts double it, so the 10 000-part
/// limit of S3 is never reached (8 MiB × 1000 + 16 MiB × 1000 + ... > 8 TiB). Parts are
/// the unit of retry and each one is held in memory until the server has it, so they are
/// kept near S3's 5 MiB minimum; at this size what a server spends on a request is small
/// beside what it spends on the part's bytes, so bigger parts would save little.
const PART_SIZE: usize = 8 << 20;
/// Bytes of parts being uploaded at once, besides the part being filled: 4 parts of 8 MiB
/// (enough connections to keep up with compression on S3, where one connection carries
/// well under what zstd produces), fewer as parts grow, never less than one. A write
/// holds at most this plus one part (two parts, once a part is bigger than this).
const UPLOAD_BYTES_IN_FLIGHT: usize = 32 << 20;
/// A download asks for ranges of this size first, with as many in flight as fit in
/// `READ_AHEAD_BYTES` (4): several connections, each of which S3 serves at a fraction of
/// what a restore can take in.
const FIRST_RANGE: u64 = 16 << 20;
/// When a range waited longer for its first byte than it then took to arrive, requests
/// cost the server more than bytes do (S3 answers in tens of milliseconds and a range
/// takes hundreds; a server that reads or assembles the whole object for every range
/// takes longer the bigger the object): later ranges double, up to this size, so the
/// object is read in fewer of them within the same memory.
const MAX_RANGE: u64 = 32 << 20;
/// Bytes asked for and not yet read by the caller: the memory bound of a reader.
const READ_AHEAD_BYTES: u64 = 64 << 20;
// However big ranges grow, two of them fit in the read-ahead, so one is always on its way
// while the caller reads the other.
const _: () = assert!(FIRST_RANGE <= MAX_RANGE && 2 * MAX_RANGE <= READ_AHEAD_BYTES);
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
    /// Whether uploads carry the SHA-256 of their bytes in the request signature (see
    /// [`payload_needs_signature`]).
    sign_payload: bool,
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
                sign_payload: payload_needs_signature(cfg.endpoint.as_deref()),
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

/// Whether a request body must be covered by the SigV4 signature (a SHA-256 of every
/// uploaded byte, on top of the backup's own). Over HTTPS, TLS already keeps the bytes
/// from being changed on the way, and each part still carries a CRC32 in a signed header
/// that S3 checks on arrival, so the hash is skipped there, as the AWS CLI does: about
/// a sixth of an upload's CPU. Over plain HTTP (an S3-compatible server on a LAN) nothing
/// else protects the body, so it stays signed. No endpoint means AWS itself: HTTPS.
fn payload_needs_signature(endpoint: Option<&str>) -> bool {
    endpoint.is_some_and(|url| {
        !url.get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    })
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
        // Only a connection that never got an answer can have failed on the certificate.
        let untrusted = status
            .is_none()
            .then(|| untrusted_certificate(&err))
            .flatten();
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
            _ if let Some(reason) = untrusted.as_deref() => format!(
                "{}: {action} {url}: the server's TLS certificate is not trusted ({reason}); if the endpoint uses a private certificate authority, add it to the system's trusted certificates or point SSL_CERT_FILE at a PEM bundle that includes it",
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
        let sign = self.sign_payload;
        async move {
            let sent = if sign {
                req.send().await
            } else {
                req.customize().disable_payload_signing().send().await
            };
            sent.map(|_| ()).map_err(|e| self.error("writing", key, e))
        }
    }
}

/// The TLS library's reason when the connection failed because the server's certificate
/// was refused (unknown issuer, expired, wrong name), e.g. "invalid peer certificate:
/// UnknownIssuer". The reason is only reachable as text through the SDK's error layers.
fn untrusted_certificate<E: std::error::Error + 'static>(err: &SdkError<E>) -> Option<String> {
    let text = DisplayErrorContext(err).to_string();
    let start = text.find("invalid peer certificate")?;
    let reason = &text[start..];
    Some(reason[..reason.find(" (").unwrap_or(reason.len())].to_string())
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

/// The bytes of parts in flight, and buffers of finished parts kept for the next ones
/// (reusing them spares the kernel zeroing and mapping fresh pages for every part).
struct Flight {
    state: Mutex<FlightState>,
    changed: Condvar,
}

struct FlightState {
    bytes: usize,
    spare: Vec<BytesMut>,
}

impl Flight {
    fn new() -> Flight {
        Flight {
            state: Mutex::new(FlightState {
                bytes: 0,
                spare: Vec::new(),
            }),
            changed: Condvar::new(),
        }
    }

    /// Wait until `len` more bytes may go out, and count them.
    fn reserve(&self, len: usize) {
        let mut state = self.state.lock().unwrap();
        while state.bytes > 0 && state.bytes + len > UPLOAD_BYTES_IN_FLIGHT {
            state = self.changed.wait(state).unwrap();
        }
        state.bytes += len;
    }

    /// A buffer for the next part: a spare one if there is one big enough.
    fn buffer(&self, capacity: usize) -> BytesMut {
        let mut state = self.state.lock().unwrap();
        state.spare.retain(|b| b.capacity() >= capacity);
        state
            .spare
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(capacity))
    }
}

/// Counts a part's bytes as in flight until dropped (also when its task is aborted), then
/// keeps its buffer if nothing else holds it any more.
struct InFlight {
    flight: Arc<Flight>,
    len: usize,
    body: Option<Bytes>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let spare = self.body.take().and_then(|b| b.try_into_mut().ok());
        let mut state = self.flight.state.lock().unwrap();
        state.bytes -= self.len;
        if let Some(mut buf) = spare {
            buf.clear();
            state.spare.push(buf);
        }
        self.flight.changed.notify_all();
    }
}

/// An open multipart upload and its parts in flight.
struct Upload {
    id: String,
    next_part: i32,
    flight: Arc<Flight>,
    tasks: Vec<JoinHandle<()>>,
    done: Arc<Mutex<Vec<CompletedPart>>>,
    failed: Arc<Mutex<Option<StoreError>>>,
}

struct S3Writer {
    shared: Arc<Shared>,
    handle: Handle,
    key: String,
    buf: BytesMut,
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
            flight: Arc::new(Flight::new()),
            tasks: Vec::new(),
            done: Arc::new(Mutex::new(Vec::new())),
            failed: Arc::new(Mutex::new(None)),
        });
        Ok(())
    }

    /// Hand the buffered bytes to a background upload, waiting while too many bytes are
    /// in flight. The next buffer is taken only then, so a write never holds more than
    /// `UPLOAD_BYTES_IN_FLIGHT` plus one part.
    fn send_part(&mut self) -> Result<(), StoreError> {
        if self.upload.is_none() {
            self.start_upload()?;
        }
        let upload = self.upload.as_mut().expect("started above");
        if let Some(e) = upload.failed.lock().unwrap().take() {
            return Err(e);
        }
        let len = self.buf.len();
        upload.flight.reserve(len);
        let number = upload.next_part;
        upload.next_part += 1;
        let next = upload.flight.buffer(part_size(upload.next_part));
        let body = std::mem::replace(&mut self.buf, next).freeze();
        let in_flight = InFlight {
            flight: upload.flight.clone(),
            len,
            body: Some(body.clone()),
        };
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
        let sign = self.shared.sign_payload;
        upload.tasks.push(self.handle.spawn(async move {
            let result = if sign {
                req.send().await
            } else {
                req.customize().disable_payload_signing().send().await
            };
            match result {
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
            drop(in_flight);
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
        let limit = self.limit();
        if self.buf.capacity() < limit {
            self.buf.reserve(limit - self.buf.len());
        }
        let n = (limit - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= limit {
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
            let body = std::mem::take(&mut self.buf).freeze();
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

/// Reads an object by ranged GETs, a few ranges ahead of the caller. Each range streams
/// into memory as the server sends it, so the caller starts on a range at its first bytes.
struct S3Reader {
    shared: Arc<Shared>,
    handle: Handle,
    key: String,
    etag: Option<String>,
    size: u64,
    /// Where the next range to ask for starts.
    next: u64,
    /// Bytes taken off the ranges so far.
    taken: u64,
    /// The size of the next range to ask for.
    range_size: u64,
    /// Ranges asked for and not yet read to their end, in order.
    ahead: VecDeque<Range>,
    current: Bytes,
    /// An error met after some bytes of a read; returned by the next one.
    failed: Option<io::Error>,
}

/// One ranged GET: its bytes arrive on `rx` as the server sends them.
struct Range {
    start: u64,
    len: u64,
    got: u64,
    rx: std_mpsc::Receiver<Piece>,
    task: JoinHandle<()>,
}

enum Piece {
    Bytes(Bytes),
    /// The whole range arrived: how long its first byte took after the request, and the
    /// rest after that.
    Done {
        first_byte: Duration,
        transfer: Duration,
    },
    Failed(StoreError),
}

impl S3Reader {
    /// Ask for more ranges while they fit in `READ_AHEAD_BYTES` (at least one).
    fn fill(&mut self) {
        while self.next < self.size {
            let len = self.range_size.min(self.size - self.next);
            let unread = self.next - self.taken;
            if !self.ahead.is_empty() && unread + len > READ_AHEAD_BYTES {
                break;
            }
            let start = self.next;
            self.next += len;
            let (tx, rx) = std_mpsc::channel();
            let (shared, key, etag) = (self.shared.clone(), self.key.clone(), self.etag.clone());
            let task = self.handle.spawn(async move {
                let last = stream_range(&shared, &key, etag, start, start + len, &tx).await;
                let _ = tx.send(last);
            });
            self.ahead.push_back(Range {
                start,
                len,
                got: 0,
                rx,
                task,
            });
        }
    }

    /// The next piece of the object, waiting for it only when `wait` is set; `None` at the
    /// end (or, without `wait`, when nothing has arrived yet).
    fn next_piece(&mut self, wait: bool) -> io::Result<Option<Bytes>> {
        loop {
            self.fill();
            let Some(range) = self.ahead.front_mut() else {
                return Ok(None);
            };
            let piece = match range.rx.try_recv() {
                Ok(piece) => Some(piece),
                Err(std_mpsc::TryRecvError::Empty) if !wait => return Ok(None),
                Err(std_mpsc::TryRecvError::Empty) => range.rx.recv().ok(),
                Err(std_mpsc::TryRecvError::Disconnected) => None,
            };
            match piece {
                Some(Piece::Bytes(bytes)) => {
                    range.got += bytes.len() as u64;
                    self.taken += bytes.len() as u64;
                    return Ok(Some(bytes));
                }
                Some(Piece::Done {
                    first_byte,
                    transfer,
                }) if range.got == range.len => {
                    self.range_size = next_range_size(self.range_size, first_byte, transfer);
                    self.ahead.pop_front();
                }
                Some(Piece::Failed(e)) => return Err(io::Error::other(e)),
                // Ended without all its bytes and without saying why (the task panicked).
                Some(Piece::Done { .. }) | None => {
                    let e = short_read(&self.shared, &self.key, range.start, range.len, range.got);
                    return Err(io::Error::other(e));
                }
            }
        }
    }
}

/// The size of the ranges to ask for after one that waited `first_byte` for its first
/// byte and took `transfer` for the rest: twice as big (up to `MAX_RANGE`) when the wait
/// was the longer of the two.
fn next_range_size(size: u64, first_byte: Duration, transfer: Duration) -> u64 {
    if first_byte > transfer {
        (size * 2).min(MAX_RANGE).max(size)
    } else {
        size
    }
}

fn short_read(shared: &Shared, key: &str, start: u64, len: u64, got: u64) -> StoreError {
    StoreError::Other(format!(
        "{}: reading {}: asked for {len} bytes at {start}, got {got}",
        shared.describe,
        shared.url(key)
    ))
}

/// GET bytes `start..end` of the object and pass them on as they arrive. A body that
/// breaks off after its headers (outside the SDK's retries) is asked for again from where
/// it stopped, with the same ETag, so nothing is missed or passed on twice.
async fn stream_range(
    shared: &Shared,
    key: &str,
    etag: Option<String>,
    start: u64,
    end: u64,
    tx: &std_mpsc::Sender<Piece>,
) -> Piece {
    let mut pos = start;
    let mut attempt = 0;
    'attempts: loop {
        attempt += 1;
        let asked = Instant::now();
        let sent = shared
            .client
            .get_object()
            .bucket(&shared.bucket)
            .key(shared.full_key(key))
            .range(format!("bytes={pos}-{}", end - 1))
            // The object must not change under a reader that is half way through it.
            .set_if_match(etag.clone())
            .send()
            .await;
        let mut body = match sent {
            Ok(out) => out.body,
            Err(e) => return Piece::Failed(shared.error("reading", key, e)),
        };
        let answered = Instant::now();
        loop {
            match body.next().await {
                Some(Ok(bytes)) if pos + bytes.len() as u64 <= end => {
                    pos += bytes.len() as u64;
                    if tx.send(Piece::Bytes(bytes)).is_err() {
                        // The reader is gone; nobody reads what this returns.
                        return Piece::Failed(StoreError::Other("reader dropped".into()));
                    }
                }
                Some(Ok(bytes)) => {
                    let got = pos + bytes.len() as u64 - start;
                    return Piece::Failed(short_read(shared, key, start, end - start, got));
                }
                None if pos == end => {
                    return Piece::Done {
                        first_byte: answered - asked,
                        transfer: answered.elapsed(),
                    };
                }
                None => {
                    return Piece::Failed(short_read(shared, key, start, end - start, pos - start));
                }
                Some(Err(e)) if attempt < BODY_ATTEMPTS => {
                    tracing::warn!(
                        "{}: reading {} broke off ({e}); retrying",
                        shared.describe,
                        shared.url(key)
                    );
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    continue 'attempts;
                }
                Some(Err(e)) => {
                    return Piece::Failed(StoreError::Other(format!(
                        "{}: reading {}: the download broke off: {e}",
                        shared.describe,
                        shared.url(key)
                    )));
                }
            }
        }
    }
}

impl Read for S3Reader {
    /// Fills `buf` from what has arrived, waiting only for its first bytes.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut n = 0;
        while n < buf.len() {
            if !self.current.has_remaining() {
                match self.next_piece(n == 0) {
                    Ok(Some(piece)) => self.current = piece,
                    Ok(None) => break,
                    Err(e) if n == 0 => return Err(e),
                    // The bytes already in `buf` are returned; the error comes next time.
                    Err(e) => {
                        self.failed = Some(e);
                        break;
                    }
                }
            }
            let take = (buf.len() - n).min(self.current.remaining());
            self.current.copy_to_slice(&mut buf[n..n + take]);
            n += take;
        }
        Ok(n)
    }
}

impl Drop for S3Reader {
    fn drop(&mut self) {
        for range in &self.ahead {
            range.task.abort();
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
            buf: BytesMut::new(),
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
            taken: 0,
            range_size: FIRST_RANGE,
            ahead: VecDeque::new(),
            current: Bytes::new(),
            failed: None,
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
    fn only_plain_http_endpoints_sign_upload_bodies() {
        assert!(!payload_needs_signature(None), "AWS itself is HTTPS");
        assert!(!payload_needs_signature(Some("https://s3.example.net")));
        assert!(!payload_needs_signature(Some("HTTPS://minio.lan:9000")));
        assert!(payload_needs_signature(Some("http://127.0.0.1:9000")));
        assert!(payload_needs_signature(Some("http://https.example")));
        assert!(
            payload_needs_signature(Some("minio.lan:9000")),
            "no scheme: not known to be TLS"
        );
    }

    #[test]
    fn part_sizes_grow_so_ten_thousand_parts_are_never_needed() {
        assert_eq!(part_size(1), 8 << 20);
        assert_eq!(part_size(1000), 8 << 20);
        assert_eq!(part_size(1001), 16 << 20);
        let total: u64 = (1..=10_000).map(|n| part_size(n) as u64).sum();
        assert!(total > 5 << 40, "{total}");
    }

    #[test]
    fn ranges_grow_only_while_requests_cost_more_than_bytes() {
        let ms = Duration::from_millis;
        // S3: tens of milliseconds to the first byte, hundreds for the rest.
        assert_eq!(next_range_size(FIRST_RANGE, ms(40), ms(300)), FIRST_RANGE);
        // A server that does per-request work in proportion to the object.
        assert_eq!(
            next_range_size(FIRST_RANGE, ms(900), ms(60)),
            2 * FIRST_RANGE
        );
        assert_eq!(next_range_size(MAX_RANGE, ms(900), ms(60)), MAX_RANGE);
    }

    #[test]
    fn parts_in_flight_stay_within_their_bytes() {
        let flight = Arc::new(Flight::new());
        // Four 8 MiB parts fit; the fifth waits until one is done.
        let parts: Vec<InFlight> = (0..4)
            .map(|_| {
                flight.reserve(PART_SIZE);
                InFlight {
                    flight: flight.clone(),
                    len: PART_SIZE,
                    body: Some(Bytes::from(vec![0u8; PART_SIZE])),
                }
            })
            .collect();
        let waiter = {
            let flight = flight.clone();
            std::thread::spawn(move || flight.reserve(PART_SIZE))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "a fifth part must wait");
        drop(parts);
        waiter.join().unwrap();
        let state = flight.state.lock().unwrap();
        assert_eq!(state.bytes, PART_SIZE);
        // The finished parts' buffers are kept for the next ones, not freed and mapped again.
        assert_eq!(state.spare.len(), 4);
        assert!(
            state
                .spare
                .iter()
                .all(|b| b.capacity() >= PART_SIZE && b.is_empty())
        );
        drop(state);
        // A part bigger than the whole budget still goes, alone.
        let flight = Flight::new();
        flight.reserve(2 * UPLOAD_BYTES_IN_FLIGHT);
        assert_eq!(
            flight.state.lock().unwrap().bytes,
            2 * UPLOAD_BYTES_IN_FLIGHT
        );
    }

    fn offline_store() -> S3Store {
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
            location: None,
            password: None,
            compression_level: None,
        };
        S3Store::new("off", &cfg).unwrap()
    }

    /// A reader over ranges whose pieces the test sends itself: (start, len) each.
    fn fake_reader(
        store: &S3Store,
        ranges: &[(u64, u64)],
    ) -> (S3Reader, Vec<std_mpsc::Sender<Piece>>) {
        let mut senders = Vec::new();
        let ahead = ranges
            .iter()
            .map(|&(start, len)| {
                let (tx, rx) = std_mpsc::channel();
                senders.push(tx);
                Range {
                    start,
                    len,
                    got: 0,
                    rx,
                    task: store.handle.spawn(async {}),
                }
            })
            .collect();
        let size = ranges.iter().map(|r| r.1).sum();
        let reader = S3Reader {
            shared: store.shared.clone(),
            handle: store.handle.clone(),
            key: "t/x".into(),
            etag: None,
            size,
            next: size, // everything asked for already
            taken: 0,
            range_size: FIRST_RANGE,
            ahead,
            current: Bytes::new(),
            failed: None,
        };
        (reader, senders)
    }

    fn done(first_byte: u64, transfer: u64) -> Piece {
        Piece::Done {
            first_byte: Duration::from_millis(first_byte),
            transfer: Duration::from_millis(transfer),
        }
    }

    #[test]
    fn a_reader_passes_ranges_on_in_order_and_fills_reads_from_what_has_arrived() {
        let store = offline_store();
        let (mut reader, tx) = fake_reader(&store, &[(0, 4), (4, 3)]);
        // The second range arrives first; nothing of it is read before the first.
        tx[1]
            .send(Piece::Bytes(Bytes::from_static(b"efg")))
            .unwrap();
        tx[1].send(done(1, 1)).unwrap();
        tx[0].send(Piece::Bytes(Bytes::from_static(b"ab"))).unwrap();
        tx[0].send(Piece::Bytes(Bytes::from_static(b"cd"))).unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(reader.read(&mut buf).unwrap(), 3, "two pieces in one read");
        assert_eq!(&buf, b"abc");
        // A slow first byte makes the next ranges bigger.
        tx[0].send(done(900, 50)).unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"defg");
        assert_eq!(reader.range_size, 2 * FIRST_RANGE);
    }

    #[test]
    fn a_reader_returns_the_bytes_it_has_before_an_error_and_the_error_next() {
        let store = offline_store();
        let (mut reader, tx) = fake_reader(&store, &[(0, 4)]);
        tx[0].send(Piece::Bytes(Bytes::from_static(b"ab"))).unwrap();
        tx[0]
            .send(Piece::Failed(StoreError::Other(
                "the download broke off".into(),
            )))
            .unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 2);
        let err = reader.read(&mut buf).unwrap_err();
        assert!(err.to_string().contains("broke off"), "{err}");
    }

    #[test]
    fn a_range_that_ends_short_without_saying_why_is_an_error() {
        let store = offline_store();
        let (mut reader, mut tx) = fake_reader(&store, &[(0, 4)]);
        tx[0].send(Piece::Bytes(Bytes::from_static(b"ab"))).unwrap();
        tx.clear(); // the task is gone
        let mut all = Vec::new();
        let err = reader.read_to_end(&mut all).unwrap_err();
        assert_eq!(all, b"ab");
        assert!(
            err.to_string()
                .contains("s3://b/p/t/x: asked for 4 bytes at 0, got 2"),
            "{err}"
        );
    }

    #[test]
    fn building_the_store_sends_nothing() {
        let store = offline_store();
        assert_eq!(store.describe(), "s3 store \"off\" (s3://b/p/)");
        assert_eq!(store.shared.url("t/x"), "s3://b/p/t/x");
    }
}
