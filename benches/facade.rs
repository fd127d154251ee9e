//! Comparative benchmark of the release `participants-facade` binary: what the facade costs
//! over talking to Twilio directly, REST against gRPC, and OpenTelemetry export.
//!
//! Run with `cargo bench --bench facade`. It prints tables and ratios with each target as
//! PASS/FAIL text; it asserts nothing about timings. Everything runs on 127.0.0.1: every
//! server is the real binary started as a child process (free loopback port, fresh data
//! directory under Cargo's target/tmp, `RUST_LOG=warn` unless said otherwise), and the
//! load generator, the loopback Twilio stand-in and the OTLP receiver live in this process.
//!
//! 1. Facade overhead. A minimal HTTP/1.1 + h2c server in this process answers
//!    `GET /v2/Conversations/{c}/Participants/{id}` with that participant's JSON (and checks
//!    the Basic credentials). The facade runs with `--backend twilio --upstream-url` that
//!    server. At concurrency 1 and 16, in the same run: (a) gRPC `FetchParticipant` through
//!    the facade (`min(concurrency, 4)` HTTP/2 connections), (b) the same GET straight to
//!    the stand-in with reqwest (one keep-alive pool, HTTP/1.1 as the facade's own client
//!    uses over cleartext, the same credentials, the JSON decoded). Prints the added latency
//!    (facade minus direct, p50 and p99) and the throughput ratio facade/direct.
//!    Targets: added p50 <= 150 us; throughput >= 0.7x direct.
//! 2. REST against gRPC, on one local-backend server with pre-created participants:
//!    `GET /v2/Conversations/{c}/Participants/{id}` with reqwest over HTTP/1.1 keep-alive and
//!    over HTTP/2 (h2c, prior knowledge), and gRPC `FetchParticipant` with tonic; at
//!    concurrency 16 and 64, each protocol on as many connections as the concurrency (HTTP/1.1
//!    cannot do with fewer), worker `i` on connection `i % n`. Two extra rows at 64 show the
//!    multiplexed protocols on 4 connections (not graded). Target: REST >= 0.6x gRPC.
//! 3. Tracing overhead, gRPC `FetchParticipant` at concurrency 16 on 4 connections, against
//!    three local-backend children: T exports spans over OTLP/gRPC to a receiver in this
//!    process (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_BSP_SCHEDULE_DELAY=200`), U has no OTEL
//!    variable, both with `RUST_LOG=warn,participants_facade=info`, and W has no OTEL
//!    variable and `RUST_LOG=warn`. Spans have their own filter, so a fourth child (traced,
//!    `RUST_LOG=warn`) shows that `RUST_LOG` quiets the logs but not the traces; T and U
//!    run at `info` for this crate, the default log level. Runs alternate T/U/W, `BENCH_AB_ROUNDS` times; the medians are compared.
//!    Target: T/U >= 0.85 (T/W is printed too). The receiver's span count is reported,
//!    with the share of spans the exporter dropped. One unloaded run per child at
//!    concurrency 1 follows (not graded).
//!
//! CPU is accounted from /proc over each measured window: the facade child, this process's
//! load generator, the stand-in upstream and the OTLP receiver (each on its own runtime
//! with named threads), and the rest of the machine (noise from other processes).
//!
//! Environment: `BENCH_SECS` (measured seconds per run, default 3), `BENCH_WARMUP_SECS`
//! (default 0.5), `BENCH_MAX_REQUESTS` (cap on measured requests per run, default
//! 1000000), `BENCH_AB_ROUNDS` (tracing rounds, default 5), `BENCH_TMPDIR` (parent of the
//! data directories, default Cargo's target/tmp), `BENCH_SECTIONS` (which comparisons to
//! run, default `1,2,3`), `BENCH_TRACED_ENV` (extra `KEY=VALUE,...` for the traced child
//! only, for experiments such as `OTEL_BSP_MAX_QUEUE_SIZE=65536`). The children inherit
//! `TOKIO_WORKER_THREADS` when it is set (the load generator does not).

// Test and bench code: a failed unwrap is a failed run, and helpers are `pub` for the
// crate's own modules.
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{
    Address, Channel as ProtoChannel, CreateParticipantRequest, FetchParticipantRequest,
    ParticipantType,
};
use serde::Deserialize;
use tempfile::TempDir;
use tokio::runtime::Handle;
use tonic::transport::{Channel, Endpoint};

mod support;
use support::{
    NOISE_LIMIT, USER_HZ, check_once, env_or, machine, machine_busy_ticks, percentile,
    proc_cpu_ticks, verdict,
};

const BIN: &str = env!("CARGO_BIN_EXE_participants-facade");
/// Participants pre-created on each local-backend server, read round-robin.
const FETCH_POOL: usize = 1000;
const FETCH_CONVERSATION: &str = "conv_bench_fetch";
/// Most HTTP/2 connections for the gRPC client where the protocol multiplexes.
const MUX_CONNECTIONS: usize = 4;
/// A request that takes longer counts as an error (and keeps every loop bounded).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const STARTUP_POLL: Duration = Duration::from_millis(5);
const STARTUP_LIMIT: Duration = Duration::from_secs(10);
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// Thread-name prefixes of this process's helper runtimes (comm is at most 15 bytes).
const UPSTREAM_THREADS: &str = "bench-upstream";
const OTLP_THREADS: &str = "bench-otlp";

/// The stand-in's credentials, passed to the facade as `TWILIO_API_KEY`/`TWILIO_API_SECRET`.
const API_KEY: &str = "SKbench";
const API_SECRET: &str = "bench-secret";
/// What the stand-in answers to a participant GET: the v2 participant asked for (the
/// facade checks that an answer is the participant of the conversation it asked about),
/// camelCase, the same size for every id of [`FETCH_POOL`]'s shape.
fn participant_json(conversation_id: &str, participant_id: &str) -> String {
    format!(
        concat!(
            r#"{{"id":"{}","conversationId":"{}","#,
            r#""accountId":"AC00000000000000000000000000000000","#,
            r#""name":"Dana","type":"CUSTOMER","#,
            r#""addresses":[{{"channel":"SMS","address":"+18005550100"}}],"#,
            r#""createdAt":"2026-11-26T06:05:03.319Z","updatedAt":"2026-11-26T06:05:03.319Z"}}"#
        ),
        participant_id, conversation_id
    )
}
/// The conversation section 1 fetches from.
const CONVERSATION: &str = "conv_conversation_01k1etk2y5f1y9fpe2epfdtvv2";
const NOT_FOUND_JSON: &str = r#"{"code":20404,"message":"The requested resource was not found","more_info":"https://www.twilio.com/docs/errors/20404","status":404}"#;

struct Settings {
    secs: f64,
    warmup: f64,
    max_requests: u64,
    ab_rounds: usize,
    sections: Vec<u32>,
    tmp_parent: PathBuf,
}

impl Settings {
    fn from_env() -> Settings {
        let s = Settings {
            secs: env_or("BENCH_SECS", 3.0),
            warmup: env_or("BENCH_WARMUP_SECS", 0.5),
            max_requests: env_or("BENCH_MAX_REQUESTS", 1_000_000),
            ab_rounds: env_or("BENCH_AB_ROUNDS", 5usize).max(1),
            sections: std::env::var("BENCH_SECTIONS")
                .unwrap_or_else(|_| "1,2,3".to_owned())
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("BENCH_SECTIONS: {v:?} is not 1, 2 or 3"))
                })
                .collect(),
            tmp_parent: std::env::var_os("BENCH_TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
        };
        assert!(
            s.secs > 0.0 && s.secs <= 600.0,
            "BENCH_SECS must be in (0, 600]"
        );
        assert!(
            (0.0..=60.0).contains(&s.warmup),
            "BENCH_WARMUP_SECS must be in [0, 60]"
        );
        assert!(s.max_requests > 0, "BENCH_MAX_REQUESTS must be positive");
        s
    }
}

// ---------------------------------------------------------------------------------------
// /proc accounting.

/// CPU ticks of this process's threads whose name starts with `prefix`.
fn thread_ticks(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .map(|t| proc_cpu_ticks(&t.path().join("stat").to_string_lossy()))
        .sum()
}

#[derive(Clone, Copy)]
struct CpuSnapshot {
    at: Instant,
    facade: u64,
    bench: u64,
    upstream: u64,
    otlp: u64,
    busy: u64,
}

impl CpuSnapshot {
    fn take(facade_pid: u32) -> CpuSnapshot {
        CpuSnapshot {
            at: Instant::now(),
            facade: proc_cpu_ticks(&format!("/proc/{facade_pid}/stat")),
            bench: proc_cpu_ticks("/proc/self/stat"),
            upstream: thread_ticks(UPSTREAM_THREADS),
            otlp: thread_ticks(OTLP_THREADS),
            busy: machine_busy_ticks(),
        }
    }
}

/// CPU over a window, in percent of one core.
#[derive(Clone, Copy, Default)]
struct CpuShares {
    facade: f64,
    client: f64,
    upstream: f64,
    otlp: f64,
    other: f64,
}

impl CpuShares {
    fn between(a: CpuSnapshot, b: CpuSnapshot) -> CpuShares {
        let secs = b.at.saturating_duration_since(a.at).as_secs_f64().max(1e-3);
        let pct = |ticks: u64| 100.0 * ticks as f64 / USER_HZ / secs;
        let facade = b.facade.saturating_sub(a.facade);
        let bench = b.bench.saturating_sub(a.bench);
        let upstream = b.upstream.saturating_sub(a.upstream);
        let otlp = b.otlp.saturating_sub(a.otlp);
        let busy = b.busy.saturating_sub(a.busy);
        CpuShares {
            facade: pct(facade),
            client: pct(bench.saturating_sub(upstream + otlp)),
            upstream: pct(upstream),
            otlp: pct(otlp),
            other: pct(busy.saturating_sub(facade + bench)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The facade child process.

/// A running facade. Dropping it stops the child (SIGTERM, then SIGKILL if it lingers),
/// also when the bench panics, and then removes its data directory.
struct Facade {
    child: Option<Child>,
    pid: u32,
    addr: String,
    _dir: TempDir,
}

impl Facade {
    /// Spawns the binary on a free loopback port with `args` and `env` (on top of an
    /// environment cleared of PARTICIPANTS_*, TWILIO_*, OTEL_* and RUST_LOG) and waits
    /// until its health says SERVING.
    async fn start(settings: &Settings, args: &[String], env: &[(&str, String)]) -> Facade {
        std::fs::create_dir_all(&settings.tmp_parent).expect("create the bench tmp dir");
        let dir = tempfile::Builder::new()
            .prefix("participants-facade-bench-")
            .tempdir_in(&settings.tmp_parent)
            .expect("create a temp data dir");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(BIN);
        command
            .arg("--listen")
            .arg(&addr)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if ["PARTICIPANTS_", "TWILIO_", "OTEL_"]
                .iter()
                .any(|p| k.starts_with(p))
                || k == "RUST_LOG"
            {
                command.env_remove(&key);
            }
        }
        command.env("RUST_LOG", "warn").env("NO_COLOR", "1");
        for (key, value) in env {
            command.env(key, value);
        }
        let spawned = Instant::now();
        let child = command.spawn().expect("spawn participants-facade");
        let mut facade = Facade {
            pid: child.id(),
            child: Some(child),
            addr,
            _dir: dir,
        };
        loop {
            if let Some(status) = facade
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"))
            {
                panic!("participants-facade exited during start-up: {status}");
            }
            assert!(
                spawned.elapsed() < STARTUP_LIMIT,
                "participants-facade was not SERVING within {STARTUP_LIMIT:?}"
            );
            if check_once(&facade.url()).await {
                return facade;
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, then a bounded wait; SIGKILL if it does not exit in time.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let asked = Instant::now();
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if asked.elapsed() < STOP_LIMIT => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    eprintln!("participants-facade ignored SIGTERM; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for Facade {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    probe.local_addr().expect("local addr").port()
}

// ---------------------------------------------------------------------------------------
// The loopback Twilio stand-in and the OTLP receiver, each on its own runtime.

/// The conversation and participant of a v2 participant path.
fn participant_path(path: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "v2", "Conversations", c, "Participants", id] if !c.is_empty() && !id.is_empty() => {
            Some((c, id))
        }
        _ => None,
    }
}

fn json_response(status: u16, body: impl Into<Bytes>) -> http::Response<axum::body::Body> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body.into()))
        .expect("static response")
}

/// Serves the fixed participant on 127.0.0.1 (HTTP/1.1 and h2c) until the runtime stops.
/// Returns its address and the count of requests it answered.
fn start_upstream(runtime: &Handle) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("upstream addr");
    let served = Arc::new(AtomicU64::new(0));
    let expected_auth = Arc::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:{API_SECRET}"))
    ));
    let counter = served.clone();
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let http = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let http = http.clone();
            let counter = counter.clone();
            let expected_auth = expected_auth.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: http::Request<_>| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let authorized = request
                        .headers()
                        .get(http::header::AUTHORIZATION)
                        .is_some_and(|v| v.as_bytes() == expected_auth.as_bytes());
                    let response = if !authorized {
                        json_response(
                            401,
                            r#"{"code":20003,"message":"Authenticate","status":401}"#,
                        )
                    } else if let Some((conversation, id)) = participant_path(request.uri().path())
                        .filter(|_| request.method() == http::Method::GET)
                    {
                        json_response(200, participant_json(conversation, id))
                    } else {
                        json_response(404, NOT_FOUND_JSON)
                    };
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (addr, served)
}

/// An OTLP/gRPC TraceService that only counts what it receives.
#[derive(Clone, Default)]
struct SpanCounter {
    spans: Arc<AtomicU64>,
    exports: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for SpanCounter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        self.exports.fetch_add(1, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl SpanCounter {
    fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until no export has arrived for `quiet`, then returns the spans.
    async fn settled(&self, quiet: Duration, limit: Duration) -> u64 {
        let begin = Instant::now();
        let mut last = (self.exports.load(Ordering::Relaxed), Instant::now());
        while begin.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.exports.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= quiet {
                break;
            }
        }
        self.spans()
    }
}

/// Starts an OTLP receiver on 127.0.0.1; it runs until the runtime stops.
fn start_receiver(runtime: &Handle) -> (SocketAddr, SpanCounter) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("receiver addr");
    let counter = SpanCounter::default();
    let service = TraceServiceServer::new(counter.clone());
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
        {
            eprintln!("the OTLP receiver stopped: {e}");
        }
    });
    (addr, counter)
}

// ---------------------------------------------------------------------------------------
// Clients and load.

struct Target {
    conversation_id: String,
    participant_id: String,
    /// `/v2/Conversations/{c}/Participants/{id}`
    path: String,
}

impl Target {
    fn new(conversation_id: String, participant_id: String) -> Target {
        let path = format!("/v2/Conversations/{conversation_id}/Participants/{participant_id}");
        Target {
            conversation_id,
            participant_id,
            path,
        }
    }
}

/// The participant JSON, decoded as a client SDK would.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct ParticipantBody {
    id: String,
    conversation_id: String,
    account_id: String,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    addresses: Vec<AddressBody>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct AddressBody {
    channel: String,
    address: String,
}

/// One client connection (or pool): gRPC over a tonic channel, or HTTP GETs with reqwest.
#[derive(Clone)]
enum Driver {
    Grpc(ParticipantServiceClient<Channel>),
    Http {
        client: reqwest::Client,
        base: Arc<str>,
        basic_auth: bool,
    },
}

impl Driver {
    async fn fetch(&mut self, target: &Target) -> Result<(), String> {
        match self {
            Driver::Grpc(client) => client
                .fetch_participant(FetchParticipantRequest {
                    conversation_id: target.conversation_id.clone(),
                    participant_id: target.participant_id.clone(),
                })
                .await
                .map(drop)
                .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
            Driver::Http {
                client,
                base,
                basic_auth,
            } => {
                let mut request = client.get(format!("{base}{}", target.path));
                if *basic_auth {
                    request = request.basic_auth(API_KEY, Some(API_SECRET));
                }
                let response = request.send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let body = response.bytes().await.map_err(|e| e.to_string())?;
                if status != reqwest::StatusCode::OK {
                    return Err(format!("HTTP {status}"));
                }
                serde_json::from_slice::<ParticipantBody>(&body)
                    .map(drop)
                    .map_err(|e| format!("bad JSON: {e}"))
            }
        }
    }
}

fn http_client(protocol: Protocol) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(REQUEST_TIMEOUT);
    match protocol {
        Protocol::Http1 => builder.http1_only(),
        Protocol::H2c => builder.http2_prior_knowledge(),
        Protocol::Grpc => unreachable!("not an HTTP client"),
    }
    .build()
    .expect("reqwest client")
}

async fn grpc_channels(url: &str, count: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        // Each Endpoint::connect opens its own HTTP/2 connection.
        let channel = Endpoint::from_shared(url.to_owned())
            .expect("endpoint")
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            .timeout(REQUEST_TIMEOUT)
            .connect()
            .await
            .expect("connect to the facade");
        channels.push(channel);
    }
    channels
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    H2c,
    Grpc,
}

/// `count` drivers of `protocol` against `url`, each with its own connection.
async fn drivers(protocol: Protocol, url: &str, count: usize) -> Vec<Driver> {
    match protocol {
        Protocol::Grpc => grpc_channels(url, count)
            .await
            .into_iter()
            .map(|c| Driver::Grpc(ParticipantServiceClient::new(c)))
            .collect(),
        Protocol::Http1 | Protocol::H2c => (0..count)
            .map(|_| Driver::Http {
                client: http_client(protocol),
                base: url.into(),
                basic_auth: false,
            })
            .collect(),
    }
}

struct Sample {
    label: String,
    concurrency: usize,
    conns: String,
    requests: u64,
    /// Requests sent, warm-up and overrun included.
    sent: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    /// Sorted latencies of the measured requests, in nanoseconds.
    latencies: Vec<u64>,
    cpu: CpuShares,
}

impl Sample {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn p(&self, p: f64) -> f64 {
        percentile(&self.latencies, p) as f64 / 1000.0
    }

    /// CPU microseconds per measured request, from a share in percent of one core.
    fn us_per_req(&self, share: f64) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        share / 100.0 * 1e6 / self.rps()
    }
}

struct WorkerOut {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

struct Window {
    from: Instant,
    until: Instant,
    max_requests: u64,
    measured: AtomicU64,
    sent: AtomicU64,
}

async fn worker(
    mut driver: Driver,
    targets: Arc<Vec<Target>>,
    start_at: usize,
    window: Arc<Window>,
) -> WorkerOut {
    let mut out = WorkerOut {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
    };
    let mut next = start_at;
    loop {
        let started = Instant::now();
        if started >= window.until || window.measured.load(Ordering::Relaxed) >= window.max_requests
        {
            return out;
        }
        let target = &targets[next % targets.len()];
        next += 1;
        let result = tokio::time::timeout(REQUEST_TIMEOUT, driver.fetch(target))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")));
        let finished = Instant::now();
        window.sent.fetch_add(1, Ordering::Relaxed);
        // Counted: started after the warm-up and finished inside the window.
        if started < window.from || finished > window.until {
            continue;
        }
        match result {
            Ok(()) => {
                out.latencies.push((finished - started).as_nanos() as u64);
                window.measured.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
}

/// One run: `concurrency` workers, worker `i` on `drivers[i % drivers.len()]`, warm-up
/// then a measured window; CPU read from /proc around the window.
async fn measure(
    settings: &Settings,
    label: &str,
    concurrency: usize,
    drivers: &[Driver],
    targets: &Arc<Vec<Target>>,
    facade_pid: u32,
) -> Sample {
    let begin = Instant::now();
    let from = begin + Duration::from_secs_f64(settings.warmup);
    let window = Arc::new(Window {
        from,
        until: from + Duration::from_secs_f64(settings.secs),
        max_requests: settings.max_requests,
        measured: AtomicU64::new(0),
        sent: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..concurrency)
        .map(|i| {
            tokio::spawn(worker(
                drivers[i % drivers.len()].clone(),
                targets.clone(),
                i * targets.len() / concurrency,
                window.clone(),
            ))
        })
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let before = CpuSnapshot::take(facade_pid);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for w in workers {
        let out = w.await.expect("worker panicked");
        latencies.extend(out.latencies);
        errors += out.errors;
        first_error = first_error.or(out.first_error);
    }
    let after = CpuSnapshot::take(facade_pid);
    let elapsed = Instant::now()
        .min(window.until)
        .saturating_duration_since(from);
    latencies.sort_unstable();
    let conns = drivers.len();
    let sample = Sample {
        label: label.to_owned(),
        concurrency,
        conns: conns.to_string(),
        requests: latencies.len() as u64,
        sent: window.sent.load(Ordering::Relaxed),
        errors,
        first_error,
        elapsed,
        latencies,
        cpu: CpuShares::between(before, after),
    };
    eprintln!(
        "  done: {:<34} c={:<3} {:>8.0} req/s  p50 {:>6.0} us  other CPU {:>3.0}%",
        sample.label,
        concurrency,
        sample.rps(),
        sample.p(50.0),
        sample.cpu.other
    );
    sample
}

/// Creates the participants the fetch workloads read, 16 at a time over one connection.
async fn precreate(url: &str) -> Arc<Vec<Target>> {
    let channel = grpc_channels(url, 1).await.remove(0);
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let mut client = ParticipantServiceClient::new(channel.clone());
            tokio::spawn(async move {
                let mut made = Vec::new();
                for i in (t..FETCH_POOL).step_by(16) {
                    let request = CreateParticipantRequest {
                        conversation_id: FETCH_CONVERSATION.to_owned(),
                        name: format!("Bench participant {i}"),
                        r#type: ParticipantType::Customer as i32,
                        addresses: vec![Address {
                            channel: ProtoChannel::Sms as i32,
                            address: format!("+1555{i:08}"),
                            channel_id: String::new(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    };
                    let p = client
                        .create_participant(request)
                        .await
                        .expect("pre-create participant")
                        .into_inner();
                    made.push((i, Target::new(p.conversation_id, p.id)));
                }
                made
            })
        })
        .collect();
    let mut made = Vec::with_capacity(FETCH_POOL);
    for t in tasks {
        made.extend(t.await.expect("pre-create task"));
    }
    made.sort_by_key(|(i, _)| *i);
    Arc::new(made.into_iter().map(|(_, t)| t).collect())
}

// ---------------------------------------------------------------------------------------
// Report.

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The table of a section's runs. `with_upstream`/`with_otlp` add those CPU columns.
fn table(samples: &[&Sample], with_upstream: bool, with_otlp: bool) -> String {
    let mut t = String::new();
    let mut head = String::from(
        "| run | conc | conns | requests | req/s | p50 us | p99 us | errors | facade CPU | client CPU |",
    );
    let mut rule = String::from("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    if with_upstream {
        head.push_str(" upstream CPU |");
        rule.push_str("---:|");
    }
    if with_otlp {
        head.push_str(" receiver CPU |");
        rule.push_str("---:|");
    }
    head.push_str(" other CPU | facade CPU us/req | client CPU us/req |");
    rule.push_str("---:|---:|---:|");
    if with_upstream {
        head.push_str(" upstream CPU us/req |");
        rule.push_str("---:|");
    }
    let _ = writeln!(t, "{head}");
    let _ = writeln!(t, "{rule}");
    for s in samples {
        let _ = write!(
            t,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.0}% | {:.0}% |",
            s.label,
            s.concurrency,
            s.conns,
            s.requests,
            s.rps(),
            s.p(50.0),
            s.p(99.0),
            s.errors,
            s.cpu.facade,
            s.cpu.client,
        );
        if with_upstream {
            let _ = write!(t, " {:.0}% |", s.cpu.upstream);
        }
        if with_otlp {
            let _ = write!(t, " {:.0}% |", s.cpu.otlp);
        }
        let _ = write!(
            t,
            " {:.0}% | {:.1} | {:.1} |",
            s.cpu.other,
            s.us_per_req(s.cpu.facade),
            s.us_per_req(s.cpu.client),
        );
        if with_upstream {
            let _ = write!(t, " {:.1} |", s.us_per_req(s.cpu.upstream));
        }
        let _ = writeln!(t);
    }
    t
}

/// Flags rows with errors or measured under heavy foreign CPU load.
fn warnings(samples: &[&Sample]) {
    for s in samples {
        if s.errors > 0 {
            println!(
                "errors in {} c={}: {} (first: {})",
                s.label,
                s.concurrency,
                s.errors,
                s.first_error.as_deref().unwrap_or("?")
            );
        }
        if s.cpu.other > NOISE_LIMIT {
            println!(
                "WARNING: other processes used {:.0}% CPU during {} c={}: that row measures \
                 contention too; rerun on an idle machine.",
                s.cpu.other, s.label, s.concurrency
            );
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------------------
// The three comparisons.

async fn facade_overhead(settings: &Settings, upstream_rt: &Handle) {
    println!("## 1. Facade overhead: twilio backend against a loopback upstream");
    println!();
    let (upstream, served) = start_upstream(upstream_rt);
    let args = [
        "--backend".to_owned(),
        "twilio".to_owned(),
        "--upstream-url".to_owned(),
        format!("http://{upstream}"),
    ];
    let env = [
        ("TWILIO_API_KEY", API_KEY.to_owned()),
        ("TWILIO_API_SECRET", API_SECRET.to_owned()),
    ];
    let facade = Facade::start(settings, &args, &env).await;
    println!(
        "upstream stand-in: http://{upstream} (hyper, HTTP/1.1 + h2c, 2 threads, {} byte body naming the participant asked for); \
         facade: pid {} on {}, --backend twilio, RUST_LOG=warn",
        participant_json(CONVERSATION, &format!("conv_participant_{:026}", 0)).len(),
        facade.pid,
        facade.url()
    );
    println!(
        "direct client: one reqwest pool, HTTP/1.1 keep-alive (what the facade's own client \
         speaks over cleartext), same Basic credentials, JSON decoded"
    );
    println!();
    let targets: Arc<Vec<Target>> = Arc::new(
        (0..FETCH_POOL)
            .map(|i| Target::new(CONVERSATION.to_owned(), format!("conv_participant_{i:026}")))
            .collect(),
    );
    let direct = vec![Driver::Http {
        client: http_client(Protocol::Http1),
        base: format!("http://{upstream}").into(),
        basic_auth: true,
    }];
    let mut samples = Vec::new();
    let mut upstream_per_call = Vec::new();
    for concurrency in [1, 16] {
        let conns = concurrency.min(MUX_CONNECTIONS);
        let grpc = drivers(Protocol::Grpc, &facade.url(), conns).await;
        let served_before = served.load(Ordering::Relaxed);
        let mut via = measure(
            settings,
            "facade (gRPC -> facade -> upstream)",
            concurrency,
            &grpc,
            &targets,
            facade.pid,
        )
        .await;
        let hops = (served.load(Ordering::Relaxed) - served_before) as f64 / via.sent as f64;
        upstream_per_call.push((concurrency, hops));
        let mut straight = measure(
            settings,
            "direct (reqwest -> upstream)",
            concurrency,
            &direct,
            &targets,
            facade.pid,
        )
        .await;
        straight.conns = format!("pool (<={concurrency})");
        via.conns = conns.to_string();
        samples.push(via);
        samples.push(straight);
    }
    let refs: Vec<&Sample> = samples.iter().collect();
    println!("{}", table(&refs, true, false));
    println!(
        "(CPU = share of one core over the measured window, from /proc; 100% = one core, the \
         machine has {}%. client = this process's load generator; upstream = the stand-in; \
         other = every other process on the machine, i.e. noise. During the direct rows the \
         facade is idle.)",
        100 * std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    warnings(&refs);
    for (concurrency, hops) in &upstream_per_call {
        println!(
            "upstream requests per facade call at c={concurrency}: {hops:.3} (1.000 = no retries, no caching)"
        );
    }
    println!();
    println!("targets:");
    for pair in samples.chunks(2) {
        let (via, straight) = (&pair[0], &pair[1]);
        let c = via.concurrency;
        let added_p50 = via.p(50.0) - straight.p(50.0);
        let added_p99 = via.p(99.0) - straight.p(99.0);
        let ratio = via.rps() / straight.rps();
        println!(
            "  c={c:<3} added latency p50 {added_p50:>+7.0} us (<= 150 us)   {}   [p99 {added_p99:+.0} us]",
            verdict(added_p50 <= 150.0)
        );
        println!(
            "  c={c:<3} throughput facade/direct {ratio:>5.2}x (>= 0.7x)      {}   [{:.0} / {:.0} req/s]",
            verdict(ratio >= 0.7),
            via.rps(),
            straight.rps()
        );
    }
    println!();
    println!("CPU per call (us, from the table; explains the throughput ratio when CPU-bound):");
    for pair in samples.chunks(2) {
        let (via, straight) = (&pair[0], &pair[1]);
        let path = |s: &Sample| s.us_per_req(s.cpu.facade + s.cpu.client + s.cpu.upstream);
        let without_facade = via.us_per_req(via.cpu.client + via.cpu.upstream);
        println!(
            "  c={:<3} facade path {:.0} (facade {:.0} + client {:.0} + upstream {:.0}); direct {:.0}; \
             CPU ratio direct/facade path {:.2}; ceiling with a zero-CPU facade {:.2}",
            via.concurrency,
            path(via),
            via.us_per_req(via.cpu.facade),
            via.us_per_req(via.cpu.client),
            via.us_per_req(via.cpu.upstream),
            path(straight),
            path(straight) / path(via),
            path(straight) / without_facade,
        );
    }
    println!();
}

async fn rest_vs_grpc(settings: &Settings) {
    println!("## 2. REST against gRPC: FetchParticipant on the local backend");
    println!();
    let facade = Facade::start(settings, &[], &[]).await;
    let url = facade.url();
    let targets = precreate(&url).await;
    println!(
        "facade: pid {} on {url}, --backend local, RUST_LOG=warn; {} participants pre-created; \
         REST = GET {{ConversationSid}}/Participants/{{Sid}} with reqwest, JSON decoded; \
         each protocol on as many connections as workers",
        facade.pid,
        targets.len()
    );
    println!();
    let mut samples = Vec::new();
    for concurrency in [16, 64] {
        for (protocol, label) in [
            (Protocol::Grpc, "gRPC (tonic)"),
            (Protocol::Http1, "REST HTTP/1.1 keep-alive"),
            (Protocol::H2c, "REST HTTP/2 (h2c prior knowledge)"),
        ] {
            let d = drivers(protocol, &url, concurrency).await;
            samples.push(measure(settings, label, concurrency, &d, &targets, facade.pid).await);
        }
    }
    // Not graded: the multiplexed protocols as they are usually deployed, on few connections.
    let mut extra = Vec::new();
    for (protocol, label) in [
        (Protocol::Grpc, "gRPC (tonic), 4 conns [info]"),
        (Protocol::H2c, "REST HTTP/2, 4 conns [info]"),
    ] {
        let d = drivers(protocol, &url, MUX_CONNECTIONS).await;
        extra.push(measure(settings, label, 64, &d, &targets, facade.pid).await);
    }
    let refs: Vec<&Sample> = samples.iter().chain(extra.iter()).collect();
    println!("{}", table(&refs, false, false));
    warnings(&refs);
    println!();
    println!("targets (REST throughput >= 0.6x gRPC, same concurrency and connections):");
    for trio in samples.chunks(3) {
        let (grpc, h1, h2) = (&trio[0], &trio[1], &trio[2]);
        for rest in [h1, h2] {
            let ratio = rest.rps() / grpc.rps();
            println!(
                "  c={:<3} {:<34} / gRPC = {ratio:.2}x   {}",
                grpc.concurrency,
                rest.label,
                verdict(ratio >= 0.6)
            );
        }
    }
    println!(
        "  [info] c=64 on 4 connections: REST HTTP/2 / gRPC = {:.2}x",
        extra[1].rps() / extra[0].rps()
    );
    println!();
}

async fn tracing_overhead(settings: &Settings, otlp_rt: &Handle) {
    println!("## 3. Tracing overhead: OTLP export on the local backend");
    println!();
    let (receiver, spans) = start_receiver(otlp_rt);
    let (warn_receiver, warn_spans) = start_receiver(otlp_rt);
    let info_log = "warn,participants_facade=info".to_owned();
    let otel = |addr: SocketAddr, log: &str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
            ("RUST_LOG", log.to_owned()),
        ]
    };

    // First the bench's default level: exporting, with RUST_LOG=warn (spans off, see above).
    {
        let facade = Facade::start(settings, &[], &otel(warn_receiver, "warn")).await;
        let targets = precreate(&facade.url()).await;
        let d = drivers(Protocol::Grpc, &facade.url(), 1).await;
        let mut driver = d[0].clone();
        for t in targets.iter().take(200) {
            let _ = driver.fetch(t).await;
        }
        // Past a few schedule delays, then SIGTERM, which flushes what is batched.
        tokio::time::sleep(Duration::from_millis(600)).await;
        drop(facade);
        let got = warn_spans
            .settled(Duration::from_millis(300), Duration::from_secs(3))
            .await;
        println!(
            "exporting child with RUST_LOG=warn: {} creates + 200 fetches served, {got} spans received \
             by the OTLP receiver ({})",
            targets.len(),
            if got > 0 {
                "spans have their own filter: RUST_LOG=warn quiets the logs, not the traces"
            } else {
                "none: the RUST_LOG filter also disabled the spans"
            }
        );
    }

    // BENCH_TRACED_ENV=K=V,K=V adds variables to T only (e.g. OTEL_BSP_MAX_QUEUE_SIZE).
    let mut traced_env = otel(receiver, &info_log);
    let extra = std::env::var("BENCH_TRACED_ENV").unwrap_or_default();
    for pair in extra.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .unwrap_or_else(|| panic!("BENCH_TRACED_ENV: {pair:?} is not KEY=VALUE"));
        let key: &'static str = Box::leak(key.trim().to_owned().into_boxed_str());
        traced_env.push((key, value.trim().to_owned()));
        println!("T also gets {key}={}", value.trim());
    }
    let traced = Facade::start(settings, &[], &traced_env).await;
    let untraced = Facade::start(settings, &[], &[("RUST_LOG", info_log.clone())]).await;
    let bare = Facade::start(settings, &[], &[]).await;
    let mut setups = Vec::new();
    for (facade, label) in [
        (&traced, "T: OTLP export, RUST_LOG=info (crate)"),
        (&untraced, "U: no OTEL vars, RUST_LOG=info (crate)"),
        (&bare, "W: no OTEL vars, RUST_LOG=warn"),
    ] {
        let targets = precreate(&facade.url()).await;
        let d = drivers(Protocol::Grpc, &facade.url(), MUX_CONNECTIONS).await;
        setups.push((facade, label, targets, d));
    }
    println!(
        "T: pid {}, U: pid {}, W: pid {}; receiver on http://{receiver} (tonic, 1 thread); \
         gRPC FetchParticipant, c=16 on {MUX_CONNECTIONS} connections, {} round(s) T/U/W",
        traced.pid, untraced.pid, bare.pid, settings.ab_rounds
    );
    println!();
    // The pre-creates' spans are exported first, so that only the measured phase counts.
    let spans_before = spans
        .settled(Duration::from_millis(400), Duration::from_secs(3))
        .await;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(), Vec::new(), Vec::new()];
    let mut traced_sent = 0;
    for round in 0..settings.ab_rounds {
        for (i, (facade, label, targets, d)) in setups.iter().enumerate() {
            let label = format!("{label} #{}", round + 1);
            let s = measure(settings, &label, 16, d, targets, facade.pid).await;
            if i == 0 {
                traced_sent += s.sent;
            }
            samples[i].push(s);
        }
    }
    let received = spans
        .settled(Duration::from_millis(500), Duration::from_secs(5))
        .await
        - spans_before;
    let refs: Vec<&Sample> = (0..settings.ab_rounds)
        .flat_map(|r| samples.iter().map(move |s| &s[r]))
        .collect();
    println!("{}", table(&refs, false, true));
    warnings(&refs);
    // Unloaded latency (not graded): one call at a time, where no CPU is saturated.
    let mut single = Vec::new();
    for (facade, label, targets, d) in &setups {
        let label = format!("{label} [info]");
        single.push(measure(settings, &label, 1, &d[..1], targets, facade.pid).await);
    }
    let single_refs: Vec<&Sample> = single.iter().collect();
    println!("{}", table(&single_refs, false, true));
    warnings(&single_refs);
    println!(
        "  c=1 p50 added by spans (U-W) {:+.0} us, by export (T-U) {:+.0} us; facade CPU per call \
         T {:.1} us, U {:.1} us, W {:.1} us",
        single[1].p(50.0) - single[2].p(50.0),
        single[0].p(50.0) - single[1].p(50.0),
        single[0].us_per_req(single[0].cpu.facade),
        single[1].us_per_req(single[1].cpu.facade),
        single[2].us_per_req(single[2].cpu.facade),
    );
    let med = |i: usize| median(&mut samples[i].iter().map(Sample::rps).collect::<Vec<_>>());
    let med_cpu = |i: usize| {
        median(
            &mut samples[i]
                .iter()
                .map(|s| s.us_per_req(s.cpu.facade))
                .collect::<Vec<_>>(),
        )
    };
    let med_p =
        |i: usize, p: f64| median(&mut samples[i].iter().map(|s| s.p(p)).collect::<Vec<_>>());
    println!();
    println!("medians over {} round(s):", settings.ab_rounds);
    println!("| child | req/s | p50 us | p99 us | facade CPU us/req |");
    println!("|---|---:|---:|---:|---:|");
    for (i, name) in ["T (traced)", "U (untraced, info)", "W (untraced, warn)"]
        .iter()
        .enumerate()
    {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.1} |",
            med(i),
            med_p(i, 50.0),
            med_p(i, 99.0),
            med_cpu(i)
        );
    }
    println!();
    // A fetch makes one span, the server call; the store read has a span of its own only
    // when the participant is not in the fetch cache yet (the first fetch of each).
    let made = traced_sent;
    println!(
        "spans received during the measured phase: {received} for {traced_sent} calls to T \
         ({:.2} spans per call; a cached local fetch makes 1, the server call, so about \
         {made} were made and about {} ({:.0}%) were dropped by the exporter's full queue)",
        received as f64 / traced_sent.max(1) as f64,
        made.saturating_sub(received),
        100.0 * made.saturating_sub(received) as f64 / made.max(1) as f64
    );
    println!(
        "sanity: spans received > 0                {}",
        verdict(received > 0)
    );
    let ratio = med(0) / med(1);
    println!(
        "target: traced/untraced (T/U) {ratio:.2}x (>= 0.85x)  {}",
        verdict(ratio >= 0.85)
    );
    println!(
        "        [info] T/W = {:.2}x (export + spans against no spans at all); U/W = {:.2}x",
        med(0) / med(2),
        med(1) / med(2)
    );
    println!(
        "        facade CPU per call: T {:.1} us, U {:.1} us, W {:.1} us",
        med_cpu(0),
        med_cpu(1),
        med_cpu(2)
    );
    println!();
    drop(setups);
}

fn main() {
    let settings = Settings::from_env();
    let upstream_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(UPSTREAM_THREADS)
        .enable_all()
        .build()
        .expect("upstream runtime");
    let otlp_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(OTLP_THREADS)
        .enable_all()
        .build()
        .expect("OTLP runtime");
    // Explicit, so that TOKIO_WORKER_THREADS (inherited by the facade children, for
    // experiments) does not change the load generator.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_name("bench-client")
        .enable_all()
        .build()
        .expect("client runtime");
    client_rt.block_on(bench(
        &settings,
        upstream_rt.handle().clone(),
        otlp_rt.handle().clone(),
    ));
    upstream_rt.shutdown_timeout(Duration::from_secs(1));
    otlp_rt.shutdown_timeout(Duration::from_secs(1));
}

async fn bench(settings: &Settings, upstream_rt: Handle, otlp_rt: Handle) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# participants-facade comparative benchmark (cargo bench --bench facade)");
    println!();
    println!("binary:   {BIN}");
    println!("machine:  {}", machine());
    println!(
        "NOTE:     client, stand-in upstream, OTLP receiver and facade share these {cpus} cores; \
         throughput numbers are CPU-bound on the whole machine, not on the facade alone"
    );
    println!(
        "settings: {} s measured after {} s warm-up per run, at most {} measured requests per run, \
         per-request timeout {REQUEST_TIMEOUT:?}",
        settings.secs, settings.warmup, settings.max_requests
    );
    println!("data dir: under {}", settings.tmp_parent.display());
    println!(
        "loadavg:  {} at start (other processes compete for the same cores)",
        loadavg()
    );
    println!();
    if settings.sections.contains(&1) {
        facade_overhead(settings, &upstream_rt).await;
    }
    if settings.sections.contains(&2) {
        rest_vs_grpc(settings).await;
    }
    if settings.sections.contains(&3) {
        tracing_overhead(settings, &otlp_rt).await;
    }
    println!("loadavg:  {} at the end", loadavg());
}
