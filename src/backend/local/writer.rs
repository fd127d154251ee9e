//! The writer thread: the only write connection, group commit, idempotency keys and the
//! rows of both API versions. Creates, updates and deletes all go through it: each is
//! applied under its own savepoint, the group is committed once, the fetch caches are
//! brought up to date, and only then is each caller answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use crate::domain::error::{Conflict, Error, Resource};
use crate::domain::{
    Address, CreateRequest, DeleteServiceParticipant, MessagingBinding, NewParticipant,
    NewServiceParticipant, Participant, ParticipantUpdate, ServiceParticipant,
    ServiceParticipantRef, ServiceParticipantUpdate,
};
use crate::observability::metrics::METRICS;

use super::cache::FetchCache;
use super::checkpoint::Checkpointer;
use super::health::StoreHealth;
use super::stored;
use super::{MAX_BATCH, PURGE_EVERY};

/// Where a write's answer goes.
pub(super) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// A write waiting for the writer, with the channel its answer goes back on.
pub(super) enum Write {
    Participant(NewParticipant, Reply<Participant>),
    ServiceParticipant(NewServiceParticipant, Reply<ServiceParticipant>),
    UpdateParticipant(ParticipantUpdate, Reply<Participant>),
    UpdateServiceParticipant(ServiceParticipantUpdate, Reply<ServiceParticipant>),
    DeleteServiceParticipant(DeleteServiceParticipant, Reply<()>),
    /// Finish what is queued before this, checkpoint, close, then answer.
    Close(oneshot::Sender<()>),
    /// Try a small write, to learn whether a failing disk writes again.
    Probe,
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) account_sid: String,
    /// The account the store writes its records under (`stored.rs`).
    pub(super) store_account: Arc<str>,
    pub(super) ttl: Duration,
    pub(super) last_purge: Option<Instant>,
    pub(super) health: Arc<StoreHealth>,
    /// The fetch caches, brought up to date after each commit, before callers hear of it.
    pub(super) participants: Option<Arc<FetchCache<Participant>>>,
    pub(super) service_participants: Option<Arc<FetchCache<ServiceParticipant>>>,
    /// The next `seq` (or conversation number) to give within the group being applied: read from the `sequence`
    /// row when the group's transaction begins, written back once before it commits.
    /// (One `UPDATE ... RETURNING` per create cost the writer a statement and, under each
    /// create's savepoint, a sub-journal copy of the row's page: a quarter fewer durable
    /// creates a second.)
    pub(super) next_seq: std::cell::Cell<i64>,
}

/// Whether a write changed an existing record (which the fetch cache may hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Created,
    Updated,
}

/// What one queued write produced, to be sent once its transaction has committed.
pub(super) enum Outcome {
    Participant(Reply<Participant>, Result<Participant, Error>, Change),
    ServiceParticipant(
        Reply<ServiceParticipant>,
        Result<ServiceParticipant, Error>,
        Change,
    ),
    /// The deleted participant's sid.
    Deleted(Reply<()>, Result<String, Error>),
}

impl Outcome {
    pub(super) fn error(&self) -> Option<&Error> {
        match self {
            Outcome::Participant(_, r, _) => r.as_ref().err(),
            Outcome::ServiceParticipant(_, r, _) => r.as_ref().err(),
            Outcome::Deleted(_, r) => r.as_ref().err(),
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
                if let Err(e) = checkpointer.committed(conn) {
                    tracing::warn!(error = %e, "starting the write-ahead log over failed; will retry");
                    self.health.saw(&e);
                }
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
            let first_seq = read_seq(&tx)?;
            self.next_seq.set(first_seq);
            for write in writes.drain(..) {
                let outcome = match write {
                    Write::Participant(req, reply) => Outcome::Participant(
                        reply,
                        self.apply(&mut tx, req, insert_participant),
                        Change::Created,
                    ),
                    Write::ServiceParticipant(req, reply) => Outcome::ServiceParticipant(
                        reply,
                        self.apply(&mut tx, req, insert_service_participant),
                        Change::Created,
                    ),
                    Write::UpdateParticipant(update, reply) => Outcome::Participant(
                        reply,
                        in_savepoint(&mut tx, |sp| update_participant(sp, self, &update)),
                        Change::Updated,
                    ),
                    Write::UpdateServiceParticipant(update, reply) => Outcome::ServiceParticipant(
                        reply,
                        in_savepoint(&mut tx, |sp| update_service_participant(sp, self, &update)),
                        Change::Updated,
                    ),
                    Write::DeleteServiceParticipant(request, reply) => Outcome::Deleted(
                        reply,
                        in_savepoint(&mut tx, |sp| {
                            delete_service_participant(sp, self, &request.key)
                        }),
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
            // In the same transaction as the rows that took them: a `seq` is never given
            // twice, and one a rolled-back create took is simply skipped.
            if self.next_seq.get() != first_seq {
                tx.prepare_cached("UPDATE sequence SET next = ?1 WHERE id = 1")?
                    .execute(params![self.next_seq.get()])?;
            }
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.health.wrote();
                METRICS.store_group_size.observe(count as f64);
                tracing::debug!(count, "group committed");
                // The caches first, for every write of the group: no caller hears of a
                // change while a fetch could still be served the record before it.
                for outcome in &outcomes {
                    self.refresh_cache(outcome);
                }
                for outcome in outcomes {
                    // A caller that gave up is no reason to stop: its create is durable
                    // and a retry with the same idempotency key will find it.
                    match outcome {
                        Outcome::Participant(reply, r, _) => drop(reply.send(r)),
                        Outcome::ServiceParticipant(reply, r, _) => drop(reply.send(r)),
                        Outcome::Deleted(reply, r) => drop(reply.send(r.map(|_| ()))),
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
                    // Rolled back; the cache entries of changed records are dropped all
                    // the same, in case the commit reached the disk after all.
                    self.forget(&outcome);
                    match outcome {
                        Outcome::Participant(reply, _, _) => drop(reply.send(Err(failed()))),
                        Outcome::ServiceParticipant(reply, _, _) => drop(reply.send(Err(failed()))),
                        Outcome::Deleted(reply, _) => drop(reply.send(Err(failed()))),
                    }
                }
                for write in writes {
                    match write {
                        Write::Participant(_, reply) | Write::UpdateParticipant(_, reply) => {
                            drop(reply.send(Err(failed())))
                        }
                        Write::ServiceParticipant(_, reply)
                        | Write::UpdateServiceParticipant(_, reply) => {
                            drop(reply.send(Err(failed())))
                        }
                        Write::DeleteServiceParticipant(_, reply) => {
                            drop(reply.send(Err(failed())))
                        }
                        Write::Close(_) | Write::Probe => {}
                    }
                }
            }
        }
    }

    /// After a commit: an updated record replaces its cache entry, a deleted one leaves.
    fn refresh_cache(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Participant(_, Ok(p), Change::Updated) => {
                if let Some(cache) = &self.participants {
                    cache.changed(&p.id, p);
                }
            }
            Outcome::ServiceParticipant(_, Ok(p), Change::Updated) => {
                if let Some(cache) = &self.service_participants {
                    cache.changed(&p.sid, p);
                }
            }
            Outcome::Deleted(_, Ok(sid)) => {
                if let Some(cache) = &self.service_participants {
                    cache.removed(sid);
                }
            }
            _ => {}
        }
    }

    /// After a failed commit: drops the entries of the records the group changed.
    fn forget(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Participant(_, Ok(p), Change::Updated) => {
                if let Some(cache) = &self.participants {
                    cache.removed(&p.id);
                }
            }
            Outcome::ServiceParticipant(_, Ok(p), Change::Updated) => {
                if let Some(cache) = &self.service_participants {
                    cache.removed(&p.sid);
                }
            }
            Outcome::Deleted(_, Ok(sid)) => {
                if let Some(cache) = &self.service_participants {
                    cache.removed(sid);
                }
            }
            _ => {}
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
        Req: CreateRequest,
        Res: serde::de::DeserializeOwned + serde::Serialize + Identified,
    {
        let key = request.idempotency_key().map(str::to_owned);
        let fingerprint = request.fingerprint();
        if let Some(key) = &key
            && let Some(existing) = self.replay::<Res>(tx, key, &fingerprint)?
        {
            return Ok(existing);
        }
        let sp = tx.savepoint()?;
        let created = insert(&sp, self, request)?;
        if let Some(key) = key {
            sp.prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys
                 (key, fingerprint, resource_id, created_at, response)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                key,
                fingerprint,
                created.id(),
                Utc::now().timestamp(),
                serde_json::to_string(&created)?
            ])?;
        }
        sp.commit()?;
        Ok(created)
    }

    /// The first answer to a live idempotency key, if the request matches its first use:
    /// the participant as it was created, even if it was updated or deleted since (Twilio:
    /// "Submitting the same key returns the original response").
    pub(super) fn replay<Res: serde::de::DeserializeOwned>(
        &self,
        tx: &Connection,
        key: &str,
        fingerprint: &[u8],
    ) -> Result<Option<Res>, Error> {
        let cutoff = self.cutoff();
        let row: Option<(Vec<u8>, String, Option<String>)> = tx
            .prepare_cached(
                "SELECT fingerprint, resource_id, response FROM idempotency_keys
                 WHERE key = ?1 AND created_at >= ?2",
            )?
            .query_row(params![key, cutoff], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((stored, resource_id, response)) = row else {
            return Ok(None);
        };
        if stored != fingerprint {
            return Err(Error::IdempotencyKeyReused);
        }
        // A key has its answer: written with it, or filled by the migration to version 2
        // from the record (keys of version 1 had none). A version-1 key whose record was
        // already gone then has none: as before version 3, it is not replayed.
        let Some(body) = response else {
            tracing::debug!(
                resource_id,
                "an idempotency key without its answer is not replayed"
            );
            return Ok(None);
        };
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

/// The number of a conversation (`service` is '' for v2), written now, taking the next
/// `seq`, if it has none yet (see `stored.rs`).
fn conversation_number(
    tx: &Connection,
    writer: &Writer,
    service: &str,
    conversation: &str,
) -> Result<i64, Error> {
    stored::conversation_number(tx, service, conversation, || writer.take_seq())
}

/// ALREADY_EXISTS naming the holder when a participant of conversation `conversation`
/// other than `own_id` already has one of `addresses` (Twilio's v2 uniqueness rule).
fn addresses_free(
    tx: &Connection,
    conversation: i64,
    addresses: &[Address],
    own_id: Option<&str>,
) -> Result<(), Error> {
    let mut find = tx.prepare_cached(
        "SELECT participant FROM participant_addresses
         WHERE conversation = ?1 AND channel = ?2 AND address = ?3",
    )?;
    for address in addresses {
        let holder: Option<rusqlite::types::Value> = find
            .query_row(
                params![
                    conversation,
                    address.channel.as_str(),
                    address.conflict_key()
                ],
                |r| r.get(0),
            )
            .optional()?;
        let Some(holder) = holder else { continue };
        let conflicting_id = stored::v2_id((&holder).into())?;
        if Some(conflicting_id.as_str()) != own_id {
            return Err(Error::AlreadyExists {
                resource: Resource::Participant,
                conflicting_id,
                conflict: Conflict::Address,
            });
        }
    }
    Ok(())
}

/// The address rows that make a v2 participant's addresses unique in its conversation
/// (number `conversation`): the rows of `before` (the addresses it held) removed, one row
/// per address it holds now added. Callers check with [`addresses_free`] first.
fn set_address_rows(
    tx: &Connection,
    conversation: i64,
    participant: &Participant,
    before: &[Address],
) -> Result<(), Error> {
    let rows = [
        (
            "DELETE FROM participant_addresses
             WHERE conversation = ?1 AND channel = ?2 AND address = ?3 AND participant = ?4",
            before,
        ),
        (
            "INSERT INTO participant_addresses (conversation, channel, address, participant)
             VALUES (?1, ?2, ?3, ?4)",
            participant.addresses.as_slice(),
        ),
    ];
    let key = stored::v2_key(&participant.id);
    for (sql, addresses) in rows {
        if addresses.is_empty() {
            continue;
        }
        let mut statement = tx.prepare_cached(sql)?;
        for address in addresses {
            statement.execute(params![
                conversation,
                address.channel.as_str(),
                address.conflict_key(),
                key
            ])?;
        }
    }
    Ok(())
}

pub(super) fn insert_participant(
    tx: &Connection,
    writer: &Writer,
    request: NewParticipant,
) -> Result<Participant, Error> {
    let conversation = conversation_number(tx, writer, "", &request.conversation_id)?;
    addresses_free(tx, conversation, &request.addresses, None)?;
    let participant = request.into_participant(&writer.account_sid);
    tx.prepare_cached(
        "INSERT INTO participants (id, conversation, body, seq) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        stored::v2_key(&participant.id),
        conversation,
        stored::v2_body(&participant, &writer.store_account),
        writer.take_seq()
    ])?;
    set_address_rows(tx, conversation, &participant, &[])?;
    Ok(participant)
}

pub(super) fn insert_service_participant(
    tx: &Connection,
    writer: &Writer,
    request: NewServiceParticipant,
) -> Result<ServiceParticipant, Error> {
    let binding = request.messaging_binding.clone().unwrap_or_default();
    let conversation = conversation_number(
        tx,
        writer,
        &request.chat_service_sid,
        &request.conversation_sid,
    )?;
    service_conflict(
        tx,
        conversation,
        request.identity.as_deref(),
        &binding,
        None,
    )?;
    let participant = request.into_participant(&writer.account_sid);
    tx.prepare_cached(
        "INSERT INTO service_participants
         (sid, conversation, identity, binding_address, binding_proxy, body, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        stored::v1_key(&participant.sid),
        conversation,
        participant.identity,
        binding.address,
        binding.proxy_address,
        stored::v1_body(&participant, &writer.store_account),
        writer.take_seq()
    ])?;
    Ok(participant)
}

/// The `sequence` row: the next insertion key, as the last committed group left it.
fn read_seq(tx: &Connection) -> Result<i64, Error> {
    Ok(tx
        .prepare_cached("SELECT next FROM sequence WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
}

impl Writer {
    /// The next insertion key of the group being applied (see [`Writer::next_seq`]).
    fn take_seq(&self) -> i64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        seq
    }
}

/// Runs `f` under its own savepoint: an error rolls back only this write, not the others
/// of its group.
fn in_savepoint<T>(
    tx: &mut Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    let sp = tx.savepoint()?;
    let out = f(&sp)?;
    sp.commit()?;
    Ok(out)
}

/// The v1 participant other than `?3` (a sid key) holding identity `?2` in conversation
/// number `?1`.
pub(super) const IDENTITY_HOLDER: &str = "SELECT sid FROM service_participants
     WHERE conversation = ?1 AND identity = ?2 AND sid IS NOT ?3";
/// The v1 participant other than `?4` holding binding `?2` with proxy `?3` in
/// conversation number `?1`.
pub(super) const BINDING_HOLDER: &str = "SELECT sid FROM service_participants
     WHERE conversation = ?1
       AND binding_address = ?2 AND binding_proxy IS ?3 AND sid IS NOT ?4
     LIMIT 1";

/// ALREADY_EXISTS when another participant of the conversation than `except` has this
/// identity (identity conflict) or this binding address and proxy (binding conflict).
/// One point lookup each, along its index, rather than one query with an `OR` (which
/// SQLite re-prepared on every call, its plan depending on the bound values).
fn service_conflict(
    tx: &Connection,
    conversation: i64,
    identity: Option<&str>,
    binding: &MessagingBinding,
    except: Option<&str>,
) -> Result<(), Error> {
    let except = except.map(stored::v1_key);
    let holder = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<Option<String>, Error> {
        tx.prepare_cached(sql)?
            .query_row(params, |r| r.get::<_, rusqlite::types::Value>(0))
            .optional()?
            .map(|sid| stored::v1_sid((&sid).into()))
            .transpose()
    };
    let conflict = |conflicting_id, conflict| {
        Err(Error::AlreadyExists {
            resource: Resource::ServiceParticipant,
            conflicting_id,
            conflict,
        })
    };
    if let Some(identity) = identity
        && let Some(holder) = holder(IDENTITY_HOLDER, params![conversation, identity, except])?
    {
        return conflict(holder, Conflict::Identity);
    }
    if let Some(address) = &binding.address
        && let Some(holder) = holder(
            BINDING_HOLDER,
            params![conversation, address, binding.proxy_address, except],
        )?
    {
        return conflict(holder, Conflict::Binding);
    }
    Ok(())
}

/// Changes a v2 participant: its body, and its address rows when the addresses change
/// (a new address another participant of the conversation has is ALREADY_EXISTS; the
/// participant's own addresses may stay). `updated_at` moves, at least 1 ms past its last
/// value, so that it tells updates apart even within one millisecond.
pub(super) fn update_participant(
    tx: &Connection,
    writer: &Writer,
    update: &ParticipantUpdate,
) -> Result<Participant, Error> {
    let key = &update.key;
    let row: Option<(i64, Vec<u8>)> = tx
        .prepare_cached(super::PARTICIPANT_BY_ID)?
        .query_row(
            params![stored::v2_key(&key.participant_id), key.conversation_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (conversation, body) = row.ok_or(Error::NotFound {
        resource: Resource::Participant,
    })?;
    let mut participant = stored::v2_participant(
        key.participant_id.clone(),
        key.conversation_id.clone(),
        &body,
        &writer.store_account,
    )?;
    let before = participant.addresses.clone();
    let now = crate::domain::next_updated_at(participant.updated_at);
    update.changes.apply(&mut participant, now);
    if update.changes.addresses.is_some() {
        addresses_free(
            tx,
            conversation,
            &participant.addresses,
            Some(&participant.id),
        )?;
        set_address_rows(tx, conversation, &participant, &before)?;
    }
    tx.prepare_cached("UPDATE participants SET body = ?2 WHERE id = ?1")?
        .execute(params![
            stored::v2_key(&participant.id),
            stored::v2_body(&participant, &writer.store_account)
        ])?;
    Ok(participant)
}

/// The v1 participant `key` names, by sid or else by identity, as fetch resolves it, with
/// its conversation's number.
fn resolve_service_participant(
    tx: &Connection,
    writer: &Writer,
    key: &ServiceParticipantRef,
) -> Result<(ServiceParticipant, i64), Error> {
    let (sid, conversation, body) =
        super::service_participant_row(tx, key)?.ok_or(Error::NotFound {
            resource: Resource::ServiceParticipant,
        })?;
    let place = stored::V1Place {
        sid,
        chat_service_sid: key.chat_service_sid.clone(),
        conversation_sid: key.conversation_sid.clone(),
    };
    Ok((
        stored::v1_participant(place, &body, &writer.store_account)?,
        conversation,
    ))
}

/// Changes a v1 participant: the changes must leave it a valid chat or binding
/// participant (INVALID_ARGUMENT otherwise), and its identity and binding free in the
/// conversation (ALREADY_EXISTS naming the holder otherwise).
pub(super) fn update_service_participant(
    tx: &Connection,
    writer: &Writer,
    update: &ServiceParticipantUpdate,
) -> Result<ServiceParticipant, Error> {
    let (mut participant, conversation) = resolve_service_participant(tx, writer, &update.key)?;
    update.apply(&mut participant, crate::domain::v1_now())?;
    let binding = participant.messaging_binding.clone().unwrap_or_default();
    service_conflict(
        tx,
        conversation,
        participant.identity.as_deref(),
        &binding,
        Some(&participant.sid),
    )?;
    tx.prepare_cached(
        "UPDATE service_participants
         SET identity = ?2, binding_address = ?3, binding_proxy = ?4, body = ?5
         WHERE sid = ?1",
    )?
    .execute(params![
        stored::v1_key(&participant.sid),
        participant.identity,
        binding.address,
        binding.proxy_address,
        stored::v1_body(&participant, &writer.store_account)
    ])?;
    Ok(participant)
}

/// Removes a v1 participant, freeing its identity and binding; returns its sid.
pub(super) fn delete_service_participant(
    tx: &Connection,
    writer: &Writer,
    key: &ServiceParticipantRef,
) -> Result<String, Error> {
    let (participant, _) = resolve_service_participant(tx, writer, key)?;
    tx.prepare_cached("DELETE FROM service_participants WHERE sid = ?1")?
        .execute(params![stored::v1_key(&participant.sid)])?;
    Ok(participant.sid)
}
