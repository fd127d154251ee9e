//! The schema's versions (`PRAGMA user_version`), and bringing a store written by an
//! earlier version to the current one at open, in one transaction.
//!
//! - 1: participants, addresses, v1 participants, idempotency keys, the probe row.
//! - 2: the lifecycle (list, update, delete). Each participant row gets `seq`, its
//!   insertion key (lists run along it); existing rows are numbered oldest first by the
//!   creation time in their body (v2 `created_at`, v1 `date_created`), ties by id. A
//!   `sequence` row hands out the next `seq`; idempotency keys keep their first
//!   `response`, filled from the record (which could not change before version 2); the
//!   page-token key is made.
//! - 3: the compact stored form (`stored.rs`): protobuf bodies without what the key
//!   columns say, canonical ids as 16 bytes, conversations by number, the store's account
//!   once. Rows are rewritten in Rust (the bodies were JSON), in the same transaction, and
//!   keep their `seq`; conversation numbers continue the `sequence`.

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::error::Error;
use crate::domain::{Participant, ServiceParticipant};

use super::stored;

use crate::backend::page_token::KEY_BYTES;

/// The version this build writes (`PRAGMA user_version` in `schema.sql`).
pub(super) const SCHEMA_VERSION: i64 = 3;

/// Brings the store to [`SCHEMA_VERSION`] where it is older; run before `schema.sql`
/// (whose new indexes need the new columns). A store written by a newer version is
/// refused rather than written to. `account_sid`: the account of a store that has none
/// yet (see [`store_account`]).
pub(super) fn migrate(conn: &mut Connection, account_sid: &str) -> Result<(), Error> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::Internal(format!(
            "the store was written by a newer participants-facade (schema version {version}; \
             this build knows up to {SCHEMA_VERSION}); run that version, or restore a backup"
        )));
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Version 1 stores are recognised by their table without `seq` (a new store has no
    // table yet, and `schema.sql` makes it whole).
    let exists = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'participants'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if exists && !has_column(&tx, "participants", "seq")? {
        tracing::info!(from = version, to = 2, "migrating the store");
        tx.execute_batch(V1_TO_V2)?;
    }
    // Version 2 is recognised by its text conversation column.
    if exists && has_column(&tx, "participants", "conversation_id")? {
        tracing::info!(
            to = SCHEMA_VERSION,
            "migrating the store to the compact form"
        );
        let started = std::time::Instant::now();
        let rows = v2_to_v3(&tx, account_sid)?;
        tracing::info!(
            rows,
            elapsed_ms = started.elapsed().as_millis(),
            "store migrated"
        );
    }
    tx.commit()?;
    Ok(())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, Error> {
    let found = conn
        .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .query_row(params![table, column], |_| Ok(()))
        .optional()?;
    Ok(found.is_some())
}

/// Version 1 to 2. `julianday` reads the RFC 3339 times of the bodies (with or without
/// fractional seconds), which do not sort as text.
const V1_TO_V2: &str = "
ALTER TABLE participants ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE service_participants ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idempotency_keys ADD COLUMN response TEXT;
UPDATE participants SET seq = o.n
FROM (SELECT id, row_number() OVER (
          ORDER BY julianday(json_extract(body, '$.created_at')), id) AS n
      FROM participants) AS o
WHERE o.id = participants.id;
UPDATE service_participants SET seq = o.n + (SELECT count(*) FROM participants)
FROM (SELECT sid, row_number() OVER (
          ORDER BY julianday(json_extract(body, '$.date_created')), sid) AS n
      FROM service_participants) AS o
WHERE o.sid = service_participants.sid;
UPDATE idempotency_keys SET response = coalesce(
    (SELECT body FROM participants WHERE id = resource_id),
    (SELECT body FROM service_participants WHERE sid = resource_id));
CREATE TABLE sequence (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    next INTEGER NOT NULL
);
INSERT INTO sequence (id, next) VALUES (1,
    1 + (SELECT count(*) FROM participants) + (SELECT count(*) FROM service_participants));
PRAGMA user_version = 2;
";

/// Version 2 to 3: the version-2 tables are renamed aside, the schema made, every row
/// rewritten in the compact form, and the old tables dropped. Returns the rows rewritten.
fn v2_to_v3(tx: &Connection, account_sid: &str) -> Result<u64, Error> {
    tx.execute_batch(
        "DROP INDEX IF EXISTS participants_by_conversation;
         DROP INDEX IF EXISTS service_participants_by_identity;
         DROP INDEX IF EXISTS service_participants_by_binding;
         DROP INDEX IF EXISTS service_participants_by_conversation;
         ALTER TABLE participants RENAME TO participants_v2;
         ALTER TABLE participant_addresses RENAME TO participant_addresses_v2;
         ALTER TABLE service_participants RENAME TO service_participants_v2;",
    )?;
    tx.execute_batch(super::SCHEMA)?;
    let account = store_account(tx, account_sid)?;
    let mut next: i64 = tx.query_row("SELECT next FROM sequence WHERE id = 1", [], |r| r.get(0))?;
    let mut number = |service: &str, conversation: &str| {
        stored::conversation_number(tx, service, conversation, || {
            next += 1;
            next - 1
        })
    };
    let mut rows = 0_u64;
    let mut read = tx.prepare("SELECT id, conversation_id, body, seq FROM participants_v2")?;
    let mut found = read.query([])?;
    while let Some(row) = found.next()? {
        let (id, conversation, body, seq): (String, String, String, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let participant: Participant =
            serde_json::from_str(&body).map_err(|e| undecodable("v2 participant", &id, &e))?;
        let n = number("", &conversation)?;
        tx.prepare_cached(
            "INSERT INTO participants (id, conversation, body, seq) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            stored::v2_key(&id),
            n,
            stored::v2_body(&participant, &account),
            seq
        ])?;
        rows += 1;
    }
    let mut read = tx.prepare(
        "SELECT conversation_id, channel, address, participant_id FROM participant_addresses_v2",
    )?;
    let mut found = read.query([])?;
    while let Some(row) = found.next()? {
        let (conversation, channel, address, participant): (String, String, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let n = number("", &conversation)?;
        tx.prepare_cached(
            "INSERT INTO participant_addresses (conversation, channel, address, participant)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![n, channel, address, stored::v2_key(&participant)])?;
    }
    let mut read = tx.prepare(
        "SELECT sid, chat_service_sid, conversation_sid, identity, binding_address,
                binding_proxy, body, seq
         FROM service_participants_v2",
    )?;
    let mut found = read.query([])?;
    while let Some(row) = found.next()? {
        let (sid, service, conversation): (String, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        let (identity, address, proxy): (Option<String>, Option<String>, Option<String>) =
            (row.get(3)?, row.get(4)?, row.get(5)?);
        let (body, seq): (String, i64) = (row.get(6)?, row.get(7)?);
        let participant: ServiceParticipant =
            serde_json::from_str(&body).map_err(|e| undecodable("v1 participant", &sid, &e))?;
        let n = number(&service, &conversation)?;
        tx.prepare_cached(
            "INSERT INTO service_participants
             (sid, conversation, identity, binding_address, binding_proxy, body, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            stored::v1_key(&sid),
            n,
            identity,
            address,
            proxy,
            stored::v1_body(&participant, &account),
            seq
        ])?;
        rows += 1;
    }
    tx.execute("UPDATE sequence SET next = ?1 WHERE id = 1", params![next])?;
    tx.execute_batch(
        "DROP TABLE participants_v2;
         DROP TABLE participant_addresses_v2;
         DROP TABLE service_participants_v2;",
    )?;
    Ok(rows)
}

/// A row the migration cannot read: the whole migration stops (nothing is changed), and
/// the message names the row, for an operator to repair or remove it with the `sqlite3`
/// shell on a copy of the store. (`--skip-integrity-check` does not skip this.)
fn undecodable(what: &str, id: &str, err: &serde_json::Error) -> Error {
    Error::Internal(format!(
        "cannot migrate the store to schema version {SCHEMA_VERSION}: the {what} {id:?} does \
         not decode ({err}); nothing was changed. Restore a backup, or repair or delete that \
         row in the version-2 store"
    ))
}

/// The account the store writes its records under: the one it was first opened with
/// (`account_sid` for a store that has none yet). A body names its account only when it
/// is another (`stored.rs`), so this never changes once set.
pub(super) fn store_account(conn: &Connection, account_sid: &str) -> Result<String, Error> {
    conn.execute(
        "INSERT OR IGNORE INTO store_account (id, account) VALUES (1, ?1)",
        params![account_sid],
    )?;
    Ok(
        conn.query_row("SELECT account FROM store_account WHERE id = 1", [], |r| {
            r.get(0)
        })?,
    )
}

/// The store's page-token key, made (random) on first use.
pub(super) fn page_token_key(conn: &Connection) -> Result<Vec<u8>, Error> {
    let fresh: [u8; KEY_BYTES] = rand::random();
    conn.execute(
        "INSERT OR IGNORE INTO page_token_key (id, key) VALUES (1, ?1)",
        params![fresh.as_slice()],
    )?;
    let key: Vec<u8> = conn.query_row("SELECT key FROM page_token_key WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    if key.len() != KEY_BYTES {
        return Err(Error::Store {
            fault: crate::domain::error::StoreFault::Corrupt,
            detail: "the page token key is not 32 bytes".into(),
        });
    }
    Ok(key)
}
