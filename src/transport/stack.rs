//! What every call passes through before it reaches a front, and the dispatch to the
//! front that serves it.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::Status;
use tonic::service::Routes;
use tower::{Layer as _, ServiceExt as _};
use tracing::Instrument as _;

use super::admission::{Peer, PeerShare, grpc_message_count, held_until_sent, read_body};
use super::auth::{Caller, InboundAuth};
use crate::backend::CallContext;
use crate::domain::error::Error;
use crate::front::grpc::parse_grpc_timeout;
use crate::observability::ServerCall;

/// Per-call limits applied in front of both fronts.
#[derive(Clone)]
pub struct Limits {
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

/// The one service behind the port. Requests with an `application/grpc*` content type
/// (gRPC, and gRPC-Web through tonic-web) go to the tonic routes, everything else to the
/// REST router; both fronts call the same backend in process. In front of both:
/// - inbound auth (health probes, `/healthz`, `/readyz` and `/metrics` exempt), whose
///   verdict travels to the fronts in the request's extensions;
/// - the deadline: the shorter of the client's `grpc-timeout` and `--request-timeout`,
///   answered DEADLINE_EXCEEDED (gRPC) or 504 (REST) when it passes; the call's future is
///   dropped, which cancels its work (and its upstream request).
pub fn frontends(
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
                    crate::front::rest::error_response(&err)
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
        None => Err(Error::InvalidArgument(vec![
            crate::domain::error::FieldViolation {
                field: "grpc-timeout".into(),
                description: "must be at most 8 digits followed by a unit: H, M, S, m, u or n"
                    .into(),
            },
        ])),
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
                return Err(Error::Rejected {
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
    let refusal = Status::from(Error::Rejected {
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
