//! Accepting HTTP connections for `serve` so that no client can starve the bot of file
//! descriptors or memory: open connections are capped below the open-file limit (leaving
//! descriptors for the state database, stores and SSH), a request's headers must arrive
//! within a deadline (a shorter one while the server is crowded), a whole request must be
//! answered within another, and each request carries its peer's address for the login
//! throttle.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::Service;

/// Descriptors kept for everything but HTTP clients: the state database and its WAL,
/// stores, SSH connections, chat connections, hooks' pipes.
const RESERVED_FILES: u64 = 256;
/// However high the file limit, no more connections than this.
const MAX_CONNECTIONS: u64 = 4096;

/// The limits one `serve` applies to its HTTP clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// A request's headers must have arrived within this (idle keep-alive included).
    pub header_timeout: Duration,
    /// The same while more than half of `max_connections` are open.
    pub crowded_header_timeout: Duration,
    /// A request (its body included) must be answered within this, else 408.
    pub request_timeout: Duration,
}

impl Limits {
    /// Limits for this process: its soft open-file limit is raised to the hard one where
    /// that is allowed (`serve` has done so at start already; again is harmless), and
    /// connections are capped below what remains after the reserve.
    pub fn for_this_process() -> Limits {
        let files = raise_file_limit();
        Limits {
            max_connections: connections_for(files) as usize,
            header_timeout: Duration::from_secs(10),
            crowded_header_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The connection cap for a process allowed `files` open descriptors.
fn connections_for(files: u64) -> u64 {
    let reserve = RESERVED_FILES.min(files / 2);
    files.saturating_sub(reserve).clamp(16, MAX_CONNECTIONS)
}

/// Raise the soft open-file limit to the hard one (systemd's default soft limit is 1,024
/// while the hard one is far higher); returns the soft limit in force afterwards.
pub fn raise_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// Serve `router` on `listener` within `limits` until `shutdown` resolves; then stop
/// accepting, let the requests in flight finish (at most `drain`), and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut crowded_since: Option<Instant> = None;
    loop {
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a
                    // moment instead of spinning, and keep serving.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let in_use = limits.max_connections - open.available_permits();
        let crowded = in_use * 2 > limits.max_connections;
        note_crowding(crowded, &mut crowded_since, in_use, &limits);
        let header_timeout = if crowded {
            limits.crowded_header_timeout
        } else {
            limits.header_timeout
        };
        let service = PeerService {
            router: router.clone(),
            peer,
            request_timeout: limits.request_timeout,
        };
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = http.serve_connection(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            );
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { stop.wait_for(|s| *s).await.is_ok() } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection gives its permit back when it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(drain, open.acquire_many(all)).await;
    Ok(())
}

/// Log once when the server becomes crowded and once when it is not any more.
fn note_crowding(crowded: bool, since: &mut Option<Instant>, in_use: usize, limits: &Limits) {
    match (crowded, since.is_some()) {
        (true, false) => {
            tracing::warn!(
                "{in_use} of at most {} HTTP connections open: slow clients now get {}s for their headers",
                limits.max_connections,
                limits.crowded_header_timeout.as_secs()
            );
            *since = Some(Instant::now());
        }
        (false, true) => {
            let secs = since.take().map_or(0, |s| s.elapsed().as_secs());
            tracing::info!("HTTP connections back below half the cap after {secs}s");
        }
        _ => {}
    }
}

/// The router for one connection: each request learns its peer and gets its deadline.
#[derive(Clone)]
struct PeerService {
    router: Router,
    peer: SocketAddr,
    request_timeout: Duration,
}

impl Service<Request<Incoming>> for PeerService {
    type Response = Response;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        let deadline = self.request_timeout;
        Box::pin(async move {
            match tokio::time::timeout(deadline, router.call(req)).await {
                Ok(answered) => answered,
                Err(_) => Ok((
                    StatusCode::REQUEST_TIMEOUT,
                    "the request took too long to arrive\n",
                )
                    .into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_descriptors_for_the_rest_of_the_bot() {
        assert_eq!(connections_for(1024), 768);
        assert_eq!(connections_for(1 << 20), MAX_CONNECTIONS);
        // A tiny limit still leaves half for the bot and serves a few clients.
        assert_eq!(connections_for(256), 128);
        assert_eq!(connections_for(20), 16);
    }
}
