//! The `local` backend: participants in an embedded SQLite database under `--data-dir`.
//!
//! Why SQLite (rusqlite, bundled) rather than redb: its write-ahead log with
//! `synchronous=FULL` has decades of power-loss testing behind it, unique indexes enforce
//! Twilio's conflict rules inside the same transaction that inserts, and the file can be
//! inspected with the `sqlite3` shell when something looks wrong.
//!
//! Durability and throughput: every create goes to one writer thread, which owns the only
//! write connection. It takes whatever creates are queued (up to [`MAX_BATCH`]), applies
//! each under its own savepoint, and commits them in one transaction: one fsync for the
//! whole group (group commit). A caller is answered only after that commit returned, so an
//! acknowledged participant survives `kill -9` and power loss. Fetches run on a small pool
//! of read connections, which WAL lets proceed while the writer commits.
//!
//! Fetched records are kept in a bounded in-memory cache (`--cache-entries`). A record
//! never changes once created (the API has no update or delete, and this process is the
//! only one using the data directory: see the LOCK file), so a cached copy cannot be stale.
//!
//! Idempotency keys live in the same database, written in the same transaction as the
//! participant they name, so a replay after a crash finds exactly what was acknowledged.
//!
//! Damage is noticed, not served around: at open, SQLite's `quick_check` runs within a
//! time budget (`--integrity-check-timeout`, skipped with `--skip-integrity-check`) and a
//! corrupt file refuses to open. At run time every SQLite error is classified
//! ([`StoreFault`]); a full disk, a file-size limit or an I/O error turns readiness
//! NOT_SERVING until a write succeeds again (a probe write retries it while no call does),
//! and corruption turns it NOT_SERVING for good. Reads go on being served either way.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use prometheus::IntCounter;
use quick_cache::sync::Cache;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

mod fault;

use crate::backend::{CallContext, ParticipantBackend};
use crate::domain::error::{Conflict, Error, Resource, StoreFault};
use crate::domain::{
    CreateRequest, NewParticipant, NewServiceParticipant, Participant, ParticipantRef,
    ServiceParticipant, ServiceParticipantRef,
};
use crate::observability::metrics::METRICS;
use tracing::Instrument as _;

/// Most creates committed in one transaction.
pub const MAX_BATCH: usize = 256;
/// Creates waiting for the writer before callers wait to enqueue (back-pressure).
const QUEUE_DEPTH: usize = 4096;
/// Read connections kept open between fetches.
const READ_POOL: usize = 8;
/// How often expired idempotency keys are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);
const DB_FILE: &str = "participants.db";
const LOCK_FILE: &str = "LOCK";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS participants (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    body            TEXT NOT NULL
) WITHOUT ROWID;
-- One row per (conversation, channel, address): Twilio's uniqueness rule for v2.
CREATE TABLE IF NOT EXISTS participant_addresses (
    conversation_id TEXT NOT NULL,
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL,
    participant_id  TEXT NOT NULL,
    PRIMARY KEY (conversation_id, channel, address)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS service_participants (
    sid              TEXT PRIMARY KEY,
    chat_service_sid TEXT NOT NULL,
    conversation_sid TEXT NOT NULL,
    identity         TEXT,
    binding_address  TEXT,
    binding_proxy    TEXT,
    body             TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS service_participants_by_identity
    ON service_participants (chat_service_sid, conversation_sid, identity)
    WHERE identity IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS service_participants_by_binding
    ON service_participants (chat_service_sid, conversation_sid, binding_address, binding_proxy)
    WHERE binding_address IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key         TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    resource_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys (created_at);
-- One row, rewritten by the probe write that tells when a failing disk writes again.
CREATE TABLE IF NOT EXISTS store_probe (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
PRAGMA user_version = 1;
";

/// A create waiting for the writer, with the channel its answer goes back on.
enum Write {
    Participant(NewParticipant, oneshot::Sender<Result<Participant, Error>>),
    ServiceParticipant(
        NewServiceParticipant,
        oneshot::Sender<Result<ServiceParticipant, Error>>,
    ),
    /// Finish what is queued before this, checkpoint, close, then answer.
    Close(oneshot::Sender<()>),
    /// Try a small write, to learn whether a failing disk writes again.
    Probe,
}

/// Whether the store can serve, as its own errors tell: the readiness signal.
#[derive(Debug, Default)]
struct StoreHealth {
    /// One of [`HEALTHY`], [`CANNOT_WRITE`], [`CORRUPT`].
    state: std::sync::atomic::AtomicU8,
    /// When the last probe write was asked for.
    last_probe: Mutex<Option<Instant>>,
}

const HEALTHY: u8 = 0;
/// The disk is full, a file-size limit was reached, or writes fail with I/O errors.
const CANNOT_WRITE: u8 = 1;
/// SQLite found the database corrupt; only an operator can mend it.
const CORRUPT: u8 = 2;
/// Least time between two probe writes while the store cannot write.
const PROBE_EVERY: Duration = Duration::from_secs(1);

impl StoreHealth {
    /// Takes note of an error the store met.
    fn saw(&self, err: &Error) {
        let Error::Store { fault, detail } = err else {
            return;
        };
        let label = match fault {
            StoreFault::Full => "full",
            StoreFault::Io => "io",
            StoreFault::Corrupt => "corrupt",
            StoreFault::Other => return,
        };
        METRICS.store_faults.with_label_values(&[label]).inc();
        if *fault == StoreFault::Corrupt {
            if self.state.swap(CORRUPT, Ordering::AcqRel) != CORRUPT {
                tracing::error!(
                    error = %detail,
                    "the store's database is corrupt; readiness is NOT_SERVING until it is \
                     restored from a backup"
                );
            }
        } else if self
            .state
            .compare_exchange(HEALTHY, CANNOT_WRITE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::error!(
                error = %detail,
                "the store cannot write (disk full, file-size limit or I/O error); readiness \
                 is NOT_SERVING until a write succeeds, reads are still served"
            );
        }
    }

    /// Takes note of `result`'s error, if any.
    fn check<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(err) = &result {
            self.saw(err);
        }
        result
    }

    /// A write committed: a disk that was failing writes again.
    fn wrote(&self) {
        if self
            .state
            .compare_exchange(CANNOT_WRITE, HEALTHY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!("the store writes again; readiness is SERVING");
        }
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Whether a probe write is due (at most one per [`PROBE_EVERY`]).
    fn probe_due(&self) -> bool {
        let mut last = self.last_probe.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < PROBE_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// What a caller whose write was not committed learns.
    fn commit_failed(&self, err: &Error) -> Error {
        match err {
            Error::Store { fault, detail } if *fault != StoreFault::Other => Error::Store {
                fault: *fault,
                detail: detail.clone(),
            },
            _ => Error::unavailable(
                "the store could not commit this write; nothing was stored",
                None,
            ),
        }
    }
}

/// The local backend. Cheap to share behind an `Arc`.
pub struct LocalBackend {
    path: PathBuf,
    /// v2 participants already read, by id.
    participants: Option<FetchCache<Participant>>,
    /// v1 participants already read, by sid.
    service_participants: Option<FetchCache<ServiceParticipant>>,
    writes: mpsc::Sender<Write>,
    readers: Mutex<Vec<Connection>>,
    /// Held until [`ParticipantBackend::close`]: one process per data directory.
    lock: Mutex<Option<File>>,
    /// Set by `close`: no read opens a connection after it.
    closed: AtomicBool,
    health: Arc<StoreHealth>,
}

/// Where and how the local store keeps its data.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The directory of the database and its LOCK file.
    pub data_dir: PathBuf,
    /// The account id written into every record.
    pub account_sid: String,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl: Duration,
    /// Records of each API version kept in memory for fetches (0: none).
    pub cache_entries: usize,
    /// Longest time SQLite's `quick_check` may take at open (it stops there, with a
    /// warning, and the store opens unchecked); `None` skips the check.
    pub integrity_check: Option<Duration>,
}

impl StoreOptions {
    /// Defaults for `data_dir`, as the flags give them.
    pub fn new(data_dir: impl Into<PathBuf>, account_sid: impl Into<String>) -> StoreOptions {
        StoreOptions {
            data_dir: data_dir.into(),
            account_sid: account_sid.into(),
            idempotency_ttl: Duration::from_secs(24 * 60 * 60),
            cache_entries: DEFAULT_CACHE_ENTRIES,
            integrity_check: Some(DEFAULT_INTEGRITY_CHECK_TIMEOUT),
        }
    }
}

/// Default of `--integrity-check-timeout`.
pub const DEFAULT_INTEGRITY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Default of `--cache-entries`.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

impl LocalBackend {
    /// Opens (creating if needed) the store in `data_dir`, recovering from the write-ahead
    /// log after a crash, and starts the writer thread.
    pub fn open(options: &StoreOptions) -> Result<Self, Error> {
        let StoreOptions {
            data_dir,
            account_sid,
            idempotency_ttl,
            cache_entries,
            integrity_check,
        } = options;
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::Internal(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let lock = File::create(data_dir.join(LOCK_FILE))
            .map_err(|e| Error::Internal(format!("cannot create lock file: {e}")))?;
        lock.try_lock().map_err(|_| {
            Error::Internal(format!(
                "data directory {} is in use by another participants-facade process",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == 0 => tracing::warn!(
                path = %path.display(),
                "the database file is empty (0 bytes): starting with an empty store; if it \
                 held participants, stop and restore it from a backup"
            ),
            Ok(_) => {}
            Err(_) => tracing::info!(path = %path.display(), "creating a new store"),
        }
        let corrupt = |err: Error| match err {
            Error::Store {
                fault: StoreFault::Corrupt,
                detail,
            } => Error::Internal(format!(
                "the store {} is corrupt ({detail}); restore it from a backup, or start with \
                 --skip-integrity-check to serve what is still readable",
                path.display()
            )),
            other => other,
        };
        let mut conn = Connection::open(&path)?;
        // WAL: readers do not block the writer. synchronous=FULL: every commit is fsynced
        // before it returns, which is what makes an acknowledged create durable.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| corrupt(e.into()))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Checkpoints run on their own thread (see `Checkpointer`), not inside the commits
        // that callers wait for.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA).map_err(|e| corrupt(e.into()))?;
        if let Some(budget) = integrity_check {
            quick_check(&mut conn, *budget).map_err(corrupt)?;
        }
        let health = Arc::new(StoreHealth::default());
        let checkpointer = Checkpointer::start(&path, health.clone())?;
        let readers = (0..2)
            .map(|_| open_reader(&path))
            .collect::<Result<Vec<_>, _>>()?;

        let (writes, queue) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            account_sid: account_sid.clone(),
            ttl: *idempotency_ttl,
            last_purge: None,
            health: health.clone(),
        };
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(&mut conn, queue, checkpointer))
            .map_err(|e| Error::Internal(format!("cannot start the store writer: {e}")))?;
        Ok(LocalBackend {
            path,
            participants: FetchCache::new("participants", *cache_entries),
            service_participants: FetchCache::new("service_participants", *cache_entries),
            writes,
            readers: Mutex::new(readers),
            lock: Mutex::new(Some(lock)),
            closed: AtomicBool::new(false),
            health,
        })
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Write,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.writes.send(make(tx)).await.map_err(|_| closed())?;
        // The writer answers every write; a dropped reply means it stopped.
        rx.await.map_err(|_| closed())?
    }

    /// Runs a read on a pooled connection. Reads run on the calling task: a point lookup
    /// on a primary key in SQLite's page cache takes a few microseconds, less than handing
    /// it to a blocking thread would cost.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let pooled = self.readers.lock().map_err(|_| poisoned())?.pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = self.health.check(f(&conn));
        let mut pool = self.readers.lock().map_err(|_| poisoned())?;
        if pool.len() < READ_POOL && !self.closed.load(Ordering::Acquire) {
            pool.push(conn);
        }
        result
    }
}

/// A span for one store operation (OpenTelemetry database conventions; no statement text,
/// no values).
fn store_span(operation: &'static str, db_operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "store",
        otel.name = operation,
        otel.kind = "internal",
        db.system.name = "sqlite",
        db.operation.name = db_operation,
    )
}

fn record_store(operation: &'static str, started: Instant) {
    METRICS
        .store_duration
        .with_label_values(&[operation])
        .observe(started.elapsed().as_secs_f64());
}

/// Runs a store operation in its span, timing it.
async fn observed<T>(
    operation: &'static str,
    db_operation: &'static str,
    work: impl std::future::Future<Output = T>,
) -> T {
    let started = Instant::now();
    let out = work.instrument(store_span(operation, db_operation)).await;
    record_store(operation, started);
    out
}

/// Records of one table already read, by id, with their hit and miss counters.
struct FetchCache<T> {
    entries: Cache<String, Arc<T>>,
    hits: IntCounter,
    misses: IntCounter,
}

impl<T: Clone> FetchCache<T> {
    /// A cache of `entries` records, or none for 0.
    fn new(table: &str, entries: usize) -> Option<FetchCache<T>> {
        let counter = |result| {
            METRICS
                .store_cache_lookups
                .with_label_values(&[table, result])
        };
        (entries > 0).then(|| FetchCache {
            entries: Cache::new(entries),
            hits: counter("hit"),
            misses: counter("miss"),
        })
    }

    /// The record cached under `id`, if there is one and `usable` accepts it; counted as
    /// a hit or a miss.
    fn get(&self, id: &str, usable: impl FnOnce(&T) -> bool) -> Option<Arc<T>> {
        let found = self.entries.get(id).filter(|cached| usable(cached));
        match found {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        }
        found
    }

    fn insert(&self, id: &str, record: &T) {
        self.entries.insert(id.to_owned(), Arc::new(record.clone()));
    }
}

fn closed() -> Error {
    Error::unavailable("the store is closed (the server is shutting down)", None)
}

fn poisoned() -> Error {
    Error::Internal("read pool lock poisoned".into())
}

/// SQLite's `quick_check` (page structure, not index contents: linear in the file's
/// size), stopped after `budget`: a very large store opens unchecked, with a warning,
/// rather than late. A damaged store is [`StoreFault::Corrupt`], named by SQLite's first
/// findings (page numbers and structure, no values).
fn quick_check(conn: &mut Connection, budget: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let deadline = started + budget;
    conn.progress_handler(10_000, Some(move || Instant::now() > deadline))?;
    let findings = conn.prepare("PRAGMA quick_check(5)").and_then(|mut check| {
        check
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()
    });
    conn.progress_handler(0, None::<fn() -> bool>)?;
    match findings {
        Ok(findings) if findings.len() == 1 && findings[0] == "ok" => {
            tracing::info!(elapsed = ?started.elapsed(), "store integrity check passed");
            Ok(())
        }
        Ok(findings) => Err(Error::Store {
            fault: StoreFault::Corrupt,
            detail: format!("integrity check: {}", findings.join("; ")),
        }),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
            tracing::warn!(
                ?budget,
                "store integrity check not finished within --integrity-check-timeout; \
                 opening the store unchecked"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn open_reader(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

#[async_trait]
impl ParticipantBackend for LocalBackend {
    async fn create_participant(
        &self,
        _ctx: &CallContext,
        request: NewParticipant,
    ) -> Result<Participant, Error> {
        observed(
            "create_participant",
            "INSERT",
            self.write(|tx| Write::Participant(request, tx)),
        )
        .await
    }

    async fn fetch_participant(
        &self,
        _ctx: &CallContext,
        key: ParticipantRef,
    ) -> Result<Participant, Error> {
        let not_found = || Error::NotFound {
            resource: Resource::Participant,
        };
        if let Some(cached) = self
            .participants
            .as_ref()
            .and_then(|cache| cache.get(&key.participant_id, |_| true))
        {
            // Ids are unique across conversations: the cached record is the only one.
            return if cached.conversation_id == key.conversation_id {
                Ok(Participant::clone(&cached))
            } else {
                Err(not_found())
            };
        }
        let span = store_span("fetch_participant", "SELECT");
        let _entered = span.enter();
        let started = Instant::now();
        let found: Option<Participant> = self.read(|conn| {
            conn.prepare_cached(
                "SELECT body FROM participants WHERE id = ?1 AND conversation_id = ?2",
            )?
            .query_row(params![key.participant_id, key.conversation_id], |row| {
                row.get::<_, String>(0)
            })
            .optional()?
            .map(|body| Ok(serde_json::from_str(&body)?))
            .transpose()
        })?;
        record_store("fetch_participant", started);
        let participant = found.ok_or_else(not_found)?;
        if let Some(cache) = &self.participants {
            cache.insert(&participant.id, &participant);
        }
        Ok(participant)
    }

    async fn create_service_participant(
        &self,
        _ctx: &CallContext,
        request: NewServiceParticipant,
    ) -> Result<ServiceParticipant, Error> {
        observed(
            "create_service_participant",
            "INSERT",
            self.write(|tx| Write::ServiceParticipant(request, tx)),
        )
        .await
    }

    async fn fetch_service_participant(
        &self,
        _ctx: &CallContext,
        key: ServiceParticipantRef,
    ) -> Result<ServiceParticipant, Error> {
        // Twilio accepts the identity in place of the sid. An identity may itself look
        // like a sid, so both are tried, the sid first. The cache holds records by sid:
        // a hit in this conversation is the sid match; anything else asks the store.
        if let Some(cached) = self.service_participants.as_ref().and_then(|cache| {
            cache.get(&key.sid, |cached| {
                cached.chat_service_sid == key.chat_service_sid
                    && cached.conversation_sid == key.conversation_sid
            })
        }) {
            return Ok(ServiceParticipant::clone(&cached));
        }
        let span = store_span("fetch_service_participant", "SELECT");
        let _entered = span.enter();
        let started = Instant::now();
        let sql = "SELECT body FROM service_participants
             WHERE chat_service_sid = ?2 AND conversation_sid = ?3
               AND (sid = ?1 OR identity = ?1)
             ORDER BY sid = ?1 DESC
             LIMIT 1";
        let found: Option<ServiceParticipant> = self.read(|conn| {
            conn.prepare_cached(sql)?
                .query_row(
                    params![key.sid, key.chat_service_sid, key.conversation_sid],
                    |row| row.get::<_, String>(0),
                )
                .optional()?
                .map(|body| Ok(serde_json::from_str(&body)?))
                .transpose()
        })?;
        record_store("fetch_service_participant", started);
        let participant = found.ok_or(Error::NotFound {
            resource: Resource::ServiceParticipant,
        })?;
        if let Some(cache) = &self.service_participants {
            cache.insert(&participant.sid, &participant);
        }
        Ok(participant)
    }

    /// Not ready while the store cannot write or is corrupt; while it cannot write, a
    /// probe write is queued now and then, so that readiness comes back by itself once
    /// the disk has room again, even when no caller writes.
    fn ready(&self) -> bool {
        match self.health.state() {
            HEALTHY => true,
            CANNOT_WRITE => {
                if self.health.probe_due() {
                    let _ = self.writes.try_send(Write::Probe);
                }
                false
            }
            _ => false,
        }
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let (tx, rx) = oneshot::channel();
        if self.writes.send(Write::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        if let Ok(mut pool) = self.readers.lock() {
            pool.clear();
        }
        // Released here, not on drop: a call abandoned at the end of the shutdown grace
        // period may still hold the backend, and must not keep the directory locked.
        if let Ok(mut lock) = self.lock.lock() {
            lock.take();
        }
        tracing::info!("store closed");
    }
}

/// Copies committed pages from the write-ahead log into the database file, on its own
/// thread and connection, so that the writer's commits never wait for a checkpoint. A
/// passive checkpoint runs at most every [`CHECKPOINT_EVERY`] while there are new commits;
/// SQLite restarts the log from its beginning once a checkpoint has caught up, so the log
/// stays small. The final, truncating checkpoint is the writer's, at close.
struct Checkpointer {
    nudge: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Least time between two checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

impl Checkpointer {
    fn start(path: &Path, health: Arc<StoreHealth>) -> Result<Checkpointer, Error> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                // Ends when the writer drops its sender.
                while nudged.recv().is_ok() {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "checkpoint failed; will retry");
                        health.saw(&e.into());
                    }
                    std::thread::sleep(CHECKPOINT_EVERY);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the store checkpointer: {e}")))?;
        Ok(Checkpointer { nudge, thread })
    }

    /// There are new commits to copy; coalesces with a nudge already waiting.
    fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }

    /// Waits for a checkpoint in progress, then ends the thread.
    fn stop(self) {
        drop(self.nudge);
        if self.thread.join().is_err() {
            tracing::error!("the store checkpointer panicked");
        }
    }
}

/// The writer thread's state.
struct Writer {
    account_sid: String,
    ttl: Duration,
    last_purge: Option<Instant>,
    health: Arc<StoreHealth>,
}

/// What one queued create produced, to be sent once its transaction has committed.
enum Outcome {
    Participant(
        oneshot::Sender<Result<Participant, Error>>,
        Result<Participant, Error>,
    ),
    ServiceParticipant(
        oneshot::Sender<Result<ServiceParticipant, Error>>,
        Result<ServiceParticipant, Error>,
    ),
}

impl Outcome {
    fn error(&self) -> Option<&Error> {
        match self {
            Outcome::Participant(_, r) => r.as_ref().err(),
            Outcome::ServiceParticipant(_, r) => r.as_ref().err(),
        }
    }
}

impl Writer {
    fn run(
        mut self,
        conn: &mut Connection,
        mut queue: mpsc::Receiver<Write>,
        checkpointer: Checkpointer,
    ) {
        let mut closing = None;
        while closing.is_none() {
            let Some(first) = queue.blocking_recv() else {
                break;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let mut writes = Vec::with_capacity(batch.len());
            for item in batch {
                match item {
                    Write::Probe => self.probe(conn),
                    Write::Close(done) => {
                        // Anything queued after Close is answered UNAVAILABLE when the
                        // receiver drops below.
                        closing = Some(done);
                        break;
                    }
                    write => writes.push(write),
                }
            }
            if !writes.is_empty() {
                self.commit_group(conn, writes);
                checkpointer.nudge();
            }
        }
        queue.close();
        checkpointer.stop();
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!(error = %e, "final checkpoint failed; the WAL will be replayed on next open");
        }
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    /// A small write transaction, to learn whether a failing disk writes again.
    fn probe(&self, conn: &Connection) {
        let written = conn.execute_batch(
            "BEGIN IMMEDIATE;
             INSERT OR REPLACE INTO store_probe (id, at) VALUES (1, unixepoch());
             COMMIT;",
        );
        match written {
            Ok(()) => self.health.wrote(),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK;");
                tracing::debug!(error = %e, "the store still cannot write");
            }
        }
    }

    /// Applies `writes` in one transaction and answers every caller after it commits.
    fn commit_group(&mut self, conn: &mut Connection, mut writes: Vec<Write>) {
        let count = writes.len();
        let mut outcomes = Vec::with_capacity(count);
        let result = (|| -> Result<(), Error> {
            let mut tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            self.purge_expired(&tx)?;
            for write in writes.drain(..) {
                let outcome = match write {
                    Write::Participant(req, reply) => {
                        Outcome::Participant(reply, self.apply(&mut tx, req, insert_participant))
                    }
                    Write::ServiceParticipant(req, reply) => Outcome::ServiceParticipant(
                        reply,
                        self.apply(&mut tx, req, insert_service_participant),
                    ),
                    Write::Close(_) | Write::Probe => {
                        unreachable!("Close and Probe are taken out before commit_group")
                    }
                };
                if let Some(err) = outcome.error() {
                    self.health.saw(err);
                }
                outcomes.push(outcome);
            }
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.health.wrote();
                METRICS.store_group_size.observe(count as f64);
                tracing::debug!(count, "group committed");
                for outcome in outcomes {
                    // A caller that gave up is no reason to stop: its create is durable
                    // and a retry with the same idempotency key will find it.
                    match outcome {
                        Outcome::Participant(reply, r) => drop(reply.send(r)),
                        Outcome::ServiceParticipant(reply, r) => drop(reply.send(r)),
                    }
                }
            }
            Err(err) => {
                // Nothing of this group is durable; every caller learns it, including
                // those whose write was not reached.
                tracing::error!(error = %err, count, "group commit failed");
                self.health.saw(&err);
                let failed = || self.health.commit_failed(&err);
                for outcome in outcomes {
                    match outcome {
                        Outcome::Participant(reply, _) => drop(reply.send(Err(failed()))),
                        Outcome::ServiceParticipant(reply, _) => drop(reply.send(Err(failed()))),
                    }
                }
                for write in writes {
                    match write {
                        Write::Participant(_, reply) => drop(reply.send(Err(failed()))),
                        Write::ServiceParticipant(_, reply) => drop(reply.send(Err(failed()))),
                        Write::Close(_) | Write::Probe => {}
                    }
                }
            }
        }
    }

    /// Applies one create under its own savepoint: a conflict rolls back only this create,
    /// not the others of its group. Handles the idempotency key around `insert`.
    fn apply<Req, Res>(
        &self,
        tx: &mut Transaction<'_>,
        request: Req,
        insert: fn(&Connection, &Self, Req) -> Result<Res, Error>,
    ) -> Result<Res, Error>
    where
        Req: CreateRequest + Stored,
        Res: serde::de::DeserializeOwned + Identified,
    {
        let key = request.idempotency_key().map(str::to_owned);
        let fingerprint = request.fingerprint();
        if let Some(key) = &key
            && let Some(existing) = self.replay::<Res>(tx, key, &fingerprint, Req::TABLE)?
        {
            return Ok(existing);
        }
        let sp = tx.savepoint()?;
        let created = insert(&sp, self, request)?;
        if let Some(key) = key {
            sp.prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys (key, fingerprint, resource_id, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![key, fingerprint, created.id(), Utc::now().timestamp()])?;
        }
        sp.commit()?;
        Ok(created)
    }

    /// The resource a live idempotency key names, if the request matches its first use.
    fn replay<Res: serde::de::DeserializeOwned>(
        &self,
        tx: &Connection,
        key: &str,
        fingerprint: &[u8],
        table: &str,
    ) -> Result<Option<Res>, Error> {
        let cutoff = self.cutoff();
        let row: Option<(Vec<u8>, String)> = tx
            .prepare_cached(
                "SELECT fingerprint, resource_id FROM idempotency_keys
                 WHERE key = ?1 AND created_at >= ?2",
            )?
            .query_row(params![key, cutoff], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((stored, resource_id)) = row else {
            return Ok(None);
        };
        if stored != fingerprint {
            return Err(Error::IdempotencyKeyReused);
        }
        let sql = format!("SELECT body FROM {table} WHERE {} = ?1", id_column(table));
        let body: String = tx
            .prepare_cached(&sql)?
            .query_row(params![resource_id], |r| r.get(0))?;
        Ok(Some(serde_json::from_str(&body)?))
    }

    fn cutoff(&self) -> i64 {
        Utc::now().timestamp() - i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2)
    }

    fn purge_expired(&mut self, tx: &Connection) -> Result<(), Error> {
        if self.last_purge.is_some_and(|t| t.elapsed() < PURGE_EVERY) {
            return Ok(());
        }
        let purged = tx
            .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?
            .execute(params![self.cutoff()])?;
        if purged > 0 {
            tracing::debug!(purged, "expired idempotency keys deleted");
        }
        self.last_purge = Some(Instant::now());
        Ok(())
    }
}

fn id_column(table: &str) -> &'static str {
    if table == "participants" { "id" } else { "sid" }
}

/// Where a created resource is stored, for idempotent replays.
trait Stored {
    const TABLE: &'static str;
}

impl Stored for NewParticipant {
    const TABLE: &'static str = "participants";
}

impl Stored for NewServiceParticipant {
    const TABLE: &'static str = "service_participants";
}

/// A created resource's id, which an idempotency key points to.
trait Identified {
    fn id(&self) -> &str;
}

impl Identified for Participant {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Identified for ServiceParticipant {
    fn id(&self) -> &str {
        &self.sid
    }
}

fn insert_participant(
    tx: &Connection,
    writer: &Writer,
    request: NewParticipant,
) -> Result<Participant, Error> {
    let mut find = tx.prepare_cached(
        "SELECT participant_id FROM participant_addresses
         WHERE conversation_id = ?1 AND channel = ?2 AND address = ?3",
    )?;
    for address in &request.addresses {
        let existing: Option<String> = find
            .query_row(
                params![
                    request.conversation_id,
                    address.channel.as_str(),
                    address.conflict_key()
                ],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(conflicting_id) = existing {
            return Err(Error::AlreadyExists {
                resource: Resource::Participant,
                conflicting_id,
                conflict: Conflict::Address,
            });
        }
    }
    let participant = request.into_participant(&writer.account_sid);
    tx.prepare_cached("INSERT INTO participants (id, conversation_id, body) VALUES (?1, ?2, ?3)")?
        .execute(params![
            participant.id,
            participant.conversation_id,
            serde_json::to_string(&participant)?
        ])?;
    let mut add = tx.prepare_cached(
        "INSERT INTO participant_addresses (conversation_id, channel, address, participant_id)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for address in &participant.addresses {
        add.execute(params![
            participant.conversation_id,
            address.channel.as_str(),
            address.conflict_key(),
            participant.id
        ])?;
    }
    Ok(participant)
}

fn insert_service_participant(
    tx: &Connection,
    writer: &Writer,
    request: NewServiceParticipant,
) -> Result<ServiceParticipant, Error> {
    let binding = request.messaging_binding.clone().unwrap_or_default();
    let existing: Option<(String, bool)> = tx
        .prepare_cached(
            "SELECT sid, identity IS NOT NULL AND identity = ?3 FROM service_participants
             WHERE chat_service_sid = ?1 AND conversation_sid = ?2
               AND (identity = ?3 OR (binding_address = ?4 AND binding_proxy IS ?5))
             LIMIT 1",
        )?
        .query_row(
            params![
                request.chat_service_sid,
                request.conversation_sid,
                request.identity,
                binding.address,
                binding.proxy_address
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((conflicting_id, by_identity)) = existing {
        return Err(Error::AlreadyExists {
            resource: Resource::ServiceParticipant,
            conflicting_id,
            conflict: if by_identity {
                Conflict::Identity
            } else {
                Conflict::Binding
            },
        });
    }
    let participant = request.into_participant(&writer.account_sid);
    tx.prepare_cached(
        "INSERT INTO service_participants
         (sid, chat_service_sid, conversation_sid, identity, binding_address, binding_proxy, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        participant.sid,
        participant.chat_service_sid,
        participant.conversation_sid,
        participant.identity,
        binding.address,
        binding.proxy_address,
        serde_json::to_string(&participant)?
    ])?;
    Ok(participant)
}
