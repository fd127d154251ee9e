//! The one service behind the port: what every call passes through, in one place
//! ([`service`] and [`Stack::serve`]), then the dispatch to the front that serves it.
//!
//! Three protocols reach the fronts: gRPC and gRPC-Web (tonic, through tonic-web),
//! Connect (the same tonic routes, its bodies and answers translated by
//! `front::grpc::connect`) and REST (the axum router).
//!
//! CORS is a tower layer in front. Everything after it is one async function per call,
//! each concern a plain step in the order it applies, with its comment: tracing, auth, the
//! deadline, fair share, the whole body, load shedding, dispatch. (As separate
//! `axum::middleware::from_fn` layers they cost, per call and layer, a clone of the stack
//! inside, a boxed future and service, and the request taken apart and put back: several
//! microseconds of server CPU per call.) What the steps learn stays in locals: the
//! [`Call`] (its protocol, whether it is exempt from limits), the auth verdict and the
//! caller's trace context end in the [`CallContext`] the fronts pass to the backend. A
//! step that refuses answers at once, in the caller's own framing ([`Call::refuse`]).
//!
//! Slots are held until the answer has been sent, not only until it is ready: the
//! response body is wrapped with them ([`held_until_sent`]). For that reason the
//! in-flight limit is not tower's `ConcurrencyLimit`, which gives its permit back when
//! the response future resolves, so a streaming answer (server reflection) would run
//! outside the limit; and load is shed rather than queued, so the limit refuses at once
//! instead of waiting in `poll_ready` (tower's `LoadShed` over `ConcurrencyLimit` sheds the
//! same way, with the same early release).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::HeaderValue;
use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;
use tonic::service::Routes;
use tonic_web::GrpcWebService;
use tower::{Layer as _, ServiceBuilder, ServiceExt as _};
use tower_http::cors::CorsLayer;
use tracing::Instrument as _;

use super::admission::{Peer, PeerShare, PeerSlot, grpc_messages, held_until_sent, read_body};
use super::auth::{Caller, InboundAuth};
use crate::backend::CallContext;
use crate::domain::error::{Error, FieldViolation};
use crate::front::grpc::connect::{self, ConnectCall};
use crate::front::grpc::{parse_connect_timeout, parse_grpc_timeout};
use crate::observability::{Protocol, ServerCall};

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

/// The service behind the port. Requests come from hyper; answers go back to it.
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
    let stack = Arc::new(Stack {
        auth,
        limits,
        grpc: tonic_web::GrpcWebLayer::new().layer(grpc.clone()),
        routes: grpc,
        rest,
    });
    ServiceBuilder::new()
        // Every step below reads axum's body type.
        .map_request(|request: http::Request<hyper::body::Incoming>| request.map(Body::new))
        // CORS for browsers on other origins: preflights are answered here, before auth.
        .option_layer(cors)
        // Then the steps of `Stack::serve`, in order, in one future per call.
        .service(tower::service_fn(move |request: Request| {
            let stack = stack.clone();
            async move { Ok::<_, Infallible>(stack.serve(request).await) }
        }))
}

/// What every call passes through after CORS, and the two fronts it is dispatched to.
struct Stack {
    auth: Arc<InboundAuth>,
    limits: Limits,
    /// gRPC and gRPC-Web (through tonic-web).
    grpc: GrpcWebService<Routes>,
    /// The same routes, called in process for Connect calls.
    routes: Routes,
    rest: axum::Router,
}

impl Stack {
    /// One call, its steps in the order they apply.
    async fn serve(&self, request: Request) -> Response {
        // What the call is (gRPC, gRPC-Web, Connect or REST; exempt or not), judged once
        // from its head for every step below.
        let call = Call::classify(&request);
        // Tracing: one server span per call, continuing the caller's trace; its duration
        // and outcome in the call metrics, a call dropped unanswered counted as cancelled.
        let traced = ServerCall::start(&request, call.protocol());
        let response = self
            .admit(&call, traced.parent().clone(), request)
            .instrument(traced.span().clone())
            .await;
        traced.finish(&response);
        response
    }

    /// Auth and the deadline, then the rest of the call within that deadline.
    async fn admit(
        &self,
        call: &Call,
        trace: opentelemetry::Context,
        mut request: Request,
    ) -> Response {
        // Inbound auth (probes and /metrics exempt): the verdict, with the credentials a
        // passthrough caller brought, goes to the backend in the `CallContext`.
        let caller = if call.exempt {
            Caller::default()
        } else {
            match self.auth.check(request.headers()) {
                Ok(caller) => caller,
                Err(err) => return call.refuse(err),
            }
        };
        // A Connect call its head alone refuses (unknown method, content type, protocol
        // version, compressed body), answered in Connect's error JSON.
        if let Kind::Connect(connect) = &call.kind
            && let Some(refusal) = connect.refusal()
        {
            return refusal;
        }
        // The deadline: the shorter of the caller's `grpc-timeout` (`Connect-Timeout-Ms`
        // for Connect) and `--request-timeout`, answered DEADLINE_EXCEEDED / 504 when it passes (the call's
        // future is dropped, which cancels its work, body reading included); the
        // `CallContext` for the backend.
        let now = tokio::time::Instant::now();
        let caller_timeout = if call.exempt {
            None
        } else {
            match caller_timeout(&call.kind, request.headers()) {
                Ok(timeout) => timeout,
                Err(err) => return call.refuse(err),
            }
        };
        let request_timeout = self.limits.request_timeout;
        let limit = caller_timeout.map_or(request_timeout, |t| t.min(request_timeout));
        // What the fronts pass to the backend: the deadline (so an upstream call stops
        // retrying in time) and the auth verdict.
        request.extensions_mut().insert(CallContext {
            deadline: caller_timeout.map(|t| now + t),
            server_deadline: Some(now + request_timeout),
            trace,
            upstream_credentials: caller.upstream_credentials,
        });
        match tokio::time::timeout_at(now + limit, self.within_deadline(call, request)).await {
            Ok(response) => response,
            Err(_) => call.refuse(Error::DeadlineExceeded(format!(
                "the call did not finish within its deadline ({limit:?})"
            ))),
        }
    }

    /// The limits, then dispatch; the slots taken are held until the answer is sent.
    async fn within_deadline(&self, call: &Call, mut request: Request) -> Response {
        // The client address's fair share, taken before the body is read, so a client
        // trickling bodies holds only its own share.
        let slot = match request.extensions().get::<Peer>() {
            Some(&Peer(ip)) if !call.exempt => match self.limits.per_peer.try_take(ip) {
                Ok(slot) => Some(slot),
                Err(err) => return call.refuse(err),
            },
            _ => None,
        };
        // The whole body, within `--body-timeout` and a size bound; a gRPC call carries
        // exactly one message of at most `--max-message-bytes`. Server reflection, a
        // bidirectional stream, has its body read as it comes.
        if !call.streaming
            && let Err(err) = self.whole_body(call, &mut request).await
        {
            return hold(call.refuse(err), None, slot);
        }
        // Load shedding: past `--max-in-flight` a call is refused at once, not queued.
        // Only calls whose body is in count.
        let permit = if call.exempt {
            None
        } else {
            match self.limits.in_flight.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let err = Error::ResourceExhausted(format!(
                        "the server is at its limit of {} calls in flight; retry later",
                        self.limits.max_in_flight
                    ));
                    return hold(call.refuse(err), None, slot);
                }
            }
        };
        // gRPC and gRPC-Web to the tonic routes, Connect to the same routes as gRPC (its
        // answer translated back), everything else to the REST router; both fronts call
        // the same backend in process.
        let response = match &call.kind {
            Kind::Grpc { .. } => {
                let Ok(response) = self.grpc.clone().oneshot(request).await;
                response.map(Body::new)
            }
            Kind::Connect(connect) => {
                let Ok(response) = self.routes.clone().oneshot(request).await;
                connect.answer(response).await
            }
            Kind::Rest => {
                let Ok(response) = self.rest.clone().oneshot(request).await;
                response
            }
        };
        hold(response, permit, slot)
    }

    /// Replaces the request's body with the whole of it (see [`read_body`]); a shorter
    /// call deadline wins (its step answers). A gRPC call must carry exactly one message,
    /// of at most `--max-message-bytes`: every method served here takes a single request.
    /// A Connect call's body becomes that one gRPC message, its head a gRPC head.
    async fn whole_body(&self, call: &Call, request: &mut Request) -> Result<(), Error> {
        let limits = &self.limits;
        let body = std::mem::take(request.body_mut());
        let body = read_body(
            request.headers(),
            body,
            limits.max_body_bytes,
            limits.body_timeout,
        )
        .await?;
        if let Kind::Connect(connect) = &call.kind {
            let frame = connect.grpc_body(body, limits.max_message_bytes as usize)?;
            ConnectCall::grpc_head(request.headers_mut());
            *request.body_mut() = Body::from(frame);
            return Ok(());
        }
        if matches!(call.kind, Kind::Grpc { .. }) {
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .map_or(&b""[..], |v| v.as_bytes());
            let messages = grpc_messages(content_type, &body);
            // Judged here from the frame header, before tonic reads the message: gRPC's
            // status-code table (and grpc-go, -java and C-core) answer RESOURCE_EXHAUSTED,
            // where tonic's own refusal is OUT_OF_RANGE.
            if messages.largest > limits.max_message_bytes as usize {
                return Err(Error::Rejected {
                    status: 413,
                    message: format!(
                        "the request message is larger than the limit of {} bytes",
                        limits.max_message_bytes
                    ),
                });
            }
            if let Some(n) = messages.count.filter(|n| *n != 1) {
                return Err(Error::Rejected {
                    status: 501,
                    message: format!(
                        "a unary call must carry exactly one request message, this one carried {n}"
                    ),
                });
            }
        }
        *request.body_mut() = Body::from(body);
        Ok(())
    }
}

/// `response`, its body holding the in-flight permit and the fair-share slot until it has
/// been sent (the permit given back first); as it is when it holds neither.
fn hold(
    response: Response,
    permit: Option<OwnedSemaphorePermit>,
    slot: Option<PeerSlot>,
) -> Response {
    if permit.is_none() && slot.is_none() {
        return response;
    }
    response.map(|body| held_until_sent(body, (permit, slot)))
}

/// What a call is, as the steps need to know it.
#[derive(Debug)]
pub(crate) struct Call {
    /// Its protocol, and what its answers need of it.
    kind: Kind,
    /// Probes and `/metrics`: no credentials, no limits, no caller deadline.
    exempt: bool,
    /// Server reflection, a bidirectional stream: its body is read as it comes.
    streaming: bool,
}

/// A call's protocol.
#[derive(Debug)]
enum Kind {
    /// gRPC or gRPC-Web (`application/grpc*`), with the content type of a gRPC-Web call,
    /// which its refusals are answered in.
    Grpc { web: Option<HeaderValue> },
    /// Connect (`application/json` or `application/proto` on a method path).
    Connect(ConnectCall),
    /// Everything else.
    Rest,
}

impl Call {
    fn classify(request: &Request) -> Call {
        let content_type = request.headers().get(http::header::CONTENT_TYPE);
        let path = request.uri().path();
        let kind = if content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc")) {
            Kind::Grpc {
                web: content_type
                    .filter(|v| v.as_bytes().starts_with(b"application/grpc-web"))
                    .cloned(),
            }
        } else if let Some(connect) =
            ConnectCall::classify(request.method(), path, request.headers())
        {
            Kind::Connect(connect)
        } else {
            Kind::Rest
        };
        Call {
            kind,
            exempt: matches!(path, "/healthz" | "/readyz" | "/metrics")
                || path.starts_with("/grpc.health.v1.Health/"),
            streaming: path.starts_with("/grpc.reflection."),
        }
    }

    /// The protocol its span and metrics name.
    fn protocol(&self) -> Protocol {
        match self.kind {
            Kind::Grpc { .. } => Protocol::Grpc,
            Kind::Connect(_) => Protocol::Connect,
            Kind::Rest => Protocol::Http,
        }
    }

    /// `err` answered in the caller's framing: a gRPC trailers-only answer (in gRPC-Web's
    /// content type for gRPC-Web callers, who check it), Connect's error JSON, or
    /// Twilio's error body.
    fn refuse(&self, err: Error) -> Response {
        match &self.kind {
            Kind::Rest => crate::front::rest::error_response(&err),
            Kind::Connect(_) => connect::error_response(&Status::from(err)),
            Kind::Grpc { web } => {
                let mut response = Status::from(err).into_http::<Body>();
                if let Some(content_type) = web {
                    response
                        .headers_mut()
                        .insert(http::header::CONTENT_TYPE, content_type.clone());
                }
                response
            }
        }
    }
}

/// The caller's `grpc-timeout` (`Connect-Timeout-Ms` for a Connect call), if it sent
/// one. A malformed value is refused: neither protocol's spec leaves room to guess what
/// the caller meant.
fn caller_timeout(kind: &Kind, headers: &http::HeaderMap) -> Result<Option<Duration>, Error> {
    if let Kind::Connect(_) = kind {
        let Some(value) = headers.get("connect-timeout-ms") else {
            return Ok(None);
        };
        return match parse_connect_timeout(value.as_bytes()) {
            Some(timeout) => Ok(Some(timeout)),
            None => Err(Error::InvalidArgument(vec![FieldViolation {
                field: "connect-timeout-ms".into(),
                description: "must be at most 10 digits: the timeout in milliseconds".into(),
            }])),
        };
    }
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
