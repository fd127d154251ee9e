//! The `local` backend on a shared store: participants and idempotency keys in a
//! PostgreSQL database (`--database-url`), so that several replicas serve one data set.
//!
//! Why tokio-postgres with deadpool-postgres (not sqlx): the store needs pipelining (a
//! writer sends a group's creates back to back on one connection and commits once, see
//! `writer.rs`), which tokio-postgres does by itself whenever several queries of one
//! client are polled together; its errors carry the SQLSTATE the store maps to UNAVAILABLE
//! or INTERNAL; and it compiles no query macros against a live database. deadpool is the
//! small, well-kept pool made for it. Migrations are refinery's (`schema.rs`).
//!
//! What decides between replicas is the database, never a check in this process:
//! - conflicts (an address, identity or binding taken) are unique indexes; an insert that
//!   meets one inserts nothing (`ON CONFLICT DO NOTHING`, after waiting for a holder still
//!   in flight) and the holder is read back (`migrations/`);
//! - an idempotency key is the primary key of `idempotency_keys`, inserted in the same
//!   transaction as the participant it names; a second replica's insert of the same key
//!   waits for the first transaction, then replays its answer (or is told the key was
//!   used for another request);
//! - an update reads its row `FOR UPDATE` in its transaction, so two updates of one
//!   participant are applied one after the other, whichever replicas run them.
//!   READ COMMITTED suffices: every decision is a constraint or a row lock, none a read
//!   followed by a write that another transaction could invalidate.
//!
//! There is no fetch cache here: another replica may change or delete a record at any
//! time, and a cache would have to hear of it. Every fetch reads the database.
//!
//! Lists run along `seq` (an identity column) as index range scans, and page tokens are
//! the embedded store's (`backend/page_token.rs`), signed with a key kept in the database
//! so every replica accepts every other's tokens. A participant whose create is still
//! being committed while a page is read can have a `seq` below that page's last one, and
//! is then not on the later pages of that listing; every participant that existed before
//! the listing began, and every one created after a page was answered, is listed exactly
//! once (a create that starts after a page was read takes a higher `seq`).
//!
//! Readiness follows the database: a probe every second (`SELECT 1` on a pooled
//! connection, bounded by the connect timeout). While the database is unreachable calls
//! fail UNAVAILABLE with RetryInfo (`errors.rs`), and the pool reconnects by itself.

mod errors;
pub(crate) mod keys;
mod schema;
mod tls;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};

use crate::backend::observe::observed;
use crate::backend::page_token::{KEY_BYTES, List, PageTokens};
use crate::backend::{CallContext, ParticipantBackend, conversation_by_sid};
use crate::domain::error::{Conflict, Error, Resource};
use crate::domain::{
    CreateRequest, DeleteServiceParticipant, ListParticipants, ListServiceParticipants,
    NewParticipant, NewServiceParticipant, Page, PageQuery, Participant, ParticipantRef,
    ParticipantUpdate, ServiceParticipant, ServiceParticipantRef, ServiceParticipantUpdate,
};
use errors::{from_db, from_pool};
use writer::{Create, Created, Row};

/// `db.system.name` of this store's spans.
const SYSTEM: &str = "postgresql";
/// Creates waiting for a writer before callers wait to enqueue (back-pressure).
const QUEUE_DEPTH: usize = 4096;
/// How often readiness asks the database.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How often expired idempotency keys are deleted (by every replica; deleting what
/// another replica already deleted costs nothing).
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Longest wait at close for the writers to finish what is queued.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// How to reach the database, and what the store needs besides.
#[derive(Clone)]
pub struct PgOptions {
    /// The connection URL, password included (never logged).
    pub url: String,
    /// The same URL with its password replaced, for messages.
    pub redacted_url: String,
    /// The account id written into every record (local backend).
    pub account_sid: String,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl: Duration,
    /// Connections kept to the database.
    pub pool_size: usize,
    /// Longest wait for a new connection.
    pub connect_timeout: Duration,
    /// PEM CA certificates the database's TLS certificate may be signed by, besides the
    /// public roots (`--database-ca`).
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &self.redacted_url)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// A connected, migrated database: the pool, and readiness that follows it. Shared by
/// the local backend's store ([`PgBackend`]) and the twilio backend's idempotency keys
/// ([`keys::SharedKeys`]).
pub(crate) struct Database {
    pool: Pool,
    ready: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    ttl_seconds: i64,
}

impl Database {
    /// Connects (bounded by the connect timeout), migrates the schema under the advisory
    /// lock, and starts the readiness probe. A refusal says what failed, with the URL
    /// redacted.
    pub(crate) async fn connect(options: &PgOptions) -> Result<Database, Error> {
        let refused = |what: &str, e: &dyn std::error::Error| {
            Error::Internal(format!("{what} {}: {}", options.redacted_url, chain(e)))
        };
        let mut config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|e| refused("the database URL is not valid:", &e))?;
        config
            .connect_timeout(options.connect_timeout)
            .application_name("participants-facade")
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        let tls = tls::connector(options.ca_file.as_deref())?;
        let (mut client, connection) =
            tokio::time::timeout(options.connect_timeout, config.connect(tls.clone()))
                .await
                .map_err(|_| {
                    Error::Internal(format!(
                        "cannot reach the database at {}: no connection within {:?}",
                        options.redacted_url, options.connect_timeout
                    ))
                })?
                .map_err(|e| refused("cannot reach the database at", &e))?;
        let connection = tokio::spawn(connection);
        let version = schema::migrate(&mut client).await?;
        drop(client);
        let _ = connection.await;
        tracing::info!(database = %options.redacted_url, schema_version = version, "shared store (PostgreSQL) ready");

        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the connection pool: {e}")))?;
        let database = Database {
            pool,
            ready: Arc::new(AtomicBool::new(true)),
            closed: Arc::new(AtomicBool::new(false)),
            ttl_seconds: i64::try_from(options.idempotency_ttl.as_secs()).unwrap_or(i64::MAX / 2),
        };
        tokio::spawn(probe(
            database.pool.clone(),
            database.ready.clone(),
            database.closed.clone(),
            options.connect_timeout,
        ));
        tokio::spawn(purge(
            database.pool.clone(),
            database.closed.clone(),
            database.ttl_seconds,
        ));
        Ok(database)
    }

    /// A pooled connection; UNAVAILABLE when none comes within the connect timeout.
    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        self.pool.get().await.map_err(from_pool)
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.closed.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.pool.close();
    }
}

/// An error and its sources on one line (`a: b: c`): the driver's own words say little
/// ("error performing TLS handshake") without the cause beneath them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Readiness: `SELECT 1` every [`PROBE_EVERY`], bounded by `timeout`.
async fn probe(pool: Pool, ready: Arc<AtomicBool>, closed: Arc<AtomicBool>, timeout: Duration) {
    while !closed.load(Ordering::Acquire) {
        let answered = tokio::time::timeout(timeout, async {
            let client = pool.get().await.ok()?;
            client.simple_query("SELECT 1").await.ok()
        })
        .await
        .ok()
        .flatten()
        .is_some();
        let was = ready.swap(answered, Ordering::AcqRel);
        if was != answered {
            if answered {
                tracing::info!("the database answers again: ready");
            } else {
                tracing::warn!("the database does not answer: not ready");
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// Deletes expired idempotency keys every [`PURGE_EVERY`].
async fn purge(pool: Pool, closed: Arc<AtomicBool>, ttl_seconds: i64) {
    while !closed.load(Ordering::Acquire) {
        if let Ok(client) = pool.get().await {
            match client
                .execute(
                    "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
                    &[&(ttl_seconds as f64)],
                )
                .await
            {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "expired idempotency keys deleted"),
                Err(e) => tracing::debug!(error = %e, "purging idempotency keys failed"),
            }
        }
        tokio::time::sleep(PURGE_EVERY).await;
    }
}

pub(super) fn closed() -> Error {
    Error::unavailable("the store is closed (the server is shutting down)", None)
}

/// The local backend on PostgreSQL. Cheap to share behind an `Arc`.
pub struct PgBackend {
    database: Database,
    account_sid: String,
    tokens: PageTokens,
    /// To the writers; taken by `close`, which lets them finish what is queued and stop.
    writes: std::sync::Mutex<Option<mpsc::Sender<Create>>>,
    writers: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

const LIST_PARTICIPANTS: &str = "SELECT seq, body FROM participants
     WHERE conversation_id = $1 AND seq > $2
     ORDER BY seq
     LIMIT $3";
const LIST_SERVICE_PARTICIPANTS: &str = "SELECT seq, body FROM service_participants
     WHERE chat_service_sid = $1 AND conversation_sid = $2 AND seq > $3
     ORDER BY seq
     LIMIT $4";
/// `$column` of the v1 participant a key names (`$1` sid or identity, `$2` chat service,
/// `$3` conversation): by sid, or else by identity (an identity may look like a sid, so
/// both are tried, the sid first), as fetch resolves it.
macro_rules! resolve_service_participant {
    ($column:literal) => {
        concat!(
            "SELECT ",
            $column,
            " FROM service_participants
             WHERE chat_service_sid = $2 AND conversation_sid = $3 AND (sid = $1 OR identity = $1)
             ORDER BY sid = $1 DESC
             LIMIT 1"
        )
    };
}
const RESOLVE_SERVICE_PARTICIPANT: &str = resolve_service_participant!("body");
/// The same row, locked for an update.
const LOCK_SERVICE_PARTICIPANT: &str = concat!(resolve_service_participant!("body"), " FOR UPDATE");
const DELETE_SERVICE_PARTICIPANT: &str = concat!(
    "DELETE FROM service_participants WHERE sid = (",
    resolve_service_participant!("sid"),
    ") RETURNING sid"
);

impl PgBackend {
    /// Connects, migrates, and starts the writers.
    pub async fn open(options: &PgOptions) -> Result<PgBackend, Error> {
        let database = Database::connect(options).await?;
        let tokens = PageTokens::new(&store_key::<KEY_BYTES>(&database, "page_token").await?)?;
        let (writes, queue) = mpsc::channel(QUEUE_DEPTH);
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let writers = (0..writer::WRITERS)
            .map(|_| {
                tokio::spawn(writer::run(
                    database.pool.clone(),
                    queue.clone(),
                    database.ttl_seconds,
                ))
            })
            .collect();
        Ok(PgBackend {
            database,
            account_sid: options.account_sid.clone(),
            tokens,
            writes: std::sync::Mutex::new(Some(writes)),
            writers: tokio::sync::Mutex::new(writers),
        })
    }

    async fn create(
        &self,
        key: Option<String>,
        fingerprint: Vec<u8>,
        body: String,
        row: Row,
    ) -> Result<Created, Error> {
        let sender = self
            .writes
            .lock()
            .map_err(|_| Error::Internal("writer lock poisoned".into()))?
            .clone()
            .ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Create {
                key,
                fingerprint,
                body,
                row,
                reply,
            })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// The record in the `body` of the one row `sql` finds (a prepared statement);
    /// NOT_FOUND as `resource` when there is none.
    async fn fetch<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        resource: Resource,
    ) -> Result<T, Error> {
        let client = self.database.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(from_db)?;
        let row = client
            .query_opt(&statement, params)
            .await
            .map_err(from_db)?
            .ok_or(Error::NotFound { resource })?;
        Ok(serde_json::from_str(row.get(0))?)
    }

    /// One page of `list`: checks the token before any read, reads one row more than the
    /// page holds (to know whether another page follows), and signs the next page's token.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        list: List<'_>,
        page: &PageQuery,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Page<T>, Error> {
        let after = match &page.page_token {
            Some(token) => self.tokens.check(list, token)?,
            None => 0,
        };
        let size = usize::try_from(page.page_size).unwrap_or(usize::MAX);
        let limit = i64::from(page.page_size) + 1;
        let client = self.database.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(from_db)?;
        let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.to_vec();
        all.push(&after);
        all.push(&limit);
        let mut rows = client.query(&statement, &all).await.map_err(from_db)?;
        let next_page_token = if rows.len() > size {
            rows.truncate(size);
            rows.last().map(|row| self.tokens.issue(list, row.get(0)))
        } else {
            None
        };
        let items = rows
            .iter()
            .map(|row| Ok(serde_json::from_str(row.get(1))?))
            .collect::<Result<Vec<T>, Error>>()?;
        Ok(Page {
            items,
            next_page_token,
        })
    }
}

/// The store key `name` (see `store_keys` in the schema): made by the first replica that
/// needs it, read by every other.
async fn store_key<const N: usize>(database: &Database, name: &str) -> Result<[u8; N], Error> {
    let client = database.client().await?;
    let fresh: [u8; N] = std::array::from_fn(|_| rand::random());
    client
        .execute(
            "INSERT INTO store_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &fresh.as_slice()],
        )
        .await
        .map_err(from_db)?;
    let key: Vec<u8> = client
        .query_one("SELECT key FROM store_keys WHERE name = $1", &[&name])
        .await
        .map_err(from_db)?
        .get(0);
    key.try_into().map_err(|_| {
        Error::Internal(format!(
            "the store key {name:?} in the database is not {N} bytes"
        ))
    })
}

/// A v2 participant's address rows' keys: channels and addresses (as conflicts compare
/// them), side by side.
fn address_keys(participant: &Participant) -> (Vec<String>, Vec<String>) {
    participant
        .addresses
        .iter()
        .map(|a| (a.channel.as_str().to_owned(), a.conflict_key()))
        .unzip()
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// A concurrent change took a conflicting value and let it go again before its holder
/// could be read: the caller may simply retry.
fn raced() -> Error {
    Error::unavailable(
        "a concurrent write got in the way of this change; try again",
        Some(Duration::from_millis(100)),
    )
}

#[async_trait]
impl ParticipantBackend for PgBackend {
    async fn create_participant(
        &self,
        _ctx: &CallContext,
        request: NewParticipant,
    ) -> Result<Participant, Error> {
        observed(SYSTEM, "create_participant", "INSERT", async {
            let key = request.idempotency_key().map(str::to_owned);
            // Only a key needs it (a hash of the whole request).
            let fingerprint = key
                .as_ref()
                .map(|_| request.fingerprint())
                .unwrap_or_default();
            let participant = request.into_participant(&self.account_sid);
            let (channels, addresses) = address_keys(&participant);
            let row = Row::V2 {
                id: participant.id.clone(),
                conversation_id: participant.conversation_id.clone(),
                channels,
                addresses,
            };
            let body = serde_json::to_string(&participant)?;
            match self.create(key, fingerprint, body, row).await? {
                Created::V2(p) => Ok(p),
                Created::V1(_) => Err(Error::IdempotencyKeyReused),
            }
        })
        .await
    }

    async fn fetch_participant(
        &self,
        _ctx: &CallContext,
        key: ParticipantRef,
    ) -> Result<Participant, Error> {
        observed(SYSTEM, "fetch_participant", "SELECT", async {
            self.fetch(
                "SELECT body FROM participants WHERE id = $1 AND conversation_id = $2",
                &[&key.participant_id, &key.conversation_id],
                Resource::Participant,
            )
            .await
        })
        .await
    }

    async fn create_service_participant(
        &self,
        _ctx: &CallContext,
        request: NewServiceParticipant,
    ) -> Result<ServiceParticipant, Error> {
        conversation_by_sid(&request.conversation_sid)?;
        observed(SYSTEM, "create_service_participant", "INSERT", async {
            let key = request.idempotency_key().map(str::to_owned);
            // Only a key needs it (a hash of the whole request).
            let fingerprint = key
                .as_ref()
                .map(|_| request.fingerprint())
                .unwrap_or_default();
            let participant = request.into_participant(&self.account_sid);
            let binding = participant.messaging_binding.clone().unwrap_or_default();
            let row = Row::V1 {
                sid: participant.sid.clone(),
                chat_service_sid: participant.chat_service_sid.clone(),
                conversation_sid: participant.conversation_sid.clone(),
                identity: participant.identity.clone(),
                binding_address: binding.address,
                binding_proxy: binding.proxy_address,
            };
            let body = serde_json::to_string(&participant)?;
            match self.create(key, fingerprint, body, row).await? {
                Created::V1(p) => Ok(p),
                Created::V2(_) => Err(Error::IdempotencyKeyReused),
            }
        })
        .await
    }

    async fn fetch_service_participant(
        &self,
        _ctx: &CallContext,
        key: ServiceParticipantRef,
    ) -> Result<ServiceParticipant, Error> {
        conversation_by_sid(&key.conversation_sid)?;
        observed(SYSTEM, "fetch_service_participant", "SELECT", async {
            self.fetch(
                RESOLVE_SERVICE_PARTICIPANT,
                &[&key.sid, &key.chat_service_sid, &key.conversation_sid],
                Resource::ServiceParticipant,
            )
            .await
        })
        .await
    }

    async fn list_participants(
        &self,
        _ctx: &CallContext,
        query: ListParticipants,
    ) -> Result<Page<Participant>, Error> {
        let list = List::V2 {
            conversation_id: &query.conversation_id,
        };
        observed(
            SYSTEM,
            "list_participants",
            "SELECT",
            self.list(
                list,
                &query.page,
                LIST_PARTICIPANTS,
                &[&query.conversation_id],
            ),
        )
        .await
    }

    async fn update_participant(
        &self,
        _ctx: &CallContext,
        update: ParticipantUpdate,
    ) -> Result<Participant, Error> {
        observed(SYSTEM, "update_participant", "UPDATE", async {
            let key = &update.key;
            let mut client = self.database.client().await?;
            let tx = client.transaction().await.map_err(from_db)?;
            let row = query_opt(
                    &tx,
                    "SELECT body FROM participants WHERE id = $1 AND conversation_id = $2 FOR UPDATE",
                    &[&key.participant_id, &key.conversation_id],
                )
                .await
                .map_err(from_db)?
                .ok_or(Error::NotFound {
                    resource: Resource::Participant,
                })?;
            let mut participant: Participant = serde_json::from_str(row.get(0))?;
            let (old_channels, old_addresses) = address_keys(&participant);
            let now = crate::domain::next_updated_at(participant.updated_at);
            update.changes.apply(&mut participant, now);
            let (channels, addresses) = address_keys(&participant);
            if update.changes.addresses.is_some() {
                let moved = async {
                    // The rows it held, by their keys (no index on the holder).
                    execute(
                        &tx,
                        "DELETE FROM participant_addresses a
                          USING unnest($3::text[], $4::text[]) AS t (channel, address)
                          WHERE a.conversation_id = $1 AND a.channel = t.channel
                            AND a.address = t.address AND a.participant_id = $2",
                        &[&participant.conversation_id, &participant.id, &old_channels, &old_addresses],
                    )
                    .await?;
                    execute(
                        &tx,
                        "INSERT INTO participant_addresses (conversation_id, channel, address, participant_id)
                         SELECT $1, t.channel, t.address, $2
                           FROM unnest($3::text[], $4::text[]) AS t (channel, address)",
                        &[&participant.conversation_id, &participant.id, &channels, &addresses],
                    )
                    .await
                }
                .await;
                match moved {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        drop(tx);
                        let holder = client
                            .query_opt(
                                "SELECT a.participant_id FROM participant_addresses a
                                   JOIN unnest($2::text[], $3::text[]) AS t (channel, address)
                                     ON a.conversation_id = $1 AND a.channel = t.channel
                                    AND a.address = t.address
                                  WHERE a.participant_id <> $4
                                  LIMIT 1",
                                &[&participant.conversation_id, &channels, &addresses, &participant.id],
                            )
                            .await
                            .map_err(from_db)?;
                        return Err(match holder {
                            Some(row) => Error::AlreadyExists {
                                resource: Resource::Participant,
                                conflicting_id: row.get(0),
                                conflict: Conflict::Address,
                            },
                            None => raced(),
                        });
                    }
                    Err(e) => return Err(from_db(e)),
                }
            }
            execute(
                &tx,
                "UPDATE participants SET body = $2 WHERE id = $1",
                &[&participant.id, &serde_json::to_string(&participant)?],
            )
            .await
            .map_err(from_db)?;
            tx.commit().await.map_err(from_db)?;
            Ok(participant)
        })
        .await
    }

    async fn list_service_participants(
        &self,
        _ctx: &CallContext,
        query: ListServiceParticipants,
    ) -> Result<Page<ServiceParticipant>, Error> {
        conversation_by_sid(&query.conversation_sid)?;
        let list = List::V1 {
            chat_service_sid: &query.chat_service_sid,
            conversation_sid: &query.conversation_sid,
        };
        observed(
            SYSTEM,
            "list_service_participants",
            "SELECT",
            self.list(
                list,
                &query.page,
                LIST_SERVICE_PARTICIPANTS,
                &[&query.chat_service_sid, &query.conversation_sid],
            ),
        )
        .await
    }

    async fn update_service_participant(
        &self,
        _ctx: &CallContext,
        update: ServiceParticipantUpdate,
    ) -> Result<ServiceParticipant, Error> {
        conversation_by_sid(&update.key.conversation_sid)?;
        observed(SYSTEM, "update_service_participant", "UPDATE", async {
            let key = &update.key;
            let mut client = self.database.client().await?;
            let tx = client.transaction().await.map_err(from_db)?;
            let row = query_opt(
                &tx,
                LOCK_SERVICE_PARTICIPANT,
                &[&key.sid, &key.chat_service_sid, &key.conversation_sid],
            )
            .await
            .map_err(from_db)?
            .ok_or(Error::NotFound {
                resource: Resource::ServiceParticipant,
            })?;
            let mut participant: ServiceParticipant = serde_json::from_str(row.get(0))?;
            update.apply(&mut participant, crate::domain::v1_now())?;
            let binding = participant.messaging_binding.clone().unwrap_or_default();
            let written = execute(
                &tx,
                "UPDATE service_participants
                     SET identity = $2, binding_address = $3, binding_proxy = $4, body = $5
                     WHERE sid = $1",
                &[
                    &participant.sid,
                    &participant.identity,
                    &binding.address,
                    &binding.proxy_address,
                    &serde_json::to_string(&participant)?,
                ],
            )
            .await;
            match written {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    drop(tx);
                    return Err(service_conflict(&client, &participant)
                        .await?
                        .unwrap_or_else(raced));
                }
                Err(e) => return Err(from_db(e)),
            }
            tx.commit().await.map_err(from_db)?;
            Ok(participant)
        })
        .await
    }

    async fn delete_service_participant(
        &self,
        _ctx: &CallContext,
        request: DeleteServiceParticipant,
    ) -> Result<(), Error> {
        conversation_by_sid(&request.key.conversation_sid)?;
        observed(SYSTEM, "delete_service_participant", "DELETE", async {
            let key = &request.key;
            let client = self.database.client().await?;
            let statement = client
                .prepare_cached(DELETE_SERVICE_PARTICIPANT)
                .await
                .map_err(from_db)?;
            client
                .query_opt(
                    &statement,
                    &[&key.sid, &key.chat_service_sid, &key.conversation_sid],
                )
                .await
                .map_err(from_db)?
                .map(|_| ())
                .ok_or(Error::NotFound {
                    resource: Resource::ServiceParticipant,
                })
        })
        .await
    }

    fn ready(&self) -> bool {
        self.database.ready()
    }

    async fn close(&self) {
        // The writers finish what is queued, then stop; then the pool closes.
        if let Ok(mut writes) = self.writes.lock() {
            writes.take();
        }
        // Bounded: a writer waiting out an unreachable database gives up after the
        // connect timeout per group; past this, the queued callers are answered UNAVAILABLE
        // as the tasks are dropped.
        for writer in self.writers.lock().await.drain(..) {
            let abort = writer.abort_handle();
            if tokio::time::timeout(CLOSE_WAIT, writer).await.is_err() {
                tracing::warn!("a store writer did not finish in time; its queue is dropped");
                abort.abort();
            }
        }
        self.database.close();
        tracing::info!("store closed");
    }
}

/// Runs `sql` as a statement prepared once per connection: one round trip a call, not a
/// parse and an execute.
async fn execute(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.execute(&statement, params).await
}

/// As [`execute`], for a query of at most one row.
async fn query_opt(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query_opt(&statement, params).await
}

/// After a unique violation: who holds `participant`'s identity or binding (ALREADY_EXISTS
/// naming them), or `None` if the holder has gone already.
async fn service_conflict(
    client: &tokio_postgres::Client,
    participant: &ServiceParticipant,
) -> Result<Option<Error>, Error> {
    let binding = participant.messaging_binding.clone().unwrap_or_default();
    let row = client
        .query_opt(
            "SELECT sid, identity IS NOT NULL AND identity = $3 FROM service_participants
             WHERE chat_service_sid = $1 AND conversation_sid = $2
               AND (identity = $3
                    OR (binding_address = $4 AND coalesce(binding_proxy, '') = coalesce($5, '')))
               AND sid <> $6
             ORDER BY 2 DESC
             LIMIT 1",
            &[
                &participant.chat_service_sid,
                &participant.conversation_sid,
                &participant.identity,
                &binding.address,
                &binding.proxy_address,
                &participant.sid,
            ],
        )
        .await
        .map_err(from_db)?;
    Ok(row.map(|row| Error::AlreadyExists {
        resource: Resource::ServiceParticipant,
        conflicting_id: row.get(0),
        conflict: if row.get(1) {
            Conflict::Identity
        } else {
            Conflict::Binding
        },
    }))
}
