//! CORS for browser clients (gRPC-Web, Connect and REST) from other origins, when configured.

use std::time::Duration;

use anyhow::Context as _;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer for `--cors-allow-origin`; `None` when no origin is allowed.
pub(crate) fn layer(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                http::HeaderValue::from_str(o).with_context(|| format!("--cors-allow-origin {o:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    let header = http::HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            // PUT and DELETE: the REST front's v2 update and v1 delete.
            .allow_methods([
                http::Method::GET,
                http::Method::POST,
                http::Method::PUT,
                http::Method::DELETE,
                http::Method::OPTIONS,
            ])
            .allow_headers([
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header("connect-protocol-version"),
                header("connect-timeout-ms"),
                header("idempotency-key"),
                header("x-twilio-webhook-enabled"),
                header("traceparent"),
                header("tracestate"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
                header("x-conflicting-resource-id"),
                http::header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    ))
}
