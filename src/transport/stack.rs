//! The one service behind the port: what every call passes through, as a tower stack
//! built in one place ([`service`]), then the dispatch to the front that serves it.
//!
//! Each concern is one layer, an async fn of (state, request, next) made a tower layer by
//! axum's `middleware::from_fn_with_state`. Layers hand what they learned to the layers
//! inside them in the request's extensions: the [`Call`] (its protocol, whether it is
//! exempt from limits), the [`Caller`] (the auth verdict), the [`TraceParent`], and at
//! last the [`CallContext`] the fronts pass to the backend. A layer that refuses answers
//! at once, in the caller's own framing ([`Call::refuse`]).
//!
//! Slots are held until the answer has been sent, not only until it is ready: a layer
//! that takes one wraps the response body ([`held_until_sent`]). For that reason the
//! in-flight limit is not tower's `ConcurrencyLimit`, which gives its permit back when
//! the response future resolves, so a streaming answer (server reflection) would run
//! outside the limit; and load is shed rather than queued, so the limit refuses at once
//! instead of waiting in `poll_ready` (tower's `LoadShed` over `ConcurrencyLimit` sheds the
//! same way, with the same early release).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;
use http::HeaderValue;
use tonic::Status;
use tonic::service::Routes;
use tower::{Layer as _, ServiceBuilder, ServiceExt as _};
use tower_http::cors::CorsLayer;
use tracing::Instrument as _;

use super::admission::{Peer, PeerShare, grpc_messages, held_until_sent, read_body};
use super::auth::{Caller, InboundAuth};
use crate::backend::CallContext;
use crate::domain::error::{Error, FieldViolation};
use crate::front::grpc::parse_grpc_timeout;
use crate::observability::ServerCall;

/// Per-call limits applied in front of both fronts.
#[derive(Clone)]
pub(crate) struct Limits {
    /// `--request-timeout`.
    pub request_timeout: Duration,
    /// `--body-timeout`.
    pub body_timeout: Duration,
    /// `--max-message-bytes`.
    pub max_message_bytes: u32,
    /// Largest body read into memory; the fronts enforce `--max-message-bytes` exactly.
    pub max_body_bytes: usize,
    /// The `--max-in-flight` slots.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// `--max-in-flight`.
    pub max_in_flight: u32,
    /// Each client address's share (`--max-in-flight-per-peer`).
    pub per_peer: Arc<PeerShare>,
}

/// The stack, outermost layer first. Requests come from hyper; answers go back to it.
pub(crate) fn service(
    grpc: Routes,
    rest: axum::Router,
    auth: Arc<InboundAuth>,
    limits: Limits,
    cors: Option<CorsLayer>,
) -> impl tower::Service<
    http::Request<hyper::body::Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        // Every layer below reads axum's body type.
        .map_request(|request: http::Request<hyper::body::Incoming>| request.map(Body::new))
        // CORS for browsers on other origins: preflights are answered here, before auth.
        .option_layer(cors)
        // What the call is (gRPC, gRPC-Web or REST; exempt or not), judged once from its
        // head and left in its extensions for every layer below.
        .map_request(Call::classify)
        // Tracing: one server span per call, continuing the caller's trace; its duration
        // and outcome in the call metrics, a call dropped unanswered counted as cancelled.
        .layer(from_fn(trace))
        // Inbound auth (probes and /metrics exempt): the verdict goes inside as a
        // `Caller`, with the credentials a passthrough caller brought.
        .layer(from_fn_with_state(auth, authenticate))
        // The deadline: the shorter of the caller's `grpc-timeout` and
        // `--request-timeout`, answered DEADLINE_EXCEEDED / 504 when it passes (the call's
        // future is dropped, which cancels its work); the `CallContext` for the backend.
        .layer(from_fn_with_state(limits.clone(), deadline))
        // The client address's fair share, taken before the body is read, so a client
        // trickling bodies holds only its own share.
        .layer(from_fn_with_state(limits.per_peer.clone(), fair_share))
        // The whole body, within `--body-timeout` and a size bound; a gRPC call carries
        // exactly one message of at most `--max-message-bytes`.
        .layer(from_fn_with_state(limits.clone(), whole_body))
        // Load shedding: past `--max-in-flight` a call is refused at once, not queued.
        // Only calls whose body is in count.
        .layer(from_fn_with_state(limits, shed_load))
        .service(dispatch(grpc, rest))
}

/// gRPC and gRPC-Web (through tonic-web) to the tonic routes, everything else to the REST
/// router; both fronts call the same backend in process.
fn dispatch(
    grpc: Routes,
    rest: axum::Router,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    let grpc = tonic_web::GrpcWebLayer::new().layer(grpc);
    tower::service_fn(move |request: Request| {
        let grpc = grpc.clone();
        let rest = rest.clone();
        async move {
            if Call::of(&request).grpc {
                let response = grpc.oneshot(request).await?;
                Ok(response.map(Body::new))
            } else {
                rest.oneshot(request).await
            }
        }
    })
}

/// What a call is, as the layers need to know it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Call {
    /// gRPC or gRPC-Web (`application/grpc*`); otherwise REST.
    grpc: bool,
    /// The content type of a gRPC-Web call, which its refusals are answered in.
    grpc_web: Option<HeaderValue>,
    /// Probes and `/metrics`: no credentials, no limits, no caller deadline.
    exempt: bool,
    /// Server reflection, a bidirectional stream: its body is read as it comes.
    streaming: bool,
}

impl Call {
    fn classify(mut request: Request) -> Request {
        let content_type = request.headers().get(http::header::CONTENT_TYPE);
        let grpc = content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let grpc_web = content_type
            .filter(|v| v.as_bytes().starts_with(b"application/grpc-web"))
            .cloned();
        let path = request.uri().path();
        let call = Call {
            grpc,
            grpc_web,
            exempt: matches!(path, "/healthz" | "/readyz" | "/metrics")
                || path.starts_with("/grpc.health.v1.Health/"),
            streaming: path.starts_with("/grpc.reflection."),
        };
        request.extensions_mut().insert(call);
        request
    }

    /// The call's classification (the default, a plain REST call, if it was never
    /// classified).
    fn of(request: &Request) -> Call {
        request
            .extensions()
            .get::<Call>()
            .cloned()
            .unwrap_or_default()
    }

    /// `err` answered in the caller's framing: a gRPC trailers-only answer (in gRPC-Web's
    /// content type for gRPC-Web callers, who check it), or Twilio's error body.
    fn refuse(&self, err: Error) -> Response {
        if !self.grpc {
            return crate::front::rest::error_response(&err);
        }
        let mut response = Status::from(err).into_http::<Body>();
        if let Some(content_type) = &self.grpc_web {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type.clone());
        }
        response
    }
}

/// The caller's trace context, as the server span extracted it from its headers.
#[derive(Debug, Clone)]
struct TraceParent(opentelemetry::Context);

async fn trace(mut request: Request, next: Next) -> Response {
    let call = ServerCall::start(&request, Call::of(&request).grpc);
    request
        .extensions_mut()
        .insert(TraceParent(call.parent().clone()));
    let response = next.run(request).instrument(call.span().clone()).await;
    call.finish(&response);
    response
}

async fn authenticate(
    State(auth): State<Arc<InboundAuth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let call = Call::of(&request);
    let caller = if call.exempt {
        Caller::default()
    } else {
        match auth.check(request.headers()) {
            Ok(caller) => caller,
            Err(err) => return call.refuse(err),
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn deadline(State(limits): State<Limits>, mut request: Request, next: Next) -> Response {
    let now = tokio::time::Instant::now();
    let call = Call::of(&request);
    let caller_timeout = if call.exempt {
        None
    } else {
        match caller_timeout(request.headers()) {
            Ok(timeout) => timeout,
            Err(err) => return call.refuse(err),
        }
    };
    let limit = caller_timeout.map_or(limits.request_timeout, |t| t.min(limits.request_timeout));
    let extensions = request.extensions_mut();
    let upstream_credentials = extensions
        .remove::<Caller>()
        .and_then(|caller| caller.upstream_credentials);
    let trace = extensions
        .remove::<TraceParent>()
        .map(|TraceParent(parent)| parent)
        .unwrap_or_default();
    // What the fronts pass to the backend: the deadline (so an upstream call stops
    // retrying in time) and the auth verdict.
    extensions.insert(CallContext {
        deadline: caller_timeout.map(|t| now + t),
        server_deadline: Some(now + limits.request_timeout),
        trace,
        upstream_credentials,
    });
    match tokio::time::timeout_at(now + limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => call.refuse(Error::DeadlineExceeded(format!(
            "the call did not finish within its deadline ({limit:?})"
        ))),
    }
}

/// The caller's `grpc-timeout`, if it sent one. A malformed value is refused: gRPC's
/// HTTP/2 protocol spec leaves no room to guess what the caller meant.
fn caller_timeout(headers: &http::HeaderMap) -> Result<Option<Duration>, Error> {
    let Some(value) = headers.get("grpc-timeout") else {
        return Ok(None);
    };
    match value.to_str().ok().and_then(parse_grpc_timeout) {
        Some(timeout) => Ok(Some(timeout)),
        None => Err(Error::InvalidArgument(vec![FieldViolation {
            field: "grpc-timeout".into(),
            description: "must be at most 8 digits followed by a unit: H, M, S, m, u or n".into(),
        }])),
    }
}

async fn fair_share(State(share): State<Arc<PeerShare>>, request: Request, next: Next) -> Response {
    let call = Call::of(&request);
    let peer = request.extensions().get::<Peer>().copied();
    let slot = match peer {
        Some(Peer(ip)) if !call.exempt => match share.try_take(ip) {
            Ok(slot) => Some(slot),
            Err(err) => return call.refuse(err),
        },
        _ => None,
    };
    next.run(request)
        .await
        .map(|body| held_until_sent(body, slot))
}

/// The request with its whole body read (see [`read_body`]); a shorter call deadline
/// wins (the deadline layer answers). A gRPC call must carry exactly one message, of at
/// most `--max-message-bytes`: every method served here takes a single request.
async fn whole_body(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let call = Call::of(&request);
    if call.streaming {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match read_body(
        &parts.headers,
        body,
        limits.max_body_bytes,
        limits.body_timeout,
    )
    .await
    {
        Ok(body) => body,
        Err(err) => return call.refuse(err),
    };
    if call.grpc {
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map_or(&b""[..], |v| v.as_bytes());
        let messages = grpc_messages(content_type, &body);
        // Judged here from the frame header, before tonic reads the message: gRPC's
        // status-code table (and grpc-go, -java and C-core) answer RESOURCE_EXHAUSTED,
        // where tonic's own refusal is OUT_OF_RANGE.
        if messages.largest > limits.max_message_bytes as usize {
            return call.refuse(Error::Rejected {
                status: 413,
                message: format!(
                    "the request message is larger than the limit of {} bytes",
                    limits.max_message_bytes
                ),
            });
        }
        if let Some(n) = messages.count.filter(|n| *n != 1) {
            return call.refuse(Error::Rejected {
                status: 501,
                message: format!(
                    "a unary call must carry exactly one request message, this one carried {n}"
                ),
            });
        }
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

async fn shed_load(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let call = Call::of(&request);
    let permit = if call.exempt {
        None
    } else {
        match limits.in_flight.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                return call.refuse(Error::ResourceExhausted(format!(
                    "the server is at its limit of {} calls in flight; retry later",
                    limits.max_in_flight
                )));
            }
        }
    };
    next.run(request)
        .await
        .map(|body| held_until_sent(body, permit))
}
