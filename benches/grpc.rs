//! End-to-end gRPC benchmark of the release `participants-facade` binary.
//!
//! Run with `cargo bench --bench grpc`. This is a command that prints numbers, not a test:
//! nothing here asserts on timings. What it does, in order:
//!
//! 1. Times `fsync` on the disk the data directory lives on (the floor of a durable create).
//! 2. Starts the real binary as a child process on a free 127.0.0.1 port with a fresh data
//!    directory, several times, and times spawn → first health `Check` answering SERVING.
//!    The last server is kept; its idle RSS is read after a short settle.
//! 3. Pre-creates participants, then at concurrency 1, 16 and 64 runs, in this order:
//!    health `Check` (the baseline), `FetchParticipant` (round-robin over the pre-created
//!    participants), `ListParticipants` (pages of 50 of the same 1000 participants, each
//!    worker walking the pages with next_page_token), `CreateParticipant` (durable: fsynced
//!    before it is acknowledged), `UpdateParticipant` (a new name for a pre-created
//!    participant, durable) and `DeleteServiceParticipant` (v1 participants created for it
//!    just before its run, untimed; durable). `FetchParticipant` and `CreateParticipant`
//!    are each followed by the same call over Connect with JSON bodies (reqwest, HTTP/2;
//!    typed request and answer structs, as the gRPC client has prost types), at the same
//!    concurrency in the same run: the Connect/gRPC ratios are the Connect layer's cost
//!    (JSON both ways, the in-process hop to the gRPC routes) plus the difference of the
//!    two clients, which share the machine's cores with the server. The server's CPU per
//!    call is printed for both, and its ratio.
//!    Every workload at one concurrency uses the same number of connections:
//!    `min(concurrency, 4)` HTTP/2 connections (tonic channels for gRPC, one reqwest client
//!    each for Connect), worker `i` on connection `i % n`.
//! 4. Prints the table, the ratios and the targets (pass/fail text), peak RSS, and stops
//!    the server with SIGTERM.
//!
//! Environment: `BENCH_SECS` (measured seconds per workload, default 3),
//! `BENCH_WARMUP_SECS` (default 0.5), `BENCH_MAX_REQUESTS` (cap on measured requests per
//! workload, default 1000000), `BENCH_STARTUPS` (start-up samples, default 5),
//! `BENCH_TMPDIR` (parent of the data directories; default Cargo's target/tmp, so the
//! store is on the project's disk even where /tmp is a tmpfs), `BENCH_SERVER_LOG` (the
//! server's RUST_LOG, default `warn`; for diagnostics only), `BENCH_SERVER_ARGS` (extra
//! flags for the server, split on whitespace, e.g. `--cache-entries 0`),
//! `BENCH_CONNECT_HTTP` (`2`, the default, or `1.1`: the HTTP version of the Connect calls).

// Test and bench code: a failed unwrap is a failed run, and helpers are `pub` for the
// crate's own modules.
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{
    Address, Channel as ProtoChannel, CreateParticipantRequest, CreateServiceParticipantRequest,
    DeleteServiceParticipantRequest, FetchParticipantRequest, ListParticipantsRequest, Participant,
    UpdateParticipantRequest,
};
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

mod support;
use support::server::{BIN, ServerProcess, server_args, server_log};
use support::{
    NOISE_LIMIT, USER_HZ, env_or, machine, machine_busy_ticks, percentile, proc_cpu_ticks, verdict,
};

const SERVICE: &str = "participants.v1.ParticipantService";
const CONCURRENCY: [usize; 3] = [1, 16, 64];
const MAX_CONNECTIONS: usize = 4;
const FETCH_POOL: usize = 1000;
const FETCH_CONVERSATION: &str = "conv_bench_fetch";
const LIST_PAGE: i32 = 50;
const CHAT_SERVICE: &str = "IS00000000000000000000000000000000";
const STARTUP_LIMIT: Duration = Duration::from_secs(10);
const IDLE_SETTLE: Duration = Duration::from_millis(500);

struct Settings {
    secs: f64,
    warmup: f64,
    max_requests: u64,
    startups: usize,
    tmp_parent: PathBuf,
}

impl Settings {
    fn from_env() -> Settings {
        let s = Settings {
            secs: env_or("BENCH_SECS", 3.0),
            warmup: env_or("BENCH_WARMUP_SECS", 0.5),
            max_requests: env_or("BENCH_MAX_REQUESTS", 1_000_000),
            startups: env_or("BENCH_STARTUPS", 5usize).max(1),
            tmp_parent: std::env::var_os("BENCH_TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
        };
        assert!(s.secs > 0.0, "BENCH_SECS must be positive");
        assert!(s.warmup >= 0.0, "BENCH_WARMUP_SECS must not be negative");
        assert!(s.max_requests > 0, "BENCH_MAX_REQUESTS must be positive");
        s
    }
}

// ---------------------------------------------------------------------------------------
// The server child process.

/// The running server and its fresh data directory. Dropping it stops the child (SIGTERM,
/// then SIGKILL if it lingers), also when the bench panics, and then removes the data
/// directory (fields drop in order: the process first).
struct Server {
    process: ServerProcess,
    _dir: TempDir,
}

impl Server {
    /// Spawns the binary on a free loopback port and waits until health says SERVING.
    /// Returns the server and the time from spawn to that first SERVING answer.
    async fn start(tmp_parent: &Path) -> (Server, Duration) {
        std::fs::create_dir_all(tmp_parent).expect("create the bench tmp dir");
        let dir = tempfile::Builder::new()
            .prefix("participants-bench-")
            .tempdir_in(tmp_parent)
            .expect("create a temp data dir");
        let (process, startup) =
            ServerProcess::start(&dir.path().join("data"), STARTUP_LIMIT).await;
        (Server { process, _dir: dir }, startup)
    }
}

impl std::ops::Deref for Server {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

// ---------------------------------------------------------------------------------------
// fsync on the data disk.

/// Latencies of `sync_all` (fsync, what SQLite calls: the bundled build has no
/// fdatasync) after appending 4 KiB each time, on a file under `dir`.
fn fsync_probe(dir: &Path, rounds: usize) -> Vec<u64> {
    std::fs::create_dir_all(dir).expect("create the bench tmp dir");
    let probe = tempfile::Builder::new()
        .prefix("fsync-probe-")
        .tempdir_in(dir)
        .expect("fsync probe dir");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(probe.path().join("probe"))
        .expect("open probe file");
    let page = [0x5au8; 4096];
    let mut nanos = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        file.write_all(&page).expect("write probe");
        let t = Instant::now();
        file.sync_all().expect("fsync probe");
        nanos.push(t.elapsed().as_nanos() as u64);
    }
    nanos
}

// ---------------------------------------------------------------------------------------
// Load.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Health,
    Fetch,
    ConnectFetch,
    List,
    Create,
    ConnectCreate,
    Update,
    Delete,
}

impl Workload {
    const ALL: [Workload; 8] = [
        Workload::Health,
        Workload::Fetch,
        Workload::ConnectFetch,
        Workload::List,
        Workload::Create,
        Workload::ConnectCreate,
        Workload::Update,
        Workload::Delete,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Health => "Health/Check",
            Workload::Fetch => "FetchParticipant",
            Workload::ConnectFetch => "Connect Fetch",
            Workload::List => "ListParticipants",
            Workload::Create => "CreateParticipant",
            Workload::ConnectCreate => "Connect Create",
            Workload::Update => "UpdateParticipant",
            Workload::Delete => "DeleteServicePart",
        }
    }
}

/// What the workers share.
struct Fixture {
    /// The server's base URL, for Connect calls.
    url: String,
    /// (conversation_id, participant_id) of the pre-created participants.
    targets: Vec<(String, String)>,
    /// Makes every created address unique across the whole run.
    next_address: AtomicU64,
    /// The v1 participants the Delete workload removes, as (conversation_sid, sid); each
    /// is taken once through `next_delete`.
    deletable: std::sync::Mutex<Arc<Vec<(String, String)>>>,
    next_delete: AtomicU64,
}

impl Fixture {
    fn create_request(&self, conversation_id: String) -> CreateParticipantRequest {
        let n = self.next_address.fetch_add(1, Ordering::Relaxed);
        CreateParticipantRequest {
            conversation_id,
            addresses: vec![Address {
                channel: ProtoChannel::Sms as i32,
                address: format!("+1555{n:08}"),
                channel_id: String::new(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }
}

struct RunResult {
    workload: Workload,
    concurrency: usize,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    /// Sorted latencies of the measured requests, in nanoseconds.
    latencies: Vec<u64>,
    server_cpu: f64,
    bench_cpu: f64,
    /// CPU used by everything else on the machine meanwhile (noise from other processes).
    other_cpu: f64,
}

impl RunResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU time per measured request, in microseconds, from a CPU share in percent.
    fn cpu_us_per_request(&self, share: f64) -> f64 {
        share / 100.0 * 1e6 / self.rps()
    }

    fn percentile_us(&self, p: f64) -> f64 {
        percentile(&self.latencies, p) as f64 / 1000.0
    }
}

struct WorkerOutcome {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    workload: Workload,
    concurrency: usize,
    index: usize,
    channel: Channel,
    http: reqwest::Client,
    fixture: Arc<Fixture>,
    measured: Arc<AtomicU64>,
    measure_from: Instant,
    measure_until: Instant,
    max_requests: u64,
) -> WorkerOutcome {
    let mut health = HealthClient::new(channel.clone());
    let mut participants = ParticipantServiceClient::new(channel);
    let conversation = format!("conv_bench_c{concurrency}_w{index}");
    let connect_url = |rpc: &str| {
        reqwest::Url::parse(&format!("{}/{SERVICE}/{rpc}", fixture.url)).expect("Connect URL")
    };
    let (connect_fetch, connect_create) = (
        connect_url("FetchParticipant"),
        connect_url("CreateParticipant"),
    );
    let mut out = WorkerOutcome {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
    };
    // Round-robin over the pre-created participants, each worker from its own offset.
    let mut next_target = index * FETCH_POOL / concurrency;
    let mut page_token = String::new();
    let deletable = fixture.deletable.lock().expect("deletable").clone();
    loop {
        let started = Instant::now();
        if started >= measure_until || measured.load(Ordering::Relaxed) >= max_requests {
            break;
        }
        let result = match workload {
            Workload::Health => health
                .check(HealthCheckRequest {
                    service: SERVICE.to_owned(),
                })
                .await
                .and_then(|r| match r.into_inner().status {
                    s if s == ServingStatus::Serving as i32 => Ok(()),
                    s => Err(tonic::Status::internal(format!("health status {s}"))),
                }),
            Workload::Fetch => {
                let (conversation_id, participant_id) =
                    &fixture.targets[next_target % fixture.targets.len()];
                next_target += 1;
                participants
                    .fetch_participant(FetchParticipantRequest {
                        conversation_id: conversation_id.clone(),
                        participant_id: participant_id.clone(),
                    })
                    .await
                    .map(drop)
            }
            Workload::ConnectFetch => {
                let (conversation_id, participant_id) =
                    &fixture.targets[next_target % fixture.targets.len()];
                next_target += 1;
                let body = FetchJson {
                    conversation_id,
                    participant_id,
                };
                connect_call(&http, &connect_fetch, &body).await
            }
            Workload::ConnectCreate => {
                let request = fixture.create_request(conversation.clone());
                let body = CreateJson {
                    conversation_id: &request.conversation_id,
                    addresses: [AddressJson {
                        channel: "CHANNEL_SMS",
                        address: &request.addresses[0].address,
                    }],
                };
                connect_call(&http, &connect_create, &body).await
            }
            Workload::List => participants
                .list_participants(ListParticipantsRequest {
                    conversation_id: FETCH_CONVERSATION.to_owned(),
                    page_size: LIST_PAGE,
                    page_token: std::mem::take(&mut page_token),
                })
                .await
                .and_then(|r| {
                    let page = r.into_inner();
                    page_token = page.next_page_token;
                    if page.participants.is_empty() {
                        Err(tonic::Status::internal("empty page"))
                    } else {
                        Ok(())
                    }
                }),
            Workload::Create => participants
                .create_participant(fixture.create_request(conversation.clone()))
                .await
                .map(drop),
            Workload::Update => {
                let (conversation_id, id) = &fixture.targets[next_target % fixture.targets.len()];
                next_target += 1;
                participants
                    .update_participant(UpdateParticipantRequest {
                        participant: Some(Participant {
                            conversation_id: conversation_id.clone(),
                            id: id.clone(),
                            name: format!("Renamed {next_target}"),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["name".to_owned()],
                        }),
                    })
                    .await
                    .map(drop)
            }
            Workload::Delete => {
                let n = fixture.next_delete.fetch_add(1, Ordering::Relaxed) as usize;
                // The pool is sized from the Create rate; once it is used up, stop.
                let Some((conversation_sid, sid)) = deletable.get(n) else {
                    break;
                };
                participants
                    .delete_service_participant(DeleteServiceParticipantRequest {
                        chat_service_sid: CHAT_SERVICE.to_owned(),
                        conversation_sid: conversation_sid.clone(),
                        sid: sid.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            }
        };
        let finished = Instant::now();
        // Counted: started after the warm-up and finished inside the window.
        if started < measure_from || finished > measure_until {
            continue;
        }
        match result {
            Ok(()) => {
                out.latencies
                    .push((finished - started).as_nanos().min(u64::MAX as u128) as u64);
                measured.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                out.errors += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(format!("{:?}: {}", status.code(), status.message()));
                }
            }
        }
    }
    out
}

/// One Connect JSON call: the body written from a typed request and the answer read
/// whole into a typed participant, as the gRPC calls encode and decode prost types (and as
/// a Connect client with generated types does). An answer that does not read as a
/// participant, or holds no id, is an error.
async fn connect_call(
    http: &reqwest::Client,
    url: &reqwest::Url,
    body: &impl serde::Serialize,
) -> Result<(), tonic::Status> {
    let fail = |what: String| tonic::Status::internal(what);
    let body = serde_json::to_vec(body).map_err(|e| fail(format!("request body: {e}")))?;
    let response = http
        .post(url.clone())
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(body)
        .send()
        .await
        .map_err(|e| fail(format!("Connect call failed: {e}")))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| fail(format!("Connect answer unreadable: {e}")))?;
    if status != 200 {
        return Err(fail(format!(
            "Connect answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    match serde_json::from_slice::<ParticipantJson>(&bytes) {
        Ok(participant) if !participant.id.is_empty() => Ok(()),
        Ok(_) => Err(fail("Connect answer holds no participant id".into())),
        Err(e) => Err(fail(format!("Connect answer is not a participant: {e}"))),
    }
}

/// `FetchParticipantRequest` in protobuf's JSON mapping.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct FetchJson<'a> {
    conversation_id: &'a str,
    participant_id: &'a str,
}

/// The `CreateParticipantRequest` the Connect Create workload sends.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateJson<'a> {
    conversation_id: &'a str,
    addresses: [AddressJson<'a>; 1],
}

#[derive(serde::Serialize)]
struct AddressJson<'a> {
    channel: &'a str,
    address: &'a str,
}

/// `Participant` in protobuf's JSON mapping (default values are omitted, so every field
/// may be missing), as a client's generated type reads it.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
// Read whole as a client reads it; only the id is looked at.
#[allow(dead_code)]
struct ParticipantJson {
    id: String,
    conversation_id: String,
    account_id: String,
    name: String,
    r#type: String,
    profile_id: String,
    addresses: Vec<AddressAnswer>,
    created_at: String,
    updated_at: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
#[allow(dead_code)]
struct AddressAnswer {
    channel: String,
    address: String,
    channel_id: String,
    channel_name: String,
}

/// `count` clients for Connect calls. Over HTTP/2 (prior knowledge; the default) each is
/// one connection (a reqwest client multiplexes its calls to one host over one HTTP/2
/// connection); over HTTP/1.1 (`BENCH_CONNECT_HTTP=1.1`) each keeps at most as many
/// connections as it has calls in flight, and the whole run at most `concurrency`.
fn http_clients(count: usize) -> Vec<reqwest::Client> {
    (0..count)
        .map(|_| {
            // No per-call timeout, as the gRPC calls have no deadline: the run's length
            // bounds the bench.
            let builder = reqwest::Client::builder().no_proxy().tcp_nodelay(true);
            let builder = if connect_http1() {
                builder.http1_only()
            } else {
                builder.http2_prior_knowledge()
            };
            builder.build().expect("reqwest client")
        })
        .collect()
}

/// `BENCH_CONNECT_HTTP=1.1`: Connect calls over HTTP/1.1 instead of HTTP/2.
fn connect_http1() -> bool {
    std::env::var("BENCH_CONNECT_HTTP").is_ok_and(|v| v == "1.1")
}

/// Runs one workload at one concurrency over `channels` (gRPC) or `clients` (Connect)
/// and collects its numbers.
async fn run(
    server: &Server,
    settings: &Settings,
    workload: Workload,
    concurrency: usize,
    channels: &[Channel],
    clients: &[reqwest::Client],
    fixture: &Arc<Fixture>,
) -> RunResult {
    let measured = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let measure_from = begin + Duration::from_secs_f64(settings.warmup);
    let measure_until = measure_from + Duration::from_secs_f64(settings.secs);
    let workers: Vec<_> = (0..concurrency)
        .map(|i| {
            tokio::spawn(worker(
                workload,
                concurrency,
                i,
                channels[i % channels.len()].clone(),
                clients[i % clients.len()].clone(),
                fixture.clone(),
                measured.clone(),
                measure_from,
                measure_until,
                settings.max_requests,
            ))
        })
        .collect();

    tokio::time::sleep_until(measure_from.into()).await;
    let server_ticks = server.cpu_ticks();
    let bench_ticks = proc_cpu_ticks("/proc/self/stat");
    let busy_ticks = machine_busy_ticks();
    let window_start = Instant::now();

    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for w in workers {
        let out = w.await.expect("worker panicked");
        latencies.extend(out.latencies);
        errors += out.errors;
        first_error = first_error.or(out.first_error);
    }
    // Workers stop at the end of the window or once the request cap is reached.
    let window_end = Instant::now().min(measure_until);
    let server_cpu_secs = (server.cpu_ticks() - server_ticks) as f64 / USER_HZ;
    let bench_cpu_secs = (proc_cpu_ticks("/proc/self/stat") - bench_ticks) as f64 / USER_HZ;
    let busy_secs = (machine_busy_ticks() - busy_ticks) as f64 / USER_HZ;
    let elapsed = window_end.saturating_duration_since(measure_from);
    let cpu_window = Instant::now()
        .saturating_duration_since(window_start)
        .as_secs_f64();

    latencies.sort_unstable();
    RunResult {
        workload,
        concurrency,
        requests: latencies.len() as u64,
        errors,
        first_error,
        elapsed,
        latencies,
        server_cpu: 100.0 * server_cpu_secs / cpu_window,
        bench_cpu: 100.0 * bench_cpu_secs / cpu_window,
        other_cpu: (100.0 * (busy_secs - server_cpu_secs - bench_cpu_secs) / cpu_window).max(0.0),
    }
}

async fn connect(url: &str, count: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        // Each Endpoint::connect opens its own HTTP/2 connection.
        let channel = Endpoint::from_shared(url.to_owned())
            .expect("endpoint")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connect to the server");
        channels.push(channel);
    }
    channels
}

/// Creates the participants the Fetch workload reads, 16 at a time over one connection.
async fn prepare(url: &str) -> Arc<Fixture> {
    let fixture = Arc::new(Fixture {
        url: url.to_owned(),
        targets: Vec::new(),
        next_address: AtomicU64::new(0),
        deletable: std::sync::Mutex::default(),
        next_delete: AtomicU64::new(0),
    });
    let channel = connect(url, 1).await.remove(0);
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let client = ParticipantServiceClient::new(channel.clone());
            let fixture = fixture.clone();
            tokio::spawn(async move {
                let mut client = client;
                let mut made = Vec::new();
                for i in (t..FETCH_POOL).step_by(16) {
                    let mut request = fixture.create_request(FETCH_CONVERSATION.to_owned());
                    request.name = format!("Bench participant {i}");
                    request.r#type = participants_facade::proto::ParticipantType::Customer as i32;
                    let p = client
                        .create_participant(request)
                        .await
                        .expect("pre-create participant")
                        .into_inner();
                    made.push((i, (p.conversation_id, p.id)));
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
    let next = fixture.next_address.load(Ordering::Relaxed);
    Arc::new(Fixture {
        url: url.to_owned(),
        targets: made.into_iter().map(|(_, t)| t).collect(),
        next_address: AtomicU64::new(next),
        deletable: std::sync::Mutex::default(),
        next_delete: AtomicU64::new(0),
    })
}

/// Creates `count` v1 participants for the Delete workload (untimed), over `channels`,
/// 64 at a time, and hands them to the fixture.
async fn prepare_deletes(fixture: &Fixture, channels: &[Channel], count: usize, round: usize) {
    let conversation = format!("CH{round:032x}");
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let mut client = ParticipantServiceClient::new(channels[t % channels.len()].clone());
            let conversation = conversation.clone();
            tokio::spawn(async move {
                let mut made = Vec::new();
                for i in (t..count).step_by(64) {
                    let p = client
                        .create_service_participant(CreateServiceParticipantRequest {
                            chat_service_sid: CHAT_SERVICE.to_owned(),
                            conversation_sid: conversation.clone(),
                            identity: format!("bench-delete-{i}"),
                            ..Default::default()
                        })
                        .await
                        .expect("pre-create v1 participant")
                        .into_inner();
                    made.push((p.conversation_sid, p.sid));
                }
                made
            })
        })
        .collect();
    let mut made = Vec::with_capacity(count);
    for t in tasks {
        made.extend(t.await.expect("pre-create task"));
    }
    *fixture.deletable.lock().expect("deletable") = Arc::new(made);
    fixture.next_delete.store(0, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------
// Report.

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn target(label: &str, value: String, pass: bool) {
    println!("  {label:<42} {value:>10}  {}", verdict(pass));
}

fn find(results: &[RunResult], workload: Workload, concurrency: usize) -> &RunResult {
    results
        .iter()
        .find(|r| r.workload == workload && r.concurrency == concurrency)
        .expect("result present")
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(settings));
}

async fn bench(settings: Settings) {
    println!("participants-facade gRPC benchmark");
    println!("binary:   {BIN}");
    println!("machine:  {}", machine());
    println!(
        "client:   tokio multi-thread runtime, {} worker threads, same machine as the server",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "settings: {} s measured after {} s warm-up per workload, at most {} measured requests, \
         connections = min(concurrency, {MAX_CONNECTIONS})",
        settings.secs, settings.warmup, settings.max_requests
    );
    println!("data dir: under {}", settings.tmp_parent.display());
    println!(
        "connect:  JSON over HTTP/{} (reqwest)",
        if connect_http1() { "1.1" } else { "2" }
    );
    println!(
        "loadavg:  {} (other processes compete for the same cores)",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!();

    // fsync floor on the data disk.
    let mut fsyncs = fsync_probe(&settings.tmp_parent, 200);
    fsyncs.sort_unstable();
    let fsync_p50 = percentile(&fsyncs, 50.0) as f64 / 1000.0;
    println!(
        "fsync (4 KiB append + fsync, 200 rounds): p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        fsync_p50,
        percentile(&fsyncs, 99.0) as f64 / 1000.0,
        percentile(&fsyncs, 100.0) as f64 / 1000.0,
    );

    // Start-up: several fresh servers; the last one stays for the load.
    let mut startups = Vec::new();
    let mut server = None;
    for i in 0..settings.startups {
        let (s, took) = Server::start(&settings.tmp_parent).await;
        startups.push(took);
        if i + 1 == settings.startups {
            server = Some(s);
        }
    }
    let mut server = server.expect("a server");
    let mut sorted_startups = startups.clone();
    sorted_startups.sort();
    let startup_median = sorted_startups[sorted_startups.len() / 2];
    let startup_list = startups
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "start-up to SERVING (spawn -> first health Check SERVING, fresh data dir): \
         median {:.1} ms over {} runs [{startup_list}] ms",
        startup_median.as_secs_f64() * 1e3,
        startups.len(),
    );

    tokio::time::sleep(IDLE_SETTLE).await;
    let idle_rss = server.status_kb("VmRSS");
    println!(
        "idle RSS (after start-up and a {} ms settle): {} kB = {:.1} MiB",
        IDLE_SETTLE.as_millis(),
        idle_rss,
        mib(idle_rss)
    );

    let url = server.url();
    println!(
        "server:   pid {} on {url}, RUST_LOG={}, extra flags: {:?}",
        server.pid,
        server_log(),
        server_args()
    );
    let fixture = prepare(&url).await;
    println!(
        "pre-created {} participants for FetchParticipant",
        fixture.targets.len()
    );
    println!();

    let mut results = Vec::new();
    for concurrency in CONCURRENCY {
        let channels = connect(&url, concurrency.min(MAX_CONNECTIONS)).await;
        let clients = http_clients(concurrency.min(MAX_CONNECTIONS));
        for workload in Workload::ALL {
            if workload == Workload::Delete {
                // Enough v1 participants for the measured window at the Create rate, and
                // the warm-up, with headroom; at most the request cap.
                let create = find(&results, Workload::Create, concurrency).rps();
                let wanted = (create * (settings.secs + settings.warmup) * 1.5) as usize + 64;
                let count = wanted.min(settings.max_requests as usize + 64 * concurrency);
                prepare_deletes(&fixture, &channels, count, concurrency).await;
            }
            let r = run(
                &server,
                &settings,
                workload,
                concurrency,
                &channels,
                &clients,
                &fixture,
            )
            .await;
            eprintln!(
                "  done: {:<18} c={:<3} {:>9.0} req/s",
                r.workload.name(),
                r.concurrency,
                r.rps()
            );
            results.push(r);
        }
    }
    let after_rss = server.status_kb("VmRSS");
    let peak_rss = server.status_kb("VmHWM");

    // The table.
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| workload          | conc | conns | requests |     req/s | p50 us | p99 us | errors | server CPU | bench CPU | other CPU | server CPU us/req | bench CPU us/req |"
    );
    let _ = writeln!(
        table,
        "|-------------------|-----:|------:|---------:|----------:|-------:|-------:|-------:|-----------:|----------:|----------:|-----------------:|----------------:|"
    );
    for r in &results {
        let _ = writeln!(
            table,
            "| {:<17} | {:>4} | {:>5} | {:>8} | {:>9.0} | {:>6.0} | {:>6.0} | {:>6} | {:>9.0}% | {:>8.0}% | {:>8.0}% | {:>16.1} | {:>15.1} |",
            r.workload.name(),
            r.concurrency,
            r.concurrency.min(MAX_CONNECTIONS),
            r.requests,
            r.rps(),
            r.percentile_us(50.0),
            r.percentile_us(99.0),
            r.errors,
            r.server_cpu,
            r.bench_cpu,
            r.other_cpu,
            r.cpu_us_per_request(r.server_cpu),
            r.cpu_us_per_request(r.bench_cpu),
        );
    }
    println!("{table}");
    println!(
        "(CPU = share of one core over the measured window from /proc; 100% = one core, \
         all cores = {}%; other = the rest of the machine, i.e. noise)",
        100 * std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let noisy: Vec<String> = results
        .iter()
        .filter(|r| r.other_cpu > NOISE_LIMIT)
        .map(|r| {
            format!(
                "{} c={} ({:.0}%)",
                r.workload.name(),
                r.concurrency,
                r.other_cpu
            )
        })
        .collect();
    if !noisy.is_empty() {
        println!(
            "WARNING: other processes used more than {NOISE_LIMIT:.0}% CPU during: {}. \
             Those rows measure the machine's contention, not the service; rerun on an idle machine.",
            noisy.join(", ")
        );
    }
    for r in results.iter().filter(|r| r.errors > 0) {
        println!(
            "errors in {} c={}: {} (first: {})",
            r.workload.name(),
            r.concurrency,
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        );
    }
    println!();

    println!("ratios (throughput):");
    let mut fetch_ok = true;
    for c in CONCURRENCY {
        let rps = |w| find(&results, w, c).rps();
        let (health, fetch, create) = (
            rps(Workload::Health),
            rps(Workload::Fetch),
            rps(Workload::Create),
        );
        fetch_ok &= fetch >= 0.8 * health;
        println!(
            "  c={c:<3} Fetch/Health = {:.3}   Create/Fetch = {:.3}   List50/Fetch = {:.3}   \
             Update/Create = {:.3}   Delete/Create = {:.3}",
            fetch / health,
            create / fetch,
            rps(Workload::List) / fetch,
            rps(Workload::Update) / create,
            rps(Workload::Delete) / create,
        );
    }
    println!("ratios (throughput), Connect JSON against gRPC, same run and concurrency:");
    for c in CONCURRENCY {
        let rps = |w| find(&results, w, c).rps();
        println!(
            "  c={c:<3} Connect JSON Fetch/gRPC Fetch = {:.3}   Connect JSON Create/gRPC Create = {:.3}",
            rps(Workload::ConnectFetch) / rps(Workload::Fetch),
            rps(Workload::ConnectCreate) / rps(Workload::Create),
        );
    }
    // The throughput ratios are the whole machine's (bench client and server share two
    // cores; at c=64 the client is the busier). The server's own cost per call, alone:
    println!("ratios (server CPU per call), gRPC's over Connect JSON's, same run and concurrency:");
    for c in CONCURRENCY {
        let server_us = |w| {
            let r = find(&results, w, c);
            r.cpu_us_per_request(r.server_cpu)
        };
        println!(
            "  c={c:<3} Fetch {:.3} ({:.1} against {:.1} us)   Create {:.3} ({:.1} against {:.1} us)",
            server_us(Workload::Fetch) / server_us(Workload::ConnectFetch),
            server_us(Workload::Fetch),
            server_us(Workload::ConnectFetch),
            server_us(Workload::Create) / server_us(Workload::ConnectCreate),
            server_us(Workload::Create),
            server_us(Workload::ConnectCreate),
        );
    }
    println!();

    let create_fetch_64 =
        find(&results, Workload::Create, 64).rps() / find(&results, Workload::Fetch, 64).rps();
    println!("targets (printed, not asserted):");
    for c in CONCURRENCY {
        let ratio =
            find(&results, Workload::Fetch, c).rps() / find(&results, Workload::Health, c).rps();
        target(
            &format!("Fetch >= 0.8x Health at c={c}"),
            format!("{ratio:.3}x"),
            ratio >= 0.8,
        );
    }
    target(
        "Fetch >= 0.8x Health at every concurrency",
        String::new(),
        fetch_ok,
    );
    target(
        "Create >= 0.3x Fetch at c=64",
        format!("{create_fetch_64:.3}x"),
        create_fetch_64 >= 0.3,
    );
    let list_fetch_64 =
        find(&results, Workload::List, 64).rps() / find(&results, Workload::Fetch, 64).rps();
    target(
        "List of 50 >= 0.25x Fetch at c=64",
        format!("{list_fetch_64:.3}x"),
        list_fetch_64 >= 0.25,
    );
    let update_create_64 =
        find(&results, Workload::Update, 64).rps() / find(&results, Workload::Create, 64).rps();
    target(
        "Update >= 0.8x Create at c=64 (both durable)",
        format!("{update_create_64:.3}x"),
        update_create_64 >= 0.8,
    );
    for c in CONCURRENCY {
        let rps = |w| find(&results, w, c).rps();
        for (name, connect, grpc) in [
            ("Fetch", Workload::ConnectFetch, Workload::Fetch),
            ("Create", Workload::ConnectCreate, Workload::Create),
        ] {
            let ratio = rps(connect) / rps(grpc);
            target(
                &format!("Connect JSON >= 0.6x gRPC, {name} at c={c}"),
                format!("{ratio:.3}x"),
                ratio >= 0.6,
            );
        }
    }
    target(
        "idle RSS < 20 MiB",
        format!("{:.1} MiB", mib(idle_rss)),
        idle_rss < 20 * 1024,
    );
    target(
        "start-up < 100 ms (median)",
        format!("{:.1} ms", startup_median.as_secs_f64() * 1e3),
        startup_median < Duration::from_millis(100),
    );
    println!();
    println!(
        "RSS after load: {} kB = {:.1} MiB; peak RSS (VmHWM): {} kB = {:.1} MiB",
        after_rss,
        mib(after_rss),
        peak_rss,
        mib(peak_rss)
    );
    println!(
        "participants created in total: {}",
        fixture.next_address.load(Ordering::Relaxed)
    );

    match server.stop() {
        Some((status, took)) => println!(
            "server stopped by SIGTERM in {:.1} ms: {status}",
            took.as_secs_f64() * 1e3
        ),
        None => println!("server was already stopped"),
    }
}
