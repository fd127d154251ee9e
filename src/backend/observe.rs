//! Spans and timings of store operations, shared by the embedded store and PostgreSQL:
//! OpenTelemetry's database conventions (the system, the operation; never a statement's
//! text or values), and the `store_duration` histogram by operation.

use std::time::Instant;

use tracing::Instrument as _;

use crate::observability::metrics::METRICS;

/// A span for one store operation of `system` (`sqlite`, `postgresql`).
pub(crate) fn store_span(
    system: &'static str,
    operation: &'static str,
    db_operation: &'static str,
) -> tracing::Span {
    tracing::info_span!(
        "store",
        otel.name = operation,
        otel.kind = "internal",
        db.system.name = system,
        db.operation.name = db_operation,
    )
}

/// Records how long `operation` took since `started`.
pub(crate) fn record_store(operation: &'static str, started: Instant) {
    METRICS
        .store_duration
        .with_label_values(&[operation])
        .observe(started.elapsed().as_secs_f64());
}

/// Runs a store operation in its span, timing it.
pub(crate) async fn observed<T>(
    system: &'static str,
    operation: &'static str,
    db_operation: &'static str,
    work: impl std::future::Future<Output = T>,
) -> T {
    let started = Instant::now();
    let out = work
        .instrument(store_span(system, operation, db_operation))
        .await;
    record_store(operation, started);
    out
}
