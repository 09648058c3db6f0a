//! A store in an S3 bucket (or any S3-compatible server): streaming multipart uploads with
//! bounded memory, ranged downloads with read-ahead, and errors that name bucket and key.
//!
//! The `Store` trait is synchronous (actions run on blocking threads); the store owns a
//! small tokio runtime of its own. Requests run on that runtime; the data paths hand
//! bytes between it and the caller's thread through std channels and a condition
//! variable, so streaming never needs `block_on` (which, on a thread inside a runtime
//! context such as a job thread of `serve`, costs a thread per call).
//!
//! `client` builds the SDK client, `shared` holds what every request needs (and turns SDK
//! errors into messages), `writer` uploads, `reader` downloads and `sweep` removes the
//! uploads interrupted backups left open.

mod client;
mod reader;
mod shared;
mod sweep;
mod writer;

use std::future::Future;
use std::io::Read;
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};

use super::{ObjectInfo, ObjectWriter, Store, StoreError, check_key};
use crate::config::StoreConfig;
use client::{client_for, payload_needs_signature};
use reader::S3Reader;
use shared::{Shared, WriteSettings};
use writer::S3Writer;

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
        let settings = WriteSettings::from_config(cfg);
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

impl Store for S3Store {
    fn describe(&self) -> String {
        self.shared.describe.clone()
    }

    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError> {
        check_key(key)?;
        Ok(Box::new(S3Writer::new(
            self.shared.clone(),
            self.handle.clone(),
            key,
        )))
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
        Ok(Box::new(S3Reader::new(
            s.clone(),
            self.handle.clone(),
            key,
            head.e_tag().map(str::to_string),
            head.content_length().unwrap_or(0).max(0) as u64,
        )))
    }

    /// One GET, so a record rewritten while it is read (a replication position, a lease)
    /// comes back whole as one version or the other. `open` asks for the size first and
    /// holds its ranges to that version, which an object rewritten in between refuses.
    fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        check_key(key)?;
        let s = &self.shared;
        let req = s.client.get_object().bucket(&s.bucket).key(s.full_key(key));
        block(&self.handle, async {
            let out = req.send().await.map_err(|e| s.error("reading", key, e))?;
            let body = out.body.collect().await.map_err(|e| {
                StoreError::Other(format!(
                    "{}: reading {}: the download broke off: {e}",
                    s.describe,
                    s.url(key)
                ))
            })?;
            Ok(body.to_vec())
        })
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
        sweep::sweep(&self.shared, &self.handle, prefix)
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

    pub(super) fn offline_store() -> S3Store {
        let cfg = StoreConfig::s3_at("http://127.0.0.1:9".into(), "b".into(), "p/".into());
        S3Store::new("off", &cfg).unwrap()
    }

    /// A store of bucket `b` at `url` with test credentials.
    fn store_at(url: &str) -> S3Store {
        let runtime = Runtime::new().unwrap();
        S3Store {
            shared: Arc::new(Shared::for_tests("t", url)),
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        }
    }

    /// A server holding one object that was rewritten just after anyone asked for its
    /// size: HEAD names the old version, a GET held to it is refused (412, as S3 does),
    /// and a plain GET returns the new one.
    fn rewritten_under_the_reader() -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut out = conn.try_clone().unwrap();
                    let mut lines = BufReader::new(conn).lines();
                    let (mut head, mut held) = (false, false);
                    while let Some(Ok(line)) = lines.next() {
                        let lower = line.to_ascii_lowercase();
                        if lower.starts_with("head ") {
                            head = true;
                        }
                        if lower.starts_with("if-match:") {
                            held = true;
                        }
                        if !line.is_empty() {
                            continue;
                        }
                        let answer = if head {
                            "HTTP/1.1 200 OK\r\netag: \"old\"\r\ncontent-length: 3\r\n\r\n"
                                .to_string()
                        } else if held {
                            let body = "<Error><Code>PreconditionFailed</Code><Message>m</Message></Error>";
                            format!(
                                "HTTP/1.1 412 X\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        } else {
                            "HTTP/1.1 200 OK\r\netag: \"new\"\r\ncontent-length: 5\r\n\r\nfresh"
                                .to_string()
                        };
                        if out.write_all(answer.as_bytes()).is_err() {
                            break;
                        }
                        (head, held) = (false, false);
                    }
                });
            }
        });
        url
    }

    #[test]
    fn a_record_rewritten_while_it_is_read_comes_back_whole() {
        let store = store_at(&rewritten_under_the_reader());
        assert_eq!(store.get_bytes("t/position.json").unwrap(), b"fresh");
        // A streamed read stays held to the version it started on and refuses the other.
        let mut out = Vec::new();
        let err = store.open("t/big").unwrap().read_to_end(&mut out);
        assert!(err.unwrap_err().to_string().contains("PreconditionFailed"));
    }

    #[test]
    fn building_the_store_sends_nothing() {
        let store = offline_store();
        assert_eq!(store.describe(), "s3 store \"off\" (s3://b/p/)");
        assert_eq!(store.shared.url("t/x"), "s3://b/p/t/x");
    }
}
