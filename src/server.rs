//! Wires the program together: opens the backend, builds one service out of the
//! participants API, gRPC health and server reflection (v1 and v1alpha), serves an already
//! bound listener with hyper until `shutdown` resolves, drains, and closes the backend.
//! Tests call [`run`] with a listener on `127.0.0.1:0`; `main` calls it with the
//! configured address and the SIGTERM/SIGINT future.
//!
//! Connections are served by hyper-util directly rather than by `tonic::transport::Server`
//! so that this module owns the two things a production server must get right: deadlines
//! answer DEADLINE_EXCEEDED (tonic's built-in timeout answers CANCELLED), and after the
//! shutdown grace period every connection is really gone when [`run`] returns.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tonic::Status;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tower::{Layer as _, ServiceExt as _};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::admission::{Peer, PeerShare, grpc_message_count, held_until_sent, read_body};
use crate::auth::{Caller, InboundAuth};
use crate::backend::{CallContext, ParticipantBackend};
use crate::config::{BackendKind, Config};
use crate::error::Error;
use crate::grpc::{ParticipantApi, parse_grpc_timeout};
use crate::proto::participant_service_server::SERVICE_NAME;
use crate::store::{LocalBackend, StoreOptions};
use crate::telemetry::ServerCall;
use crate::upstream::{Credentials, TwilioBackend};
use tracing::Instrument as _;

/// How often the backend's readiness is read into the health service.
const READINESS_POLL: Duration = Duration::from_millis(500);

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

/// Per-call limits applied in front of both fronts.
#[derive(Clone)]
struct Limits {
    request_timeout: Duration,
    body_timeout: Duration,
    max_message_bytes: u32,
    /// Largest body read into memory; the fronts enforce `--max-message-bytes` exactly.
    max_body_bytes: usize,
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: u32,
    per_peer: Arc<PeerShare>,
}

/// Opens the configured backend.
pub fn open_backend(config: &Config) -> anyhow::Result<Arc<dyn ParticipantBackend>> {
    match config.backend {
        BackendKind::Local => {
            let store = LocalBackend::open(&StoreOptions {
                data_dir: config.data_dir.clone(),
                account_sid: config.account_sid.clone(),
                idempotency_ttl: config.idempotency_ttl,
                cache_entries: config.cache_entries,
                integrity_check: (!config.skip_integrity_check)
                    .then_some(config.integrity_check_timeout),
            })
            .with_context(|| format!("opening the local store in {}", config.data_dir.display()))?;
            Ok(Arc::new(store))
        }
        BackendKind::Twilio => {
            let credentials = match &config.credentials {
                Some(c) => c.clone(),
                None => Credentials::from_env().map_err(anyhow::Error::msg)?,
            };
            let backend = TwilioBackend::new(config.upstream(credentials))?;
            Ok(Arc::new(backend))
        }
    }
}

/// The base URL v1 participants' `url` field starts with over gRPC.
fn public_url(config: &Config, local: SocketAddr) -> String {
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    match &config.public_url {
        Some(url) => url.clone(),
        None if local.ip().is_unspecified() => format!("{scheme}://localhost:{}", local.port()),
        None => format!("{scheme}://{local}"),
    }
}

/// Every gRPC service of the server, routed by path.
async fn routes(
    config: &Config,
    backend: Arc<dyn ParticipantBackend>,
    local: SocketAddr,
) -> anyhow::Result<(Routes, tonic_health::server::HealthReporter)> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in ["", SERVICE_NAME] {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc.BadRequest, ErrorInfo, RetryInfo: lets grpcurl and other
            // reflection clients decode our error details.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let participants = ParticipantApi::new(backend, &public_url(config, local))
        .into_server(config.max_message_bytes as usize);
    let routes = Routes::new(health_service)
        .add_service(reflection().build_v1()?)
        // Older grpcurl builds and many IDE plugins speak only v1alpha.
        .add_service(reflection().build_v1alpha()?)
        .add_service(participants)
        .prepare();
    Ok((routes, health))
}

/// The one service behind the port. Requests with an `application/grpc*` content type
/// (gRPC, and gRPC-Web through tonic-web) go to the tonic routes, everything else to the
/// REST router; both fronts call the same backend in process. In front of both:
/// - inbound auth (health probes, `/healthz`, `/readyz` and `/metrics` exempt), whose
///   verdict travels to the fronts in the request's extensions;
/// - the deadline: the shorter of the client's `grpc-timeout` and `--request-timeout`,
///   answered DEADLINE_EXCEEDED (gRPC) or 504 (REST) when it passes; the call's future is
///   dropped, which cancels its work (and its upstream request).
fn frontends(
    grpc: Routes,
    rest: axum::Router,
    auth: Arc<InboundAuth>,
    limits: Limits,
) -> impl tower::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<axum::body::Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<axum::body::Body>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    // Before tonic-web, so that gRPC-Web answers carry the corrected status too. Tonic
    // refuses an oversized message with a trailers-only answer: the status is in the
    // headers.
    let max_message_bytes = limits.max_message_bytes;
    let grpc = tower::ServiceExt::<http::Request<tonic::body::Body>>::map_response(
        grpc,
        move |mut response: http::Response<tonic::body::Body>| {
            mend_oversized(response.headers_mut(), max_message_bytes);
            response
        },
    );
    let grpc = tonic_web::GrpcWebLayer::new().layer(grpc);
    tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let headers = request.headers();
        let content_type = headers.get(http::header::CONTENT_TYPE).cloned();
        let is_grpc = content_type
            .as_ref()
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let path = request.uri().path();
        let exempt = matches!(path, "/healthz" | "/readyz" | "/metrics")
            || path.starts_with("/grpc.health.v1.Health/");
        // Server reflection is a bidirectional stream: its body is read as it comes.
        let streaming = path.starts_with("/grpc.reflection.");
        // Everything that can be judged from the head is judged before the body is read:
        // credentials, the caller's deadline, and the client address's fair share.
        let admitted = if exempt {
            Ok((Caller::default(), None, None))
        } else {
            auth.check(headers).and_then(|caller| {
                let timeout = caller_timeout(headers)?;
                let slot = match request.extensions().get::<Peer>() {
                    Some(Peer(ip)) => Some(limits.per_peer.try_take(*ip)?),
                    None => None,
                };
                Ok((caller, timeout, slot))
            })
        };
        let limits = limits.clone();
        let now = tokio::time::Instant::now();
        let grpc = grpc.clone();
        let rest = rest.clone();
        let call = ServerCall::start(&request, is_grpc);
        let span = call.span().clone();
        let trace = call.parent().clone();
        async move {
            let answer = |err: Error| {
                if is_grpc {
                    // A trailers-only answer; in the caller's own framing, so gRPC-Web
                    // clients (which check the content type) read the status too.
                    let mut response = Status::from(err).into_http::<axum::body::Body>();
                    if let Some(content_type) = content_type
                        .clone()
                        .filter(|c| c.as_bytes().starts_with(b"application/grpc-web"))
                    {
                        response
                            .headers_mut()
                            .insert(http::header::CONTENT_TYPE, content_type);
                    }
                    response
                } else {
                    crate::rest::error_response(&err)
                }
            };
            let response = match admitted {
                Err(err) => answer(err),
                Ok((caller, caller_timeout, peer_slot)) => {
                    let limit = caller_timeout
                        .map_or(limits.request_timeout, |t| t.min(limits.request_timeout));
                    let work = async {
                        let mut request = if streaming {
                            request.map(axum::body::Body::new)
                        } else {
                            whole_body(request, &limits, is_grpc).await?
                        };
                        // Load shedding: past the limit a call is refused at once, not
                        // queued, so a client sees back-pressure in microseconds instead
                        // of a timeout in seconds. Only calls whose body is in count.
                        let permit = if exempt {
                            None
                        } else {
                            Some(limits.in_flight.clone().try_acquire_owned().map_err(|_| {
                                Error::ResourceExhausted(format!(
                                    "the server is at its limit of {} calls in flight; \
                                         retry later",
                                    limits.max_in_flight
                                ))
                            })?)
                        };
                        // What the fronts pass to the backend: the deadline (so an upstream
                        // call stops retrying in time) and the auth verdict.
                        request.extensions_mut().insert(CallContext {
                            deadline: caller_timeout.map(|t| now + t),
                            server_deadline: Some(now + limits.request_timeout),
                            trace,
                            upstream_credentials: caller.upstream_credentials,
                        });
                        let response = if is_grpc {
                            let response = grpc.oneshot(request).await;
                            response.map(|r| r.map(axum::body::Body::new))
                        } else {
                            rest.oneshot(request).await
                        };
                        match response {
                            Ok(response) => Ok((response, permit)),
                            Err(never) => match never {},
                        }
                    };
                    match tokio::time::timeout_at(now + limit, work)
                        .instrument(span)
                        .await
                    {
                        // The slots are given back when the answer's body is done: at once
                        // for a unary answer, at the stream's end for a streaming one.
                        Ok(Ok((response, permit))) => {
                            response.map(|body| held_until_sent(body, (permit, peer_slot)))
                        }
                        Ok(Err(err)) => answer(err),
                        Err(_) => answer(Error::DeadlineExceeded(format!(
                            "the call did not finish within its deadline ({limit:?})"
                        ))),
                    }
                }
            };
            call.finish(&response);
            Ok(response)
        }
    })
}

/// The caller's `grpc-timeout`, if it sent one. A malformed value is refused: gRPC's
/// HTTP/2 protocol spec leaves no room to guess what the caller meant.
fn caller_timeout(headers: &http::HeaderMap) -> Result<Option<Duration>, Error> {
    let Some(value) = headers.get("grpc-timeout") else {
        return Ok(None);
    };
    match value.to_str().ok().and_then(parse_grpc_timeout) {
        Some(timeout) => Ok(Some(timeout)),
        None => Err(Error::InvalidArgument(vec![crate::error::FieldViolation {
            field: "grpc-timeout".into(),
            description: "must be at most 8 digits followed by a unit: H, M, S, m, u or n".into(),
        }])),
    }
}

/// The request with its whole body read (see [`read_body`]) within the body timeout (a
/// shorter call deadline wins: the caller is then answered DEADLINE_EXCEEDED / 504). A
/// gRPC call must carry exactly one message: every method served here takes a single
/// request.
async fn whole_body(
    request: http::Request<hyper::body::Incoming>,
    limits: &Limits,
    is_grpc: bool,
) -> Result<http::Request<axum::body::Body>, Error> {
    let (parts, body) = request.into_parts();
    let body = read_body(
        &parts.headers,
        body,
        limits.max_body_bytes,
        limits.body_timeout,
    )
    .await?;
    if is_grpc {
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map_or(&b""[..], |v| v.as_bytes());
        match grpc_message_count(content_type, &body) {
            Some(n) if n != 1 => {
                return Err(Error::Http {
                    status: 501,
                    message: format!(
                        "a unary call must carry exactly one request message, this one \
                         carried {n}"
                    ),
                });
            }
            _ => {}
        }
    }
    Ok(http::Request::from_parts(
        parts,
        axum::body::Body::from(body),
    ))
}

/// Whether a gRPC status says tonic refused the request message for its size. Tonic
/// answers that OUT_OF_RANGE; gRPC's status-code table, and grpc-go, -java and C-core,
/// say RESOURCE_EXHAUSTED, which is what the facade answers instead.
fn is_oversized_message(headers: &http::HeaderMap) -> bool {
    headers.get("grpc-status").is_some_and(|s| s == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            // Percent-encoded as gRPC sends it (tonic encodes spaces too).
            .is_some_and(|m| m.replace("%20", " ").contains("message length too large"))
}

/// Replaces tonic's size refusal in a gRPC status with RESOURCE_EXHAUSTED (see
/// [`is_oversized_message`]).
fn mend_oversized(status: &mut http::HeaderMap, max_message_bytes: u32) {
    if !is_oversized_message(status) {
        return;
    }
    let refusal = Status::from(Error::Http {
        status: 413,
        message: format!(
            "the request message is larger than the limit of {max_message_bytes} bytes"
        ),
    });
    status.remove("grpc-status-details-bin");
    if refusal.add_header(status).is_err() {
        tracing::error!("cannot encode the message-size status");
    }
}

/// CORS for browser clients (gRPC-Web and REST) from other origins, when configured.
fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                http::HeaderValue::from_str(o).with_context(|| format!("--cors-allow-origin {o:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    let header = http::HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([http::Method::GET, http::Method::POST, http::Method::OPTIONS])
            .allow_headers([
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header("idempotency-key"),
                header("x-twilio-webhook-enabled"),
                header("traceparent"),
                header("tracestate"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
                header("x-conflicting-resource-id"),
                http::header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    ))
}

/// Serves until `shutdown` resolves, then drains: health turns NOT_SERVING, new calls are
/// still accepted for `--drain-delay` (so load balancers notice first), then the listener
/// closes, every connection is asked to finish (HTTP/2 GOAWAY) and in-flight calls get
/// `--shutdown-grace`; connections still open after it are dropped. Finally the backend
/// is closed (for the local store: last commit, checkpoint, close, lock released).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = Instant::now();
    config.check().map_err(anyhow::Error::msg)?;
    let local = listener.local_addr()?;
    // TLS files first: a misconfigured instance must not open (and lock) the store.
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(cert, key, config.tls_client_ca.as_deref())?,
        )),
        _ => None,
    };
    survive_file_size_limit();
    let backend = open_backend(&config)?;
    let (routes, health) = routes(&config, backend.clone(), local).await?;
    let auth = match &config.inbound_auth {
        Some(auth) => auth.clone(),
        None => {
            Arc::new(InboundAuth::from_env(config.auth_passthrough).map_err(anyhow::Error::msg)?)
        }
    };
    if auth.required() {
        tracing::info!(?auth, "inbound authentication required");
        if config.tls_cert.is_none() && !local.ip().is_loopback() {
            tracing::warn!(
                %local,
                "inbound credentials cross the network in cleartext: serve TLS (--tls-cert) \
                 or keep the port behind a TLS-terminating mesh"
            );
        }
    }
    if auth.passthrough() && !auth.required() {
        tracing::warn!(
            "--auth-passthrough without PARTICIPANTS_AUTH_BASIC or \
             PARTICIPANTS_AUTH_BEARER_TOKENS: callers that send no credentials are served \
             with the configured Twilio credentials"
        );
    }
    let draining = Arc::new(AtomicBool::new(false));
    let rest = crate::rest::router(
        Arc::new(crate::rest::RestState {
            backend: backend.clone(),
            public_url: config.public_url.clone(),
            draining: draining.clone(),
            tls: config.tls_cert.is_some(),
        }),
        config.max_message_bytes as usize,
    );
    let limits = Limits {
        request_timeout: config.request_timeout,
        body_timeout: config.body_timeout,
        max_message_bytes: config.max_message_bytes,
        // Room for gRPC framing and gRPC-Web text's base64 (4/3); what is past the
        // message limit itself is refused by tonic and axum with their usual answers.
        max_body_bytes: config.max_message_bytes as usize * 2 + 1024,
        in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight as usize)),
        max_in_flight: config.max_in_flight,
        per_peer: PeerShare::new(config.in_flight_per_peer()),
    };
    let service = tower::ServiceBuilder::new()
        .option_layer(cors(&config.cors_allow_origin)?)
        .service(frontends(routes, rest, auth, limits));

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
        .max_concurrent_streams(config.max_concurrent_streams)
        // HTTP/2 "rapid reset" (CVE-2023-44487) and its cousins: a client that keeps
        // opening streams and resetting them, or provoking errors, is disconnected.
        .max_pending_accept_reset_streams(Some(MAX_PENDING_RESETS))
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        // Finds dead peers (and half-open NAT mappings) so their resources are freed.
        .keep_alive_interval(config.http2_keepalive_interval)
        .keep_alive_timeout(config.http2_keepalive_timeout);

    tokio::spawn(track_readiness(
        backend.clone(),
        health.clone(),
        draining.clone(),
    ));

    let drain = {
        let drain_delay = config.drain_delay;
        let health = health.clone();
        async move {
            shutdown.await;
            draining.store(true, Ordering::SeqCst);
            tracing::info!(
                ?drain_delay,
                "shutdown requested; health is NOT_SERVING, draining"
            );
            for name in ["", SERVICE_NAME] {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            tokio::time::sleep(drain_delay).await;
        }
    };
    tokio::pin!(drain);

    if let Some(addr) = config.metrics_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on --metrics-listen {addr}"))?;
        tracing::info!(%addr, "serving /metrics on a second port");
        tokio::spawn(serve_metrics(listener));
    }
    tracing::info!(
        %local,
        backend = ?config.backend,
        startup_ms = started.elapsed().as_millis() as u64,
        "serving participants.v1.ParticipantService"
    );
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
                        let io = crate::refusals::TwilioRefusals::new(io);
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

    let grace = config.shutdown_grace;
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
    backend.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Keeps the service's health (the readiness signal; `""` stays the liveness signal) in
/// step with the backend's own readiness, until draining takes over.
async fn track_readiness(
    backend: Arc<dyn ParticipantBackend>,
    health: tonic_health::server::HealthReporter,
    draining: Arc<AtomicBool>,
) {
    let mut ready = true;
    let mut tick = tokio::time::interval(READINESS_POLL);
    loop {
        tick.tick().await;
        if draining.load(Ordering::SeqCst) {
            return;
        }
        let now = backend.ready();
        if now != ready {
            ready = now;
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            tracing::warn!(ready, "backend readiness changed");
            crate::metrics::METRICS.ready.set(i64::from(ready));
            health.set_service_status(SERVICE_NAME, status).await;
        }
    }
}

/// `--metrics-listen`: a second port that serves only `/metrics`, for scrapers kept off
/// the service port. It lives as long as the process.
async fn serve_metrics(listener: TcpListener) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
                crate::metrics::METRICS.render(),
            )
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

/// Keeps the process alive past a file-size limit (`RLIMIT_FSIZE`). By default SIGXFSZ
/// kills the process, with nothing logged; caught, it lets the write fail with EFBIG,
/// which the store answers as a failed write (and readiness NOT_SERVING) while reads go
/// on. Catching it through tokio needs no `unsafe`; each signal is logged.
fn survive_file_size_limit() {
    use tokio::signal::unix::{SignalKind, signal};
    let kind = SignalKind::from_raw(nix::sys::signal::Signal::SIGXFSZ as i32);
    match signal(kind) {
        Ok(mut signals) => {
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    tracing::error!(
                        "a write went past the process's file-size limit (SIGXFSZ); it \
                         failed, and the store reports it"
                    );
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch SIGXFSZ; a file-size limit will stop the process")
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
