//! Writing an object: small ones in one PUT, bigger ones as a multipart upload whose parts
//! go out in the background within a bound on the bytes in flight; aborted if not committed.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::super::{ObjectWriter, StoreError};
use super::block;
use super::shared::{Shared, retain_until};

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

pub(super) struct S3Writer {
    shared: Arc<Shared>,
    handle: Handle,
    key: String,
    buf: BytesMut,
    upload: Option<Upload>,
    finished: bool,
}

impl S3Writer {
    /// A writer of `key` that sends nothing until its first part is full or it is committed.
    pub(super) fn new(shared: Arc<Shared>, handle: Handle, key: &str) -> S3Writer {
        S3Writer {
            shared,
            handle,
            key: key.into(),
            buf: BytesMut::new(),
            upload: None,
            finished: false,
        }
    }

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
        let id = match block(&self.handle, req.send()) {
            Ok(out) => out.upload_id().unwrap_or_default().to_string(),
            Err(e) => match e.raw_response().and_then(upload_id_in_unusual_answer) {
                Some(id) => id,
                None => return Err(self.shared.error("starting the upload of", &self.key, e)),
            },
        };
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

/// The upload id of an answer to `CreateMultipartUpload` that the SDK would not read
/// because its XML root is `InitiateMultipartUpload`, not AWS's
/// `InitiateMultipartUploadResult`: rclone's S3 server answers so (restic and boto3
/// accept it). Only a successful answer of that shape gives an id.
fn upload_id_in_unusual_answer(raw: &HttpResponse) -> Option<String> {
    if raw.status().as_u16() != 200 {
        return None;
    }
    let xml = std::str::from_utf8(raw.body().bytes()?).ok()?;
    let root = xml.find("<InitiateMultipartUpload>")?;
    let start = root + xml[root..].find("<UploadId>")? + "<UploadId>".len();
    let id = xml[start..start + xml[start..].find("</UploadId>")?].trim();
    // Ids are plain text; anything escaped or nested is not an answer understood here.
    (!id.is_empty() && !id.contains(['<', '&'])).then(|| id.to_string())
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_upload_id_is_read_from_rclones_answer_and_nothing_else() {
        let answer = |status: u16, body: &str| {
            HttpResponse::new(
                status.try_into().unwrap(),
                aws_sdk_s3::primitives::SdkBody::from(body),
            )
        };
        let rclone = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUpload>\n  \
            <Bucket>b</Bucket>\n  <Key>p/t/x</Key>\n  <UploadId>62cb40af-1d74</UploadId>\n\
            </InitiateMultipartUpload>";
        assert_eq!(
            upload_id_in_unusual_answer(&answer(200, rclone)).as_deref(),
            Some("62cb40af-1d74")
        );
        for (status, body) in [
            (500, rclone),
            (200, "<Other><UploadId>x</UploadId></Other>"),
            (
                200,
                "<InitiateMultipartUpload><UploadId></UploadId></InitiateMultipartUpload>",
            ),
            (
                200,
                "<InitiateMultipartUpload><UploadId>a&amp;b</UploadId></InitiateMultipartUpload>",
            ),
            (
                200,
                "<InitiateMultipartUpload><Key>k</Key></InitiateMultipartUpload>",
            ),
        ] {
            assert_eq!(
                upload_id_in_unusual_answer(&answer(status, body)),
                None,
                "{body}"
            );
        }
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
}
