//! Soak: the release binary under ten minutes of mixed load, with its resident memory,
//! open file descriptors and threads sampled every second, to show they stay flat.
//!
//! Run with `cargo bench --bench soak` (not in CI: it takes `SOAK_SECS`, default 600 s,
//! plus a release build). It prints numbers and a verdict; it asserts nothing on timings.
//!
//! The load, spread over `SOAK_CONCURRENCY` workers (default 16) and paced to at most
//! `SOAK_RATE` requests per second (default 1000) and `SOAK_MAX_REQUESTS` requests in all
//! (default 5,000,000), repeats this mix of ten calls:
//! - gRPC v2 create (fsynced), v2 fetch of an earlier one, v1 create, v1 fetch;
//! - a gRPC v2 create with invalid input (INVALID_ARGUMENT), a fetch of a missing
//!   participant (NOT_FOUND);
//! - REST v2 create and REST v1 form create (Twilio's shapes), a REST fetch;
//! - a brand-new TCP connection that sends half a request and hangs up (connection churn:
//!   a leak of sockets or tasks shows here first).
//!
//! Every second the sampler reads `/proc/<pid>/status` (VmRSS, Threads) and counts
//! `/proc/<pid>/fd`. The summary gives the RSS median of the first minute after a warm-up
//! (`SOAK_WARMUP_SECS`, default 30), of the minute in the middle of the run and of the
//! last minute, and the maximum of descriptors and threads in the first and last minutes.
//! "Flat" means the last minute's RSS median is within 5% (plus 2 MiB of allocator slack)
//! of the middle one's (the bounded caches fill during the first half), and descriptors
//! and threads did not grow by more than a handful. `SOAK_CSV=path` writes every sample.
//! `BENCH_TMPDIR` and `BENCH_SERVER_ARGS` work as in the other benches.

// Test and bench code: a failed unwrap is a failed run, and helpers are `pub` for the
// crate's own modules.
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{
    Address, Channel as ProtoChannel, CreateParticipantRequest, CreateServiceParticipantRequest,
    FetchParticipantRequest, FetchServiceParticipantRequest,
};
use tokio::io::AsyncWriteExt as _;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

// Each bench uses a part of what the benches share.
#[allow(dead_code)]
mod support;
use support::{check_once, env_or, machine, proc_status_kb};

const BIN: &str = env!("CARGO_BIN_EXE_participants-facade");
const STARTUP_LIMIT: Duration = Duration::from_secs(10);
/// Each call's own deadline: a call that takes longer counts as an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

struct Settings {
    secs: u64,
    warmup: u64,
    concurrency: usize,
    rate: u64,
    max_requests: u64,
    tmp_parent: PathBuf,
    csv: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> Settings {
        let s = Settings {
            secs: env_or("SOAK_SECS", 600),
            warmup: env_or("SOAK_WARMUP_SECS", 30),
            concurrency: env_or("SOAK_CONCURRENCY", 16usize).max(1),
            rate: env_or("SOAK_RATE", 1000u64).max(1),
            max_requests: env_or("SOAK_MAX_REQUESTS", 5_000_000u64).max(1),
            tmp_parent: std::env::var_os("BENCH_TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
            csv: std::env::var_os("SOAK_CSV").map(PathBuf::from),
        };
        assert!(
            s.secs >= s.warmup + 120,
            "SOAK_SECS must leave two minutes after SOAK_WARMUP_SECS (a first and a last minute)"
        );
        s
    }
}

/// One sample of the server process.
#[derive(Clone, Copy)]
struct Sample {
    at: u64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    requests: u64,
}

fn sample(pid: u32, at: u64, requests: u64) -> Sample {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Sample {
        at,
        rss_kib: proc_status_kb(pid, "VmRSS"),
        fds,
        threads: proc_status_kb(pid, "Threads"),
        requests,
    }
}

/// Counters the workers share.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    unexpected: AtomicU64,
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(soak(settings));
}

async fn soak(settings: Settings) {
    println!("participants-facade soak");
    println!("binary:   {BIN}");
    println!("machine:  {}", machine());
    println!(
        "settings: {} s ({} s warm-up), {} workers, at most {} requests/s and {} requests",
        settings.secs, settings.warmup, settings.concurrency, settings.rate, settings.max_requests
    );
    std::fs::create_dir_all(&settings.tmp_parent).expect("create the bench tmp dir");
    let dir = tempfile::Builder::new()
        .prefix("participants-soak-")
        .tempdir_in(&settings.tmp_parent)
        .expect("temp data dir");
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        probe.local_addr().expect("local addr")
    };
    let extra: Vec<String> = std::env::var("BENCH_SERVER_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut command = Command::new(BIN);
    command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(&extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PARTICIPANTS_") {
            command.env_remove(key);
        }
    }
    let child = ChildGuard(command.spawn().expect("spawn participants-facade"));
    let pid = child.0.id();
    let url = format!("http://{addr}");
    let started = Instant::now();
    while !check_once(&url).await {
        assert!(
            started.elapsed() < STARTUP_LIMIT,
            "not SERVING within {STARTUP_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let channel = Endpoint::from_shared(url.clone())
        .expect("endpoint")
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .expect("connect");
    let rest = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .expect("reqwest client");
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(settings.secs);
    let per_worker = Duration::from_secs_f64(settings.concurrency as f64 / settings.rate as f64);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..settings.concurrency {
        let load = Load {
            worker,
            grpc: ParticipantServiceClient::new(channel.clone()),
            rest: rest.clone(),
            url: url.clone(),
            addr,
        };
        let (counts, stop) = (counts.clone(), stop.clone());
        let max = settings.max_requests;
        workers.spawn(async move {
            let mut pace = tokio::time::interval(per_worker);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut state = WorkerState::default();
            for step in 0u64.. {
                pace.tick().await;
                if stop.load(Ordering::Relaxed)
                    || Instant::now() >= deadline
                    || counts.requests.fetch_add(1, Ordering::Relaxed) >= max
                {
                    break;
                }
                if !load.call(step, &mut state).await {
                    counts.unexpected.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let begun = Instant::now();
    while Instant::now() < deadline
        && counts.requests.load(Ordering::Relaxed) < settings.max_requests
    {
        tick.tick().await;
        let at = begun.elapsed().as_secs();
        let s = sample(pid, at, counts.requests.load(Ordering::Relaxed));
        if at.is_multiple_of(30) {
            println!(
                "t={:>4}s  rss {:>7.1} MiB  fds {:>4}  threads {:>3}  requests {:>9}  unexpected {}",
                s.at,
                s.rss_kib as f64 / 1024.0,
                s.fds,
                s.threads,
                s.requests,
                counts.unexpected.load(Ordering::Relaxed)
            );
        }
        samples.push(s);
    }
    stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    drop(channel);
    report(&settings, &samples, &counts);
    drop(child);
}

fn report(settings: &Settings, samples: &[Sample], counts: &Counts) {
    if let Some(path) = &settings.csv {
        let mut file = std::fs::File::create(path).expect("create SOAK_CSV");
        writeln!(file, "seconds,rss_kib,fds,threads,requests").expect("write csv");
        for s in samples {
            writeln!(
                file,
                "{},{},{},{},{}",
                s.at, s.rss_kib, s.fds, s.threads, s.requests
            )
            .expect("write csv");
        }
        println!("samples written to {}", path.display());
    }
    let first: Vec<Sample> = samples
        .iter()
        .filter(|s| s.at >= settings.warmup && s.at < settings.warmup + 60)
        .copied()
        .collect();
    let end = samples.last().map_or(0, |s| s.at);
    let last: Vec<Sample> = samples
        .iter()
        .filter(|s| s.at + 60 > end)
        .copied()
        .collect();
    if first.is_empty() || last.is_empty() || end < settings.warmup + 120 {
        println!("too few samples for a verdict ({} in all)", samples.len());
        return;
    }
    let median = |w: &[Sample]| {
        let mut v: Vec<u64> = w.iter().map(|s| s.rss_kib).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let max = |w: &[Sample], f: fn(&Sample) -> u64| w.iter().map(f).max().unwrap_or(0);
    // The minute around the middle of the run: by then the bounded caches (the fetch
    // caches, `--cache-entries` per API version, and SQLite's page caches) have filled at
    // the default rate, so growth after it is growth without a bound.
    let mid = end / 2;
    let middle: Vec<Sample> = samples
        .iter()
        .filter(|s| s.at + 30 > mid && s.at < mid + 30)
        .copied()
        .collect();
    let (rss_first, rss_mid, rss_last) = (median(&first), median(&middle), median(&last));
    let (fds_first, fds_last) = (max(&first, |s| s.fds), max(&last, |s| s.fds));
    let (thr_first, thr_last) = (max(&first, |s| s.threads), max(&last, |s| s.threads));
    let requests = counts
        .requests
        .load(Ordering::Relaxed)
        .min(settings.max_requests);
    let unexpected = counts.unexpected.load(Ordering::Relaxed);
    let seconds = end.max(1);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!(
        "requests: {requests} in {seconds} s ({:.0}/s), unexpected answers {unexpected}",
        requests as f64 / seconds as f64
    );
    println!(
        "rss:      medians: first minute {:.1} MiB, middle minute {:.1} MiB, last minute {:.1} MiB; \
         last/middle {:.3}, last/first {:.3}, peak {:.1} MiB",
        mib(rss_first),
        mib(rss_mid),
        mib(rss_last),
        rss_last as f64 / rss_mid as f64,
        rss_last as f64 / rss_first as f64,
        mib(max(samples, |s| s.rss_kib))
    );
    println!("fds:      first minute max {fds_first}, last minute max {fds_last}");
    println!("threads:  first minute max {thr_first}, last minute max {thr_last}");
    let flat = rss_last <= rss_mid + rss_mid / 20 + 2048
        && fds_last <= fds_first + 8
        && thr_last <= thr_first + 4;
    println!(
        "verdict:  {}",
        if flat && unexpected == 0 {
            "FLAT (no growth beyond the margins, every answer as expected)"
        } else if flat {
            "FLAT, but some answers were unexpected (see the count above)"
        } else {
            "GROWING: memory, descriptors or threads rose between the first and last minute"
        }
    );
}

/// Stops the child on drop (SIGTERM, then SIGKILL), also when the bench panics.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one worker sends with.
struct Load {
    worker: usize,
    grpc: ParticipantServiceClient<Channel>,
    rest: reqwest::Client,
    url: String,
    addr: std::net::SocketAddr,
}

/// The participants a worker created, to fetch them later.
#[derive(Default)]
struct WorkerState {
    v2: Option<(String, String)>,
    v1: Option<(String, String, String)>,
    serial: u64,
}

impl Load {
    /// One call of the mix; true when it was answered as expected.
    async fn call(&self, step: u64, state: &mut WorkerState) -> bool {
        state.serial += 1;
        let serial = state.serial;
        let worker = self.worker;
        let conversation = format!("conv_soak_{worker}_{}", serial / 100);
        let phone = format!("+1800{:03}{:04}", worker % 1000, serial % 10_000);
        let (service, chat) = (
            format!("IS{:032x}", worker + 1),
            format!("CH{:032x}", serial / 100 + 1),
        );
        let mut grpc = self.grpc.clone();
        match step % 10 {
            0 => {
                let created = grpc
                    .create_participant(CreateParticipantRequest {
                        conversation_id: conversation.clone(),
                        addresses: vec![Address {
                            channel: ProtoChannel::Sms as i32,
                            address: phone,
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .await;
                match created {
                    Ok(p) => {
                        state.v2 = Some((conversation, p.into_inner().id));
                        true
                    }
                    // The same phone in the same conversation again: a valid answer.
                    Err(s) => s.code() == Code::AlreadyExists,
                }
            }
            1 => match &state.v2 {
                Some((conversation, id)) => grpc
                    .fetch_participant(FetchParticipantRequest {
                        conversation_id: conversation.clone(),
                        participant_id: id.clone(),
                    })
                    .await
                    .is_ok(),
                None => true,
            },
            2 => {
                let created = grpc
                    .create_service_participant(CreateServiceParticipantRequest {
                        chat_service_sid: service.clone(),
                        conversation_sid: chat.clone(),
                        identity: format!("soak-{worker}-{serial}"),
                        ..Default::default()
                    })
                    .await;
                match created {
                    Ok(p) => {
                        state.v1 = Some((service, chat, p.into_inner().sid));
                        true
                    }
                    Err(s) => s.code() == Code::AlreadyExists,
                }
            }
            3 => match &state.v1 {
                Some((service, chat, sid)) => grpc
                    .fetch_service_participant(FetchServiceParticipantRequest {
                        chat_service_sid: service.clone(),
                        conversation_sid: chat.clone(),
                        sid: sid.clone(),
                    })
                    .await
                    .is_ok(),
                None => true,
            },
            4 => grpc
                .create_participant(CreateParticipantRequest {
                    conversation_id: "not a valid id!".into(),
                    ..Default::default()
                })
                .await
                .is_err_and(|s| s.code() == Code::InvalidArgument),
            5 => grpc
                .fetch_participant(FetchParticipantRequest {
                    conversation_id: conversation,
                    participant_id: "conv_participant_00000000000000000000000000".into(),
                })
                .await
                .is_err_and(|s| s.code() == Code::NotFound),
            6 => {
                let body = serde_json::json!({
                    "type": "CUSTOMER",
                    "addresses": [{"channel": "SMS", "address": format!("+1900{:03}{:04}", worker % 1000, serial % 10_000)}],
                });
                self.rest
                    .post(format!(
                        "{}/v2/Conversations/{conversation}/Participants",
                        self.url
                    ))
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 201 || r.status() == 409)
            }
            7 => self
                .rest
                .post(format!(
                    "{}/v1/Services/{service}/Conversations/{chat}/Participants",
                    self.url
                ))
                .form(&[("Identity", format!("rest-{worker}-{serial}"))])
                .send()
                .await
                .is_ok_and(|r| r.status() == 201 || r.status() == 409),
            8 => match &state.v2 {
                Some((conversation, id)) => self
                    .rest
                    .get(format!(
                        "{}/v2/Conversations/{conversation}/Participants/{id}",
                        self.url
                    ))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200),
                None => true,
            },
            _ => {
                // Half a request on a fresh connection, then gone.
                match tokio::net::TcpStream::connect(self.addr).await {
                    Ok(mut stream) => stream
                        .write_all(b"POST /v2/Conversations/c/Participants HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ty")
                        .await
                        .is_ok(),
                    Err(_) => false,
                }
            }
        }
    }
}
