//! The `local` backend: participants in an embedded SQLite database under `--data-dir`.
//!
//! Why SQLite (rusqlite, bundled) rather than redb: its write-ahead log with
//! `synchronous=FULL` has decades of power-loss testing behind it, unique indexes enforce
//! Twilio's conflict rules inside the same transaction that inserts, and the file can be
//! inspected with the `sqlite3` shell when something looks wrong (ids and bodies are
//! binary there: `hex(id)`, see `stored.rs`).
//!
//! Durability and throughput: every write (create, update, delete) goes to one writer
//! thread, which owns the only write connection. It takes whatever writes are queued (up
//! to `MAX_BATCH`), applies each under its own savepoint, and commits them in one
//! transaction: one fsync for the whole group (group commit). A caller is answered only
//! after that commit returned, so an acknowledged write survives `kill -9` and power loss.
//! Fetches and lists run on a small pool of read connections, which WAL lets proceed while
//! the writer commits.
//!
//! Fetched records are kept in a bounded in-memory cache (`--cache-entries`). Records
//! change (updates) and go away (v1 deletes); the writer replaces or drops a record's
//! entry after the commit and before answering, and a fetch that read the row before that
//! commit cannot put its old copy back (see `cache.rs`). This process is the only one
//! using the data directory (see the LOCK file), so nothing else changes rows under it.
//!
//! Lists run oldest first along `seq`, an insertion key the store gives each row once and
//! never reuses, as index range scans; a page token is the last `seq` of the page before,
//! signed for its list (`backend/page_token.rs`), so pages stay exact while participants come and
//! go between them. The schema's version is `PRAGMA user_version`; older stores are
//! brought up to date at open (`migrate.rs`). Rows hold the compact form of `stored.rs`:
//! protobuf bodies, 16-byte ids, conversations by number.
//!
//! Idempotency keys live in the same database, written in the same transaction as the
//! participant they name, with the answer the create gave, so a replay after a crash (or
//! after an update or a delete) finds exactly what was acknowledged.
//!
//! Damage is noticed, not served around: at open, SQLite's `quick_check` runs within a
//! time budget (`--integrity-check-timeout`, skipped with `--skip-integrity-check`); a
//! corrupt file refuses to open, or, when it is too large to check before serving, turns
//! readiness NOT_SERVING once the check, going on while it serves, finds the damage
//! (`integrity.rs`). At run time every SQLite error is classified
//! ([`StoreFault`]); a full disk, a file-size limit or an I/O error turns readiness
//! NOT_SERVING until a write succeeds again (a probe write retries it while no call does),
//! and corruption turns it NOT_SERVING for good. Reads go on being served either way.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

mod cache;
mod checkpoint;
mod fault;
mod health;
mod integrity;
mod migrate;
mod stored;
mod writer;

use crate::backend::observe::record_store;
use crate::backend::{CallContext, ParticipantBackend};
use crate::domain::error::{Error, Resource, StoreFault};
use crate::domain::{
    DeleteServiceParticipant, ListParticipants, ListServiceParticipants, NewParticipant,
    NewServiceParticipant, Page, Participant, ParticipantRef, ParticipantUpdate,
    ServiceParticipant, ServiceParticipantRef, ServiceParticipantUpdate,
};

/// Most writes committed in one transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// Writes waiting for the writer before callers wait to enqueue (back-pressure).
const QUEUE_DEPTH: usize = 4096;
/// Read connections kept open between fetches.
const READ_POOL: usize = 8;
/// How often expired idempotency keys are deleted.
pub(super) const PURGE_EVERY: Duration = Duration::from_secs(60);
const DB_FILE: &str = "participants.db";
const LOCK_FILE: &str = "LOCK";

/// The schema, applied at open (each statement `IF NOT EXISTS`).
const SCHEMA: &str = include_str!("schema.sql");

use crate::backend::page_token::{List, PageTokens};
use cache::FetchCache;
use checkpoint::Checkpointer;
use health::{CANNOT_WRITE, HEALTHY, StoreHealth};
use integrity::check_at_open;
use writer::{Write, Writer};

/// A page of a v2 conversation (`?1`): the keys of the rows after the last `seq` shown,
/// oldest first, from the index `participants_by_conversation` alone (an index of a
/// `WITHOUT ROWID` table holds the primary key).
const LIST_PARTICIPANTS: &str = "SELECT seq, id FROM participants
     WHERE conversation = (SELECT n FROM conversations WHERE service = '' AND id = ?1)
       AND seq > ?2
     ORDER BY seq
     LIMIT ?3";
/// A page of a v1 conversation (`?1`, `?2`), from `service_participants_by_conversation`.
const LIST_SERVICE_PARTICIPANTS: &str = "SELECT seq, sid FROM service_participants
     WHERE conversation = (SELECT n FROM conversations WHERE service = ?1 AND id = ?2)
       AND seq > ?3
     ORDER BY seq
     LIMIT ?4";
/// The body of a listed v2 participant, by id key (`?1`).
const PARTICIPANT_BODY: &str = "SELECT body FROM participants WHERE id = ?1";
/// The body of a listed v1 participant, by sid key (`?1`).
const SERVICE_PARTICIPANT_BODY: &str = "SELECT body FROM service_participants WHERE sid = ?1";
/// A v1 participant by sid key (`?1`) in its conversation: its sid, conversation number
/// and body.
const SERVICE_PARTICIPANT_BY_SID: &str = "SELECT sid, conversation, body FROM service_participants
     WHERE sid = ?1
       AND conversation = (SELECT n FROM conversations WHERE service = ?2 AND id = ?3)";
/// A v1 participant by identity (`?1`) in its conversation.
const SERVICE_PARTICIPANT_BY_IDENTITY: &str =
    "SELECT sid, conversation, body FROM service_participants
     WHERE conversation = (SELECT n FROM conversations WHERE service = ?2 AND id = ?3)
       AND identity = ?1";
/// A v2 participant by id key (`?1`) in its conversation: its conversation number and
/// body.
const PARTICIPANT_BY_ID: &str = "SELECT conversation, body FROM participants
     WHERE id = ?1
       AND conversation = (SELECT n FROM conversations WHERE service = '' AND id = ?2)";

/// The local backend. Cheap to share behind an `Arc`.
pub struct LocalBackend {
    path: PathBuf,
    /// v2 participants already read, by id (kept exact by the writer).
    participants: Option<Arc<FetchCache<Participant>>>,
    /// v1 participants already read, by sid (kept exact by the writer).
    service_participants: Option<Arc<FetchCache<ServiceParticipant>>>,
    /// Issues and checks page tokens, under the store's key.
    tokens: PageTokens,
    /// The account the store writes its records under (`stored.rs`).
    account: Arc<str>,
    writes: mpsc::Sender<Write>,
    readers: Mutex<Vec<Connection>>,
    /// `mmap_size` of each read connection.
    mmap_size: u64,
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
    /// Bytes of records of each API version kept in memory for fetches, at most (0: none;
    /// see `cache.rs`).
    pub cache_bytes: u64,
    /// Bytes of the file each read connection maps into memory (0: none).
    pub mmap_size: u64,
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
            cache_entries: crate::config::DEFAULT_CACHE_ENTRIES,
            cache_bytes: crate::config::DEFAULT_CACHE_BYTES,
            mmap_size: crate::config::DEFAULT_STORE_MMAP_SIZE,
            integrity_check: Some(DEFAULT_INTEGRITY_CHECK_TIMEOUT),
        }
    }
}

/// Default of `--integrity-check-timeout`.
pub const DEFAULT_INTEGRITY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl LocalBackend {
    /// Opens (creating if needed) the store in `data_dir`, recovering from the write-ahead
    /// log after a crash, and starts the writer thread.
    pub fn open(options: &StoreOptions) -> Result<Self, Error> {
        let StoreOptions {
            data_dir,
            account_sid,
            idempotency_ttl,
            cache_entries,
            cache_bytes,
            mmap_size,
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
        // A log the checkpointer restarted is cut back to this size at the next commit.
        conn.pragma_update(None, "journal_size_limit", checkpoint::JOURNAL_SIZE_LIMIT)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        plan_once(&conn)?;
        migrate::migrate(&mut conn, account_sid).map_err(corrupt)?;
        conn.execute_batch(SCHEMA).map_err(|e| corrupt(e.into()))?;
        let account: Arc<str> = migrate::store_account(&conn, account_sid)
            .map_err(corrupt)?
            .into();
        let tokens = PageTokens::new(&migrate::page_token_key(&conn).map_err(corrupt)?)?;
        let health = Arc::new(StoreHealth::default());
        if let Some(budget) = integrity_check {
            check_at_open(&path, *budget, health.clone()).map_err(corrupt)?;
        }
        let checkpointer = Checkpointer::start(&path, health.clone())?;
        let readers = (0..2)
            .map(|_| open_mapped_reader(&path, *mmap_size))
            .collect::<Result<Vec<_>, _>>()?;

        let participants =
            FetchCache::new("participants", *cache_entries, *cache_bytes).map(Arc::new);
        let service_participants =
            FetchCache::new("service_participants", *cache_entries, *cache_bytes).map(Arc::new);
        let (writes, queue) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            account_sid: account_sid.clone(),
            store_account: account.clone(),
            ttl: *idempotency_ttl,
            last_purge: None,
            health: health.clone(),
            participants: participants.clone(),
            service_participants: service_participants.clone(),
            next_seq: std::cell::Cell::new(0),
        };
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(&mut conn, queue, checkpointer))
            .map_err(|e| Error::Internal(format!("cannot start the store writer: {e}")))?;
        Ok(LocalBackend {
            path,
            participants,
            service_participants,
            tokens,
            account,
            writes,
            readers: Mutex::new(readers),
            mmap_size: *mmap_size,
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
            None => open_mapped_reader(&self.path, self.mmap_size)?,
        };
        let result = self.health.check(f(&conn));
        let mut pool = self.readers.lock().map_err(|_| poisoned())?;
        if pool.len() < READ_POOL && !self.closed.load(Ordering::Acquire) {
            pool.push(conn);
        }
        result
    }
}

impl LocalBackend {
    /// One page of `list`: checks the token (before any read), reads the keys of one row
    /// more than the page holds (to know whether another page follows) with `keys(conn,
    /// after_seq, limit)`, and signs the next page's token.
    ///
    /// A record `cache` holds is taken from it (the cache holds the last committed copy,
    /// see `cache.rs`) without reading its row; the others' bodies are read as `body`
    /// says, in the same read transaction as the keys, decoded with `decode(id, body)`,
    /// and fill the cache as a fetch's read would (under a ticket taken before the read).
    fn list<T: Clone + cache::Weigh>(
        &self,
        list: List<'_>,
        page: &crate::domain::PageQuery,
        cache: Option<&FetchCache<T>>,
        keys: impl FnOnce(&Connection, i64, i64) -> Result<Vec<(i64, String)>, Error>,
        body: BodyByKey,
        decode: impl Fn(String, &[u8]) -> Result<T, Error>,
    ) -> Result<Page<T>, Error> {
        let after = match &page.page_token {
            Some(token) => self.tokens.check(list, token)?,
            None => 0,
        };
        let size = usize::try_from(page.page_size).unwrap_or(usize::MAX);
        let limit = i64::from(page.page_size) + 1;
        // Taken before the read: a write committed after it keeps this read's copies out.
        let ticket = cache.map(|cache| cache.ticket());
        let (items, next_seq) = self.read(|conn| {
            // One snapshot for the keys and the bodies read after them.
            let snapshot = conn.unchecked_transaction()?;
            let mut found = keys(&snapshot, after, limit)?;
            let next_seq = if found.len() > size {
                found.truncate(size);
                found.last().map(|(seq, _)| *seq)
            } else {
                None
            };
            let key = body.key;
            let mut body = snapshot.prepare_cached(body.sql)?;
            let items = found
                .into_iter()
                .map(|(_, id)| {
                    if let Some(record) = cache.and_then(|cache| cache.current(&id)) {
                        return Ok(record);
                    }
                    let bytes: Vec<u8> = body.query_row([key(&id)], |row| row.get(0))?;
                    let record = decode(id.clone(), &bytes)?;
                    if let (Some(cache), Some(ticket)) = (cache, ticket) {
                        cache.fill(ticket, &id, &record);
                    }
                    Ok(record)
                })
                .collect::<Result<Vec<T>, Error>>()?;
            drop(body);
            snapshot.finish()?;
            Ok((items, next_seq))
        })?;
        Ok(Page {
            items,
            next_page_token: next_seq.map(|seq| self.tokens.issue(list, seq)),
        })
    }
}

/// How a list reads the body of a record the cache does not hold: `sql`, bound to the
/// stored key of its id (`key(id)`).
struct BodyByKey {
    sql: &'static str,
    key: fn(&str) -> rusqlite::types::Value,
}

/// A row of a list query, `(seq, key)`, as its `seq` and the id the key stands for (read
/// back with `id`; the stored key is that id's key again, see `stored.rs`).
fn listed(
    row: &rusqlite::Row<'_>,
    id: fn(rusqlite::types::ValueRef<'_>) -> Result<String, Error>,
) -> rusqlite::Result<(i64, String)> {
    let seq = row.get(0)?;
    // A damaged key is corruption, as it is on a fetch (`fault.rs` classifies the code).
    let id = id(row.get_ref(1)?).map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(e.to_string()),
        )
    })?;
    Ok((seq, id))
}

/// The v1 participant `key` names, as stored: its sid, conversation number and body. By
/// sid, or else by identity (Twilio accepts either; an identity may itself look like a
/// sid, so the sid is tried first).
///
/// Two point lookups rather than one `sid = ?1 OR identity = ?1` query: SQLite re-prepared
/// that statement on every call (its plan depended on the bound value, through the
/// partial identity index), which made a v1 fetch several times the cost of a v2 one.
fn service_participant_row(
    conn: &Connection,
    key: &ServiceParticipantRef,
) -> Result<Option<(String, i64, Vec<u8>)>, Error> {
    let row = |sql: &str, first: &dyn rusqlite::ToSql| -> Result<_, Error> {
        conn.prepare_cached(sql)?
            .query_row(
                params![first, key.chat_service_sid, key.conversation_sid],
                |row| {
                    Ok((
                        row.get::<_, rusqlite::types::Value>(0)?,
                        row.get(1)?,
                        row.get(2)?,
                    ))
                },
            )
            .optional()?
            .map(|(sid, n, body)| {
                Ok((
                    stored::v1_sid(rusqlite::types::ValueRef::from(&sid))?,
                    n,
                    body,
                ))
            })
            .transpose()
    };
    if let Some(found) = row(SERVICE_PARTICIPANT_BY_SID, &stored::v1_key(&key.sid))? {
        return Ok(Some(found));
    }
    row(SERVICE_PARTICIPANT_BY_IDENTITY, &key.sid)
}

/// Runs a store operation in its span (`db.system.name = sqlite`), timing it.
async fn observed<T>(
    operation: &'static str,
    db_operation: &'static str,
    work: impl std::future::Future<Output = T>,
) -> T {
    crate::backend::observe::observed(SYSTEM, operation, db_operation, work).await
}

fn store_span(operation: &'static str, db_operation: &'static str) -> tracing::Span {
    crate::backend::observe::store_span(SYSTEM, operation, db_operation)
}

/// `db.system.name` of this store's spans.
const SYSTEM: &str = "sqlite";

pub(super) fn closed() -> Error {
    Error::unavailable("the store is closed (the server is shutting down)", None)
}

pub(super) fn poisoned() -> Error {
    Error::Internal("read pool lock poisoned".into())
}

/// A read connection of the pool, mapping up to `mmap_size` bytes of the file.
fn open_mapped_reader(path: &Path, mmap_size: u64) -> Result<Connection, Error> {
    let conn = open_reader(path)?;
    if mmap_size > 0 {
        conn.pragma_update(
            None,
            "mmap_size",
            i64::try_from(mmap_size).unwrap_or(i64::MAX),
        )?;
    }
    Ok(conn)
}

pub(super) fn open_reader(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    plan_once(&conn)?;
    Ok(conn)
}

/// Turns on SQLite's query planner stability guarantee for `conn`: a statement keeps the
/// plan it was prepared with, whatever values are bound to it.
///
/// Without it, the bundled SQLite (built with `SQLITE_ENABLE_STAT4`) marks parameters
/// whose value could change the plan (a `LIMIT ?`, a range bound such as `seq > ?`) and
/// re-prepares the statement, parsing the SQL again, every time a new value is bound: a
/// cached list statement was re-parsed on every page. Our statements are written for one
/// plan each (tests pin them), so nothing is lost.
fn plan_once(conn: &Connection) -> Result<(), Error> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

#[async_trait]
impl ParticipantBackend for LocalBackend {
    async fn list_participants(
        &self,
        _ctx: &CallContext,
        query: ListParticipants,
    ) -> Result<Page<Participant>, Error> {
        let list = List::V2 {
            conversation_id: &query.conversation_id,
        };
        observed("list_participants", "SELECT", async {
            let cache = self.participants.as_deref();
            self.list(
                list,
                &query.page,
                cache,
                |conn, after, limit| {
                    Ok(conn
                        .prepare_cached(LIST_PARTICIPANTS)?
                        .query_map(params![query.conversation_id, after, limit], |row| {
                            listed(row, stored::v2_id)
                        })?
                        .collect::<Result<Vec<_>, _>>()?)
                },
                BodyByKey {
                    sql: PARTICIPANT_BODY,
                    key: stored::v2_key,
                },
                |id, body| {
                    stored::v2_participant(id, query.conversation_id.clone(), body, &self.account)
                },
            )
        })
        .await
    }

    async fn update_participant(
        &self,
        _ctx: &CallContext,
        update: ParticipantUpdate,
    ) -> Result<Participant, Error> {
        observed(
            "update_participant",
            "UPDATE",
            self.write(|tx| Write::UpdateParticipant(update, tx)),
        )
        .await
    }

    async fn list_service_participants(
        &self,
        _ctx: &CallContext,
        query: ListServiceParticipants,
    ) -> Result<Page<ServiceParticipant>, Error> {
        crate::backend::conversation_by_sid(&query.conversation_sid)?;
        let list = List::V1 {
            chat_service_sid: &query.chat_service_sid,
            conversation_sid: &query.conversation_sid,
        };
        observed("list_service_participants", "SELECT", async {
            let cache = self.service_participants.as_deref();
            self.list(
                list,
                &query.page,
                cache,
                |conn, after, limit| {
                    Ok(conn
                        .prepare_cached(LIST_SERVICE_PARTICIPANTS)?
                        .query_map(
                            params![query.chat_service_sid, query.conversation_sid, after, limit],
                            |row| listed(row, stored::v1_sid),
                        )?
                        .collect::<Result<Vec<_>, _>>()?)
                },
                BodyByKey {
                    sql: SERVICE_PARTICIPANT_BODY,
                    key: stored::v1_key,
                },
                |sid, body| {
                    let place = stored::V1Place {
                        sid,
                        chat_service_sid: query.chat_service_sid.clone(),
                        conversation_sid: query.conversation_sid.clone(),
                    };
                    stored::v1_participant(place, body, &self.account)
                },
            )
        })
        .await
    }

    async fn update_service_participant(
        &self,
        _ctx: &CallContext,
        update: ServiceParticipantUpdate,
    ) -> Result<ServiceParticipant, Error> {
        crate::backend::conversation_by_sid(&update.key.conversation_sid)?;
        observed(
            "update_service_participant",
            "UPDATE",
            self.write(|tx| Write::UpdateServiceParticipant(update, tx)),
        )
        .await
    }

    async fn delete_service_participant(
        &self,
        _ctx: &CallContext,
        request: DeleteServiceParticipant,
    ) -> Result<(), Error> {
        crate::backend::conversation_by_sid(&request.key.conversation_sid)?;
        observed(
            "delete_service_participant",
            "DELETE",
            self.write(|tx| Write::DeleteServiceParticipant(request, tx)),
        )
        .await
    }

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
        // Taken before the read: a write committed after it keeps this copy out.
        let ticket = self.participants.as_ref().map(|cache| cache.ticket());
        let found: Option<Participant> = self.read(|conn| {
            conn.prepare_cached(PARTICIPANT_BY_ID)?
                .query_row(
                    params![stored::v2_key(&key.participant_id), key.conversation_id],
                    // Decoded where SQLite holds the body, not copied out first.
                    |row| {
                        Ok(stored::v2_participant(
                            key.participant_id.clone(),
                            key.conversation_id.clone(),
                            row.get_ref(1)?.as_blob()?,
                            &self.account,
                        ))
                    },
                )
                .optional()?
                .transpose()
        })?;
        record_store("fetch_participant", started);
        let participant = found.ok_or_else(not_found)?;
        if let (Some(cache), Some(ticket)) = (&self.participants, ticket) {
            cache.fill(ticket, &participant.id, &participant);
        }
        Ok(participant)
    }

    async fn create_service_participant(
        &self,
        _ctx: &CallContext,
        request: NewServiceParticipant,
    ) -> Result<ServiceParticipant, Error> {
        crate::backend::conversation_by_sid(&request.conversation_sid)?;
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
        crate::backend::conversation_by_sid(&key.conversation_sid)?;
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
        // Taken before the read: a write committed after it keeps this copy out.
        let ticket = self
            .service_participants
            .as_ref()
            .map(|cache| cache.ticket());
        let found: Option<ServiceParticipant> = self.read(|conn| {
            service_participant_row(conn, &key)?
                .map(|(sid, _, body)| {
                    let place = stored::V1Place {
                        sid,
                        chat_service_sid: key.chat_service_sid.clone(),
                        conversation_sid: key.conversation_sid.clone(),
                    };
                    stored::v1_participant(place, &body, &self.account)
                })
                .transpose()
        })?;
        record_store("fetch_service_participant", started);
        let participant = found.ok_or(Error::NotFound {
            resource: Resource::ServiceParticipant,
        })?;
        if let (Some(cache), Some(ticket)) = (&self.service_participants, ticket) {
            cache.fill(ticket, &participant.sid, &participant);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan SQLite chooses for `sql` on the current schema, one line per step.
    fn plan(sql: &str, params: impl rusqlite::Params) -> Vec<String> {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch(SCHEMA).expect("schema");
        plan_once(&conn).expect("fixed plans");
        let mut explain = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        explain
            .query_map(params, |row| row.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows")
    }

    /// `steps` search along `index` and, at most, look the conversation's number up by
    /// its key (the scalar subquery): no scan, no sort.
    fn assert_one_search(sql: &str, steps: &[String], index: &str) {
        assert!(
            steps[0].starts_with("SEARCH") && steps[0].contains(index),
            "{sql}: {steps:?}"
        );
        for step in &steps[1..] {
            assert!(
                step.starts_with("SCALAR SUBQUERY")
                    || step == "SEARCH conversations USING PRIMARY KEY (service=? AND id=?)",
                "{sql}: {steps:?}"
            );
        }
    }

    #[test]
    fn a_page_is_an_index_range_scan_without_a_sort() {
        for (sql, index, steps) in [
            (
                LIST_PARTICIPANTS,
                "participants_by_conversation",
                plan(LIST_PARTICIPANTS, params!["conv_1", 0, 51]),
            ),
            (
                LIST_SERVICE_PARTICIPANTS,
                "service_participants_by_conversation",
                plan(LIST_SERVICE_PARTICIPANTS, params!["IS1", "CH1", 0, 51]),
            ),
        ] {
            assert_one_search(sql, &steps, index);
            assert!(
                steps[0].contains("seq>?"),
                "{sql}: the range is in the index: {steps:?}"
            );
            assert!(
                steps[0].contains("COVERING INDEX"),
                "{sql}: the keys come from the index alone: {steps:?}"
            );
        }
    }

    /// Point lookups use the index their columns name, with plans fixed at prepare time
    /// (the partial v1 indexes too: `identity = ?` implies `identity IS NOT NULL`).
    #[test]
    fn lookups_use_their_indexes() {
        for (sql, index, steps) in [
            (
                SERVICE_PARTICIPANT_BY_IDENTITY,
                "service_participants_by_identity",
                plan(SERVICE_PARTICIPANT_BY_IDENTITY, params!["u", "IS1", "CH1"]),
            ),
            (
                writer::IDENTITY_HOLDER,
                "service_participants_by_identity",
                plan(writer::IDENTITY_HOLDER, params![7, "u", "MB1"]),
            ),
            (
                writer::BINDING_HOLDER,
                "service_participants_by_binding",
                plan(writer::BINDING_HOLDER, params![7, "+1", "+2", "MB1"]),
            ),
            (
                SERVICE_PARTICIPANT_BY_SID,
                "PRIMARY KEY",
                plan(SERVICE_PARTICIPANT_BY_SID, params!["MB1", "IS1", "CH1"]),
            ),
            (
                PARTICIPANT_BY_ID,
                "PRIMARY KEY",
                plan(PARTICIPANT_BY_ID, params!["p1", "conv_1"]),
            ),
            (
                PARTICIPANT_BODY,
                "PRIMARY KEY",
                plan(PARTICIPANT_BODY, params!["p1"]),
            ),
            (
                SERVICE_PARTICIPANT_BODY,
                "PRIMARY KEY",
                plan(SERVICE_PARTICIPANT_BODY, params!["MB1"]),
            ),
        ] {
            assert_one_search(sql, &steps, index);
        }
    }

    /// Binding new values never makes SQLite parse a read statement again (see
    /// [`plan_once`]): each runs three times with other values, on a connection opened as
    /// the pool opens them.
    #[test]
    fn read_statements_are_prepared_once_whatever_is_bound() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(DB_FILE);
        Connection::open(&path)
            .and_then(|conn| conn.execute_batch(SCHEMA))
            .expect("schema");
        let conn = open_reader(&path).expect("reader");
        let reprepares = |sql: &str| {
            conn.prepare_cached(sql)
                .expect("cached")
                .get_status(rusqlite::StatementStatus::RePrepare)
        };
        for round in 0..3_i64 {
            let conversation = format!("conv_{round}");
            let count = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
                conn.prepare_cached(sql)
                    .expect("prepare")
                    .query_map(params, |_| Ok(()))
                    .expect("query")
                    .count()
            };
            count(LIST_PARTICIPANTS, params![conversation, round, 51 + round]);
            count(
                LIST_SERVICE_PARTICIPANTS,
                params!["IS1", conversation, round, 51 + round],
            );
            let key = ServiceParticipantRef {
                chat_service_sid: "IS1".into(),
                conversation_sid: conversation.clone(),
                sid: format!("user-{round}"),
            };
            service_participant_row(&conn, &key).expect("v1 lookup");
            count(
                PARTICIPANT_BY_ID,
                params![format!("p{round}"), conversation],
            );
            count(PARTICIPANT_BODY, params![format!("p{round}")]);
            count(SERVICE_PARTICIPANT_BODY, params![format!("MB{round}")]);
        }
        for sql in [
            LIST_PARTICIPANTS,
            LIST_SERVICE_PARTICIPANTS,
            SERVICE_PARTICIPANT_BY_SID,
            SERVICE_PARTICIPANT_BY_IDENTITY,
            PARTICIPANT_BY_ID,
            PARTICIPANT_BODY,
            SERVICE_PARTICIPANT_BODY,
        ] {
            assert_eq!(reprepares(sql), 0, "{sql}");
        }
    }

    /// A row whose key is neither 16 bytes nor text is damage: a list reports it as a
    /// corrupt store (as a fetch would), not as an internal error.
    #[test]
    fn a_damaged_key_in_a_list_is_corruption() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch(SCHEMA).expect("schema");
        conn.execute_batch(
            "INSERT INTO conversations (service, id, n) VALUES ('', 'conv_1', 1);
             INSERT INTO participants (id, conversation, body, seq) VALUES (x'0102', 1, x'', 2);",
        )
        .expect("a damaged row");
        let err: Error = conn
            .prepare(LIST_PARTICIPANTS)
            .expect("prepare")
            .query_map(params!["conv_1", 0, 51], |row| listed(row, stored::v2_id))
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .map(drop)
            .expect_err("a 2-byte key")
            .into();
        assert!(
            matches!(
                err,
                Error::Store {
                    fault: StoreFault::Corrupt,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
