//! The listener: accepts connections (TCP, or TLS over TCP), serves each with hyper-util
//! (HTTP/1.1 and HTTP/2 on one port) under bounded heads, streams and handshakes, and on
//! shutdown drains them: GOAWAY, in-flight calls get the grace period, and every
//! connection is gone when [`serve`] returns.
//!
//! Connections are served by hyper-util directly rather than by `tonic::transport::Server`
//! so that this module owns what a production server must get right: the bounds on what
//! a client may hold, and that after the grace period nothing is left running.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::admission::Peer;

/// Longest TLS handshake before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/1: longest wait for a request's headers (also the idle keep-alive timeout).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/1: most headers in a request.
const MAX_HEADERS: usize = 100;
/// Largest request head (HTTP/2 header list; HTTP/1 buffer is 4 times this).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// HTTP/2: streams reset by the client before being served, allowed at once.
const MAX_PENDING_RESETS: usize = 20;
/// HTTP/2: streams the server had to reset for protocol errors, before disconnecting.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// What the listener needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct ListenerSettings {
    /// `--max-concurrent-streams`.
    pub max_concurrent_streams: u32,
    /// `--http2-keepalive-interval`.
    pub keepalive_interval: Duration,
    /// `--http2-keepalive-timeout`.
    pub keepalive_timeout: Duration,
    /// `--shutdown-grace`.
    pub shutdown_grace: Duration,
}

/// A connection's transport: TCP, or TLS over TCP.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Fails reads with `TimedOut` if the connection has not sent the bytes that choose its
/// protocol (24, the HTTP/2 preface's length) within the deadline; afterwards, a plain
/// pass-through. hyper-util reads those bytes with no timeout of its own.
struct FirstBytesDeadline<T> {
    inner: T,
    seen: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

const PROTOCOL_SNIFF_BYTES: usize = 24;

impl<T> FirstBytesDeadline<T> {
    fn new(inner: T, timeout: Duration) -> Self {
        FirstBytesDeadline {
            inner,
            seen: 0,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstBytesDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.seen >= PROTOCOL_SNIFF_BYTES {
            return polled;
        }
        match polled {
            Poll::Ready(Ok(())) => {
                self.seen += buf.filled().len() - before;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request within the header read timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstBytesDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves `service` on every connection `listener` accepts until `drain` resolves; then
/// closes the listener, asks every connection to finish, and gives in-flight calls
/// `shutdown_grace` before dropping what is still open. Each request carries its client
/// address ([`Peer`]) in its extensions.
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    tls: Option<tokio_rustls::TlsAcceptor>,
    settings: &ListenerSettings,
    drain: impl Future<Output = ()>,
) where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        // A client that trickles its headers, or idles between requests, cannot hold a
        // connection forever.
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // Bounded request heads: at most this many headers and bytes of buffer.
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES * 4);
    http.http2()
        .timer(TokioTimer::new())
        // One client cannot open unbounded streams on a connection.
        .max_concurrent_streams(settings.max_concurrent_streams)
        // HTTP/2 "rapid reset" (CVE-2023-44487) and its cousins: a client that keeps
        // opening streams and resetting them, or provoking errors, is disconnected.
        .max_pending_accept_reset_streams(Some(MAX_PENDING_RESETS))
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        // Finds dead peers (and half-open NAT mappings) so their resources are freed.
        .keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout);

    tokio::pin!(drain);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Small unary messages: send them now, not after Nagle's delay.
                    let _ = stream.set_nodelay(true);
                    let http = http.clone();
                    // Each request knows its client address (for its fair share).
                    let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                        service.clone(),
                        move |mut request: http::Request<hyper::body::Incoming>| {
                            request.extensions_mut().insert(Peer(peer.ip()));
                            request
                        },
                    ));
                    let watcher = graceful.watcher();
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let io: Box<dyn Io> = match tls {
                            None => Box::new(stream),
                            Some(acceptor) => {
                                // A client that never finishes its handshake is dropped.
                                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => Box::new(stream),
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::debug!(%peer, "TLS handshake timed out");
                                        return;
                                    }
                                }
                            }
                        };
                        // The protocol is chosen from the first bytes; a client that never
                        // sends them is dropped like a slow HTTP/1 client.
                        let io = FirstBytesDeadline::new(io, HEADER_READ_TIMEOUT);
                        // hyper's own refusals (unparsable or oversized heads) in
                        // Twilio's error body, like every other REST error.
                        let io = super::refusals::TwilioRefusals::new(io);
                        let connection = http.serve_connection_with_upgrades(TokioIo::new(io), service);
                        if let Err(e) = watcher.watch(connection.into_owned()).await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut drain => break,
        }
    }
    drop(listener);

    let grace = settings.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            open = connections.len(),
            "shutdown grace period over; dropping connections still open"
        );
    }
    connections.shutdown().await;
}
