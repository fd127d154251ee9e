//! Client spans: one per upstream attempt, its context injected into the request so the
//! upstream continues the trace, its duration in the upstream metrics.

use std::time::Instant;

use opentelemetry_http::HeaderInjector;
use tracing::Span;
use tracing::field::Empty;

use super::metrics::METRICS;
use super::{record_ids, trace_context};

/// An upstream attempt: its client span and timer.
pub(crate) struct ClientAttempt {
    span: Span,
    started: Instant,
    method: &'static str,
    template: &'static str,
}

impl ClientAttempt {
    /// Opens the client span of one upstream attempt (a child of the current span) and
    /// injects its context into `headers`, so the upstream continues the same trace.
    pub(crate) fn start(
        method: &'static str,
        template: &'static str,
        url: &reqwest::Url,
        shown_url: &str,
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
            url.full = shown_url,
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
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records an answer's status (`None`: no answer; `error` names why).
    pub(crate) fn finish(self, status: Option<u16>, error: Option<&'static str>) {
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
