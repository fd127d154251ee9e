//! The shared store against the embedded one: two replicas on one PostgreSQL against one
//! replica on the embedded store, in the same run.
//!
//! Run with `cargo bench --bench shared`. A command that prints numbers, not a test:
//! nothing here asserts on timings. What it does:
//!
//! 1. Starts a private PostgreSQL (`scripts/postgres`, in a temporary directory under
//!    Cargo's target/tmp, on a free 127.0.0.1 port; fsync on, as in production) and an
//!    empty database in it.
//! 2. Starts the release binary three times on free 127.0.0.1 ports: one replica on the
//!    embedded store (`--data-dir`), and two replicas on that database (`--database-url`).
//! 3. Pre-creates 1000 participants in each store, then at concurrency 64 runs, for each
//!    setup in turn: health `Check` (the baseline), `FetchParticipant` (round-robin over the
//!    pre-created participants) and `CreateParticipant` (durable on both: fsynced or
//!    committed before it is acknowledged). The embedded replica gets the 64 workers over
//!    4 connections; the two shared replicas get 32 workers each over 2 connections each,
//!    and their throughput is the sum.
//! 4. Prints the table (with the CPU of the replicas and of PostgreSQL), the ratios shared
//!    against embedded, and the aim (two replicas' durable creates at least 1.0x the
//!    embedded store's), as text.
//!
//! Environment: `BENCH_SECS` (measured seconds per workload, default 3),
//! `BENCH_WARMUP_SECS` (default 0.5), `BENCH_CONCURRENCY` (default 64).

#![allow(unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{
    Address, Channel as ProtoChannel, CreateParticipantRequest, FetchParticipantRequest,
};
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[allow(dead_code)] // what the other benches use of it
mod support;
use support::{USER_HZ, check_once, env_or, machine, percentile, proc_cpu_ticks};

const BIN: &str = env!("CARGO_BIN_EXE_participants-facade");
const SERVICE: &str = "participants.v1.ParticipantService";
const FETCH_POOL: usize = 1000;
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// A private PostgreSQL cluster (`scripts/postgres`), stopped when dropped.
struct Postgres {
    dir: TempDir,
    url: String,
}

impl Postgres {
    fn start(parent: &Path) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("participants-bench-pg-")
            .tempdir_in(parent)
            .expect("a temp dir for PostgreSQL");
        let output = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/postgres");
        assert!(output.status.success(), "scripts/postgres start failed");
        let url = String::from_utf8(output.stdout)
            .expect("a UTF-8 URL")
            .trim()
            .to_owned();
        Postgres { dir, url }
    }

    /// The server's processes (the postmaster and its children), for CPU accounting.
    fn pids(&self) -> Vec<u32> {
        let pid_file = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .or_else(|_| {
                // scripts/postgres keeps the data directory under DIR; find it.
                std::fs::read_dir(self.dir.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .find_map(|e| std::fs::read_to_string(e.path().join("postmaster.pid")).ok())
                    .ok_or(())
            })
            .unwrap_or_default();
        let Some(main) = pid_file.lines().next().and_then(|l| l.trim().parse().ok()) else {
            return Vec::new();
        };
        let mut pids = vec![main];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The parent pid is the 2nd field after the command in parentheses.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(main) {
                pids.push(pid);
            }
        }
        pids
    }

    fn cpu_ticks(&self) -> u64 {
        self.pids()
            .iter()
            .map(|pid| proc_cpu_ticks(&format!("/proc/{pid}/stat")))
            .sum()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .arg("immediate")
            .stdout(Stdio::null())
            .status();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres")
}

/// One replica: the release binary as a child process.
struct Replica {
    child: Child,
    addr: String,
    _dir: TempDir,
}

impl Replica {
    async fn start(parent: &Path, store: &[&str]) -> Replica {
        let dir = tempfile::Builder::new()
            .prefix("participants-bench-")
            .tempdir_in(parent)
            .expect("a temp data dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(BIN);
        command
            .args(["--listen", &addr, "--data-dir"])
            .arg(dir.path().join("data"))
            .args(store)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PARTICIPANTS_") {
                command.env_remove(key);
            }
        }
        let mut child = command.spawn().expect("spawn participants-facade");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("participants-facade exited during start-up: {status}");
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "not SERVING within {STARTUP_LIMIT:?}"
            );
            if check_once(&format!("http://{addr}")).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Replica {
            child,
            addr,
            _dir: dir,
        }
    }

    fn cpu_ticks(&self) -> u64 {
        proc_cpu_ticks(&format!("/proc/{}/stat", self.child.id()))
    }

    async fn channels(&self, count: usize) -> Vec<Channel> {
        let mut channels = Vec::new();
        for _ in 0..count {
            channels.push(
                Endpoint::from_shared(format!("http://{}", self.addr))
                    .unwrap()
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .expect("connect"),
            );
        }
        channels
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Health,
    Fetch,
    Create,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Health => "Health/Check",
            Workload::Fetch => "FetchParticipant",
            Workload::Create => "CreateParticipant",
        }
    }
}

/// Unique addresses across the whole run.
static NEXT_ADDRESS: AtomicU64 = AtomicU64::new(0);

fn create_request(conversation_id: &str) -> CreateParticipantRequest {
    let n = NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed);
    CreateParticipantRequest {
        conversation_id: conversation_id.to_owned(),
        addresses: vec![Address {
            channel: ProtoChannel::Sms as i32,
            address: format!("+1555{n:08}"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `FETCH_POOL` participants created through `channel`, as (conversation, id).
async fn prepare(channel: Channel) -> Targets {
    let mut client = ParticipantServiceClient::new(channel);
    let mut targets = Vec::with_capacity(FETCH_POOL);
    for i in 0..FETCH_POOL {
        let conversation = format!("conv_bench_fetch_{}", i % 10);
        let created = client
            .create_participant(create_request(&conversation))
            .await
            .expect("pre-create")
            .into_inner();
        targets.push((created.conversation_id, created.id));
    }
    Arc::new(targets)
}

struct Outcome {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// One worker: calls until `until`, counting those that started after `from`.
async fn worker(
    workload: Workload,
    index: usize,
    channel: Channel,
    targets: Targets,
    from: Instant,
    until: Instant,
) -> Outcome {
    let mut health = HealthClient::new(channel.clone());
    let mut client = ParticipantServiceClient::new(channel);
    let conversation = format!("conv_bench_w{index}");
    let mut next = index * 37;
    let mut out = Outcome {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
    };
    loop {
        let started = Instant::now();
        if started >= until {
            return out;
        }
        let result = match workload {
            Workload::Health => health
                .check(HealthCheckRequest {
                    service: SERVICE.to_owned(),
                })
                .await
                .map(drop),
            Workload::Fetch => {
                let (conversation_id, participant_id) = &targets[next % targets.len()];
                next += 1;
                client
                    .fetch_participant(FetchParticipantRequest {
                        conversation_id: conversation_id.clone(),
                        participant_id: participant_id.clone(),
                    })
                    .await
                    .map(drop)
            }
            Workload::Create => client
                .create_participant(create_request(&conversation))
                .await
                .map(drop),
        };
        let finished = Instant::now();
        if started < from || finished > until {
            continue;
        }
        match result {
            Ok(()) => out.latencies.push((finished - started).as_nanos() as u64),
            Err(status) => {
                out.errors += 1;
                out.first_error
                    .get_or_insert_with(|| format!("{:?}: {}", status.code(), status.message()));
            }
        }
    }
}

/// (conversation, participant id) of the pre-created participants.
type Targets = Arc<Vec<(String, String)>>;

/// A replica, the connections to it, and the participants its workers fetch.
type Setup<'a> = (&'a Replica, Vec<Channel>, Targets);

struct Row {
    setup: &'static str,
    workload: Workload,
    requests: usize,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    replicas_cpu: f64,
    postgres_cpu: f64,
}

/// Runs `workload` with `concurrency` workers spread over the replicas' channels.
async fn run(
    setup: &'static str,
    workload: Workload,
    concurrency: usize,
    replicas: &[Setup<'_>],
    postgres: Option<&Postgres>,
    secs: f64,
    warmup: f64,
) -> Row {
    let begin = Instant::now();
    let from = begin + Duration::from_secs_f64(warmup);
    let until = from + Duration::from_secs_f64(secs);
    let workers: Vec<_> = (0..concurrency)
        .map(|i| {
            let (_, channels, targets) = &replicas[i % replicas.len()];
            let channel = channels[(i / replicas.len()) % channels.len()].clone();
            tokio::spawn(worker(workload, i, channel, targets.clone(), from, until))
        })
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let replica_ticks: u64 = replicas.iter().map(|(r, _, _)| r.cpu_ticks()).sum();
    let pg_ticks = postgres.map_or(0, Postgres::cpu_ticks);
    let window = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for w in workers {
        let out = w.await.expect("worker");
        latencies.extend(out.latencies);
        errors += out.errors;
        first_error = first_error.or(out.first_error);
    }
    let cpu_secs = window.elapsed().as_secs_f64();
    let replicas_cpu = (replicas.iter().map(|(r, _, _)| r.cpu_ticks()).sum::<u64>() - replica_ticks)
        as f64
        / USER_HZ;
    let postgres_cpu =
        postgres.map_or(0, |p| p.cpu_ticks().saturating_sub(pg_ticks)) as f64 / USER_HZ;
    if let Some(e) = first_error {
        eprintln!("{setup} {}: first error: {e}", workload.name());
    }
    latencies.sort_unstable();
    let elapsed = Instant::now().min(until).duration_since(from).as_secs_f64();
    Row {
        setup,
        workload,
        requests: latencies.len(),
        rps: latencies.len() as f64 / elapsed,
        p50_us: percentile(&latencies, 50.0) as f64 / 1000.0,
        p99_us: percentile(&latencies, 99.0) as f64 / 1000.0,
        errors,
        replicas_cpu: 100.0 * replicas_cpu / cpu_secs,
        postgres_cpu: 100.0 * postgres_cpu / cpu_secs,
    }
}

async fn create_database(admin_url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the bench's PostgreSQL");
    tokio::spawn(connection);
    client
        .batch_execute("CREATE DATABASE participants_bench")
        .await
        .expect("CREATE DATABASE");
    let (base, _) = admin_url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/participants_bench")
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let secs = env_or("BENCH_SECS", 3.0);
    let warmup = env_or("BENCH_WARMUP_SECS", 0.5);
    let concurrency = env_or("BENCH_CONCURRENCY", 64usize).max(2);
    let parent = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tmp");
    std::fs::create_dir_all(&parent).expect("target/tmp");

    println!("machine: {}", machine());
    let postgres = Postgres::start(&parent);
    let database = create_database(&postgres.url).await;
    let embedded = Replica::start(&parent, &[]).await;
    let shared_a = Replica::start(&parent, &["--database-url", &database]).await;
    let shared_b = Replica::start(&parent, &["--database-url", &database]).await;

    let embedded_channels = embedded.channels(4).await;
    let (a_channels, b_channels) = (shared_a.channels(2).await, shared_b.channels(2).await);
    let embedded_targets = prepare(embedded_channels[0].clone()).await;
    let shared_targets = prepare(a_channels[0].clone()).await;
    let embedded_setup = [(&embedded, embedded_channels, embedded_targets)];
    let shared_setup = [
        (&shared_a, a_channels, shared_targets.clone()),
        (&shared_b, b_channels, shared_targets),
    ];

    let mut rows = Vec::new();
    for workload in [Workload::Health, Workload::Fetch, Workload::Create] {
        rows.push(
            run(
                "embedded, 1 replica",
                workload,
                concurrency,
                &embedded_setup,
                None,
                secs,
                warmup,
            )
            .await,
        );
        rows.push(
            run(
                "PostgreSQL, 2 replicas",
                workload,
                concurrency,
                &shared_setup,
                Some(&postgres),
                secs,
                warmup,
            )
            .await,
        );
    }

    println!();
    println!(
        "| setup                  | workload          | conc | requests |   req/s | p50 us | p99 us | errors | replicas CPU | PostgreSQL CPU |"
    );
    println!(
        "|------------------------|-------------------|-----:|---------:|--------:|-------:|-------:|-------:|-------------:|---------------:|"
    );
    for r in &rows {
        println!(
            "| {:<22} | {:<17} | {:>4} | {:>8} | {:>7.0} | {:>6.0} | {:>6.0} | {:>6} | {:>11.0}% | {:>13.0}% |",
            r.setup,
            r.workload.name(),
            concurrency,
            r.requests,
            r.rps,
            r.p50_us,
            r.p99_us,
            r.errors,
            r.replicas_cpu,
            r.postgres_cpu
        );
    }
    println!("(CPU: share of one core over the measured window; 100% = one core)");
    let rps = |setup: &str, workload: Workload| {
        rows.iter()
            .find(|r| r.setup.starts_with(setup) && r.workload == workload)
            .map_or(0.0, |r| r.rps)
    };
    println!();
    for workload in [Workload::Health, Workload::Fetch, Workload::Create] {
        println!(
            "{:<17} 2 replicas on PostgreSQL / 1 embedded = {:.2}x",
            workload.name(),
            rps("PostgreSQL", workload) / rps("embedded", workload)
        );
    }
    let ratio = rps("PostgreSQL", Workload::Create) / rps("embedded", Workload::Create);
    println!(
        "aim: two replicas' durable Creates >= 1.0x the embedded store's at c={concurrency}: {ratio:.2}x {}",
        if ratio >= 1.0 { "MET" } else { "NOT MET" }
    );
}
