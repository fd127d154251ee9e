//! The twilio backend's idempotency keys, shared by every replica through the database
//! (`--database-url` in twilio mode), so that a retried create that lands on another
//! replica is recognised.
//!
//! A create upstream cannot take part in a database transaction, so a key is claimed
//! first: the replica that inserts the key's row (with no answer yet, and a random claim
//! id) runs the create; any other replica that meets the row waits for its answer (polling,
//! within its caller's deadline) and replays it. When the create fails the claim is
//! deleted, so the key may be retried; a claim whose replica died is taken over once it is
//! older than the lease (the longest a create upstream may take). The first answer is
//! kept for the TTL, like the embedded table's (`backend/twilio/idempotency.rs`), which
//! still runs in front of this one so that retries racing within one replica wait in
//! memory.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::errors::from_db;
use super::{Database, PgOptions, store_key};
use crate::domain::error::Error;

/// How often a replica waiting for another replica's create looks for its answer.
const POLL: Duration = Duration::from_millis(50);

/// Bytes of the key scope hash's key (HMAC-SHA-256's block).
pub(crate) const SCOPE_KEY_BYTES: usize = 64;

/// The shared table of idempotency keys.
pub struct SharedKeys {
    database: Database,
    scope_key: [u8; SCOPE_KEY_BYTES],
}

impl std::fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeys").finish_non_exhaustive()
    }
}

/// Whose a key is, after trying to claim it.
enum Claim {
    /// Ours: run the create, then record or release.
    Ours(String),
    /// Answered already (by any replica).
    Answered(String),
    /// Another replica is running it.
    Pending,
}

impl SharedKeys {
    /// Connects and migrates (as the shared store does), and reads the scope key every
    /// replica shares.
    pub async fn open(options: &PgOptions) -> Result<SharedKeys, Error> {
        let database = Database::connect(options).await?;
        let scope_key = store_key::<SCOPE_KEY_BYTES>(&database, "idempotency_scope").await?;
        Ok(SharedKeys {
            database,
            scope_key,
        })
    }

    /// The key of the hash that scopes a caller's keys to their credential: the same on
    /// every replica, so a key's row is found whichever replica the retry reaches.
    pub fn scope_key(&self) -> &[u8; SCOPE_KEY_BYTES] {
        &self.scope_key
    }

    /// Whether the database answers (readiness).
    pub fn ready(&self) -> bool {
        self.database.ready()
    }

    /// Stops the probes and closes the pool.
    pub fn close(&self) {
        self.database.close();
    }

    /// Runs `create` unless `key` (already scoped) has an answer, from any replica; the
    /// same key with another `fingerprint` is [`Error::IdempotencyKeyReused`]. `lease`:
    /// how long another replica's claim is waited for before it is taken over.
    pub async fn run<T, F>(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
        create: F,
    ) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, Error>>,
    {
        let claim_id = loop {
            match self.claim(key, fingerprint, lease).await? {
                Claim::Ours(claim_id) => break claim_id,
                Claim::Answered(body) => return Ok(serde_json::from_str(&body)?),
                Claim::Pending => tokio::time::sleep(POLL).await,
            }
        };
        let result = create.await;
        let client = self.database.client().await;
        let recorded = match (&result, client) {
            (Ok(created), Ok(client)) => client
                .execute(
                    "UPDATE idempotency_keys SET response = $3, resource_id = NULL
                     WHERE key = $1 AND resource_id = $2 AND response IS NULL",
                    &[&key, &claim_id, &serde_json::to_string(created)?],
                )
                .await
                .map_err(from_db),
            (Err(_), Ok(client)) => client
                .execute(
                    "DELETE FROM idempotency_keys
                     WHERE key = $1 AND resource_id = $2 AND response IS NULL",
                    &[&key, &claim_id],
                )
                .await
                .map_err(from_db),
            (_, Err(e)) => Err(e),
        };
        if let Err(e) = recorded {
            // The create's own answer still stands; a retry is protected by the
            // Idempotency-Key header upstream, and the claim lapses after the lease.
            tracing::warn!(error = %e, "could not record an idempotency key's answer in the shared store");
        }
        result
    }

    /// Inserts the key's claim, or takes over an expired key or a stale claim; else says
    /// what the row holds.
    async fn claim(&self, key: &str, fingerprint: &[u8], lease: Duration) -> Result<Claim, Error> {
        let client = self.database.client().await?;
        let claim_id = format!("claim-{:032x}", rand::random::<u128>());
        let ttl = self.database.ttl_seconds as f64;
        let lease = lease.as_secs_f64();
        let claimed = client
            .query_opt(
                "INSERT INTO idempotency_keys (key, fingerprint, resource_id, created_at, response)
                 VALUES ($1, $2, $3, now(), NULL)
                 ON CONFLICT (key) DO UPDATE
                    SET fingerprint = EXCLUDED.fingerprint, resource_id = EXCLUDED.resource_id,
                        created_at = now(), response = NULL
                  WHERE idempotency_keys.created_at < now() - make_interval(secs => $4)
                     OR (idempotency_keys.response IS NULL
                         AND idempotency_keys.created_at < now() - make_interval(secs => $5))
                 RETURNING 1",
                &[&key, &fingerprint, &claim_id, &ttl, &lease],
            )
            .await
            .map_err(from_db)?;
        if claimed.is_some() {
            return Ok(Claim::Ours(claim_id));
        }
        let row = client
            .query_opt(
                "SELECT fingerprint, response FROM idempotency_keys WHERE key = $1",
                &[&key],
            )
            .await
            .map_err(from_db)?;
        Ok(match row {
            // Released between the two statements: try again.
            None => Claim::Pending,
            Some(row) if row.get::<_, &[u8]>(0) != fingerprint => {
                return Err(Error::IdempotencyKeyReused);
            }
            Some(row) => match row.get::<_, Option<String>>(1) {
                Some(body) => Claim::Answered(body),
                None => Claim::Pending,
            },
        })
    }
}
