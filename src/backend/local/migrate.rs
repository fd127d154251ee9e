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

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::error::Error;

use crate::backend::page_token::KEY_BYTES;

/// The version this build writes (`PRAGMA user_version` in `schema.sql`).
pub(super) const SCHEMA_VERSION: i64 = 2;

/// Brings the store to [`SCHEMA_VERSION`] where it is older; run before `schema.sql`
/// (whose new indexes need the new columns). A store written by a newer version is
/// refused rather than written to.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), Error> {
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
    let old = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'participants'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some()
        && !has_column(&tx, "participants", "seq")?;
    if old {
        tracing::info!(from = version, to = SCHEMA_VERSION, "migrating the store");
        tx.execute_batch(V1_TO_V2)?;
        tracing::info!("store migrated");
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
