//! What both benches share: settings from the environment, CPU accounting from /proc,
//! percentiles, the machine's description and the start-up health probe.

use std::time::Duration;

use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The service whose health says the facade is serving.
const SERVICE: &str = "participants.v1.ParticipantService";

/// A workload during which other processes used more than this share of one CPU (%) is
/// flagged: it measured contention too.
pub const NOISE_LIMIT: f64 = 15.0;
/// Linux reports /proc/<pid>/stat CPU times in USER_HZ, which is 100 on every architecture
/// Linux ships today.
pub const USER_HZ: f64 = 100.0;

/// The variable `name` parsed, `default` when unset; a bad value stops the bench.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// utime + stime of a process or thread, in USER_HZ ticks; 0 once it is gone.
pub fn proc_cpu_ticks(path: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0;
    };
    // Fields after the parenthesised command name start at field 3 (state).
    let Some(close) = stat.rfind(')') else {
        return 0;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    field(11).unwrap_or(0) + field(12).unwrap_or(0)
}

/// Busy (not idle, not iowait) ticks of the whole machine, all CPUs together.
pub fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    if ticks.len() < 8 {
        return 0;
    }
    // user nice system idle iowait irq softirq steal; guest time is already in user.
    ticks.iter().take(8).sum::<u64>() - ticks[3] - ticks[4]
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A target's outcome as printed.
pub fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// CPUs, CPU model and kernel release, for the report.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    format!("{cpus} CPUs ({model}), Linux {kernel}")
}

/// One health Check on a brand-new connection; true when it answered SERVING.
pub async fn check_once(url: &str) -> bool {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .expect("endpoint")
        .connect_timeout(Duration::from_millis(200))
        .timeout(Duration::from_millis(500));
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let request = HealthCheckRequest {
        service: SERVICE.to_owned(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(r) => r.into_inner().status == ServingStatus::Serving as i32,
        Err(_) => false,
    }
}

/// A `/proc/<pid>/status` field in kB (or a count, such as `Threads`); the grpc and soak
/// benches read memory and threads with it.
#[allow(dead_code)]
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/{pid}/status"))
}

// The grpc and scale benches start the binary with it; the others have their own way.
#[allow(dead_code)]
pub mod server;
