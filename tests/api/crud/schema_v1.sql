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
