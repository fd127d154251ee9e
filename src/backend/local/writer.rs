//! The writer thread: the only write connection, group commit, idempotency keys and the
//! rows of both API versions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use crate::domain::error::{Conflict, Error, Resource};
use crate::domain::{
    CreateRequest, NewParticipant, NewServiceParticipant, Participant, ServiceParticipant,
};
use crate::observability::metrics::METRICS;

use super::checkpoint::Checkpointer;
use super::health::StoreHealth;
use super::{MAX_BATCH, PURGE_EVERY};

/// A create waiting for the writer, with the channel its answer goes back on.
pub(super) enum Write {
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

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) account_sid: String,
    pub(super) ttl: Duration,
    pub(super) last_purge: Option<Instant>,
    pub(super) health: Arc<StoreHealth>,
}

/// What one queued create produced, to be sent once its transaction has committed.
pub(super) enum Outcome {
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
    pub(super) fn error(&self) -> Option<&Error> {
        match self {
            Outcome::Participant(_, r) => r.as_ref().err(),
            Outcome::ServiceParticipant(_, r) => r.as_ref().err(),
        }
    }
}

impl Writer {
    pub(super) fn run(
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
    pub(super) fn probe(&self, conn: &Connection) {
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
    pub(super) fn commit_group(&mut self, conn: &mut Connection, mut writes: Vec<Write>) {
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
    pub(super) fn apply<Req, Res>(
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
    pub(super) fn replay<Res: serde::de::DeserializeOwned>(
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

    pub(super) fn cutoff(&self) -> i64 {
        Utc::now().timestamp() - i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2)
    }

    pub(super) fn purge_expired(&mut self, tx: &Connection) -> Result<(), Error> {
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

pub(super) fn id_column(table: &str) -> &'static str {
    if table == "participants" { "id" } else { "sid" }
}

/// Where a created resource is stored, for idempotent replays.
pub(super) trait Stored {
    const TABLE: &'static str;
}

impl Stored for NewParticipant {
    const TABLE: &'static str = "participants";
}

impl Stored for NewServiceParticipant {
    const TABLE: &'static str = "service_participants";
}

/// A created resource's id, which an idempotency key points to.
pub(super) trait Identified {
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

pub(super) fn insert_participant(
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

pub(super) fn insert_service_participant(
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
