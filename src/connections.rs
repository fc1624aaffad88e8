//! The connection layer under poem: accepts TCP (or TLS) connections up to a cap, backs off and logs
//! when accepting fails (EMFILE), closes connections that dribble their request head or sit idle,
//! raises the soft open-file limit at start-up, and shuts down gracefully.
//!
//! poem's `Server` offers none of this: it ignores accept errors (so EMFILE makes its accept loop
//! spin), has no connection cap, and its only timeout is reset by every byte read, so a slowloris
//! client that sends one header byte a second keeps its connection forever. hyper's own
//! `header_read_timeout` also runs while a kept-alive connection waits for its next request, so it
//! cannot give idle connections a longer allowance than slow heads. This module serves with the same
//! hyper-util builder poem uses and watches each connection itself. The body-read timeout is the
//! frontline's (`http::frontline`), where a 408 can still be answered.

use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use poem::{Endpoint, IntoResponse, listener::Acceptor};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tokio_util::sync::CancellationToken;

/// Descriptors kept free for everything that is not a client connection: the database pool (added
/// on top), the verifier's outbound fetches, log files, the listener itself.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The shortest and longest pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long connections may take, and how many may be open at once.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From accepting a connection, or from the first byte of a later request, until the request
    /// head (request line and headers) is complete.
    pub header_read: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle: Duration,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (where the platform allows) and returns the soft
/// limit now in effect, or `None` where there is no such limit.
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => Some(soft),
        Err(err) => {
            tracing::warn!(error = %err, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// The connection cap in effect: `configured`, or when that is 0, what fits under the open-file
/// limit `nofile` next to the database pool. A configured cap above what fits is kept (the operator
/// asked for it) with a warning: accepting then fails with EMFILE, which the accept loop survives.
pub fn effective_max_connections(configured: usize, nofile: Option<u64>, db_pool: u32) -> usize {
    let fits = nofile.map(|limit| {
        let reserved = RESERVED_DESCRIPTORS + u64::from(db_pool);
        usize::try_from(limit.saturating_sub(reserved).max(16)).unwrap_or(usize::MAX)
    });
    match (configured, fits) {
        (0, Some(fits)) => fits.min(65_536),
        (0, None) => 4096,
        (configured, Some(fits)) if configured > fits => {
            tracing::warn!(
                max_connections = configured,
                open_file_limit = nofile,
                "max_connections is above what the open-file limit leaves for connections; \
                 accepting will fail with EMFILE before the cap is reached"
            );
            configured
        }
        (configured, _) => configured,
    }
}

/// Accepts connections from `acceptor` and serves `endpoint` on them until `shutdown` completes;
/// then stops accepting, lets open connections finish their requests for up to `grace`, and returns.
pub async fn serve<A, E>(
    mut acceptor: A,
    endpoint: E,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()>
where
    A: Acceptor,
    E: Endpoint + 'static,
{
    let endpoint = Arc::new(endpoint);
    let cap = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(cap));
    let stopping = CancellationToken::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut failures: u64 = 0;
    for addr in acceptor.local_addr() {
        tracing::info!(%addr, max_connections = cap, "listening");
    }
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, new clients wait in the kernel's listen backlog (or are
        // refused by it once that is full) instead of taking descriptors the served ones need.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = acceptor.accept() => accepted,
        };
        let (io, local_addr, remote_addr, scheme) = match accepted {
            Ok(accepted) => {
                if failures > 0 {
                    tracing::info!(failures, "accepting connections again");
                }
                failures = 0;
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(err) => {
                // EMFILE/ENFILE/ENOBUFS do not clear by retrying at once: pause (doubling up to a
                // second) so the loop does not spin, and log once per doubling, not per attempt.
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(
                        error = %err,
                        failures,
                        pause_ms = backoff.as_millis() as u64,
                        "accepting a connection failed; pausing before the next accept"
                    );
                }
                drop(permit);
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let endpoint = endpoint.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let activity = Arc::new(Activity::default());
            let io = GuardedIo::new(io, activity.clone(), limits, permit);
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let endpoint = endpoint.clone();
                let request: poem::Request =
                    (req, local_addr.clone(), remote_addr.clone(), scheme.clone()).into();
                let in_flight = InFlight::enter(&activity);
                async move {
                    let response = endpoint.get_response(request).await.into_response();
                    let response: hyper::Response<BoxBody<Bytes, io::Error>> = response.into();
                    Ok::<_, Infallible>(response.map(|body| TrackedBody {
                        inner: body,
                        _in_flight: in_flight,
                    }))
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().header_read_timeout(None);
            builder
                .http2()
                .max_pending_accept_reset_streams(Some(20))
                .max_header_list_size(16 * 1024);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = stopping.cancelled() => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    drop(acceptor);
    stopping.cancel();
    // Every open connection holds a slot: all slots back means all connections are done.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "connections still open after the shutdown grace period"
        );
    }
    Ok(())
}

/// The requests in flight on one connection, and the socket reader to wake when the last ends (its
/// idle deadline starts then, and nothing else would poll it before the client sends again).
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    reader: AtomicWaker,
}

impl Activity {
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }
}

/// Counts a request as in flight on its connection until its response body is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reader.wake();
        }
    }
}

/// A response body that keeps its request counted as in flight until hyper has written and dropped it.
struct TrackedBody {
    inner: BoxBody<Bytes, io::Error>,
    _in_flight: InFlight,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a connection stands, as seen from its socket.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head; closed at the deadline.
    Head { until: Instant },
    /// Kept alive between requests; closed at the deadline.
    Idle { until: Instant },
    /// A request is being served: no socket deadline (the body has its own, in the frontline).
    Busy,
}

/// A connection's socket that fails its reads once the current phase's deadline has passed (hyper
/// then closes the connection), and that holds the connection's slot until it is dropped.
struct GuardedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    phase: Phase,
    timer: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl<T> GuardedIo<T> {
    fn new(
        inner: T,
        activity: Arc<Activity>,
        limits: ConnectionLimits,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        // A new connection owes its first request head (and the TLS handshake) within header_read.
        let until = Instant::now() + limits.header_read;
        Self {
            inner,
            activity,
            limits,
            phase: Phase::Head { until },
            timer: Box::pin(tokio::time::sleep_until(until)),
            _slot: slot,
        }
    }

    /// Brings the phase up to date with the requests in flight; returns the socket deadline.
    fn deadline(&mut self, cx: &Context<'_>) -> Option<Instant> {
        self.activity.reader.register(cx.waker());
        let busy = self.activity.busy();
        self.phase = match (self.phase, busy) {
            (_, true) => Phase::Busy,
            (Phase::Busy, false) => Phase::Idle {
                until: Instant::now() + self.limits.idle,
            },
            (other, false) => other,
        };
        match self.phase {
            Phase::Head { until } | Phase::Idle { until } => Some(until),
            Phase::Busy => None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    // The first byte of the next request starts the head's allowance.
                    if let Phase::Idle { .. } = this.phase
                        && !this.activity.busy()
                    {
                        this.phase = Phase::Head {
                            until: Instant::now() + this.limits.header_read,
                        };
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.deadline(cx) {
                Some(until) => {
                    if this.timer.deadline() != until {
                        this.timer.as_mut().reset(until);
                    }
                    match this.timer.as_mut().poll(cx) {
                        Poll::Ready(()) => {
                            let what = match this.phase {
                                Phase::Head { .. } => "request head not received in time",
                                _ => "idle connection timed out",
                            };
                            tracing::debug!(what, "closing connection");
                            Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
                        }
                        Poll::Pending => Poll::Pending,
                    }
                }
                None => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_cap_fits_under_the_file_limit() {
        assert_eq!(effective_max_connections(0, Some(1024), 16), 1024 - 64 - 16);
        assert_eq!(effective_max_connections(0, Some(10), 16), 16);
        assert_eq!(effective_max_connections(0, None, 16), 4096);
        assert_eq!(effective_max_connections(0, Some(1 << 40), 16), 65_536);
        assert_eq!(effective_max_connections(100, Some(1024), 16), 100);
        assert_eq!(effective_max_connections(5000, Some(1024), 16), 5000);
    }
}
