//! Server spans and call metrics: one span per call, continuing the caller's trace, with
//! OpenTelemetry's RPC or HTTP attributes; its duration in the call metrics.

use std::time::Instant;

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::metrics::METRICS;
use super::{EXPORTING, record_ids};

/// Which RPC attribute names to emit. OpenTelemetry's RPC conventions as of release 1.44
/// (`rpc.system.name`, fully qualified `rpc.method`, `rpc.response.status_code` as a
/// string) are the default; they are still a release candidate, so
/// `OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup` also emits the older names (`rpc.system`,
/// `rpc.service`, short `rpc.method`, numeric `rpc.grpc.status_code`) for dashboards
/// built on them.
#[derive(Debug, Clone, Copy)]
struct Semconv {
    old_too: bool,
}

fn semconv() -> Semconv {
    static SEMCONV: std::sync::OnceLock<Semconv> = std::sync::OnceLock::new();
    *SEMCONV.get_or_init(|| Semconv {
        old_too: std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN")
            .is_ok_and(|v| v.split(',').any(|o| o.trim() == "rpc/dup")),
    })
}

/// `network.protocol.version` as the conventions write it: `1.1`, `2`.
fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_11 => "1.1",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "unknown",
    }
}

/// The canonical name of a gRPC status code, as OpenTelemetry and gRPC write it.
pub(super) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The protocol a call came in, as its span and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// gRPC or gRPC-Web (`application/grpc*`).
    Grpc,
    /// Connect, unary (`application/json` or `application/proto` on a service path).
    Connect,
    /// REST, probes, `/metrics`: everything else.
    Http,
}

impl Protocol {
    /// An RPC (gRPC or Connect): named by its method, counted by its status code.
    fn is_rpc(self) -> bool {
        self != Protocol::Http
    }

    /// `rpc.system.name` (OpenTelemetry's RPC conventions 1.44: `grpc`, `connectrpc`),
    /// also the `rpc_system_name` label of the call metrics.
    fn system_name(self) -> &'static str {
        match self {
            Protocol::Connect => "connectrpc",
            _ => "grpc",
        }
    }
}

/// The status code of an RPC answer that does not carry it in gRPC's headers (a Connect
/// answer), left in the response's extensions by whoever wrote the answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RpcCode(pub tonic::Code);

/// A call being served: its server span, its timer and its in-flight slot.
pub(crate) struct ServerCall {
    span: Span,
    parent: opentelemetry::Context,
    started: Instant,
    protocol: Protocol,
    method: String,
    finished: bool,
}

impl ServerCall {
    /// Opens the server span of a call, continuing the caller's trace from its
    /// `traceparent`/`tracestate`/`baggage` headers (gRPC metadata are headers too).
    pub(crate) fn start<B>(request: &http::Request<B>, protocol: Protocol) -> ServerCall {
        let path = request.uri().path();
        let method = if protocol.is_rpc() {
            path.trim_start_matches('/').to_owned()
        } else {
            request.method().as_str().to_owned()
        };
        let span = tracing::info_span!(
            "call",
            otel.name = %method,
            otel.kind = "server",
            otel.status_code = Empty,
            error.type = Empty,
            rpc.system.name = Empty,
            rpc.method = Empty,
            rpc.response.status_code = Empty,
            rpc.system = Empty,
            rpc.service = Empty,
            rpc.grpc.status_code = Empty,
            http.request.method = Empty,
            http.route = Empty,
            http.response.status_code = Empty,
            url.scheme = "http",
            network.protocol.version = protocol_version(request.version()),
            trace_id = Empty,
            span_id = Empty,
        );
        if protocol.is_rpc() {
            span.record("rpc.system.name", protocol.system_name());
            span.record("rpc.method", method.as_str());
            if semconv().old_too {
                // The older conventions split the name into `rpc.service` and a short
                // `rpc.method`; `rpc.method` keeps the current, fully qualified value.
                let service = method.split_once('/').map_or(method.as_str(), |(s, _)| s);
                let system = match protocol {
                    Protocol::Connect => "connect_rpc",
                    _ => "grpc",
                };
                span.record("rpc.system", system);
                span.record("rpc.service", service);
            }
        } else {
            span.record("http.request.method", method.as_str());
        }
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(request.headers()))
        });
        if EXPORTING.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = span.set_parent(parent.clone());
        }
        record_ids(&span, &parent);
        METRICS.in_flight(protocol).inc();
        ServerCall {
            span,
            parent,
            started: Instant::now(),
            protocol,
            method,
            finished: false,
        }
    }

    /// The span the call's work runs in.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// The caller's trace context, as extracted from its headers.
    pub(crate) fn parent(&self) -> &opentelemetry::Context {
        &self.parent
    }

    /// Records the outcome. For gRPC the status is read from the response headers, where
    /// tonic puts an error status (trailers-only answer); a unary call whose headers carry
    /// no status succeeded (its OK status follows in the trailers). A Connect answer
    /// carries its code in the response's extensions ([`RpcCode`]).
    pub(crate) fn finish(mut self, response: &http::Response<axum::body::Body>) {
        self.finished = true;
        let elapsed = self.started.elapsed().as_secs_f64();
        let status = response.status().as_u16();
        let _entered = self.span.enter();
        tracing::debug!(
            http_status = status,
            elapsed_ms = elapsed * 1e3,
            "call served"
        );
        if self.protocol.is_rpc() {
            let code = match response.extensions().get::<RpcCode>() {
                Some(RpcCode(code)) => *code,
                None => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from),
            };
            let name = code_name(code);
            self.span.record("rpc.response.status_code", name);
            if semconv().old_too && self.protocol == Protocol::Grpc {
                self.span.record("rpc.grpc.status_code", code as i32);
            }
            // Server-side errors, per the RPC conventions; client errors are not.
            if matches!(
                code,
                tonic::Code::Unknown
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unimplemented
                    | tonic::Code::Internal
                    | tonic::Code::Unavailable
                    | tonic::Code::DataLoss
            ) {
                self.span.record("otel.status_code", "ERROR");
                self.span.record("error.type", name);
            }
            METRICS
                .rpc_duration
                .with_label_values(&[self.method.as_str(), name, self.protocol.system_name()])
                .observe(elapsed);
        } else {
            self.span
                .record("http.response.status_code", i64::from(status));
            if status >= 500 {
                self.span.record("otel.status_code", "ERROR");
                self.span.record("error.type", status.to_string());
            }
            let route = response
                .extensions()
                .get::<RouteTemplate>()
                .map_or("unmatched", |r| r.0.as_str());
            METRICS
                .http_duration
                .with_label_values(&[self.method.as_str(), route, &status.to_string()])
                .observe(elapsed);
        }
    }
}

impl Drop for ServerCall {
    /// Leaves the in-flight count, and records a call that ended without an answer (the
    /// client went away and its future was dropped) as CANCELLED / 499.
    fn drop(&mut self) {
        if !self.finished {
            let elapsed = self.started.elapsed().as_secs_f64();
            self.span.record("error.type", "cancelled");
            if self.protocol.is_rpc() {
                self.span.record("rpc.response.status_code", "CANCELLED");
                METRICS
                    .rpc_duration
                    .with_label_values(&[
                        self.method.as_str(),
                        "CANCELLED",
                        self.protocol.system_name(),
                    ])
                    .observe(elapsed);
            } else {
                self.span.record("http.response.status_code", 499_i64);
                METRICS
                    .http_duration
                    .with_label_values(&[self.method.as_str(), "unmatched", "499"])
                    .observe(elapsed);
            }
        }
        METRICS.in_flight(self.protocol).dec();
    }
}

/// The matched REST route (a template, never the concrete path), left in the response's
/// extensions by the router for the metrics.
#[derive(Debug, Clone)]
pub(crate) struct RouteTemplate(pub String);

/// Names the current server span after the matched route (`POST /v2/...`), as the HTTP
/// conventions ask.
pub(crate) fn record_route(method: &str, route: &str) {
    let span = Span::current();
    span.record("http.route", route);
    // The OpenTelemetry span exists already (its ids were read for the logs), so the name
    // is changed on it directly; a late `otel.name` field would be ignored.
    span.context()
        .span()
        .update_name(format!("{method} {route}"));
}
