//! Configuration: one typed struct from flags and environment variables. Every flag has an
//! environment variable of the same meaning; a bad value stops the program with one line
//! naming it and exit code 2 (`app::settings_or_exit`).
//!
//! A leaf of the crate: it imports no other module, so every layer may read it. Rules
//! that belong to another layer (the shape of an account sid, inbound credentials from the
//! environment, the twilio backend's settings) are applied where that layer is, by `app`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

/// The account id the local backend stamps on participants when `TWILIO_ACCOUNT_SID` is not
/// set: well-formed (`AC` + 32 hex digits) and obviously not a real account.
pub const LOCAL_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

/// Default of `--cache-entries`.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// Default of `--cache-bytes`: 16 MiB of records per API version. Records of the usual size
/// (under 1.6 KiB) fill `DEFAULT_CACHE_ENTRIES` first; larger ones are bounded by bytes.
pub const DEFAULT_CACHE_BYTES: u64 = 16 << 20;
/// Default of `--store-mmap-size`.
pub const DEFAULT_STORE_MMAP_SIZE: u64 = 0;

/// Which backend serves the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// Participants kept in an embedded, crash-safe store under `--data-dir`.
    Local,
    /// Every call forwarded to Twilio's REST API at `--upstream-url`.
    Twilio,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for terminals.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// participants-facade: one typed gRPC API over Twilio's Conversations participants.
///
/// Serves participants.v1.ParticipantService, gRPC health and server reflection on one
/// port. The default `local` backend keeps participants in an embedded store on disk, so
/// the program is also a local Twilio for development and tests. Log verbosity follows
/// RUST_LOG (default `info`).
#[derive(Debug, Clone, Parser)]
#[command(name = "participants-facade", version, about, long_about)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        env = "PARTICIPANTS_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:50051"
    )]
    pub listen: SocketAddr,

    /// Backend that serves the calls.
    #[arg(long, env = "PARTICIPANTS_BACKEND", value_enum, default_value_t = BackendKind::Local)]
    pub backend: BackendKind,

    /// Optional second address that serves only /metrics; unset: /metrics on the main port.
    #[arg(long, env = "PARTICIPANTS_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Account id stamped on participants by the local backend (`AC` + 32 hex digits).
    #[arg(
        long,
        env = "TWILIO_ACCOUNT_SID",
        value_name = "SID",
        default_value = LOCAL_ACCOUNT_SID
    )]
    pub account_sid: String,

    /// Base URL clients reach this service at, used in v1 participants' `url`;
    /// unset: `http://` and the listening address.
    #[arg(long, env = "PARTICIPANTS_PUBLIC_URL", value_name = "URL", value_parser = parse_http_url)]
    pub public_url: Option<String>,

    /// Log format.
    #[arg(long, env = "PARTICIPANTS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The server: limits, deadlines, connections, shutdown.
    #[command(flatten)]
    pub server: ServerSettings,

    /// Twilio backend: forward a caller's own `Authorization: Basic` credentials to Twilio
    /// instead of the configured ones (multi-tenant use; Twilio then authenticates them).
    #[arg(long, env = "PARTICIPANTS_AUTH_PASSTHROUGH")]
    pub auth_passthrough: bool,

    /// Threads serving calls. Default: TOKIO_WORKER_THREADS if set, else one per CPU
    /// available to the process. A sidecar sharing its pod's CPUs with the application
    /// does best with 1: fewer cross-thread wake-ups per call (BENCHMARKS.md).
    #[arg(
        long,
        env = "PARTICIPANTS_WORKER_THREADS",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub worker_threads: Option<u16>,

    /// How long an idempotency key is remembered.
    #[arg(long, env = "PARTICIPANTS_IDEMPOTENCY_TTL", value_name = "DURATION", default_value = "24h", value_parser = parse_positive_duration)]
    pub idempotency_ttl: Duration,

    /// TLS.
    #[command(flatten)]
    pub tls: TlsSettings,

    /// The local backend's store.
    #[command(flatten)]
    pub store: StoreSettings,

    /// The shared store: PostgreSQL.
    #[command(flatten)]
    pub database: DatabaseSettings,

    /// The twilio backend's calls.
    #[command(flatten)]
    pub upstream: UpstreamSettings,
}

/// The server: its limits, deadlines, connections and shutdown.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Serving: limits, deadlines, connections, shutdown")]
pub struct ServerSettings {
    /// After SIGTERM/SIGINT, how long in-flight calls may take to finish before the
    /// process exits anyway.
    #[arg(long, env = "PARTICIPANTS_SHUTDOWN_GRACE", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// After SIGTERM/SIGINT, how long to keep accepting calls while health reports
    /// NOT_SERVING, so load balancers stop routing here first (set it in Kubernetes).
    #[arg(long, env = "PARTICIPANTS_DRAIN_DELAY", value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// Longest a call may take on the server; a shorter client deadline wins.
    #[arg(long, env = "PARTICIPANTS_REQUEST_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_positive_duration)]
    pub request_timeout: Duration,

    /// Largest request or response message, in bytes.
    #[arg(
        long,
        env = "PARTICIPANTS_MAX_MESSAGE_BYTES",
        value_name = "BYTES",
        default_value_t = 256 * 1024,
        value_parser = clap::value_parser!(u32).range(1024..=64 * 1024 * 1024)
    )]
    pub max_message_bytes: u32,

    /// Most concurrent HTTP/2 streams (calls) on one connection.
    #[arg(
        long,
        env = "PARTICIPANTS_MAX_CONCURRENT_STREAMS",
        value_name = "N",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_concurrent_streams: u32,

    /// Interval of HTTP/2 keepalive pings to clients.
    #[arg(long, env = "PARTICIPANTS_HTTP2_KEEPALIVE_INTERVAL", value_name = "DURATION", default_value = "30s", value_parser = parse_positive_duration)]
    pub http2_keepalive_interval: Duration,

    /// How long a keepalive ping may go unanswered before the connection is closed.
    #[arg(long, env = "PARTICIPANTS_HTTP2_KEEPALIVE_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub http2_keepalive_timeout: Duration,

    /// Most calls served at once; beyond it calls are refused at once (RESOURCE_EXHAUSTED,
    /// HTTP 429) rather than queued. Probes and /metrics are not counted.
    #[arg(
        long,
        env = "PARTICIPANTS_MAX_IN_FLIGHT",
        value_name = "N",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_in_flight: u32,

    /// Most calls one client address may have at once, counting calls still sending their
    /// body; beyond it its calls are refused at once (RESOURCE_EXHAUSTED, HTTP 429), so one
    /// peer cannot take every slot. Default: half of `--max-in-flight`. Behind a proxy or
    /// in a sidecar every call comes from one address: set it to `--max-in-flight` there.
    #[arg(
        long,
        env = "PARTICIPANTS_MAX_IN_FLIGHT_PER_PEER",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_in_flight_per_peer: Option<u32>,

    /// Longest wait for a request's whole body once its headers arrived; a slower client
    /// is answered 408 (DEADLINE_EXCEEDED over gRPC). A call takes one of the
    /// `--max-in-flight` slots only once its body is in.
    #[arg(long, env = "PARTICIPANTS_BODY_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration)]
    pub body_timeout: Duration,

    /// Origins allowed to call from browsers (gRPC-Web and REST), comma-separated or
    /// repeated; `*` for any. Unset: no CORS headers (same-origin only).
    #[arg(
        long,
        env = "PARTICIPANTS_CORS_ALLOW_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub cors_allow_origin: Vec<String>,
}

/// TLS for the one listener (gRPC, gRPC-Web and REST alike).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsSettings {
    /// PEM certificate chain: serve TLS (gRPC, gRPC-Web and REST) instead of cleartext.
    #[arg(
        long = "tls-cert",
        id = "tls_cert",
        env = "PARTICIPANTS_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(
        long = "tls-key",
        id = "tls_key",
        env = "PARTICIPANTS_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub key: Option<PathBuf>,

    /// PEM CA certificates: require clients to present a certificate they signed (mutual
    /// TLS).
    #[arg(
        long = "tls-client-ca",
        id = "tls_client_ca",
        env = "PARTICIPANTS_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub client_ca: Option<PathBuf>,
}

/// The local backend's embedded store.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Local backend")]
pub struct StoreSettings {
    /// Directory of the local backend's embedded store; created when missing.
    #[arg(
        long,
        env = "PARTICIPANTS_DATA_DIR",
        value_name = "DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// Local backend: participants of each API version kept in memory for fetches, beyond
    /// SQLite's own page cache (about 1 KiB each; 0 turns the cache off). Updates and
    /// deletes replace or drop the cached copy before they are acknowledged, so a fetch
    /// never sees a record older than the last acknowledged write.
    #[arg(
        long,
        env = "PARTICIPANTS_CACHE_ENTRIES",
        value_name = "N",
        default_value_t = DEFAULT_CACHE_ENTRIES
    )]
    pub cache_entries: usize,

    /// Local backend: bytes of participants of each API version kept in memory for fetches,
    /// at most, as the cache estimates a record (its strings and its bookkeeping; 0 turns
    /// the cache off). Bounds the cache together with `--cache-entries`: records of the
    /// usual size reach the count first, large ones (v1 attributes up to 16 KiB) the bytes.
    #[arg(
        long,
        env = "PARTICIPANTS_CACHE_BYTES",
        value_name = "BYTES",
        default_value_t = DEFAULT_CACHE_BYTES
    )]
    pub cache_bytes: u64,

    /// Local backend: bytes of the database file each read connection maps into memory
    /// (SQLite's `mmap_size`; SQLite caps it at 2 GiB; 0 reads through its page cache
    /// only). Mapped pages are the kernel's page cache, shared, not copied per connection.
    #[arg(
        long,
        env = "PARTICIPANTS_STORE_MMAP_SIZE",
        value_name = "BYTES",
        default_value_t = DEFAULT_STORE_MMAP_SIZE
    )]
    pub store_mmap_size: u64,

    /// Local backend: longest time SQLite's `quick_check` of the store may take at
    /// start-up. A store of up to 16 MiB is checked before it serves (a corrupt one
    /// refuses to start); a larger one serves after at most 250 ms while the check goes
    /// on (damage found turns readiness NOT_SERVING). A check not finished in time is
    /// stopped with a warning.
    #[arg(
        long,
        env = "PARTICIPANTS_INTEGRITY_CHECK_TIMEOUT",
        value_name = "DURATION",
        default_value = "2s",
        value_parser = parse_positive_duration
    )]
    pub integrity_check_timeout: Duration,

    /// Local backend: open the store without the start-up integrity check, to serve what
    /// is still readable of a damaged store until it is restored.
    #[arg(long, env = "PARTICIPANTS_SKIP_INTEGRITY_CHECK")]
    pub skip_integrity_check: bool,
}

/// The shared store, for several replicas: a PostgreSQL database.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Shared store (PostgreSQL)")]
pub struct DatabaseSettings {
    /// A `postgres://` URL: the local backend keeps participants and idempotency keys in
    /// that database instead of `--data-dir`, so several replicas serve one data set; the
    /// twilio backend keeps its idempotency keys there, shared by every replica. A secret
    /// (it may hold a password): never logged. Unset: the embedded store.
    #[arg(
        long = "database-url",
        id = "database_url",
        env = "PARTICIPANTS_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub url: Option<DatabaseUrl>,

    /// Connections each replica keeps to the database (reads, writes and health probes
    /// share them; concurrent creates are batched onto few of them).
    #[arg(
        long = "database-pool-size",
        id = "database_pool_size",
        env = "PARTICIPANTS_DATABASE_POOL_SIZE",
        value_name = "N",
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(2..=1000)
    )]
    pub pool_size: u32,

    /// Longest wait for a new connection to the database (start-up, and reconnecting after
    /// an outage); a call that cannot get one in time fails UNAVAILABLE.
    #[arg(long = "database-connect-timeout", id = "database_connect_timeout", env = "PARTICIPANTS_DATABASE_CONNECT_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration)]
    pub connect_timeout: Duration,

    /// PEM CA certificates that may sign the database's TLS certificate, besides the
    /// public roots (a managed database's own CA). TLS follows the URL's `sslmode`
    /// (`prefer` by default); when used, the certificate is always verified.
    #[arg(
        long = "database-ca",
        id = "database_ca",
        env = "PARTICIPANTS_DATABASE_CA",
        value_name = "FILE",
        requires = "database_url"
    )]
    pub ca_file: Option<PathBuf>,
}

/// A database URL: a secret. `Debug` and [`DatabaseUrl::redacted`] show it with the
/// password replaced; only [`DatabaseUrl::expose`] gives the whole text, for the driver.
///
/// Parsing never fails (clap would quote a refused value, password and all, in its
/// error): [`Config::check`] checks it and names only the redacted form.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl(s.to_owned()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// The whole URL, password included: for the database driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (in the user info or a `password` query parameter)
    /// replaced by `***`: what logs and errors may show.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }

    /// Refuses what is not a `postgres://` (or `postgresql://`) URL with a host, naming
    /// only the redacted form.
    pub fn check(&self) -> Result<(), String> {
        let refuse = |why: &str| {
            Err(format!(
                "invalid value '{}' for '--database-url <URL>': {why}",
                self.redacted()
            ))
        };
        let Ok(url) = url::Url::parse(&self.0) else {
            return refuse("not a URL (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)");
        };
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return refuse("the scheme must be postgres:// or postgresql://");
        }
        if url.host_str().is_none_or(str::is_empty) {
            return refuse("the URL names no host");
        }
        Ok(())
    }
}

/// `url` with any password replaced by `***`; text that is not a URL is replaced whole
/// (it could be a password).
fn redact_url(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return "<not a URL, not shown>".to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// The twilio backend's calls to Twilio.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Twilio backend")]
pub struct UpstreamSettings {
    /// Base URL of Twilio's Conversations API (twilio backend).
    #[arg(
        long = "upstream-url",
        id = "upstream_url",
        env = "PARTICIPANTS_UPSTREAM_URL",
        value_name = "URL",
        default_value = "https://conversations.twilio.com",
        value_parser = parse_http_url
    )]
    pub url: String,

    /// Longest an upstream call may take, retries included, when the caller set no
    /// deadline (twilio backend). A caller's gRPC deadline always wins.
    #[arg(
        long = "upstream-timeout",
        id = "upstream_timeout", env = "PARTICIPANTS_UPSTREAM_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Longest one upstream attempt may take before it is abandoned (and, where safe,
    /// retried).
    #[arg(
        long = "upstream-attempt-timeout",
        id = "upstream_attempt_timeout", env = "PARTICIPANTS_UPSTREAM_ATTEMPT_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration)]
    pub attempt_timeout: Duration,

    /// TCP connect timeout to the upstream.
    #[arg(
        long = "upstream-connect-timeout",
        id = "upstream_connect_timeout", env = "PARTICIPANTS_UPSTREAM_CONNECT_TIMEOUT", value_name = "DURATION", default_value = "3s", value_parser = parse_positive_duration)]
    pub connect_timeout: Duration,

    /// Attempts per upstream call, the first included (gRFC A6 maxAttempts).
    #[arg(
        long = "upstream-max-attempts",
        id = "upstream_max_attempts",
        env = "PARTICIPANTS_UPSTREAM_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=10)
    )]
    pub max_attempts: u32,

    /// Upper bound of the first retry's backoff (full jitter, doubling per retry).
    #[arg(
        long = "upstream-initial-backoff",
        id = "upstream_initial_backoff", env = "PARTICIPANTS_UPSTREAM_INITIAL_BACKOFF", value_name = "DURATION", default_value = "100ms", value_parser = parse_positive_duration)]
    pub initial_backoff: Duration,

    /// Upper bound of any retry's backoff.
    #[arg(
        long = "upstream-max-backoff",
        id = "upstream_max_backoff", env = "PARTICIPANTS_UPSTREAM_MAX_BACKOFF", value_name = "DURATION", default_value = "2s", value_parser = parse_positive_duration)]
    pub max_backoff: Duration,

    /// Most upstream calls in flight; beyond it calls fail fast with RESOURCE_EXHAUSTED.
    #[arg(
        long = "upstream-max-in-flight",
        id = "upstream_max_in_flight",
        env = "PARTICIPANTS_UPSTREAM_MAX_IN_FLIGHT",
        value_name = "N",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_in_flight: u32,

    /// Consecutive upstream failures (connection errors, timeouts, 5xx) that open the
    /// circuit breaker; while open, calls fail fast with UNAVAILABLE and readiness is
    /// NOT_SERVING.
    #[arg(
        long = "upstream-breaker-failures",
        id = "upstream_breaker_failures",
        env = "PARTICIPANTS_UPSTREAM_BREAKER_FAILURES",
        value_name = "N",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub breaker_failures: u32,

    /// How long the open circuit breaker refuses calls before letting a probe through.
    #[arg(
        long = "upstream-breaker-cooldown",
        id = "upstream_breaker_cooldown", env = "PARTICIPANTS_UPSTREAM_BREAKER_COOLDOWN", value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration)]
    pub breaker_cooldown: Duration,
}

impl Config {
    /// Refuses flag combinations that would silently weaken authentication or cannot work
    /// together; the message names the flags. Called by `app::settings_or_exit` (exit
    /// code 2) and again by `app::run` for embedding programs and tests.
    pub fn check(&self) -> Result<(), String> {
        if self.auth_passthrough && self.backend != BackendKind::Twilio {
            return Err(
                "--auth-passthrough needs --backend twilio: it hands callers' Basic \
                        credentials to Twilio to check, and the local backend has no one to \
                        check them, so every caller would be let in"
                    .into(),
            );
        }
        if let Some(url) = &self.database.url {
            url.check()?;
        }
        Ok(())
    }

    /// `--max-in-flight-per-peer`, or its default: half of `--max-in-flight` (at least 1),
    /// never more than `--max-in-flight`.
    pub fn in_flight_per_peer(&self) -> u32 {
        let server = &self.server;
        server
            .max_in_flight_per_peer
            .unwrap_or(server.max_in_flight / 2)
            .clamp(1, server.max_in_flight)
    }

    /// A configuration for tests and embedding: the defaults, with the local store in
    /// `data_dir` and the listener on an ephemeral loopback port.
    pub fn local(data_dir: impl Into<PathBuf>) -> Config {
        let mut config = Config::parse_from(["participants-facade", "--listen", "127.0.0.1:0"]);
        config.store.data_dir = data_dir.into();
        config
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 30s, 5m)"))
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be greater than zero".to_owned()),
        d => Ok(d),
    }
}

fn parse_http_url(s: &str) -> Result<String, String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) if uri.query().is_none() => {
            Ok(s.trim_end_matches('/').to_owned())
        }
        _ => Err("must be an http:// or https:// URL with a host and no query".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::try_parse_from(["participants-facade"]).expect("defaults parse");
        assert_eq!(c.listen.to_string(), "0.0.0.0:50051");
        assert_eq!(c.backend, BackendKind::Local);
        assert_eq!(c.store.data_dir, PathBuf::from("./data"));
        assert_eq!(c.upstream.url, "https://conversations.twilio.com");
        assert_eq!(c.metrics_listen, None);
    }

    #[test]
    fn bad_values_are_rejected() {
        for args in [
            &["x", "--listen", "nowhere"][..],
            &["x", "--backend", "redis"],
            &["x", "--upstream-url", "ftp://example.com"],
            &["x", "--request-timeout", "0s"],
            &["x", "--max-message-bytes", "10"],
        ] {
            assert!(Config::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}

#[cfg(test)]
mod database_url_tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        for (text, shown) in [
            (
                "postgres://app:s3cret@db.internal:5432/participants",
                "postgres://app:***@db.internal:5432/participants",
            ),
            (
                "postgresql://app@db/participants?password=s3cret&sslmode=require",
                "postgresql://app@db/participants?password=***&sslmode=require",
            ),
            ("host=db password=s3cret", "<not a URL, not shown>"),
        ] {
            let url: DatabaseUrl = text.parse().expect("never fails");
            assert_eq!(url.redacted(), shown);
            assert_eq!(format!("{url:?}"), shown);
            assert!(!format!("{:?}", url.check()).contains("s3cret"));
        }
    }

    #[test]
    fn only_postgres_urls_with_a_host_pass() {
        let check = |text: &str| text.parse::<DatabaseUrl>().expect("parses").check();
        assert!(check("postgres://app:pw@127.0.0.1:5432/db").is_ok());
        assert!(check("postgresql://app@localhost/db").is_ok());
        for bad in ["mysql://app:pw@db/x", "postgres:///db", "nonsense", ""] {
            let refusal = check(bad).expect_err(bad);
            assert!(refusal.contains("--database-url"), "{refusal}");
        }
        let refusal = check("mysql://app:hunter2@db/x").expect_err("scheme");
        assert!(!refusal.contains("hunter2"), "{refusal}");
    }
}
