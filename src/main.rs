//! The participants-facade binary: read the settings, start telemetry, serve, and flush
//! the last spans on the way out.

#![forbid(unsafe_code)]

use participants_facade::app::{self, Settings};
use participants_facade::config::LogFormat;
use participants_facade::observability;

fn main() -> anyhow::Result<()> {
    let settings = app::settings_or_exit();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    // Unset: tokio's default, TOKIO_WORKER_THREADS or one worker per available CPU.
    if let Some(workers) = settings.config.worker_threads {
        runtime.worker_threads(workers.into());
    }
    runtime.build()?.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let telemetry = observability::init(settings.config.log_format == LogFormat::Json)?;
    let listen = settings.config.listen;
    let served = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => app::run(listener, settings, app::shutdown_signal()).await,
        Err(e) => Err(anyhow::anyhow!("cannot listen on {listen}: {e}")),
    };
    let refused = served
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<app::StartRefused>());
    if let (Err(e), None) = (&served, refused) {
        tracing::error!(error = %format!("{e:#}"), "participants-facade stopped with an error");
    }
    // Flushing waits on the exporter: keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    if let Some(refused) = refused {
        // Like a bad flag: one line on stderr, exit code 2.
        eprintln!("participants-facade: {refused}");
        std::process::exit(2);
    }
    served
}
