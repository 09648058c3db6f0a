//! Removing the multipart uploads that interrupted backups left open. This is housekeeping:
//! a server that does not list or abort uploads as AWS does gets one warning per store
//! and process, and backups go on; each writer still aborts its own upload by id.

use std::collections::BTreeSet;
use std::sync::Mutex;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::super::StoreError;
use super::block;
use super::shared::Shared;
use tokio::runtime::Handle;

/// How a housekeeping request that failed is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Nothing to do: rclone answers `ListMultipartUploads` with `NoSuchUpload` when no
    /// upload is open (and lists them when some are), and an upload finished or aborted
    /// since it was listed answers an abort the same way.
    Nothing,
    /// The server does not do this (404, 405, 501, `NotImplemented`), or these
    /// credentials may not (`AccessDenied`): warned once, and the backup goes on.
    Unsupported,
    /// Anything else (no such bucket, a bad signature, no connection, a TLS failure): the
    /// backup's own requests would fail the same way, so it fails here, saying why.
    Fatal,
}

fn refusal(status: Option<u16>, code: Option<&str>) -> Refusal {
    match (code.unwrap_or_default(), status) {
        ("NoSuchUpload", _) => Refusal::Nothing,
        ("NoSuchBucket", _) => Refusal::Fatal,
        ("NotImplemented" | "MethodNotAllowed" | "AccessDenied", _)
        | (_, Some(404 | 405 | 501)) => Refusal::Unsupported,
        _ => Refusal::Fatal,
    }
}

fn refusal_of<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Refusal {
    refusal(err.raw_response().map(|r| r.status().as_u16()), err.code())
}

/// What the server said, for a warning: `NotImplemented: ...` or the HTTP status.
fn answer_of<E: ProvideErrorMetadata>(err: &SdkError<E>) -> String {
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (err.code(), status) {
        (Some(code), _) => format!("{code}: {}", err.message().unwrap_or_default()),
        (None, Some(status)) => format!("HTTP {status}"),
        (None, None) => "no answer".into(),
    }
}

/// (store, what) pairs this process has warned about: a server that lacks a request lacks
/// it at every backup, and one line per run says all there is to say.
static WARNED: Mutex<BTreeSet<(String, &'static str)>> = Mutex::new(BTreeSet::new());

/// Whether this is the first time this process warns about `what` on `store`.
fn first_warning(store: &str, what: &'static str) -> bool {
    WARNED.lock().unwrap().insert((store.to_string(), what))
}

fn warn_once(s: &Shared, what: &'static str, answer: &str) {
    if first_warning(&s.describe, what) {
        tracing::warn!(
            "{}: the server would not {what} under {} ({answer}); backups go on and each \
             still aborts its own upload if it fails, but uploads left open by a crash are \
             not removed here: remove them with the server's own tools (said once per run)",
            s.describe,
            s.url("")
        );
    }
}

/// Abort every multipart upload open under `prefix`; returns how many were aborted.
pub(super) fn sweep(s: &Shared, handle: &Handle, prefix: &str) -> Result<usize, StoreError> {
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
        let page = match block(handle, req.send()) {
            Ok(page) => page,
            Err(e) => match refusal_of(&e) {
                Refusal::Nothing => break,
                Refusal::Unsupported => {
                    warn_once(s, "list incomplete uploads", &answer_of(&e));
                    break;
                }
                Refusal::Fatal => {
                    return Err(s.error("listing incomplete uploads under", prefix, e));
                }
            },
        };
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
    let mut aborted = 0;
    for (key, id) in &uploads {
        let req = s
            .client
            .abort_multipart_upload()
            .bucket(&s.bucket)
            .key(key)
            .upload_id(id);
        match block(handle, req.send()) {
            Ok(_) => aborted += 1,
            Err(e) => match refusal_of(&e) {
                Refusal::Nothing => {}
                Refusal::Unsupported => {
                    warn_once(s, "abort incomplete uploads", &answer_of(&e));
                    break;
                }
                Refusal::Fatal => {
                    let short = key.strip_prefix(&s.prefix).unwrap_or(key);
                    return Err(s.error("aborting the incomplete upload of", short, e));
                }
            },
        }
    }
    Ok(aborted)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    /// What a store of the bucket `b` at `url` shares, and the runtime its requests run on.
    fn shared_at(name: &str, url: &str) -> (tokio::runtime::Runtime, Shared) {
        (
            tokio::runtime::Runtime::new().unwrap(),
            Shared::for_tests(name, url),
        )
    }

    #[test]
    fn what_each_answer_means() {
        let nothing = [(Some(404), Some("NoSuchUpload"))];
        let unsupported = [
            (Some(501), Some("NotImplemented")),
            (Some(405), Some("MethodNotAllowed")),
            (Some(400), Some("NotImplemented")),
            (Some(404), None),
            (Some(404), Some("NotFound")),
            (Some(403), Some("AccessDenied")),
        ];
        let fatal = [
            (Some(404), Some("NoSuchBucket")),
            (Some(403), Some("SignatureDoesNotMatch")),
            (Some(403), Some("InvalidAccessKeyId")),
            (Some(500), Some("InternalError")),
            (None, None),
        ];
        for (answers, meaning) in [
            (&nothing[..], Refusal::Nothing),
            (&unsupported, Refusal::Unsupported),
            (&fatal, Refusal::Fatal),
        ] {
            for &(status, code) in answers {
                assert_eq!(refusal(status, code), meaning, "{status:?} {code:?}");
            }
        }
    }

    /// A server that answers every request with `status` and an S3 error `code`, on as
    /// many kept-alive connections as the client opens; returns its URL.
    fn answering(status: u16, code: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut out = conn.try_clone().unwrap();
                    let mut lines = BufReader::new(conn).lines();
                    let body = format!("<Error><Code>{code}</Code><Message>m</Message></Error>");
                    // Requests without a body (GET, DELETE): a blank line ends each one.
                    while let Some(Ok(line)) = lines.next() {
                        if line.is_empty() {
                            let answer = format!(
                                "HTTP/1.1 {status} X\r\ncontent-type: application/xml\r\n\
                                 content-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if out.write_all(answer.as_bytes()).is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        url
    }

    #[test]
    fn a_server_without_the_listing_lets_the_sweep_pass_and_is_warned_about_once() {
        let (rt, s) = shared_at("no-listing", &answering(501, "NotImplemented"));
        assert_eq!(sweep(&s, rt.handle(), "t/").unwrap(), 0);
        // The first sweep warned; a second one passes as well, without a second warning.
        assert!(!first_warning(&s.describe, "list incomplete uploads"));
        assert_eq!(sweep(&s, rt.handle(), "t/").unwrap(), 0);
    }

    #[test]
    fn no_such_upload_means_none_are_open() {
        let (rt, s) = shared_at("rclone-like", &answering(404, "NoSuchUpload"));
        assert_eq!(sweep(&s, rt.handle(), "t/").unwrap(), 0);
        assert!(
            first_warning(&s.describe, "list incomplete uploads"),
            "nothing to warn about"
        );
    }

    #[test]
    fn a_missing_bucket_still_fails_the_sweep() {
        let (rt, s) = shared_at("no-bucket", &answering(404, "NoSuchBucket"));
        let err = sweep(&s, rt.handle(), "t/").unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
