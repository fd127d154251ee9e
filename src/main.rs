//! The participants-facade binary: parse the configuration, start telemetry, serve, and
//! flush the last spans on the way out.

#![forbid(unsafe_code)]

use participants_facade::{config::Config, server, telemetry};

fn main() -> anyhow::Result<()> {
    let config = Config::parse_or_exit();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    // Unset: tokio's default, TOKIO_WORKER_THREADS or one worker per available CPU.
    if let Some(workers) = config.worker_threads {
        runtime.worker_threads(workers.into());
    }
    runtime.build()?.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let telemetry = telemetry::init(config.log_format)?;
    let served = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => server::run(listener, config, server::shutdown_signal()).await,
        Err(e) => Err(anyhow::anyhow!("cannot listen on {}: {e}", config.listen)),
    };
    if let Err(e) = &served {
        tracing::error!(error = %format!("{e:#}"), "participants-facade stopped with an error");
    }
    // Flushing waits on the exporter: keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    served
}
