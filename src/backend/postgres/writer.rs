//! Creates, batched: a busy replica is not one round trip and one commit per call.
//!
//! Callers queue their create; a writer task takes whatever is queued (up to
//! [`MAX_BATCH`]) and runs it in one transaction on one connection: `BEGIN`, one call of
//! `facade_create_participant` or `facade_create_service_participant` per create, sent
//! back to back without waiting for each answer (tokio-postgres pipelines them), then one
//! `COMMIT`. A create that meets a taken key, address, identity or binding inserts nothing
//! and says so (`ON CONFLICT DO NOTHING` in the functions), so a conflict or a replayed
//! key decides that create only and never aborts the group. Callers are answered after
//! the commit returned: an acknowledged create is durable in PostgreSQL.
//!
//! Two writers share the queue, so one group is being committed (waiting for the WAL
//! flush) while the next one is being sent. Conflicts between groups (on another writer
//! or another replica) are decided by the unique constraints: an insert that meets an
//! uncommitted row with the same key waits for that transaction and then fails or goes
//! through, as PostgreSQL decides; nothing here checks before it inserts.
//!
//! If a group fails as a whole for a reason in one create (not the connection), each
//! create is run again alone, so the others are not failed with it.

use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::types::ToSql;

use crate::domain::error::{Conflict, Error, Resource};
use crate::domain::{Participant, ServiceParticipant};
use crate::observability::metrics::METRICS;

use super::errors::{connection_failed, from_db, from_pool};

/// Most creates committed in one transaction.
pub(super) const MAX_BATCH: usize = 128;
/// Writer tasks per replica.
pub(super) const WRITERS: usize = 2;

const CREATE_V2: &str =
    "SELECT outcome, detail, kind FROM facade_create_participant($1, $2, $3, $4, $5, $6, $7, $8)";
const CREATE_V1: &str = "SELECT outcome, detail, kind FROM facade_create_service_participant($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// A created record, as the writer hands it back.
pub(super) enum Created {
    V2(Participant),
    V1(ServiceParticipant),
}

/// One create, ready to be written: the record made by the caller, its JSON, and the
/// idempotency key's fingerprint.
pub(super) struct Create {
    pub(super) key: Option<String>,
    pub(super) fingerprint: Vec<u8>,
    pub(super) body: String,
    pub(super) row: Row,
    pub(super) reply: oneshot::Sender<Result<Created, Error>>,
}

/// The columns a create writes besides the body.
pub(super) enum Row {
    V2 {
        id: String,
        conversation_id: String,
        channels: Vec<String>,
        addresses: Vec<String>,
    },
    V1 {
        sid: String,
        chat_service_sid: String,
        conversation_sid: String,
        identity: Option<String>,
        binding_address: Option<String>,
        binding_proxy: Option<String>,
    },
}

/// The queue the writers share.
pub(super) type Queue = Arc<Mutex<mpsc::Receiver<Create>>>;

/// A writer task: takes groups off the queue until it is closed and empty.
pub(super) async fn run(pool: deadpool_postgres::Pool, queue: Queue, ttl_seconds: i64) {
    loop {
        let group = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut group = vec![first];
            while group.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            group
        };
        commit(&pool, group, ttl_seconds).await;
    }
}

/// Writes `group` in one transaction and answers every caller.
async fn commit(pool: &deadpool_postgres::Pool, group: Vec<Create>, ttl_seconds: i64) {
    let count = group.len();
    match write_group(pool, &group, ttl_seconds).await {
        Ok(outcomes) => {
            METRICS.store_group_size.observe(count as f64);
            for (create, outcome) in group.into_iter().zip(outcomes) {
                let _ = create.reply.send(outcome);
            }
        }
        Err(GroupFailed::OneOf(e)) if count > 1 => {
            tracing::debug!(error = %e, count, "a group failed; writing its creates one by one");
            for create in group {
                Box::pin(commit(pool, vec![create], ttl_seconds)).await;
            }
        }
        Err(failed) => {
            let err = failed.into_error();
            for create in group {
                let _ = create.reply.send(Err(same(&err)));
            }
        }
    }
}

/// Why a group was not written.
enum GroupFailed {
    /// No connection, or it broke: every create of the group fails alike.
    Connection(Error),
    /// A statement failed (the transaction was rolled back): one create's fault, perhaps.
    OneOf(tokio_postgres::Error),
}

impl GroupFailed {
    fn into_error(self) -> Error {
        match self {
            GroupFailed::Connection(e) => e,
            GroupFailed::OneOf(e) => from_db(e),
        }
    }
}

impl From<tokio_postgres::Error> for GroupFailed {
    fn from(e: tokio_postgres::Error) -> Self {
        if connection_failed(&e) {
            GroupFailed::Connection(from_db(e))
        } else {
            GroupFailed::OneOf(e)
        }
    }
}

async fn write_group(
    pool: &deadpool_postgres::Pool,
    group: &[Create],
    ttl_seconds: i64,
) -> Result<Vec<Result<Created, Error>>, GroupFailed> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| GroupFailed::Connection(from_pool(e)))?;
    let v2 = client.prepare_cached(CREATE_V2).await?;
    let v1 = client.prepare_cached(CREATE_V1).await?;
    let tx = client.transaction().await?;
    let calls = group.iter().map(|create| {
        let key = create.key.as_deref();
        let fingerprint = create.fingerprint.as_slice();
        let body = create.body.as_str();
        let (tx, v1, v2) = (&tx, &v1, &v2);
        async move {
            match &create.row {
                Row::V2 {
                    id,
                    conversation_id,
                    channels,
                    addresses,
                } => {
                    let params: [&(dyn ToSql + Sync); 8] = [
                        &key,
                        &fingerprint,
                        &ttl_seconds,
                        id,
                        conversation_id,
                        &body,
                        channels,
                        addresses,
                    ];
                    tx.query_one(v2, &params).await
                }
                Row::V1 {
                    sid,
                    chat_service_sid,
                    conversation_sid,
                    identity,
                    binding_address,
                    binding_proxy,
                } => {
                    let params: [&(dyn ToSql + Sync); 10] = [
                        &key,
                        &fingerprint,
                        &ttl_seconds,
                        sid,
                        chat_service_sid,
                        conversation_sid,
                        identity,
                        binding_address,
                        binding_proxy,
                        &body,
                    ];
                    tx.query_one(v1, &params).await
                }
            }
        }
    });
    let rows = join_all(calls)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    Ok(group
        .iter()
        .zip(rows)
        .map(|(create, row)| outcome(&create.row, row.get(0), row.get(1), row.get(2)))
        .collect())
}

/// What one create's function call answered, as the caller's result.
fn outcome(
    row: &Row,
    outcome: &str,
    detail: Option<String>,
    kind: Option<String>,
) -> Result<Created, Error> {
    let resource = match row {
        Row::V2 { .. } => Resource::Participant,
        Row::V1 { .. } => Resource::ServiceParticipant,
    };
    match (outcome, detail) {
        ("created" | "replay", Some(body)) => Ok(match row {
            Row::V2 { .. } => Created::V2(serde_json::from_str(&body)?),
            Row::V1 { .. } => Created::V1(serde_json::from_str(&body)?),
        }),
        ("reused", _) => Err(Error::IdempotencyKeyReused),
        ("conflict", Some(conflicting_id)) => Err(Error::AlreadyExists {
            resource,
            conflicting_id,
            conflict: match kind.as_deref() {
                Some("identity") => Conflict::Identity,
                Some("binding") => Conflict::Binding,
                _ => Conflict::Address,
            },
        }),
        ("retry", detail) => {
            tracing::warn!(
                detail = detail.as_deref().unwrap_or(""),
                "a create met a concurrent write; the caller may retry"
            );
            Err(Error::unavailable(
                "a concurrent write got in the way of this create; try again",
                Some(std::time::Duration::from_millis(100)),
            ))
        }
        (other, _) => Err(Error::Internal(format!(
            "the create function answered {other:?}"
        ))),
    }
}

/// A copy of a group's error for each of its callers (the domain error is not `Clone`:
/// it may hold an upstream's answer; a group's error is only ever one of these).
fn same(err: &Error) -> Error {
    match err {
        Error::Unavailable {
            message,
            retry_after,
        } => Error::unavailable(message.clone(), *retry_after),
        Error::Internal(detail) => Error::Internal(detail.clone()),
        other => Error::Internal(other.to_string()),
    }
}
