//! The program, wired together: [`settings_or_exit`] reads the configuration, [`run`]
//! opens the backend, builds the fronts and the stack every call passes through, serves
//! an already bound listener until `shutdown` resolves, drains, and closes the backend.
//! Tests call [`run`] with a listener on `127.0.0.1:0`; `main` calls it with the
//! configured address and [`shutdown_signal`].
//!
//! This is the only module that knows every layer; nothing imports it.

mod readiness;
mod signals;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser as _;
use clap::error::ErrorKind;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

pub use signals::shutdown_signal;

use crate::backend::local::{LocalBackend, StoreOptions};
#[cfg(feature = "postgres")]
use crate::backend::postgres::{PgBackend, PgOptions, keys::SharedKeys};
use crate::backend::twilio::{RetryPolicy, TwilioBackend, UpstreamConfig};
use crate::backend::{Credentials, ParticipantBackend};
use crate::config::{BackendKind, Config};
use crate::proto::participant_service_server::SERVICE_NAME;
use crate::transport::admission::PeerShare;
use crate::transport::auth::InboundAuth;
use crate::transport::listener::{self, ListenerSettings};
use crate::transport::{cors, stack};
use readiness::track_readiness;
use signals::survive_file_size_limit;

/// What the program runs with: the configuration, and the secrets that are never flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Flags and environment.
    pub config: Config,
    /// Upstream credentials (twilio backend). Unset: read from the environment at
    /// start-up (`TWILIO_API_KEY` + `TWILIO_API_SECRET`, or `TWILIO_ACCOUNT_SID` +
    /// `TWILIO_AUTH_TOKEN`); set by an embedding program or a test.
    pub upstream_credentials: Option<Credentials>,
    /// Inbound credentials. Unset: read from `PARTICIPANTS_AUTH_BASIC` and
    /// `PARTICIPANTS_AUTH_BEARER_TOKENS` at start-up; set by an embedding program or a
    /// test.
    pub inbound_auth: Option<Arc<InboundAuth>>,
}

impl From<Config> for Settings {
    fn from(config: Config) -> Settings {
        Settings {
            config,
            upstream_credentials: None,
            inbound_auth: None,
        }
    }
}

/// Parses flags and environment; on a bad value prints one line naming it and exits with
/// code 2 (`--help` and `--version` print as usual and exit 0).
pub fn settings_or_exit() -> Settings {
    let fail = |message: &str| -> ! {
        eprintln!("participants-facade: {message}");
        std::process::exit(2)
    };
    let config = match Config::try_parse() {
        Ok(config) => config,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            err.exit()
        }
        Err(err) => {
            // The first paragraph of clap's message, on one line.
            let text = err.to_string();
            let line = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            fail(line.trim_start_matches("error: "))
        }
    };
    if let Err(e) = check(&config) {
        fail(&e)
    }
    match InboundAuth::from_env(config.auth_passthrough) {
        Ok(auth) => Settings {
            config,
            upstream_credentials: None,
            inbound_auth: Some(Arc::new(auth)),
        },
        Err(e) => fail(&e),
    }
}

/// The configuration's own checks ([`Config::check`]) and the rules of other layers that
/// apply to flags: the account id is a sid of the domain's shape.
fn check(config: &Config) -> Result<(), String> {
    config.check()?;
    if !crate::domain::rules::is_sid(&config.account_sid, "AC") {
        return Err(format!(
            "invalid value '{}' for '--account-sid <SID>': must be AC followed by 32 hex digits",
            config.account_sid
        ));
    }
    Ok(())
}

/// A start refused for a reason the operator must fix (the shared store unreachable, its
/// URL refused, its schema newer than this build): `main` prints it on one line and exits
/// with code 2, as for a bad flag.
#[derive(Debug)]
pub struct StartRefused(pub String);

impl std::fmt::Display for StartRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartRefused {}

/// The shared store's settings, when `--database-url` is set.
#[cfg(feature = "postgres")]
fn pg_options(config: &Config) -> Option<PgOptions> {
    let url = config.database.url.as_ref()?;
    Some(PgOptions {
        url: url.expose().to_owned(),
        redacted_url: url.redacted(),
        account_sid: config.account_sid.clone(),
        idempotency_ttl: config.idempotency_ttl,
        pool_size: config.database.pool_size as usize,
        connect_timeout: config.database.connect_timeout,
        ca_file: config.database.ca_file.clone(),
    })
}

/// Opens the configured backend.
pub async fn open_backend(
    config: &Config,
    upstream_credentials: Option<Credentials>,
) -> anyhow::Result<Arc<dyn ParticipantBackend>> {
    #[cfg(feature = "postgres")]
    let shared = pg_options(config);
    #[cfg(not(feature = "postgres"))]
    if config.database.url.is_some() {
        return Err(anyhow::Error::new(StartRefused(
            "--database-url: this build has no shared store (built without the `postgres` \
             feature)"
                .into(),
        )));
    }
    match config.backend {
        BackendKind::Local => {
            #[cfg(feature = "postgres")]
            if let Some(options) = shared {
                let store = PgBackend::open(&options).await.map_err(refused)?;
                return Ok(Arc::new(store));
            }
            let store = LocalBackend::open(&StoreOptions {
                data_dir: config.store.data_dir.clone(),
                account_sid: config.account_sid.clone(),
                idempotency_ttl: config.idempotency_ttl,
                cache_entries: config.store.cache_entries,
                cache_bytes: config.store.cache_bytes,
                mmap_size: config.store.store_mmap_size,
                integrity_check: (!config.store.skip_integrity_check)
                    .then_some(config.store.integrity_check_timeout),
            })
            .with_context(|| {
                format!(
                    "opening the local store in {}",
                    config.store.data_dir.display()
                )
            })?;
            Ok(Arc::new(store))
        }
        BackendKind::Twilio => {
            let credentials = match upstream_credentials {
                Some(c) => c,
                None => Credentials::from_env().map_err(anyhow::Error::msg)?,
            };
            let backend = TwilioBackend::new(upstream_config(config, credentials))?;
            #[cfg(feature = "postgres")]
            let backend = match shared {
                Some(options) => {
                    backend.sharing_keys(SharedKeys::open(&options).await.map_err(refused)?)
                }
                None => backend,
            };
            Ok(Arc::new(backend))
        }
    }
}

/// A shared store that cannot be opened: a start refused in one line.
#[cfg(feature = "postgres")]
fn refused(e: crate::domain::error::Error) -> anyhow::Error {
    let detail = match e {
        crate::domain::error::Error::Internal(detail) => detail,
        other => other.to_string(),
    };
    anyhow::Error::new(StartRefused(format!("shared store: {detail}")))
}

/// The twilio backend's settings, from the `--upstream-*` flags.
fn upstream_config(config: &Config, credentials: Credentials) -> UpstreamConfig {
    UpstreamConfig {
        base_url: config.upstream.url.clone(),
        credentials,
        retry: RetryPolicy {
            max_attempts: config.upstream.max_attempts,
            initial_backoff: config.upstream.initial_backoff,
            max_backoff: config.upstream.max_backoff,
        },
        attempt_timeout: config.upstream.attempt_timeout,
        default_timeout: config.upstream.timeout,
        max_in_flight: config.upstream.max_in_flight as usize,
        breaker_threshold: config.upstream.breaker_failures,
        breaker_cooldown: config.upstream.breaker_cooldown,
        idempotency_ttl: config.idempotency_ttl,
        connect_timeout: config.upstream.connect_timeout,
    }
}

/// The base URL v1 participants' `url` field starts with over gRPC.
fn public_url(config: &Config, local: SocketAddr) -> String {
    let scheme = if config.tls.cert.is_some() {
        "https"
    } else {
        "http"
    };
    match &config.public_url {
        Some(url) => url.clone(),
        None if local.ip().is_unspecified() => format!("{scheme}://localhost:{}", local.port()),
        None => format!("{scheme}://{local}"),
    }
}

/// Serves until `shutdown` resolves, then drains: health turns NOT_SERVING, new calls are
/// still accepted for `--drain-delay` (so load balancers notice first), then the listener
/// closes, every connection is asked to finish (HTTP/2 GOAWAY) and in-flight calls get
/// `--shutdown-grace`; connections still open after it are dropped. Finally the backend
/// is closed (for the local store: last commit, checkpoint, close, lock released).
pub async fn run(
    listener: TcpListener,
    settings: impl Into<Settings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let Settings {
        config,
        upstream_credentials,
        inbound_auth,
    } = settings.into();
    check(&config).map_err(anyhow::Error::msg)?;
    let local = listener.local_addr()?;
    // TLS files first: a misconfigured instance must not open (and lock) the store.
    let tls = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Some(tokio_rustls::TlsAcceptor::from(
            crate::transport::tls::server_config(cert, key, config.tls.client_ca.as_deref())?,
        )),
        _ => None,
    };
    survive_file_size_limit();
    let backend = open_backend(&config, upstream_credentials).await?;
    let (routes, health) = crate::front::grpc::routes(
        backend.clone(),
        &public_url(&config, local),
        config.server.max_message_bytes as usize,
    )
    .await?;
    let auth = match inbound_auth {
        Some(auth) => auth,
        None => {
            Arc::new(InboundAuth::from_env(config.auth_passthrough).map_err(anyhow::Error::msg)?)
        }
    };
    if auth.required() {
        tracing::info!(?auth, "inbound authentication required");
        if config.tls.cert.is_none() && !local.ip().is_loopback() {
            tracing::warn!(
                %local,
                "inbound credentials cross the network in cleartext: serve TLS (--tls-cert) \
                 or keep the port behind a TLS-terminating mesh"
            );
        }
    }
    if auth.passthrough() && !auth.required() {
        tracing::warn!(
            "--auth-passthrough without PARTICIPANTS_AUTH_BASIC or \
             PARTICIPANTS_AUTH_BEARER_TOKENS: callers that send no credentials are served \
             with the configured Twilio credentials"
        );
    }
    let draining = Arc::new(AtomicBool::new(false));
    let rest = crate::front::rest::router(
        Arc::new(crate::front::rest::RestState {
            backend: backend.clone(),
            public_url: config.public_url.clone(),
            draining: draining.clone(),
            tls: config.tls.cert.is_some(),
        }),
        config.server.max_message_bytes as usize,
    );
    let limits = stack::Limits {
        request_timeout: config.server.request_timeout,
        body_timeout: config.server.body_timeout,
        max_message_bytes: config.server.max_message_bytes,
        // Room for gRPC framing and gRPC-Web text's base64 (4/3); what is past the
        // message limit itself is refused by tonic and axum with their usual answers.
        max_body_bytes: config.server.max_message_bytes as usize * 2 + 1024,
        in_flight: Arc::new(tokio::sync::Semaphore::new(
            config.server.max_in_flight as usize,
        )),
        max_in_flight: config.server.max_in_flight,
        per_peer: PeerShare::new(config.in_flight_per_peer()),
    };
    let cors = cors::layer(&config.server.cors_allow_origin)?;
    let service = stack::service(routes, rest, auth, limits, cors);

    tokio::spawn(track_readiness(
        backend.clone(),
        health.clone(),
        draining.clone(),
    ));

    let drain = {
        let drain_delay = config.server.drain_delay;
        let health = health.clone();
        async move {
            shutdown.await;
            draining.store(true, Ordering::SeqCst);
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
        }
    };

    if let Some(addr) = config.metrics_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on --metrics-listen {addr}"))?;
        tracing::info!(%addr, "serving /metrics on a second port");
        tokio::spawn(metrics_port(listener));
    }
    tracing::info!(
        %local,
        backend = ?config.backend,
        startup_ms = started.elapsed().as_millis() as u64,
        "serving participants.v1.ParticipantService"
    );
    let settings = ListenerSettings {
        max_concurrent_streams: config.server.max_concurrent_streams,
        keepalive_interval: config.server.http2_keepalive_interval,
        keepalive_timeout: config.server.http2_keepalive_timeout,
        shutdown_grace: config.server.shutdown_grace,
    };
    listener::serve(listener, service, tls, &settings, drain).await;
    backend.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `--metrics-listen`: a second port that serves only `/metrics`, for scrapers kept off
/// the service port. It lives as long as the process.
async fn metrics_port(listener: TcpListener) {
    let app =
        axum::Router::new().route("/metrics", axum::routing::get(crate::front::rest::metrics));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_account_sid_is_refused_naming_the_flag() {
        let mut config = Config::local(".");
        config.account_sid = "AC123".into();
        let refusal = check(&config).expect_err("refused");
        assert!(refusal.contains("--account-sid"), "{refusal}");
        assert!(check(&Config::local(".")).is_ok());
    }
}
