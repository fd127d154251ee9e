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
//! in a span or a log line; URLs in client spans are redacted by the twilio backend before they get here.

mod client;
mod init;
pub(crate) mod metrics;
mod server;

use std::sync::atomic::AtomicBool;

use opentelemetry::trace::TraceContextExt as _;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub(crate) use client::ClientAttempt;
pub use init::{BSP_MAX_EXPORT_BATCH_SIZE, BSP_MAX_QUEUE_SIZE, Telemetry, init};
pub(crate) use server::{Protocol, RouteTemplate, RpcCode, ServerCall, record_route};

/// Whether OpenTelemetry spans are built and exported (set once by [`init`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

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
