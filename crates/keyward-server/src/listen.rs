//! Accepting and serving HTTP/1.1 connections with bounds a slow or idle client cannot
//! stretch: each request's head must arrive within [`ConnectionLimits::header_timeout`]
//! (counted from the moment the connection waits for it, so an idle keep-alive connection
//! ends after the same time), and at most [`ConnectionLimits::max_connections`] are open at
//! once, so a crowd of silent sockets cannot use up the process's file descriptors. A head
//! with too many or too large header fields, or too long a target, is answered 431 or 414
//! as a problem document. Bodies are bounded separately, by the request timeout.

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::error::ApiError;

/// Bounds on connections, whatever their requests.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Longest wait for a request's head (request line and headers), from the moment the
    /// connection is ready for one: accepted, or its previous response sent.
    pub header_timeout: Duration,
    /// Most connections open at once; clients beyond it wait in the listen backlog until one
    /// closes.
    pub max_connections: usize,
    /// Most header fields a request may carry (431 beyond).
    pub max_headers: usize,
    /// Most bytes of header names and values together (431 beyond).
    pub max_header_bytes: usize,
    /// Longest request target, path and query, in bytes (414 beyond).
    pub max_uri_bytes: usize,
}

impl ConnectionLimits {
    /// The refusal of a request whose head is beyond the limits, if it is. Checked here,
    /// before routing, so the answer is a problem document like every other; hyper's own
    /// limits are further out (see [`serve_router`]), and a head beyond those gets hyper's
    /// bare status.
    fn refuse<B>(&self, request: &Request<B>) -> Option<ApiError> {
        let target = request
            .uri()
            .path_and_query()
            .map_or(0, |target| target.as_str().len());
        if target > self.max_uri_bytes {
            return Some(ApiError::UriTooLong(self.max_uri_bytes));
        }
        let headers = request.headers();
        if headers.len() > self.max_headers {
            return Some(ApiError::HeaderFieldsTooLarge(format!(
                "a request may carry at most {} header fields",
                self.max_headers
            )));
        }
        let bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        (bytes > self.max_header_bytes).then(|| {
            ApiError::HeaderFieldsTooLarge(format!(
                "a request's header fields may hold at most {} bytes",
                self.max_header_bytes
            ))
        })
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            max_connections: 1_000,
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
        }
    }
}

/// The most header fields hyper reads by default (`DEFAULT_MAX_HEADERS` in hyper's HTTP/1
/// parser); a head with more is refused with a bare 431.
const HYPER_HEADER_FIELDS: usize = 100;

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets the
/// requests in flight finish. Each request carries its peer's address as `ConnectInfo`.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size((2 * (limits.max_header_bytes + limits.max_uri_bytes)).max(8 * 1024));
    // hyper parses a head's fields into room on the stack for HYPER_HEADER_FIELDS unless it
    // is given a count, which it then allocates and fills for every request (about 1,750
    // instructions a request, BENCHMARKS.md). Its own count is only given when ours is
    // beyond its default: then at twice ours.
    if limits.max_headers >= HYPER_HEADER_FIELDS {
        builder.max_headers(limits.max_headers * 2);
    }
    // Permits are taken before accepting, so a full server leaves new clients in the
    // kernel's backlog rather than accepting sockets it cannot serve.
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let head_limits = Arc::new(limits.clone());
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    pause_after(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (router, limits) = (router.clone(), head_limits.clone());
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let refusal = limits.refuse(&request);
            request.extensions_mut().insert(ConnectInfo(peer));
            let answer = router.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                match refusal {
                    Some(refusal) => Ok(refusal.into_response()),
                    None => answer.await,
                }
            }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(connection_task(connection, slot));
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One connection's task: serves it, then frees its place.
async fn connection_task(
    connection: impl Future<Output = Result<(), hyper::Error>>,
    slot: OwnedSemaphorePermit,
) {
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended");
    }
    drop(slot);
}

/// After a failed accept: a connection that failed before it was accepted costs nothing;
/// anything else (out of file descriptors, most likely) is logged and waited out, since
/// accepting again at once would fail the same way in a busy loop.
async fn pause_after(error: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; trying again in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
