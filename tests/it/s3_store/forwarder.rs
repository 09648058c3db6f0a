//! A TCP forwarder between lifeboat and an S3 server (moto's or rclone's) for the S3
//! network tests: it can be killed and restarted on its port (the server keeps its
//! buckets), cut answers after some bytes, and notes the payload hash header of every
//! request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::common::moto::*;

/// A TCP forwarder between lifeboat and moto that a test can cut, as a network failure
/// or a server crash would, without losing moto's in-memory buckets.
pub(super) struct Forwarder {
    pub(super) port: u16,
    pub(super) upstream: SocketAddr,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) conns: Arc<Mutex<Vec<TcpStream>>>,
    /// Bytes forwarded from lifeboat to the server so far.
    pub(super) sent: Arc<AtomicU64>,
    /// The `x-amz-content-sha256` header of every request lifeboat sent, in order.
    pub(super) payload_hashes: Arc<Mutex<Vec<String>>>,
    pub(super) cut: Arc<Cut>,
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
}

/// Connections to cut in the middle of an answer: the next `left` connections that have
/// carried more than `after` bytes from the server to lifeboat.
#[derive(Default)]
pub(super) struct Cut {
    pub(super) after: AtomicU64,
    pub(super) left: AtomicU64,
}

impl Cut {
    /// Whether a connection that has carried `bytes` to lifeboat is to be cut now.
    pub(super) fn due(&self, bytes: u64) -> bool {
        bytes > self.after.load(Ordering::SeqCst)
            && self
                .left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
    }
}

impl Forwarder {
    pub(super) fn start(port: u16, upstream: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let payload_hashes = Arc::new(Mutex::new(Vec::new()));
        let cut = Arc::new(Cut::default());
        let thread = {
            let (stop, conns, sent, cut) = (stop.clone(), conns.clone(), sent.clone(), cut.clone());
            let hashes = payload_hashes.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            client.set_nonblocking(false).unwrap();
                            let Ok(server) = TcpStream::connect(upstream) else {
                                continue;
                            };
                            let mut list = conns.lock().unwrap();
                            list.push(client.try_clone().unwrap());
                            list.push(server.try_clone().unwrap());
                            pump(
                                client.try_clone().unwrap(),
                                server.try_clone().unwrap(),
                                Some(sent.clone()),
                                None,
                                Some(hashes.clone()),
                            );
                            pump(server, client, None, Some(cut.clone()), None);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Forwarder {
            port,
            upstream,
            stop,
            conns,
            sent,
            payload_hashes,
            cut,
            thread: Some(thread),
        }
    }

    /// Cut the next `times` connections that carry more than `after` bytes to lifeboat,
    /// as soon as they do: an answer that breaks off after its headers.
    pub(super) fn cut_answers(&self, after: u64, times: u64) {
        self.cut.after.store(after, Ordering::SeqCst);
        self.cut.left.store(times, Ordering::SeqCst);
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stop listening and cut every connection: the server is gone.
    pub(super) fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.reset_connections();
    }

    /// Cut the open connections but keep accepting new ones.
    pub(super) fn reset_connections(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The server is back, on the same port.
    pub(super) fn restart(&mut self) {
        *self = Forwarder::start(self.port, self.upstream);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server with `bucket`, a forwarder in front of it, and a lifeboat home whose store
/// reaches the bucket through the forwarder (which a test can cut).
pub(super) fn behind_forwarder(kind: S3Kind, bucket: &str) -> (S3Server, Forwarder, S3Home) {
    let s3 = S3Server::on(kind);
    s3.create_bucket(bucket, false);
    let fwd = Forwarder::start(0, s3.addr());
    let home = S3Home::new(&fwd.url(), bucket, "", TARGETS);
    (s3, fwd, home)
}

/// Copy one direction of a connection on its own thread, counting its bytes, cutting
/// the connection when `cut` says so, and noting the `x-amz-content-sha256` headers that
/// pass when `headers` is given.
pub(super) fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    counter: Option<Arc<AtomicU64>>,
    cut: Option<Arc<Cut>>,
    headers: Option<Arc<Mutex<Vec<String>>>>,
) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut carried = 0u64;
        let mut unscanned = Vec::new();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(found) = &headers {
                unscanned.extend_from_slice(&buf[..n]);
                let keep = payload_hash_headers(&unscanned, &mut found.lock().unwrap());
                unscanned.drain(..unscanned.len() - keep);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            if let Some(c) = &counter {
                c.fetch_add(n as u64, Ordering::SeqCst);
            }
            carried += n as u64;
            if cut.as_ref().is_some_and(|c| c.due(carried)) {
                let _ = from.shutdown(std::net::Shutdown::Both);
                let _ = to.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// Note the value of every complete `x-amz-content-sha256` header in `bytes`; returns how
/// many bytes at the end may still begin one and must be scanned again with what follows.
pub(super) fn payload_hash_headers(bytes: &[u8], found: &mut Vec<String>) -> usize {
    const NAME: &[u8] = b"x-amz-content-sha256: ";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut from = 0;
    while let Some(at) = find(&bytes[from..], NAME).map(|i| i + from) {
        let value = at + NAME.len();
        match find(&bytes[value..], b"\r\n") {
            Some(len) => {
                found.push(String::from_utf8_lossy(&bytes[value..value + len]).into_owned());
                from = value + len;
            }
            // A header value is short; a long run without its end is body bytes.
            None if bytes.len() - value < 100 => return bytes.len() - at,
            None => from = value,
        }
    }
    (NAME.len() - 1).min(bytes.len() - from)
}
