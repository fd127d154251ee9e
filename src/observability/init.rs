//! Start-up: the global subscriber (the log format: text or JSON lines), the propagator
//! and the tracer provider, and their flush at exit.

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Whether OpenTelemetry spans are built and exported (set once by [`init`]).
use tracing_subscriber::util::SubscriberInitExt as _;

use super::EXPORTING;

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
pub fn init(json_logs: bool) -> anyhow::Result<Telemetry> {
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

    let filter =
        log_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
    let registry = tracing_subscriber::registry().with(otel);
    match json_logs {
        false => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init()?,
        true => registry
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

/// `RUST_LOG`'s filter, with the database driver capped at `warn`: at `debug`, tokio-postgres
/// logs every statement's parameters (phone numbers, names, whole participant records),
/// which are personal data and never go to logs; at `info`, the server's notices. Capped,
/// not raised: a `RUST_LOG` quieter than `warn` stays as quiet for the driver.
fn log_filter(filter: EnvFilter) -> EnvFilter {
    let level = filter
        .max_level_hint()
        .map_or(tracing::level_filters::LevelFilter::WARN, |hint| {
            hint.min(tracing::level_filters::LevelFilter::WARN)
        });
    ["tokio_postgres", "tokio_postgres_rustls"]
        .into_iter()
        .filter_map(|target| format!("{target}={level}").parse().ok())
        .fold(filter, EnvFilter::add_directive)
}
