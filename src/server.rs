//! Wires the program together: opens the backend, builds the one tonic server (the
//! participants service, gRPC health, server reflection v1 and v1alpha) with its limits,
//! serves an already bound listener until `shutdown` resolves, drains, and closes the
//! backend. Tests call [`run`] with a listener on `127.0.0.1:0`; `main` calls it with the
//! configured address and the SIGTERM/SIGINT future.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::backend::ParticipantBackend;
use crate::config::{BackendKind, Config};
use crate::grpc::ParticipantApi;
use crate::proto::participant_service_server::SERVICE_NAME;
use crate::store::LocalBackend;

/// Opens the configured backend.
pub fn open_backend(config: &Config) -> anyhow::Result<Arc<dyn ParticipantBackend>> {
    match config.backend {
        BackendKind::Local => {
            let store = LocalBackend::open(
                &config.data_dir,
                &config.account_sid,
                config.idempotency_ttl,
            )
            .with_context(|| format!("opening the local store in {}", config.data_dir.display()))?;
            Ok(Arc::new(store))
        }
        BackendKind::Twilio => anyhow::bail!(
            "--backend twilio is not available in this build yet; use --backend local"
        ),
    }
}

/// The base URL v1 participants' `url` field starts with.
fn public_url(config: &Config, local: SocketAddr) -> String {
    match &config.public_url {
        Some(url) => url.clone(),
        None if local.ip().is_unspecified() => format!("http://localhost:{}", local.port()),
        None => format!("http://{local}"),
    }
}

/// Serves until `shutdown` resolves, then drains: health turns NOT_SERVING, new calls are
/// still accepted for `--drain-delay` (so load balancers notice first), then the listener
/// closes and in-flight calls get `--shutdown-grace` to finish. Finally the backend is
/// closed cleanly (for the local store: last commit, checkpoint, close).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let local = listener.local_addr()?;
    let backend = open_backend(&config)?;

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in ["", SERVICE_NAME] {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc.BadRequest, ErrorInfo, RetryInfo: lets grpcurl and other
            // reflection clients decode our error details.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    // Older grpcurl builds and many IDE plugins speak only v1alpha.
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let participants = ParticipantApi::new(backend.clone(), &public_url(&config, local))
        .into_server(config.max_message_bytes as usize);

    let drained = Arc::new(Notify::new());
    let signal = {
        let drained = drained.clone();
        let drain_delay = config.drain_delay;
        async move {
            shutdown.await;
            tracing::info!(
                ?drain_delay,
                "shutdown requested; health is NOT_SERVING, draining"
            );
            for name in ["", SERVICE_NAME] {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            tokio::time::sleep(drain_delay).await;
            drained.notify_one();
        }
    };

    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let serve = Server::builder()
        // Bounds every call; a shorter grpc-timeout from the client wins.
        .timeout(config.request_timeout)
        // One client cannot open unbounded streams on a connection.
        .max_concurrent_streams(config.max_concurrent_streams)
        // Finds dead peers (and half-open NAT mappings) so their resources are freed.
        .http2_keepalive_interval(Some(config.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(config.http2_keepalive_timeout))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(participants)
        .serve_with_incoming_shutdown(incoming, signal);
    tracing::info!(
        %local,
        backend = ?config.backend,
        startup_ms = started.elapsed().as_millis() as u64,
        "serving participants.v1.ParticipantService"
    );

    tokio::pin!(serve);
    let grace = config.shutdown_grace;
    tokio::select! {
        result = &mut serve => result.context("serving gRPC")?,
        () = async { drained.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "shutdown grace period over; abandoning calls still in flight");
        }
    }
    backend.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
