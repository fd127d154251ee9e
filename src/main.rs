//! The participants-facade binary: parse the configuration, start logging, serve.

#![forbid(unsafe_code)]

use participants_facade::{config::Config, server, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse_or_exit();
    telemetry::init_logging(config.log_format);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    server::run(listener, config, server::shutdown_signal()).await
}
