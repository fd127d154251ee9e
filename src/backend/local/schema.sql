-- The schema of a new store (version 3). An older store is first brought to it by
-- `migrate.rs`; every statement here is `IF NOT EXISTS`, so it then only adds what is missing.
--
-- `seq`: the store's insertion key, from `sequence` below, assigned once at insert and
-- never changed or reused. Lists run oldest first along it, as index range scans, and
-- page tokens carry the last `seq` a page showed (keyset pagination).
-- Conversations, each written once with a number (`n`, from `sequence`) that the rows
-- below carry instead of its text. `service` is '' for a v2 conversation, the chat
-- service's sid for a v1 one.
CREATE TABLE IF NOT EXISTS conversations (
    service TEXT NOT NULL,
    id      TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (service, id)
) WITHOUT ROWID;
-- A number names one conversation only (the `sequence` never gives a value twice; this
-- makes the database hold to it too).
CREATE UNIQUE INDEX IF NOT EXISTS conversations_by_n ON conversations (n);
-- Keys (`id`, `sid`, `participant`) are 16 bytes for ids of the canonical shape, text
-- otherwise; bodies are protobuf (`stored.rs`), without what the key columns say.
CREATE TABLE IF NOT EXISTS participants (
    id           BLOB PRIMARY KEY,
    conversation INTEGER NOT NULL,
    body         BLOB NOT NULL,
    seq          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS participants_by_conversation
    ON participants (conversation, seq);
-- One row per (conversation, channel, address): Twilio's uniqueness rule for v2.
CREATE TABLE IF NOT EXISTS participant_addresses (
    conversation INTEGER NOT NULL,
    channel      TEXT NOT NULL,
    address      TEXT NOT NULL,
    participant  BLOB NOT NULL,
    PRIMARY KEY (conversation, channel, address)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS service_participants (
    sid             BLOB PRIMARY KEY,
    conversation    INTEGER NOT NULL,
    identity        TEXT,
    binding_address TEXT,
    binding_proxy   TEXT,
    body            BLOB NOT NULL,
    seq             INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS service_participants_by_identity
    ON service_participants (conversation, identity)
    WHERE identity IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS service_participants_by_binding
    ON service_participants (conversation, binding_address, binding_proxy)
    WHERE binding_address IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS service_participants_by_conversation
    ON service_participants (conversation, seq);
-- `response`: the record as the first create answered it, replayed as is for the key
-- (Twilio: "Submitting the same key returns the original response"), even once the
-- participant was updated or deleted.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key         TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    resource_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    response    TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys (created_at);
-- One row, rewritten by the probe write that tells when a failing disk writes again.
CREATE TABLE IF NOT EXISTS store_probe (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
-- One row: the next `seq` (and conversation number: both come from here). Only ever
-- grows, so a value is never given twice, even after the row that had it was deleted.
CREATE TABLE IF NOT EXISTS sequence (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    next INTEGER NOT NULL
);
INSERT OR IGNORE INTO sequence (id, next) VALUES (1, 1);
-- One row: the account this store writes its records under (the first `--account-sid`
-- it was opened with); a body names its account only when it is another.
CREATE TABLE IF NOT EXISTS store_account (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    account TEXT NOT NULL
);
-- One row: the key that signs page tokens, random, made once (see `migrate.rs`), so that
-- tokens stay valid across restarts.
CREATE TABLE IF NOT EXISTS page_token_key (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL
);
PRAGMA user_version = 3;
