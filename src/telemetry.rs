//! Logs and traces through `tracing`.
//!
//! - Logs: readable lines on a terminal, or one JSON object per line (`--log-format json`)
//!   carrying the current span's `trace_id` and `span_id`. Verbosity follows `RUST_LOG`
//!   (default `info`).
//! - Traces: `tracing` spans become OpenTelemetry spans (tracing-opentelemetry). They are
//!   exported over OTLP/gRPC in batches when the standard variables ask for it
//!   (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, and
//!   `OTEL_TRACES_EXPORTER` not `none`); otherwise spans still get ids, so logs and
//!   upstream requests carry the caller's trace, but nothing is exported.
//! - Propagation: W3C `traceparent`/`tracestate` and `baggage`, in and out.
//!
//! Personal data (addresses, names, identities, attributes) and credentials are never put
//! in a span or a log line; URLs in client spans go through [`safe_url`].

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Whether OpenTelemetry spans are built and exported (set once by [`init`]).
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Owns the tracer provider; [`Telemetry::shutdown`] flushes the spans of the last calls.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Exports what is still batched and stops the exporter. Call once, at exit.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.force_flush() {
            eprintln!("participants-facade: flushing traces failed: {e}");
        }
        if let Err(e) = self.provider.shutdown() {
            eprintln!("participants-facade: stopping the trace exporter failed: {e}");
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether the OpenTelemetry variables ask for an OTLP trace exporter.
fn exporter_requested() -> bool {
    let exporter = env("OTEL_TRACES_EXPORTER").unwrap_or_else(|| "otlp".into());
    exporter.split(',').any(|e| e.trim() == "otlp")
        && (env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some())
}

/// Installs the global subscriber, propagator and tracer provider. Call once, at the
/// program's edge, inside the Tokio runtime (the OTLP exporter needs it).
pub fn init(format: LogFormat) -> anyhow::Result<Telemetry> {
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
    let mut resource = opentelemetry_sdk::Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("participants-facade");
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let mut provider = SdkTracerProvider::builder().with_resource(resource);
    let exporting = exporter_requested();
    if exporting {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        provider = provider.with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch_config())
                .build(),
        );
    }
    let provider = provider.build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    // OpenTelemetry spans are built only when they are exported: they cost CPU on every
    // call. Without export the caller's trace context still reaches the upstream and the
    // logs (see `ServerCall`). Their filter is their own, so `RUST_LOG=warn` quiets the
    // logs without silently stopping the traces.
    let otel = exporting.then(|| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("participants-facade"))
            // Our spans carry exactly the attributes we give them; no source locations.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("participants_facade", tracing::Level::INFO),
            )
    });
    EXPORTING.store(exporting, std::sync::atomic::Ordering::Relaxed);

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(otel);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init()?,
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init()?,
    }
    Ok(Telemetry { provider })
}

/// The batch span processor's settings: `OTEL_BSP_*` where set; otherwise the
/// specification's defaults except for a larger queue and larger batches. With 2048 and
/// 512 one export thread could not keep up with a busy facade (one span per call): it
/// dropped a quarter to a half of the spans at 40 000 calls/s on two cores (BENCHMARKS.md).
fn batch_config() -> opentelemetry_sdk::trace::BatchConfig {
    let mut config = opentelemetry_sdk::trace::BatchConfigBuilder::default();
    if env("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
        config = config.with_max_queue_size(BSP_MAX_QUEUE_SIZE);
    }
    if env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").is_none() {
        config = config.with_max_export_batch_size(BSP_MAX_EXPORT_BATCH_SIZE);
    }
    config.build()
}

/// Default of `OTEL_BSP_MAX_QUEUE_SIZE` here (the specification's is 2048).
pub const BSP_MAX_QUEUE_SIZE: usize = 16_384;
/// Default of `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` here (the specification's is 512).
pub const BSP_MAX_EXPORT_BATCH_SIZE: usize = 2_048;

// ----------------------------------------------------------------------------------------
// Per-call spans and metrics
// ----------------------------------------------------------------------------------------

use std::time::Instant;

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::metrics::METRICS;

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

/// The context to continue a trace from inside `span`: the span's own when OpenTelemetry
/// spans are built, else the caller's (`parent`), passed through unchanged.
fn trace_context(span: &Span, parent: &opentelemetry::Context) -> opentelemetry::Context {
    if EXPORTING.load(std::sync::atomic::Ordering::Relaxed) {
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            return cx;
        }
    }
    parent.clone()
}

/// Records the trace ids as fields, so JSON log lines inside the span carry them: the
/// span's own ids when spans are exported, else the caller's trace id.
fn record_ids(span: &Span, parent: &opentelemetry::Context) {
    let cx = trace_context(span, parent);
    let ctx = cx.span().span_context().clone();
    if ctx.is_valid() {
        span.record("trace_id", ctx.trace_id().to_string());
        if EXPORTING.load(std::sync::atomic::Ordering::Relaxed) {
            span.record("span_id", ctx.span_id().to_string());
        }
    }
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
pub fn code_name(code: tonic::Code) -> &'static str {
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

/// A call being served: its server span, its timer and its in-flight slot.
pub struct ServerCall {
    span: Span,
    parent: opentelemetry::Context,
    started: Instant,
    grpc: bool,
    method: String,
    finished: bool,
}

impl ServerCall {
    /// Opens the server span of a call, continuing the caller's trace from its
    /// `traceparent`/`tracestate`/`baggage` headers (gRPC metadata are headers too).
    pub fn start(request: &http::Request<hyper::body::Incoming>, grpc: bool) -> ServerCall {
        let path = request.uri().path();
        let method = if grpc {
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
        if grpc {
            span.record("rpc.system.name", "grpc");
            span.record("rpc.method", method.as_str());
            if semconv().old_too {
                // The older conventions split the name into `rpc.service` and a short
                // `rpc.method`; `rpc.method` keeps the current, fully qualified value.
                let service = method.split_once('/').map_or(method.as_str(), |(s, _)| s);
                span.record("rpc.system", "grpc");
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
        METRICS.in_flight(grpc).inc();
        ServerCall {
            span,
            parent,
            started: Instant::now(),
            grpc,
            method,
            finished: false,
        }
    }

    /// The span the call's work runs in.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The caller's trace context, as extracted from its headers.
    pub fn parent(&self) -> &opentelemetry::Context {
        &self.parent
    }

    /// Records the outcome. For gRPC the status is read from the response headers, where
    /// tonic puts an error status (trailers-only answer); a unary call whose headers carry
    /// no status succeeded (its OK status follows in the trailers).
    pub fn finish(mut self, response: &http::Response<axum::body::Body>) {
        self.finished = true;
        let elapsed = self.started.elapsed().as_secs_f64();
        let status = response.status().as_u16();
        let _entered = self.span.enter();
        tracing::debug!(
            http_status = status,
            elapsed_ms = elapsed * 1e3,
            "call served"
        );
        if self.grpc {
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map_or(tonic::Code::Ok, tonic::Code::from);
            let name = code_name(code);
            self.span.record("rpc.response.status_code", name);
            if semconv().old_too {
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
                .with_label_values(&[self.method.as_str(), name])
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
            if self.grpc {
                self.span.record("rpc.response.status_code", "CANCELLED");
                METRICS
                    .rpc_duration
                    .with_label_values(&[self.method.as_str(), "CANCELLED"])
                    .observe(elapsed);
            } else {
                self.span.record("http.response.status_code", 499_i64);
                METRICS
                    .http_duration
                    .with_label_values(&[self.method.as_str(), "unmatched", "499"])
                    .observe(elapsed);
            }
        }
        METRICS.in_flight(self.grpc).dec();
    }
}

/// The matched REST route (a template, never the concrete path), left in the response's
/// extensions by the router for the metrics.
#[derive(Debug, Clone)]
pub struct RouteTemplate(pub String);

/// Names the current server span after the matched route (`POST /v2/...`), as the HTTP
/// conventions ask.
pub fn record_route(method: &str, route: &str) {
    let span = Span::current();
    span.record("http.route", route);
    // The OpenTelemetry span exists already (its ids were read for the logs), so the name
    // is changed on it directly; a late `otel.name` field would be ignored.
    span.context()
        .span()
        .update_name(format!("{method} {route}"));
}

/// An upstream attempt: its client span and timer.
pub struct ClientAttempt {
    span: Span,
    started: Instant,
    method: &'static str,
    template: &'static str,
}

/// Whether a value in the position of template parameter `param` is safe to show: only
/// Twilio-shaped ids of the kind that position holds. Anything else (an identity used in
/// place of a sid, a free-form conversation id) is personal data until proven otherwise.
fn safe_param(param: &str, value: &str) -> bool {
    let sid = |prefix: &str| crate::validate::is_sid(value, prefix);
    match param {
        "{ChatServiceSid}" => sid("IS"),
        "{ConversationSid}" => sid("CH"),
        "{Sid}" => sid("MB"),
        "{ConversationId}" => {
            value.starts_with("conv_conversation_")
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        "{id}" => {
            value.starts_with("conv_participant_")
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        _ => false,
    }
}

/// The URL as a span may show it: no credentials, no query; the path's parameters, read
/// by their position in `template`, replaced by `REDACTED` unless they are ids of their
/// kind. A path prefix of the configured base URL is kept as it is.
pub fn safe_url(url: &reqwest::Url, template: &str) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    let segments: Vec<&str> = url.path_segments().into_iter().flatten().collect();
    let template: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let prefix = segments.len().saturating_sub(template.len());
    for (i, segment) in segments.iter().enumerate() {
        let shown_segment = match i.checked_sub(prefix).map(|t| template[t]) {
            None => segment,
            Some(param) if param.starts_with('{') => {
                if safe_param(param, segment) {
                    segment
                } else {
                    "REDACTED"
                }
            }
            Some(literal) if literal == *segment => segment,
            Some(_) => "REDACTED",
        };
        shown.push('/');
        shown.push_str(shown_segment);
    }
    shown
}

impl ClientAttempt {
    /// Opens the client span of one upstream attempt (a child of the current span) and
    /// injects its context into `headers`, so the upstream continues the same trace.
    pub fn start(
        method: &'static str,
        template: &'static str,
        url: &reqwest::Url,
        resend_count: u32,
        headers: &mut http::HeaderMap,
        parent: &opentelemetry::Context,
    ) -> ClientAttempt {
        let span = tracing::info_span!(
            "upstream",
            otel.name = format!("{method} {template}"),
            otel.kind = "client",
            otel.status_code = Empty,
            error.type = Empty,
            http.request.method = method,
            http.request.resend_count = Empty,
            http.response.status_code = Empty,
            server.address = url.host_str().unwrap_or_default(),
            server.port = i64::from(url.port_or_known_default().unwrap_or_default()),
            url.full = safe_url(url, template),
            url.template = template,
            trace_id = Empty,
            span_id = Empty,
        );
        if resend_count > 0 {
            span.record("http.request.resend_count", i64::from(resend_count));
        }
        record_ids(&span, parent);
        let cx = trace_context(&span, parent);
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(headers));
        });
        ClientAttempt {
            span,
            started: Instant::now(),
            method,
            template,
        }
    }

    /// The attempt's span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Records an answer's status (`None`: no answer; `error` names why).
    pub fn finish(self, status: Option<u16>, error: Option<&'static str>) {
        let label = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        if let Some(status) = status {
            self.span
                .record("http.response.status_code", i64::from(status));
        }
        let error = error
            .map(str::to_owned)
            .or_else(|| status.filter(|s| *s >= 400).map(|s| s.to_string()));
        if let Some(error) = error {
            self.span.record("otel.status_code", "ERROR");
            self.span.record("error.type", error);
        }
        METRICS
            .upstream_duration
            .with_label_values(&[self.method, self.template, &label])
            .observe(self.started.elapsed().as_secs_f64());
    }
}
