//! Readiness: the backend's own signal, read into the health service.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tonic_health::ServingStatus;

use crate::backend::ParticipantBackend;
use crate::proto::participant_service_server::SERVICE_NAME;

/// How often the backend's readiness is read into the health service.
const READINESS_POLL: Duration = Duration::from_millis(500);

/// Keeps the service's health (the readiness signal; `""` stays the liveness signal) in
/// step with the backend's own readiness, until draining takes over.
pub(super) async fn track_readiness(
    backend: Arc<dyn ParticipantBackend>,
    health: tonic_health::server::HealthReporter,
    draining: Arc<AtomicBool>,
) {
    let mut ready = true;
    let mut tick = tokio::time::interval(READINESS_POLL);
    loop {
        tick.tick().await;
        if draining.load(Ordering::SeqCst) {
            return;
        }
        let now = backend.ready();
        if now != ready {
            ready = now;
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            tracing::warn!(ready, "backend readiness changed");
            crate::observability::metrics::METRICS
                .ready
                .set(i64::from(ready));
            health.set_service_status(SERVICE_NAME, status).await;
        }
    }
}
