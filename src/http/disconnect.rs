//! Notices clients that hang up while their request is still being served, so that expensive
//! work for them (verification) can be dropped. The server keeps polling a request's handler
//! after its connection closed (poem finishes in-flight requests when a connection ends), so the
//! handler learns of it here instead: every accepted connection is watched for end-of-stream on
//! its read side, and a handler can wait for its peer to be gone.

use std::{
    collections::HashMap,
    io::Result as IoResult,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use poem::{
    listener::Acceptor,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::Notify,
};

/// One connection's hang-up signal.
#[derive(Debug, Default)]
pub struct Peer {
    gone: AtomicBool,
    notify: Notify,
}

impl Peer {
    fn hang_up(&self) {
        if !self.gone.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    /// Whether the client has closed its side of the connection.
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Resolves once the client has closed its side of the connection.
    pub async fn gone(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_gone() {
                return;
            }
            notified.await;
        }
    }
}

/// The open connections of the server, by peer address.
#[derive(Debug, Default)]
pub struct Connections {
    open: Mutex<HashMap<SocketAddr, Arc<Peer>>>,
}

impl Connections {
    /// The hang-up signal of the connection from `addr`, while it is open.
    pub fn peer(&self, addr: &RemoteAddr) -> Option<Arc<Peer>> {
        let addr = addr.as_socket_addr()?;
        self.open.lock().ok()?.get(addr).cloned()
    }

    fn opened(&self, addr: SocketAddr) -> Arc<Peer> {
        let peer = Arc::new(Peer::default());
        if let Ok(mut open) = self.open.lock() {
            open.insert(addr, peer.clone());
        }
        peer
    }

    fn closed(&self, addr: SocketAddr, peer: &Arc<Peer>) {
        if let Ok(mut open) = self.open.lock()
            && open.get(&addr).is_some_and(|p| Arc::ptr_eq(p, peer))
        {
            open.remove(&addr);
        }
    }
}

/// An acceptor whose connections report end-of-stream to [`Connections`].
pub struct WatchedAcceptor<A> {
    inner: A,
    connections: Arc<Connections>,
}

impl<A> WatchedAcceptor<A> {
    /// Watches the connections `inner` accepts.
    pub fn new(inner: A, connections: Arc<Connections>) -> Self {
        Self { inner, connections }
    }
}

impl<A: Acceptor> Acceptor for WatchedAcceptor<A> {
    type Io = WatchedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> IoResult<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let watch = remote.as_socket_addr().map(|&addr| {
            (
                addr,
                self.connections.opened(addr),
                self.connections.clone(),
            )
        });
        Ok((WatchedIo { inner: io, watch }, local, remote, scheme))
    }
}

/// A connection that signals its [`Peer`] when the client closes it.
pub struct WatchedIo<T> {
    inner: T,
    watch: Option<(SocketAddr, Arc<Peer>, Arc<Connections>)>,
}

impl<T> WatchedIo<T> {
    fn hang_up(&self) {
        if let Some((_, peer, _)) = &self.watch {
            peer.hang_up();
        }
    }
}

impl<T> Drop for WatchedIo<T> {
    fn drop(&mut self) {
        if let Some((addr, peer, connections)) = &self.watch {
            peer.hang_up();
            connections.closed(*addr, peer);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<IoResult<()>> {
        let before = buf.filled().len();
        let had_room = buf.remaining() > 0;
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(())) if had_room && buf.filled().len() == before => self.hang_up(),
            Poll::Ready(Err(_)) => self.hang_up(),
            _ => {}
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<IoResult<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<IoResult<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IoResult<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IoResult<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
