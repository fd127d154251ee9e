//! Probes and metrics: `/healthz` (liveness), `/readyz` (readiness), `/metrics`
//! (Prometheus; also served on `--metrics-listen`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::RestState;
use crate::observability::metrics::{CONTENT_TYPE, METRICS};

/// A probe's answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProbeJson {
    /// SERVING or NOT_SERVING.
    pub status: String,
}

/// Liveness: 200 while the process serves at all.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, body = ProbeJson)))]
pub(super) async fn healthz() -> Json<ProbeJson> {
    Json(ProbeJson {
        status: "SERVING".into(),
    })
}

/// Readiness: 200 when the backend can serve (store open, upstream not persistently
/// failing) and the server is not draining; 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses((status = 200, body = ProbeJson), (status = 503, body = ProbeJson))
)]
pub(super) async fn readyz(State(state): State<Arc<RestState>>) -> (StatusCode, Json<ProbeJson>) {
    let ready = !state.draining.load(Ordering::SeqCst) && state.backend.ready();
    let (code, status) = if ready {
        (StatusCode::OK, "SERVING")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING")
    };
    (
        code,
        Json(ProbeJson {
            status: status.into(),
        }),
    )
}

/// `/metrics`: every metric in Prometheus' text format. The one handler, on the service
/// port and on `--metrics-listen`.
pub async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], METRICS.render())
}
