//! Prometheus metrics, served in the text exposition format at `/metrics` (on the main
//! port, and on `--metrics-listen` when set).
//!
//! One registry per process (as Prometheus clients conventionally keep): the counters
//! describe the process, whichever front or backend moved them. Labels never carry
//! personal data or ids: only method names, routes as templates, and status codes.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets in seconds, from 100 µs (a cached local fetch) to 30 s (a slow upstream).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Every metric of the process.
pub(crate) struct Metrics {
    registry: Registry,
    /// RPCs served (gRPC, gRPC-Web, Connect), by full method, status code name and
    /// system (`grpc`, `connectrpc`).
    pub rpc_duration: HistogramVec,
    /// REST requests served, by method, route template and status code.
    pub http_duration: HistogramVec,
    /// Calls being served now, by protocol (`grpc`, `connect`, `http`).
    in_flight: IntGaugeVec,
    /// The children of `in_flight`, looked up once.
    in_flight_grpc: IntGauge,
    in_flight_connect: IntGauge,
    in_flight_http: IntGauge,
    /// Upstream (Twilio) request attempts, by method, route template and status code
    /// (`error` when no answer came).
    pub upstream_duration: HistogramVec,
    /// Upstream retries, by route template.
    pub upstream_retries: IntCounterVec,
    /// Upstream success answers refused as not what Twilio promises (a body that does not
    /// decode, or a participant with a malformed id or of another conversation), by
    /// operation (the RPC's name) and reason (the field at fault, `body` when undecodable).
    pub upstream_invalid_answers: IntCounterVec,
    /// Local store operations, by operation.
    pub store_duration: HistogramVec,
    /// Fetches answered from the store's in-memory cache or not, by table and result.
    pub store_cache_lookups: IntCounterVec,
    /// Creates committed per group commit.
    pub store_group_size: prometheus::Histogram,
    /// Failures the local store met, by kind (`full`, `io`, `corrupt`): what turns
    /// readiness NOT_SERVING.
    pub store_faults: IntCounterVec,
    /// Always 1, labelled with the version.
    pub build_info: IntGaugeVec,
    /// 1 while the backend reports ready.
    pub ready: IntGauge,
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .expect("static metric definition")
}

impl Metrics {
    fn new() -> Metrics {
        let in_flight = IntGaugeVec::new(
            Opts::new("server_calls_in_flight", "Calls being served now"),
            &["protocol"],
        )
        .expect("static metric definition");
        let m = Metrics {
            registry: Registry::new(),
            rpc_duration: histogram(
                "rpc_server_call_duration_seconds",
                "RPCs served (gRPC, gRPC-Web, Connect), by method, status code and system",
                &["rpc_method", "rpc_status_code", "rpc_system_name"],
            ),
            http_duration: histogram(
                "http_server_request_duration_seconds",
                "REST requests served, by method, route and status code",
                &[
                    "http_request_method",
                    "http_route",
                    "http_response_status_code",
                ],
            ),
            in_flight_grpc: in_flight.with_label_values(&["grpc"]),
            in_flight_connect: in_flight.with_label_values(&["connect"]),
            in_flight_http: in_flight.with_label_values(&["http"]),
            in_flight,
            upstream_duration: histogram(
                "upstream_request_duration_seconds",
                "Upstream request attempts, by method, route and status code",
                &[
                    "http_request_method",
                    "url_template",
                    "http_response_status_code",
                ],
            ),
            upstream_retries: IntCounterVec::new(
                Opts::new("upstream_retries_total", "Upstream requests retried"),
                &["url_template"],
            )
            .expect("static metric definition"),
            upstream_invalid_answers: IntCounterVec::new(
                Opts::new(
                    "upstream_invalid_answers_total",
                    "Upstream success answers refused as malformed or not the participant asked for, by operation and reason",
                ),
                &["operation", "reason"],
            )
            .expect("static metric definition"),
            store_duration: histogram(
                "store_operation_duration_seconds",
                "Local store operations, by operation",
                &["operation"],
            ),
            store_cache_lookups: IntCounterVec::new(
                Opts::new(
                    "store_cache_lookups_total",
                    "Fetches looked up in the store's in-memory cache, by table and result",
                ),
                &["table", "result"],
            )
            .expect("static metric definition"),
            store_group_size: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "store_group_commit_size",
                    "Creates committed together in one transaction",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            )
            .expect("static metric definition"),
            store_faults: IntCounterVec::new(
                Opts::new(
                    "store_faults_total",
                    "Disk-full, I/O and corruption errors the local store met, by kind",
                ),
                &["fault"],
            )
            .expect("static metric definition"),
            build_info: IntGaugeVec::new(
                Opts::new("participants_facade_build_info", "Build information"),
                &["version"],
            )
            .expect("static metric definition"),
            ready: IntGauge::new("backend_ready", "1 while the backend reports ready")
                .expect("static metric definition"),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 12] = [
            Box::new(m.rpc_duration.clone()),
            Box::new(m.http_duration.clone()),
            Box::new(m.in_flight.clone()),
            Box::new(m.upstream_duration.clone()),
            Box::new(m.upstream_retries.clone()),
            Box::new(m.upstream_invalid_answers.clone()),
            Box::new(m.store_duration.clone()),
            Box::new(m.store_cache_lookups.clone()),
            Box::new(m.store_group_size.clone()),
            Box::new(m.store_faults.clone()),
            Box::new(m.build_info.clone()),
            Box::new(m.ready.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m.ready.set(1);
        m
    }

    /// Calls being served now over `protocol`.
    pub(crate) fn in_flight(&self, protocol: super::Protocol) -> &IntGauge {
        match protocol {
            super::Protocol::Grpc => &self.in_flight_grpc,
            super::Protocol::Connect => &self.in_flight_connect,
            super::Protocol::Http => &self.in_flight_http,
        }
    }

    /// The registry in Prometheus' text exposition format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a failure would be a bug in a metric.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`Metrics::render`].
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's metrics.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
