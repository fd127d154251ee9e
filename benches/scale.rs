//! Scale benchmark of the embedded store: the release `participants-facade` binary with a
//! store filled to millions of participants, measured at each size (issue 16).
//!
//! Run with `cargo bench --bench scale` (not in CI: the default sizes, 1M and 10M, take a
//! long while and several GB of disk). It prints numbers and PASS/FAIL text against the
//! issue's targets; it asserts nothing. A small run to see it work:
//! `SCALE_SIZES=20k,100k BENCH_SECS=2 cargo bench --bench scale`.
//!
//! One store, grown, never restarted from zero. In order:
//!
//! 1. Starts the binary (local backend, the default) on a free 127.0.0.1 port with a fresh
//!    data directory under `BENCH_TMPDIR`, and a sampler thread that reads the size of
//!    `participants.db-wal` every 50 ms for the whole run (its maximum is kept per phase).
//! 2. Phases: "empty" first (only the `SCALE_BASE` participants the workloads need), then
//!    each size of `SCALE_SIZES` in increasing order. Each phase:
//!    - fills the store up to the size through the real gRPC `CreateParticipant` and
//!      `CreateServiceParticipant`, `SCALE_FILL_CONCURRENCY` calls in flight over 4 HTTP/2
//!      connections; the fill rate (creates/s) of each segment is the create rate against
//!      store size. Progress on stderr every 10 s;
//!    - stops the server with SIGTERM (shutdown = SIGTERM to exit), sums the files of the
//!      store (`participants.db`, `-wal`, `-shm`) over the participant count (bytes per
//!      participant) and reads SQLite's `dbstat` for the bytes of each table and index;
//!    - starts it again on the same store (start-up = spawn to the first health Check
//!      answering SERVING, the integrity check included; the OS page cache is warm, as it
//!      is for a restart, not a cold boot), reads its idle RSS after a 1 s settle;
//!    - runs at concurrency 64 over 4 connections, each for `BENCH_SECS` after a warm-up
//!      and at most `BENCH_MAX_REQUESTS` requests: health `Check` (the baseline), Fetch of
//!      one hot v2 participant, Fetch of ids drawn uniformly from every participant
//!      created (v2 `FetchParticipant` and v1 `FetchServiceParticipant` as drawn), Fetch of
//!      ids drawn from a Zipf distribution (s = 1.0 over every id, ranks mapped to ids by a
//!      keyed pseudo-random permutation), `ListParticipants` (pages of 50 of the
//!      conversation of a random v2 participant, following next_page_token), `UpdateParticipant`
//!      (a new name, by field mask, for a random v2 participant) and, last because it grows
//!      the store, `CreateParticipant`/`CreateServiceParticipant` in new conversations (the
//!      fill's mix). Then the peak RSS (VmHWM since the restart).
//! 3. Prints a table per workload and size (req/s, p50, p99, errors, CPU), a summary table
//!    (one row per size), the targets with PASS/FAIL, and writes `results.json` and
//!    `scale.png` (throughput and p99 of each workload against store size, log x axis)
//!    to `SCALE_OUT`.
//!
//! What is created: conversations of 5 to 20 participants, about 80% of them v2
//! (`conv_conversation_` and a ULID-shaped id; a name, a type, sometimes a profile id;
//! an SMS number `+1555XXXXXXX` unique in its conversation, or a WhatsApp number, a chat
//! identity or an e-mail address, a quarter with a second address) and 20% v1 (4 chat
//! services `IS…`, conversations `CH…`; an identity, or a messaging binding with an SMS or
//! WhatsApp address and proxy; `attributes` a JSON object of 100 to 300 bytes; sometimes a
//! role). Each created id is kept in memory as 20 bytes (its 128 bits and the
//! conversation's number), from which the request's strings are made again.
//!
//! Environment: `SCALE_SIZES` (comma list: `1M`, `10M`, `200k`, `250000`; default
//! `1M,10M`), `SCALE_BASE` (participants of the empty phase, default 5000),
//! `SCALE_FILL_CONCURRENCY` (fill calls in flight, default 128), `SCALE_MAX_FILL_SECS`
//! (longest fill to one size, default 14400: the phase is then measured at the size
//! reached, and the report says so), `SCALE_MIN_FREE_GB` (a fill stops, and says so, when
//! the data directory's file system has less free space than this, default 2: the WAL can
//! grow to many times the database while the store is written without a pause),
//! `SCALE_SEED` (the generated data, default 1), `SCALE_OUT` (directory of results.json and scale.png;
//! default Cargo's `target/scale`), `SCALE_FONT` (a TTF file for the plot's text; default
//! the first of DejaVu Sans or Liberation Sans found under /usr/share/fonts; `none` draws
//! the plot without text), `SCALE_DBSTAT` (`0` skips the per-table sizes, a read of the
//! whole file), `SCALE_KEEP_DATA` (`1` keeps the data directory and prints where it is),
//! `BENCH_SECS` (measured seconds per workload, default 5), `BENCH_WARMUP_SECS` (default
//! 0.5), `BENCH_MAX_REQUESTS` (cap on measured requests per workload, default 1000000),
//! `BENCH_TMPDIR` (parent of the data directory; default Cargo's target/tmp, on the
//! project's disk even where /tmp is a tmpfs), `BENCH_SERVER_LOG` and `BENCH_SERVER_ARGS`
//! (as in the grpc bench).

// Test and bench code: a failed unwrap is a failed run, and helpers are `pub` for the
// crate's own modules.
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{
    Address, Channel as ProtoChannel, CreateParticipantRequest, CreateServiceParticipantRequest,
    FetchParticipantRequest, FetchServiceParticipantRequest, ListParticipantsRequest,
    MessagingBinding, Participant, ParticipantType, UpdateParticipantRequest,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
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
const CONCURRENCY: usize = 64;
const CONNECTIONS: usize = 4;
const LIST_PAGE: i32 = 50;
const CHAT_SERVICES: u64 = 4;
/// A store of millions opens in well under this; a bound, not an expectation.
const STARTUP_LIMIT: Duration = Duration::from_secs(120);
/// The final checkpoint at close may copy a whole log; SIGKILL only after this.
const STOP_LIMIT: Duration = Duration::from_secs(120);
const IDLE_SETTLE: Duration = Duration::from_secs(1);
const WAL_POLL: Duration = Duration::from_millis(50);
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Each call's own deadline: a call that takes longer is an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A fill stops early (and says so) after this many failed creates.
const MAX_FILL_ERRORS: u64 = 1000;
const DB_FILE: &str = "participants.db";

// Targets of issue 16 (printed, not asserted).
const TARGET_FETCH_RATIO: f64 = 0.8;
const TARGET_WRITE_RATIO: f64 = 0.8;
const TARGET_BYTES_PER_PARTICIPANT: f64 = 400.0;
const TARGET_WAL_BYTES: u64 = 64 << 20;
const TARGET_STARTUP: Duration = Duration::from_secs(1);
const TARGET_IDLE_RSS_KB: u64 = 64 * 1024;

struct Settings {
    sizes: Vec<u64>,
    base: u64,
    fill_concurrency: usize,
    max_fill_secs: f64,
    min_free_bytes: u64,
    seed: u64,
    secs: f64,
    warmup: f64,
    max_requests: u64,
    tmp_parent: PathBuf,
    out: PathBuf,
    dbstat: bool,
    keep_data: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let sizes = std::env::var("SCALE_SIZES").unwrap_or_else(|_| "1M,10M".to_owned());
        let mut sizes: Vec<u64> = sizes
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| parse_size(s).unwrap_or_else(|| panic!("SCALE_SIZES: {s:?} is not a size")))
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let s = Settings {
            sizes,
            base: env_or("SCALE_BASE", 5000u64),
            fill_concurrency: env_or("SCALE_FILL_CONCURRENCY", 128usize),
            max_fill_secs: env_or("SCALE_MAX_FILL_SECS", 14_400.0),
            min_free_bytes: (env_or("SCALE_MIN_FREE_GB", 2.0f64) * (1u64 << 30) as f64) as u64,
            seed: env_or("SCALE_SEED", 1u64),
            secs: env_or("BENCH_SECS", 5.0),
            warmup: env_or("BENCH_WARMUP_SECS", 0.5),
            max_requests: env_or("BENCH_MAX_REQUESTS", 1_000_000),
            tmp_parent: std::env::var_os("BENCH_TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
            out: std::env::var_os("SCALE_OUT")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    Path::new(env!("CARGO_TARGET_TMPDIR"))
                        .parent()
                        .expect("target dir")
                        .join("scale")
                }),
            dbstat: !std::env::var("SCALE_DBSTAT").is_ok_and(|v| v == "0"),
            keep_data: std::env::var("SCALE_KEEP_DATA").is_ok_and(|v| v == "1"),
        };
        assert!(!s.sizes.is_empty(), "SCALE_SIZES names no size");
        assert!(s.base >= 100, "SCALE_BASE must be at least 100");
        assert!(
            s.fill_concurrency > 0,
            "SCALE_FILL_CONCURRENCY must be positive"
        );
        assert!(
            s.max_fill_secs > 0.0,
            "SCALE_MAX_FILL_SECS must be positive"
        );
        assert!(s.secs > 0.0, "BENCH_SECS must be positive");
        assert!(s.warmup >= 0.0, "BENCH_WARMUP_SECS must not be negative");
        assert!(s.max_requests > 0, "BENCH_MAX_REQUESTS must be positive");
        assert!(
            *s.sizes.last().expect("a size") < (1 << 31),
            "sizes up to 2^31 participants"
        );
        s
    }
}

/// `1M`, `10M`, `1.5M`, `200k`, `250000`, `1_000_000`.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    let (number, unit) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1e3),
        (i, 'm' | 'M') => (&s[..i], 1e6),
        (i, 'g' | 'G') => (&s[..i], 1e9),
        _ => (s.as_str(), 1.0),
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * unit).round() as u64)
}

/// `1.0M`, `200k`, `5000`.
fn human(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{}M", trim_float(n as f64 / 1e6))
    } else if n >= 10_000 {
        format!("{}k", trim_float(n as f64 / 1e3))
    } else {
        n.to_string()
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------
// What is created, made again from a few numbers.

/// SplitMix64's finaliser: a well-mixed 64-bit value of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One created participant, as the bench keeps it: its id's 128 bits (a v2 id's ULID or a
/// v1 sid's hex) and its conversation's number, whose top bit says v1.
#[derive(Clone, Copy, Debug)]
struct Rec {
    id: [u8; 16],
    conversation: u32,
}

const V1_BIT: u32 = 1 << 31;

impl Rec {
    fn is_v1(self) -> bool {
        self.conversation & V1_BIT != 0
    }

    fn number(self) -> u32 {
        self.conversation & !V1_BIT
    }

    fn id(self) -> u128 {
        u128::from_be_bytes(self.id)
    }
}

/// A conversation: its number and what follows from it.
#[derive(Clone, Copy, Debug)]
struct Conversation {
    number: u32,
    v1: bool,
    /// Participants it gets: 5 to 20.
    size: u32,
}

/// Makes the ids and the requests from the run's seed and a conversation's number.
struct Generator {
    seed: u64,
}

const FIRST: [&str; 16] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Kenneth", "Radia", "Linus",
    "Frances", "John", "Sophie", "Timothy", "Hedy", "Dennis",
];
const LAST: [&str; 16] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Torvalds",
    "Allen",
    "Backus",
    "Wilson",
    "Berners-Lee",
    "Lamarr",
    "Ritchie",
];
const LOCALES: [&str; 6] = ["en-US", "en-GB", "es-MX", "fr-FR", "de-DE", "pt-BR"];
const TIERS: [&str; 4] = ["free", "silver", "gold", "platinum"];
const SOURCES: [&str; 5] = ["web", "ios", "android", "ivr", "store"];
const FILLER: &str = "customer asked about the delivery window and prefers texts in the \
                      evening; follow up after the next order ships, no calls on weekends; ";

impl Generator {
    fn value(&self, number: u32, salt: u64) -> u64 {
        mix(self.seed ^ mix(u64::from(number) ^ (salt << 40)))
    }

    fn value128(&self, number: u32, salt: u64) -> u128 {
        (u128::from(self.value(number, salt)) << 64) | u128::from(self.value(number, salt + 1))
    }

    fn conversation(&self, number: u32) -> Conversation {
        let v = self.value(number, 1);
        Conversation {
            number,
            v1: v % 100 < 20,
            size: 5 + ((v >> 8) % 16) as u32,
        }
    }

    fn v2_conversation_id(&self, number: u32) -> String {
        // Twilio's shape: `conv_conversation_` and a ULID (lowercase Crockford base32).
        let ulid = ulid::Ulid(self.value128(number, 2));
        format!(
            "conv_conversation_{}",
            ulid.to_string().to_ascii_lowercase()
        )
    }

    fn v1_conversation_sid(&self, number: u32) -> String {
        format!("CH{:032x}", self.value128(number, 2))
    }

    fn chat_service_sid(&self, number: u32) -> String {
        let service = self.value(number, 4) % CHAT_SERVICES;
        format!("IS{:016x}{service:016x}", mix(self.seed ^ 0x15))
    }

    /// `+1555` and 7 digits, different for each slot of a conversation.
    fn phone(&self, number: u32, slot: u32) -> String {
        let base = self.value(number, 5) % 10_000_000;
        format!("+1555{:07}", (base + u64::from(slot)) % 10_000_000)
    }

    /// The Twilio number a v1 conversation's SMS and WhatsApp participants talk to.
    fn proxy(&self, number: u32) -> String {
        format!("+1800555{:04}", self.value(number, 6) % 10_000)
    }

    fn name(rng: &mut SmallRng) -> String {
        format!(
            "{} {}",
            FIRST[rng.random_range(0..FIRST.len())],
            LAST[rng.random_range(0..LAST.len())]
        )
    }

    fn v2_request(
        &self,
        conversation: &Conversation,
        slot: u32,
        rng: &mut SmallRng,
    ) -> CreateParticipantRequest {
        let number = conversation.number;
        let roll = rng.random_range(0..100u32);
        let kind = match roll {
            0..70 => ParticipantType::Customer,
            70..90 => ParticipantType::HumanAgent,
            _ => ParticipantType::AiAgent,
        };
        let profile_id = if kind == ParticipantType::Customer && rng.random_bool(0.5) {
            let ulid = ulid::Ulid(rng.random::<u128>());
            format!("mem_profile_{}", ulid.to_string().to_ascii_lowercase())
        } else {
            String::new()
        };
        let phone = self.phone(number, slot);
        let address = |channel: ProtoChannel, address: String| Address {
            channel: channel as i32,
            address,
            ..Default::default()
        };
        let first = match rng.random_range(0..100u32) {
            0..65 => address(ProtoChannel::Sms, phone.clone()),
            65..85 => address(ProtoChannel::Whatsapp, format!("whatsapp:{phone}")),
            85..95 => address(
                ProtoChannel::Chat,
                format!("user_{:012x}_{slot}", rng.random::<u64>() >> 16),
            ),
            _ => address(
                ProtoChannel::Email,
                format!(
                    "{}.{}{slot}@example.com",
                    FIRST[rng.random_range(0..FIRST.len())].to_ascii_lowercase(),
                    rng.random::<u32>()
                ),
            ),
        };
        let mut addresses = vec![];
        if rng.random_bool(0.25) {
            addresses.push(if first.channel == ProtoChannel::Sms as i32 {
                address(ProtoChannel::Whatsapp, format!("whatsapp:{phone}"))
            } else {
                address(ProtoChannel::Sms, phone)
            });
        }
        addresses.insert(0, first);
        CreateParticipantRequest {
            conversation_id: self.v2_conversation_id(number),
            name: Self::name(rng),
            r#type: kind as i32,
            profile_id,
            addresses,
            ..Default::default()
        }
    }

    fn v1_request(
        &self,
        conversation: &Conversation,
        slot: u32,
        rng: &mut SmallRng,
    ) -> CreateServiceParticipantRequest {
        let number = conversation.number;
        let (identity, messaging_binding) = match rng.random_range(0..100u32) {
            0..55 => (
                format!("user_{:012x}_{slot}", rng.random::<u64>() >> 16),
                None,
            ),
            55..85 => (
                String::new(),
                Some(MessagingBinding {
                    address: self.phone(number, slot),
                    proxy_address: self.proxy(number),
                    ..Default::default()
                }),
            ),
            _ => (
                String::new(),
                Some(MessagingBinding {
                    address: format!("whatsapp:{}", self.phone(number, slot)),
                    proxy_address: format!("whatsapp:{}", self.proxy(number)),
                    ..Default::default()
                }),
            ),
        };
        let role_sid = if rng.random_bool(0.3) {
            format!("RL{:032x}", rng.random::<u128>())
        } else {
            String::new()
        };
        CreateServiceParticipantRequest {
            chat_service_sid: self.chat_service_sid(number),
            conversation_sid: self.v1_conversation_sid(number),
            identity,
            attributes: Self::attributes(rng),
            messaging_binding,
            role_sid,
            ..Default::default()
        }
    }

    /// A JSON object of 100 to 300 bytes.
    fn attributes(rng: &mut SmallRng) -> String {
        let len = rng.random_range(100..=300usize);
        let mut s = format!(
            r#"{{"customer_id":"cus_{:016x}","locale":"{}","tier":"{}","source":"{}","note":""#,
            rng.random::<u64>(),
            LOCALES[rng.random_range(0..LOCALES.len())],
            TIERS[rng.random_range(0..TIERS.len())],
            SOURCES[rng.random_range(0..SOURCES.len())],
        );
        let start = rng.random_range(0..FILLER.len() / 2);
        let room = len.saturating_sub(s.len() + 2);
        s.extend(FILLER.chars().cycle().skip(start).take(room));
        s.push_str("\"}");
        s
    }

    fn v2_participant_id(id: u128) -> String {
        format!(
            "conv_participant_{}",
            ulid::Ulid(id).to_string().to_ascii_lowercase()
        )
    }

    fn v1_sid(id: u128) -> String {
        format!("MB{id:032x}")
    }
}

// ---------------------------------------------------------------------------------------
// Draws: uniform, Zipf, a keyed permutation of the ids.

/// Zipf's distribution over ranks 1..=n with exponent s, by rejection-inversion
/// (Hörmann and Derflinger, "Rejection-inversion to generate variates from monotone
/// discrete distributions", 1996): constant time per draw for any n.
#[derive(Clone, Copy)]
struct Zipf {
    n: u64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    squeeze: f64,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Zipf {
        assert!(n >= 1 && s > 0.0);
        let h_integral_x1 = h_integral(1.5, s) - 1.0;
        let h_integral_n = h_integral(n as f64 + 0.5, s);
        let squeeze = 2.0 - h_integral_inverse(h_integral(2.5, s) - h(2.0, s), s);
        Zipf {
            n,
            s,
            h_integral_x1,
            h_integral_n,
            squeeze,
        }
    }

    /// A rank in 1..=n; rank k has probability proportional to k^-s.
    fn sample(&self, rng: &mut SmallRng) -> u64 {
        loop {
            let u =
                self.h_integral_n + rng.random::<f64>() * (self.h_integral_x1 - self.h_integral_n);
            let x = h_integral_inverse(u, self.s);
            let k = ((x + 0.5) as u64).clamp(1, self.n);
            let kf = k as f64;
            if kf - x <= self.squeeze || u >= h_integral(kf + 0.5, self.s) - h(kf, self.s) {
                return k;
            }
        }
    }
}

fn h(x: f64, s: f64) -> f64 {
    (-s * x.ln()).exp()
}

/// The integral of h from 1 to x, shifted: log(x) at s = 1, (x^(1-s) - 1)/(1-s) elsewhere.
fn h_integral(x: f64, s: f64) -> f64 {
    let log_x = x.ln();
    expm1_over((1.0 - s) * log_x) * log_x
}

fn h_integral_inverse(x: f64, s: f64) -> f64 {
    let t = (x * (1.0 - s)).max(-1.0);
    (log1p_over(t) * x).exp()
}

/// ln(1 + x) / x, exact near 0.
fn log1p_over(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// (e^x - 1) / x, exact near 0.
fn expm1_over(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

/// A keyed pseudo-random permutation of 0..n: a balanced Feistel network over the
/// smallest even number of bits that holds n, walking the cycle until the value falls in
/// 0..n. No table: the same for 10M ids as for 10.
#[derive(Clone, Copy)]
struct Shuffle {
    n: u64,
    half: u32,
    keys: [u64; 4],
}

impl Shuffle {
    fn new(n: u64, key: u64) -> Shuffle {
        assert!(n >= 1);
        let bits = 64 - (n.max(2) - 1).leading_zeros();
        Shuffle {
            n,
            half: bits.div_ceil(2),
            keys: [mix(key), mix(key ^ 1), mix(key ^ 2), mix(key ^ 3)],
        }
    }

    fn apply(&self, mut x: u64) -> u64 {
        let mask = (1u64 << self.half) - 1;
        loop {
            let (mut left, mut right) = (x >> self.half, x & mask);
            for key in self.keys {
                (left, right) = (right, left ^ (mix(right ^ key) & mask));
            }
            x = (left << self.half) | right;
            if x < self.n {
                return x;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The WAL sampler.

/// Polls the size of `participants.db-wal` every [`WAL_POLL`] on its own thread.
struct WalSampler {
    /// Bytes free on the data directory's file system, read every second.
    free: Arc<AtomicU64>,
    /// Set once `free` fell under the floor the sampler was given.
    low_disk: Arc<AtomicBool>,
    phase_max: Arc<AtomicU64>,
    run_max: Arc<AtomicU64>,
    current: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WalSampler {
    /// Samples `data_dir`'s WAL, and the free space of `parent`'s file system (the
    /// data directory's, which exists before the server makes the data directory).
    fn start(data_dir: &Path, parent: &Path, min_free: u64) -> WalSampler {
        let path = data_dir.join(format!("{DB_FILE}-wal"));
        let parent = parent.to_owned();
        // c_ulong and fsblkcnt_t are 32 bits wide on some targets.
        #[allow(clippy::unnecessary_cast)]
        let free_space = move || {
            nix::sys::statvfs::statvfs(&parent).map_or(u64::MAX, |s| {
                s.blocks_available() as u64 * s.fragment_size() as u64
            })
        };
        let free_now = free_space();
        let free = Arc::new(AtomicU64::new(free_now));
        let low_disk = Arc::new(AtomicBool::new(free_now < min_free));
        let phase_max = Arc::new(AtomicU64::new(0));
        let run_max = Arc::new(AtomicU64::new(0));
        let current = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (phase_max, run_max, current, stop, free, low_disk) = (
                phase_max.clone(),
                run_max.clone(),
                current.clone(),
                stop.clone(),
                free.clone(),
                low_disk.clone(),
            );
            std::thread::Builder::new()
                .name("wal-sampler".into())
                .spawn(move || {
                    let mut polls = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        polls += 1;
                        if polls.is_multiple_of(20) {
                            let bytes = free_space();
                            free.store(bytes, Ordering::Relaxed);
                            if bytes < min_free {
                                low_disk.store(true, Ordering::Relaxed);
                            }
                        }
                        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                        current.store(size, Ordering::Relaxed);
                        phase_max.fetch_max(size, Ordering::Relaxed);
                        run_max.fetch_max(size, Ordering::Relaxed);
                        std::thread::sleep(WAL_POLL);
                    }
                })
                .expect("start the WAL sampler")
        };
        WalSampler {
            free,
            low_disk,
            phase_max,
            run_max,
            current,
            stop,
            thread: Some(thread),
        }
    }

    /// The largest size seen since the last call.
    fn take_phase_max(&self) -> u64 {
        self.phase_max.swap(0, Ordering::Relaxed)
    }
}

impl Drop for WalSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Workers.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Health,
    FetchHot,
    FetchUniform,
    FetchZipf,
    List,
    Update,
    Create,
}

impl Workload {
    /// In the order they run: Create last, as it grows the store.
    const ALL: [Workload; 7] = [
        Workload::Health,
        Workload::FetchHot,
        Workload::FetchUniform,
        Workload::FetchZipf,
        Workload::List,
        Workload::Update,
        Workload::Create,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Health => "Health/Check",
            Workload::FetchHot => "Fetch hot",
            Workload::FetchUniform => "Fetch uniform",
            Workload::FetchZipf => "Fetch Zipf",
            Workload::List => "List 50",
            Workload::Update => "Update",
            Workload::Create => "Create",
        }
    }
}

/// What the workers of one phase share.
struct Phase {
    generator: Arc<Generator>,
    /// The next new conversation's number, for the whole run.
    next_conversation: Arc<AtomicU32>,
    /// Every participant created so far (read-only during the phase).
    records: Arc<Vec<Rec>>,
    /// The one v2 participant the hot Fetch reads.
    hot: Rec,
    zipf: Zipf,
    shuffle: Shuffle,
}

/// One in-flight call's state: its connection, its random stream, the conversation it
/// is filling, the participants it created, its place in a list.
struct Worker {
    health: HealthClient<Channel>,
    client: ParticipantServiceClient<Channel>,
    phase: Arc<Phase>,
    rng: SmallRng,
    filling: Option<(Conversation, u32)>,
    created: Vec<Rec>,
    listing: Option<(String, String)>,
    renames: u64,
}

type CallResult = Result<(), tonic::Status>;

fn wrong(what: impl Into<String>) -> tonic::Status {
    tonic::Status::internal(what.into())
}

impl Worker {
    fn new(channel: Channel, phase: Arc<Phase>, seed: u64) -> Worker {
        Worker {
            health: HealthClient::new(channel.clone()),
            client: ParticipantServiceClient::new(channel),
            phase,
            rng: SmallRng::seed_from_u64(seed),
            filling: None,
            created: Vec::new(),
            listing: None,
            renames: 0,
        }
    }

    async fn call(&mut self, workload: Workload) -> CallResult {
        match workload {
            Workload::Health => self.health().await,
            Workload::FetchHot => self.fetch(self.phase.hot).await,
            Workload::FetchUniform => {
                let i = self.rng.random_range(0..self.phase.records.len());
                self.fetch(self.phase.records[i]).await
            }
            Workload::FetchZipf => {
                let rank = self.phase.zipf.sample(&mut self.rng) - 1;
                let i = self.phase.shuffle.apply(rank) as usize;
                self.fetch(self.phase.records[i]).await
            }
            Workload::List => self.list().await,
            Workload::Update => self.update().await,
            Workload::Create => self.create().await,
        }
    }

    async fn health(&mut self) -> CallResult {
        let r = self
            .health
            .check(HealthCheckRequest {
                service: SERVICE.to_owned(),
            })
            .await?;
        match r.into_inner().status {
            s if s == ServingStatus::Serving as i32 => Ok(()),
            s => Err(wrong(format!("health status {s}"))),
        }
    }

    async fn fetch(&mut self, rec: Rec) -> CallResult {
        let generator = &self.phase.generator;
        if rec.is_v1() {
            let sid = Generator::v1_sid(rec.id());
            let p = self
                .client
                .fetch_service_participant(FetchServiceParticipantRequest {
                    chat_service_sid: generator.chat_service_sid(rec.number()),
                    conversation_sid: generator.v1_conversation_sid(rec.number()),
                    sid: sid.clone(),
                })
                .await?
                .into_inner();
            if p.sid != sid {
                return Err(wrong(
                    "FetchServiceParticipant answered another participant",
                ));
            }
        } else {
            let id = Generator::v2_participant_id(rec.id());
            let p = self
                .client
                .fetch_participant(FetchParticipantRequest {
                    conversation_id: generator.v2_conversation_id(rec.number()),
                    participant_id: id.clone(),
                })
                .await?
                .into_inner();
            if p.id != id {
                return Err(wrong("FetchParticipant answered another participant"));
            }
        }
        Ok(())
    }

    /// A random v2 participant (v1 ones are drawn again; at most 64 draws, then the hot one).
    fn random_v2(&mut self) -> Rec {
        let records = &self.phase.records;
        for _ in 0..64 {
            let rec = records[self.rng.random_range(0..records.len())];
            if !rec.is_v1() {
                return rec;
            }
        }
        self.phase.hot
    }

    /// One page: the next of the conversation being listed, else the first of a new one.
    async fn list(&mut self) -> CallResult {
        let (conversation_id, page_token) = match self.listing.take() {
            Some(listing) => listing,
            None => {
                let rec = self.random_v2();
                (
                    self.phase.generator.v2_conversation_id(rec.number()),
                    String::new(),
                )
            }
        };
        let page = self
            .client
            .list_participants(ListParticipantsRequest {
                conversation_id: conversation_id.clone(),
                page_size: LIST_PAGE,
                page_token,
            })
            .await?
            .into_inner();
        if page.participants.is_empty() {
            return Err(wrong("ListParticipants answered an empty page"));
        }
        if !page.next_page_token.is_empty() {
            self.listing = Some((conversation_id, page.next_page_token));
        }
        Ok(())
    }

    async fn update(&mut self) -> CallResult {
        let rec = self.random_v2();
        self.renames += 1;
        let name = format!(
            "{} (renamed {})",
            Generator::name(&mut self.rng),
            self.renames
        );
        let id = Generator::v2_participant_id(rec.id());
        let p = self
            .client
            .update_participant(UpdateParticipantRequest {
                participant: Some(Participant {
                    conversation_id: self.phase.generator.v2_conversation_id(rec.number()),
                    id: id.clone(),
                    name: name.clone(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".to_owned()],
                }),
            })
            .await?
            .into_inner();
        if p.id != id || p.name != name {
            return Err(wrong(
                "UpdateParticipant answered another participant or name",
            ));
        }
        Ok(())
    }

    /// The next participant of the conversation being filled, else of a new conversation.
    async fn create(&mut self) -> CallResult {
        let (conversation, slot) = match self.filling.take() {
            Some(filling) => filling,
            None => {
                let number = self.phase.next_conversation.fetch_add(1, Ordering::Relaxed);
                assert!(number < V1_BIT, "out of conversation numbers");
                (self.phase.generator.conversation(number), 0)
            }
        };
        if slot + 1 < conversation.size {
            self.filling = Some((conversation, slot + 1));
        }
        let generator = &self.phase.generator;
        let rec = if conversation.v1 {
            let request = generator.v1_request(&conversation, slot, &mut self.rng);
            let p = self
                .client
                .create_service_participant(request)
                .await?
                .into_inner();
            let id = p
                .sid
                .strip_prefix("MB")
                .and_then(|hex| u128::from_str_radix(hex, 16).ok())
                .ok_or_else(|| wrong("CreateServiceParticipant answered a sid not MB and hex"))?;
            Rec {
                id: id.to_be_bytes(),
                conversation: conversation.number | V1_BIT,
            }
        } else {
            let request = generator.v2_request(&conversation, slot, &mut self.rng);
            let p = self.client.create_participant(request).await?.into_inner();
            let id =
                p.id.strip_prefix("conv_participant_")
                    .and_then(|u| ulid::Ulid::from_string(u).ok())
                    .ok_or_else(|| {
                        wrong("CreateParticipant answered an id not conv_participant_ULID")
                    })?;
            Rec {
                id: id.0.to_be_bytes(),
                conversation: conversation.number,
            }
        };
        self.created.push(rec);
        Ok(())
    }
}

async fn connect(url: &str, count: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        // Each Endpoint::connect opens its own HTTP/2 connection.
        let channel = Endpoint::from_shared(url.to_owned())
            .expect("endpoint")
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .connect()
            .await
            .expect("connect to the server");
        channels.push(channel);
    }
    channels
}

// ---------------------------------------------------------------------------------------
// The fill.

#[derive(Serialize, Clone, Default)]
struct FillResult {
    /// Participants in the store before and after.
    from: u64,
    to: u64,
    secs: f64,
    /// Creates acknowledged per second.
    rate: f64,
    errors: u64,
    first_error: Option<String>,
    /// Stopped by `SCALE_MAX_FILL_SECS` before the size was reached.
    timed_out: bool,
    /// Stopped by `SCALE_MIN_FREE_GB` (the disk was filling up).
    low_disk: bool,
}

/// Creates participants until the store holds `target`, `concurrency` calls in flight
/// over `channels`; appends the created ids to `records`.
async fn fill(
    records: &mut Arc<Vec<Rec>>,
    phase_of: impl Fn(Arc<Vec<Rec>>) -> Arc<Phase>,
    channels: &[Channel],
    settings: &Settings,
    target: u64,
    server: &ServerProcess,
    wal: &WalSampler,
) -> FillResult {
    let from = records.len() as u64;
    let wanted = target.saturating_sub(from);
    if wanted == 0 {
        return FillResult {
            from,
            to: from,
            ..Default::default()
        };
    }
    let phase = phase_of(records.clone());
    let remaining = Arc::new(AtomicU64::new(wanted));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(settings.max_fill_secs);
    let timed_out = Arc::new(AtomicBool::new(false));
    let low_disk = wal.low_disk.clone();
    let workers: Vec<_> = (0..settings.fill_concurrency)
        .map(|i| {
            let mut worker = Worker::new(
                channels[i % channels.len()].clone(),
                phase.clone(),
                mix(phase.generator.seed ^ from ^ ((i as u64) << 32)),
            );
            let (remaining, done, errors, timed_out, low_disk) = (
                remaining.clone(),
                done.clone(),
                errors.clone(),
                timed_out.clone(),
                low_disk.clone(),
            );
            tokio::spawn(async move {
                let mut first_error = None;
                while remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
                    .is_ok()
                {
                    if Instant::now() >= deadline {
                        timed_out.store(true, Ordering::Relaxed);
                    }
                    if timed_out.load(Ordering::Relaxed) || low_disk.load(Ordering::Relaxed) {
                        remaining.store(0, Ordering::Relaxed);
                        break;
                    }
                    match worker.create().await {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(status) => {
                            if errors.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_FILL_ERRORS {
                                remaining.store(0, Ordering::Relaxed);
                            }
                            first_error.get_or_insert_with(|| {
                                format!("{:?}: {}", status.code(), status.message())
                            });
                        }
                    }
                }
                (worker.created, first_error)
            })
        })
        .collect();
    drop(phase);

    // Progress on stderr until every worker is done.
    let progress = {
        let done = done.clone();
        let errors = errors.clone();
        let pid = server.pid;
        let (wal_current, wal_max, free) =
            (wal.current.clone(), wal.run_max.clone(), wal.free.clone());
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let now = Instant::now();
                let n = done.load(Ordering::Relaxed);
                let rss = support::proc_status_kb(pid, "VmRSS");
                eprintln!(
                    "  fill: {} of {} ({:.1}%), {:.0}/s over the last {:.0} s, {:.0}/s since \
                     the start; WAL {:.1} MiB (run max {:.1}); disk free {:.1} GiB; server RSS \
                     {:.1} MiB; errors {}",
                    from + n,
                    target,
                    100.0 * n as f64 / wanted as f64,
                    (n - last.1) as f64 / (now - last.0).as_secs_f64(),
                    (now - last.0).as_secs_f64(),
                    n as f64 / started.elapsed().as_secs_f64(),
                    wal_current.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
                    wal_max.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
                    free.load(Ordering::Relaxed) as f64 / (1u64 << 30) as f64,
                    mib(rss),
                    errors.load(Ordering::Relaxed),
                );
                last = (now, n);
            }
        })
    };
    let mut created = Vec::with_capacity(wanted as usize);
    let mut first_error = None;
    for w in workers {
        let (made, error) = w.await.expect("fill worker panicked");
        created.extend(made);
        first_error = first_error.or(error);
    }
    let secs = started.elapsed().as_secs_f64();
    progress.abort();
    let records = Arc::get_mut(records).expect("no worker holds the ids any more");
    records.extend(created);
    let to = records.len() as u64;
    FillResult {
        from,
        to,
        secs,
        rate: (to - from) as f64 / secs,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        timed_out: timed_out.load(Ordering::Relaxed),
        low_disk: wal.low_disk.load(Ordering::Relaxed),
    }
}

// ---------------------------------------------------------------------------------------
// Measured workloads.

#[derive(Serialize)]
struct RunResult {
    workload: &'static str,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    secs: f64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    /// CPU shares over the window, % of one core.
    server_cpu: f64,
    bench_cpu: f64,
    other_cpu: f64,
}

struct WorkerOutcome {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    created: Vec<Rec>,
}

/// Runs one workload at [`CONCURRENCY`] over `channels`; returns its numbers and the
/// participants it created (Create only).
async fn measure(
    server: &ServerProcess,
    settings: &Settings,
    workload: Workload,
    channels: &[Channel],
    phase: &Arc<Phase>,
    salt: u64,
) -> (RunResult, Vec<Rec>) {
    let measured = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let measure_from = begin + Duration::from_secs_f64(settings.warmup);
    let measure_until = measure_from + Duration::from_secs_f64(settings.secs);
    let max_requests = settings.max_requests;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let mut worker = Worker::new(
                channels[i % channels.len()].clone(),
                phase.clone(),
                mix(salt ^ ((i as u64) << 40)),
            );
            let measured = measured.clone();
            tokio::spawn(async move {
                let mut out = WorkerOutcome {
                    latencies: Vec::new(),
                    errors: 0,
                    first_error: None,
                    created: Vec::new(),
                };
                loop {
                    let started = Instant::now();
                    if started >= measure_until || measured.load(Ordering::Relaxed) >= max_requests
                    {
                        break;
                    }
                    let result = worker.call(workload).await;
                    let finished = Instant::now();
                    // Counted: started after the warm-up and finished inside the window.
                    if started < measure_from || finished > measure_until {
                        continue;
                    }
                    match result {
                        Ok(()) => {
                            out.latencies.push((finished - started).as_nanos() as u64);
                            measured.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(status) => {
                            out.errors += 1;
                            out.first_error.get_or_insert_with(|| {
                                format!("{:?}: {}", status.code(), status.message())
                            });
                        }
                    }
                }
                out.created = worker.created;
                out
            })
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
    let mut created = Vec::new();
    for w in workers {
        let out = w.await.expect("worker panicked");
        latencies.extend(out.latencies);
        errors += out.errors;
        first_error = first_error.or(out.first_error);
        created.extend(out.created);
    }
    // Workers stop at the end of the window or once the request cap is reached.
    let window_end = Instant::now().min(measure_until);
    let server_cpu_secs = server.cpu_ticks().saturating_sub(server_ticks) as f64 / USER_HZ;
    let bench_cpu_secs =
        proc_cpu_ticks("/proc/self/stat").saturating_sub(bench_ticks) as f64 / USER_HZ;
    let busy_secs = machine_busy_ticks().saturating_sub(busy_ticks) as f64 / USER_HZ;
    let secs = window_end
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    let cpu_window = Instant::now()
        .saturating_duration_since(window_start)
        .as_secs_f64();
    latencies.sort_unstable();
    let us = |p: f64| percentile(&latencies, p) as f64 / 1000.0;
    let result = RunResult {
        workload: workload.name(),
        requests: latencies.len() as u64,
        errors,
        first_error,
        secs,
        rps: latencies.len() as f64 / secs,
        p50_us: us(50.0),
        p99_us: us(99.0),
        server_cpu: 100.0 * server_cpu_secs / cpu_window,
        bench_cpu: 100.0 * bench_cpu_secs / cpu_window,
        other_cpu: (100.0 * (busy_secs - server_cpu_secs - bench_cpu_secs) / cpu_window).max(0.0),
    };
    (result, created)
}

// ---------------------------------------------------------------------------------------
// Disk.

#[derive(Serialize, Clone, Default)]
struct Disk {
    db_bytes: u64,
    wal_bytes: u64,
    shm_bytes: u64,
    bytes_per_participant: f64,
    /// Bytes of each table and index (SQLite's dbstat), largest first.
    objects: Vec<(String, u64)>,
}

/// The store's files after a clean stop, over `participants`; then dbstat if asked.
fn disk(data_dir: &Path, participants: u64, dbstat: bool) -> Disk {
    let size = |suffix: &str| {
        std::fs::metadata(data_dir.join(format!("{DB_FILE}{suffix}"))).map_or(0, |m| m.len())
    };
    let (db_bytes, wal_bytes, shm_bytes) = (size(""), size("-wal"), size("-shm"));
    let objects = if dbstat {
        dbstat_objects(&data_dir.join(DB_FILE)).unwrap_or_else(|e| {
            eprintln!("dbstat unavailable: {e}");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    Disk {
        db_bytes,
        wal_bytes,
        shm_bytes,
        bytes_per_participant: (db_bytes + wal_bytes + shm_bytes) as f64
            / participants.max(1) as f64,
        objects,
    }
}

/// Bytes of pages of each table and index, from SQLite's dbstat virtual table (the server
/// is stopped; this only reads).
fn dbstat_objects(path: &Path) -> rusqlite::Result<Vec<(String, u64)>> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut statement = conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY SUM(pgsize) DESC")?;
    statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
        })?
        .collect()
}

// ---------------------------------------------------------------------------------------
// The run.

#[derive(Serialize)]
struct PhaseResult {
    label: String,
    /// Participants in the store when measured (before this phase's Create workload).
    participants: u64,
    fill: FillResult,
    shutdown_ms: f64,
    exit_status: String,
    startup_ms: f64,
    idle_rss_kb: u64,
    peak_rss_kb: u64,
    disk: Disk,
    /// Largest WAL size seen during the fill to this size and during the workloads.
    wal_max_fill_bytes: u64,
    wal_max_measure_bytes: u64,
    workloads: Vec<RunResult>,
}

impl PhaseResult {
    fn run(&self, workload: Workload) -> &RunResult {
        self.workloads
            .iter()
            .find(|r| r.workload == workload.name())
            .expect("workload measured")
    }

    fn rps(&self, workload: Workload) -> f64 {
        self.run(workload).rps
    }
}

#[derive(Serialize)]
struct Target {
    label: String,
    value: String,
    pass: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    machine: String,
    binary: &'static str,
    sizes: &'a [u64],
    base: u64,
    fill_concurrency: usize,
    concurrency: usize,
    connections: usize,
    secs: f64,
    warmup_secs: f64,
    max_requests: u64,
    seed: u64,
    server_args: Vec<String>,
    phases: &'a [PhaseResult],
    wal_max_run_bytes: u64,
    targets: &'a [Target],
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
    println!("participants-facade scale benchmark (embedded store)");
    println!("binary:   {BIN}");
    println!("machine:  {}", machine());
    println!(
        "loadavg:  {} (other processes compete for the same cores)",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "sizes:    empty ({} participants), then {}; fill at {} in flight over {CONNECTIONS} \
         connections",
        settings.base,
        settings
            .sizes
            .iter()
            .map(|s| human(*s))
            .collect::<Vec<_>>()
            .join(", "),
        settings.fill_concurrency,
    );
    println!(
        "settings: concurrency {CONCURRENCY} over {CONNECTIONS} connections, {} s measured after \
         {} s warm-up per workload, at most {} measured requests; seed {}",
        settings.secs, settings.warmup, settings.max_requests, settings.seed
    );
    println!(
        "server:   RUST_LOG={}, extra flags: {:?}",
        server_log(),
        server_args()
    );
    zipf_check();

    std::fs::create_dir_all(&settings.tmp_parent).expect("create the bench tmp dir");
    let dir = tempfile::Builder::new()
        .prefix("participants-scale-")
        .tempdir_in(&settings.tmp_parent)
        .expect("create a temp data dir");
    let data_dir = dir.path().join("data");
    println!("data dir: {}", data_dir.display());
    println!();

    let wal = WalSampler::start(&data_dir, dir.path(), settings.min_free_bytes);
    let generator = Arc::new(Generator {
        seed: settings.seed,
    });
    let next_conversation = Arc::new(AtomicU32::new(0));
    // Room for every id up front (20 bytes each; untouched pages cost no memory), so the
    // vector never doubles while it holds millions.
    let largest = *settings.sizes.last().expect("a size") as usize;
    let mut records: Arc<Vec<Rec>> = Arc::new(Vec::with_capacity(largest + largest / 4 + 100_000));
    let make_phase = |records: Arc<Vec<Rec>>, key: u64| {
        let n = records.len().max(1) as u64;
        let hot = records.iter().copied().find(|r| !r.is_v1()).unwrap_or(Rec {
            id: [0; 16],
            conversation: 0,
        });
        Arc::new(Phase {
            generator: generator.clone(),
            next_conversation: next_conversation.clone(),
            records,
            hot,
            zipf: Zipf::new(n, 1.0),
            shuffle: Shuffle::new(n, mix(settings.seed ^ key)),
        })
    };

    let (mut server, first_startup) = ServerProcess::start(&data_dir, STARTUP_LIMIT).await;
    eprintln!(
        "started on a fresh data dir in {:.1} ms (pid {})",
        first_startup.as_secs_f64() * 1e3,
        server.pid
    );
    let mut phases: Vec<PhaseResult> = Vec::new();
    let targets: Vec<(String, u64)> = std::iter::once(("empty".to_owned(), settings.base))
        .chain(settings.sizes.iter().map(|s| (human(*s), *s)))
        .collect();
    for (index, (label, target)) in targets.iter().enumerate() {
        // Fill up to the size on the running server.
        eprintln!("phase {label}: filling to {target} participants");
        let fill_result = {
            let channels = connect(&server.url(), CONNECTIONS).await;
            fill(
                &mut records,
                |r| make_phase(r, index as u64),
                &channels,
                &settings,
                *target,
                &server,
                &wal,
            )
            .await
        };
        eprintln!(
            "phase {label}: filled {} -> {} in {:.1} s: {:.0} creates/s, {} errors",
            fill_result.from,
            fill_result.to,
            fill_result.secs,
            fill_result.rate,
            fill_result.errors
        );
        let participants = records.len() as u64;

        // Restart: shutdown, the files at rest, start-up, idle memory.
        let (status, shutdown) = server.stop_within(STOP_LIMIT).expect("server running");
        let wal_max_fill_bytes = wal.take_phase_max();
        let disk = disk(&data_dir, participants, settings.dbstat);
        let (restarted, startup) = ServerProcess::start(&data_dir, STARTUP_LIMIT).await;
        server = restarted;
        tokio::time::sleep(IDLE_SETTLE).await;
        let idle_rss_kb = server.status_kb("VmRSS");
        eprintln!(
            "phase {label}: shutdown {:.1} ms ({status}), {:.0} bytes/participant, start-up \
             {:.1} ms, idle RSS {:.1} MiB",
            shutdown.as_secs_f64() * 1e3,
            disk.bytes_per_participant,
            startup.as_secs_f64() * 1e3,
            mib(idle_rss_kb)
        );

        // The workloads.
        let channels = connect(&server.url(), CONNECTIONS).await;
        let phase = make_phase(records.clone(), index as u64);
        let mut workloads = Vec::new();
        let mut created = Vec::new();
        for (w, workload) in Workload::ALL.into_iter().enumerate() {
            let salt = mix(settings.seed ^ ((index as u64) << 8) ^ w as u64);
            let (result, made) =
                measure(&server, &settings, workload, &channels, &phase, salt).await;
            eprintln!(
                "  {label:>6} {:<14} {:>9.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  errors {}",
                result.workload, result.rps, result.p50_us, result.p99_us, result.errors
            );
            workloads.push(result);
            created.extend(made);
        }
        drop(phase);
        Arc::get_mut(&mut records)
            .expect("no worker holds the ids any more")
            .extend(created);
        let peak_rss_kb = server.status_kb("VmHWM");
        let wal_max_measure_bytes = wal.take_phase_max();
        phases.push(PhaseResult {
            label: label.clone(),
            participants,
            fill: fill_result,
            shutdown_ms: shutdown.as_secs_f64() * 1e3,
            exit_status: status.to_string(),
            startup_ms: startup.as_secs_f64() * 1e3,
            idle_rss_kb,
            peak_rss_kb,
            disk,
            wal_max_fill_bytes,
            wal_max_measure_bytes,
            workloads,
        });
    }
    let last_stop = server.stop_within(STOP_LIMIT);
    let wal_max_run_bytes = wal.run_max.load(Ordering::Relaxed);
    drop(wal);
    eprintln!();

    let targets = report(&settings, &phases, wal_max_run_bytes);
    if let Some((status, took)) = last_stop {
        println!(
            "last stop (after the last Create workload): {:.1} ms, {status}; {} participants in the store",
            took.as_secs_f64() * 1e3,
            records.len()
        );
    }

    // Files.
    std::fs::create_dir_all(&settings.out).expect("create SCALE_OUT");
    let json_path = settings.out.join("results.json");
    let report = Report {
        machine: machine(),
        binary: BIN,
        sizes: &settings.sizes,
        base: settings.base,
        fill_concurrency: settings.fill_concurrency,
        concurrency: CONCURRENCY,
        connections: CONNECTIONS,
        secs: settings.secs,
        warmup_secs: settings.warmup,
        max_requests: settings.max_requests,
        seed: settings.seed,
        server_args: server_args(),
        phases: &phases,
        wal_max_run_bytes,
        targets: &targets,
    };
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report).expect("results as JSON"),
    )
    .expect("write results.json");
    println!("results: {}", json_path.display());
    let png_path = settings.out.join("scale.png");
    match plot(&png_path, &phases) {
        Ok(note) => println!("plot:    {} {note}", png_path.display()),
        Err(e) => println!("plot:    not drawn: {e}"),
    }
    if settings.keep_data {
        let kept = dir.keep();
        println!("data dir kept: {}", kept.join("data").display());
    }
}

/// A check of the Zipf sampler against the exact probability of rank 1 (1/H_n at s = 1).
fn zipf_check() {
    let n = 1_000_000u64;
    let zipf = Zipf::new(n, 1.0);
    let mut rng = SmallRng::seed_from_u64(7);
    let draws = 200_000;
    let ones = (0..draws).filter(|_| zipf.sample(&mut rng) == 1).count();
    let harmonic: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
    println!(
        "zipf:     s = 1.0; check at n = 1M: P(rank 1) {:.4} drawn, {:.4} exact",
        ones as f64 / draws as f64,
        1.0 / harmonic
    );
}

/// Prints the tables and the targets; returns the targets.
fn report(settings: &Settings, phases: &[PhaseResult], wal_max_run_bytes: u64) -> Vec<Target> {
    // Per workload.
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| store | participants | workload       | requests |     req/s | p50 us | p99 us | errors | server CPU | bench CPU | other CPU |"
    );
    let _ = writeln!(
        table,
        "|-------|-------------:|----------------|---------:|----------:|-------:|-------:|-------:|-----------:|----------:|----------:|"
    );
    for p in phases {
        for r in &p.workloads {
            let _ = writeln!(
                table,
                "| {:<5} | {:>12} | {:<14} | {:>8} | {:>9.0} | {:>6.0} | {:>6.0} | {:>6} | {:>9.0}% | {:>8.0}% | {:>8.0}% |",
                p.label,
                p.participants,
                r.workload,
                r.requests,
                r.rps,
                r.p50_us,
                r.p99_us,
                r.errors,
                r.server_cpu,
                r.bench_cpu,
                r.other_cpu
            );
        }
    }
    println!("{table}");
    println!("(CPU: share of one core over the measured window; 100% = one core)");
    let mut loud = false;
    for p in phases {
        if p.fill.timed_out {
            loud = true;
            println!(
                "!!! the fill to {} stopped at {} participants after SCALE_MAX_FILL_SECS; it was measured there",
                p.label, p.fill.to
            );
        }
        if p.fill.low_disk {
            loud = true;
            println!(
                "!!! the fill to {} stopped at {} participants: less than SCALE_MIN_FREE_GB free on the data disk; it was measured there",
                p.label, p.fill.to
            );
        }
        if p.fill.errors > 0 {
            loud = true;
            println!(
                "!!! ERRORS in the fill to {}: {} failed creates (first: {}); the store holds fewer than asked",
                p.label,
                p.fill.errors,
                p.fill.first_error.as_deref().unwrap_or("?")
            );
        }
        for r in p.workloads.iter().filter(|r| r.errors > 0) {
            loud = true;
            println!(
                "!!! ERRORS in {} at {}: {} unexpected errors (first: {}); its numbers are not valid",
                r.workload,
                p.label,
                r.errors,
                r.first_error.as_deref().unwrap_or("?")
            );
        }
        for r in p.workloads.iter().filter(|r| r.other_cpu > NOISE_LIMIT) {
            println!(
                "WARNING: other processes used {:.0}% CPU during {} at {}: it measured contention too",
                r.other_cpu, r.workload, p.label
            );
        }
    }
    if !loud {
        println!("no unexpected errors in any fill or workload");
    }
    println!();

    // Summary, one row per size.
    let cell = |p: &PhaseResult, w: Workload| {
        let r = p.run(w);
        format!(
            "{:.0} {:.2}/{:.2}{}",
            r.rps,
            r.p50_us / 1e3,
            r.p99_us / 1e3,
            if r.errors > 0 { " ERR" } else { "" }
        )
    };
    let empty = &phases[0];
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "| store | participants | fill creates/s | Health | Fetch hot | Fetch uniform | Fetch Zipf | List 50 | Create | Update | uniform/hot | Zipf/hot | create/empty | update/empty | bytes/participant | WAL max MiB fill/load | start-up ms | idle RSS MiB | peak RSS MiB | shutdown ms |"
    );
    let _ = writeln!(
        summary,
        "|---|---:|---:|---|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for p in phases {
        let _ = writeln!(
            summary,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.1}/{:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            p.label,
            p.participants,
            // A size the Create workloads before it already passed needs no fill.
            if p.fill.to > p.fill.from {
                format!("{:.0}", p.fill.rate)
            } else {
                "-".to_owned()
            },
            cell(p, Workload::Health),
            cell(p, Workload::FetchHot),
            cell(p, Workload::FetchUniform),
            cell(p, Workload::FetchZipf),
            cell(p, Workload::List),
            cell(p, Workload::Create),
            cell(p, Workload::Update),
            p.rps(Workload::FetchUniform) / p.rps(Workload::FetchHot),
            p.rps(Workload::FetchZipf) / p.rps(Workload::FetchHot),
            p.rps(Workload::Create) / empty.rps(Workload::Create),
            p.rps(Workload::Update) / empty.rps(Workload::Update),
            p.disk.bytes_per_participant,
            p.wal_max_fill_bytes as f64 / (1 << 20) as f64,
            p.wal_max_measure_bytes as f64 / (1 << 20) as f64,
            p.startup_ms,
            mib(p.idle_rss_kb),
            mib(p.peak_rss_kb),
            p.shutdown_ms,
        );
    }
    println!("{summary}");
    println!(
        "(workload cells: req/s, then p50/p99 in ms, at concurrency {CONCURRENCY}; fill creates/s at \
         {} in flight, from the size before; bytes/participant: participants.db + -wal + -shm after a \
         clean stop; WAL max: the largest participants.db-wal during the fill to the size / during the workloads; start-up: spawn to \
         SERVING, integrity check included; peak RSS: VmHWM since that start)",
        settings.fill_concurrency
    );
    println!();

    if settings.dbstat {
        println!("on disk, by table and index (SQLite dbstat, bytes per participant):");
        for p in phases {
            let parts: Vec<String> = p
                .disk
                .objects
                .iter()
                .map(|(name, bytes)| {
                    format!("{name} {:.0}", *bytes as f64 / p.participants.max(1) as f64)
                })
                .collect();
            println!("  {:<5} {}", p.label, parts.join(", "));
        }
        println!();
    }

    // Targets.
    let mut targets = Vec::new();
    let mut target = |label: String, value: String, pass: bool| {
        println!("  {label:<52} {value:>12}  {}", verdict(pass));
        targets.push(Target { label, value, pass });
    };
    println!("targets (issue 16; printed, not asserted; the issue sets them at 10M):");
    for p in phases.iter().skip(1) {
        let ratio = p.rps(Workload::FetchUniform) / p.rps(Workload::FetchHot);
        target(
            format!(
                "random Fetch >= {TARGET_FETCH_RATIO}x hot Fetch at {}",
                p.label
            ),
            format!("{ratio:.3}x"),
            ratio >= TARGET_FETCH_RATIO,
        );
        for (name, w) in [("Create", Workload::Create), ("Update", Workload::Update)] {
            let ratio = p.rps(w) / empty.rps(w);
            target(
                format!("{name} at {} >= {TARGET_WRITE_RATIO}x empty", p.label),
                format!("{ratio:.3}x"),
                ratio >= TARGET_WRITE_RATIO,
            );
        }
        target(
            format!(
                "bytes/participant <= {TARGET_BYTES_PER_PARTICIPANT:.0} at {}",
                p.label
            ),
            format!("{:.0}", p.disk.bytes_per_participant),
            p.disk.bytes_per_participant <= TARGET_BYTES_PER_PARTICIPANT,
        );
        target(
            format!("start-up to SERVING < 1 s at {}", p.label),
            format!("{:.1} ms", p.startup_ms),
            p.startup_ms < TARGET_STARTUP.as_secs_f64() * 1e3,
        );
        target(
            format!("idle RSS < 64 MiB at {}", p.label),
            format!("{:.1} MiB", mib(p.idle_rss_kb)),
            p.idle_rss_kb < TARGET_IDLE_RSS_KB,
        );
    }
    target(
        "WAL never above 64 MiB (whole run, fill included)".to_owned(),
        format!("{:.1} MiB", wal_max_run_bytes as f64 / (1 << 20) as f64),
        wal_max_run_bytes <= TARGET_WAL_BYTES,
    );
    println!();
    targets
}

// ---------------------------------------------------------------------------------------
// The plot.

/// A TTF file for the plot's text: `SCALE_FONT`, else a common sans-serif font.
fn font_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SCALE_FONT") {
        return (path != "none").then(|| PathBuf::from(path));
    }
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Throughput and p99 of each workload against store size (log x), side by side. Returns
/// a note on how the text was drawn.
fn plot(path: &Path, phases: &[PhaseResult]) -> Result<String, Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let font = font_file();
    let text = match &font {
        Some(file) => {
            let bytes: &'static [u8] = Box::leak(std::fs::read(file)?.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{} is not a font ab_glyph reads", file.display()))?;
            true
        }
        None => false,
    };
    let root = BitMapBackend::new(path, (1600, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let x_lo = phases
        .iter()
        .map(|p| p.participants)
        .min()
        .unwrap_or(1)
        .max(1) as f64
        / 1.5;
    let x_hi = phases
        .iter()
        .map(|p| p.participants)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.5;
    let colors = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
    ];
    type Metric = fn(&RunResult) -> f64;
    let metrics: [(&str, &str, Metric); 2] = [
        ("throughput against store size", "req/s", |r| r.rps),
        ("p99 latency against store size", "p99 ms", |r| {
            r.p99_us / 1e3
        }),
    ];
    for (panel, (title, unit, metric)) in panels.iter().zip(metrics) {
        let y_hi = phases
            .iter()
            .flat_map(|p| p.workloads.iter().map(metric))
            .fold(0.0f64, f64::max)
            * 1.5; // room for the legend above the lines
        let mut builder = ChartBuilder::on(panel);
        builder.margin(20);
        if text {
            builder
                .caption(title, ("sans-serif", 24))
                .x_label_area_size(45)
                .y_label_area_size(70);
        }
        // Ticks at the measured sizes.
        let sizes: Vec<f64> = phases.iter().map(|p| p.participants as f64).collect();
        let mut chart = builder.build_cartesian_2d(
            (x_lo..x_hi).log_scale().with_key_points(sizes),
            0.0..y_hi.max(1.0),
        )?;
        if text {
            chart
                .configure_mesh()
                .x_desc("participants in the store")
                .y_desc(unit)
                .x_label_formatter(&|v| human(v.round() as u64))
                .y_label_formatter(&|v| format!("{v:.0}"))
                .label_style(("sans-serif", 15))
                .draw()?;
        } else {
            chart.configure_mesh().x_labels(0).y_labels(0).draw()?;
        }
        for (i, workload) in Workload::ALL.into_iter().enumerate() {
            let color = colors[i % colors.len()];
            let points: Vec<(f64, f64)> = phases
                .iter()
                .map(|p| (p.participants as f64, metric(p.run(workload))))
                .collect();
            let series =
                chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
            if text {
                series.label(workload.name()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )?;
        }
        if text {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 15))
                .draw()?;
        }
    }
    root.present()?;
    Ok(match font {
        Some(file) => format!("(text in {})", file.display()),
        None => "(no font: drawn without text; series in the order Health, Fetch hot, Fetch \
                 uniform, Fetch Zipf, List 50, Update, Create: blue, orange, green, red, \
                 purple, brown, pink)"
            .to_owned(),
    })
}
