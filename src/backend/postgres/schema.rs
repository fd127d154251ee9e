//! The shared store's schema: versioned migrations (refinery, `migrations/V*.sql`),
//! applied at start-up by whichever replica comes first.
//!
//! Replicas starting together must not race: each takes a PostgreSQL advisory lock (a
//! session lock, released when its connection ends, even by a crash) before it looks at
//! the schema, so one applies the missing migrations while the others wait, then find
//! nothing left to do. A replica refuses to start on a schema newer than it knows (an
//! older build after an upgrade): it would not know the rules the newer schema keeps.

use tokio_postgres::Client;

use crate::domain::error::Error;

mod embedded {
    refinery::embed_migrations!("src/backend/postgres/migrations");
}

/// The table refinery keeps the applied migrations in.
const HISTORY_TABLE: &str = "participants_schema_history";

/// The advisory lock's key: the first 8 bytes of SHA-256("participants-facade schema"),
/// fixed forever (replicas of every version must take the same lock).
const LOCK_KEY: i64 = 0x2869_5b3c_e7aa_adbc;

/// The newest schema version this build knows.
pub(super) fn known_version() -> i32 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i32::try_from(m.version()).unwrap_or(i32::MAX))
        .max()
        .unwrap_or(0)
}

/// Brings the database's schema up to [`known_version`] under the advisory lock; refuses
/// a newer one. Returns the version the database is at.
pub(super) async fn migrate(client: &mut Client) -> Result<i32, Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| Error::Internal(format!("cannot take the migration lock: {e}")))?;
    let result = migrate_locked(client).await;
    // Released with the session anyway; unlocking here lets the next replica go at once.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<i32, Error> {
    let known = known_version();
    let applied = applied_version(client).await?;
    if applied > known {
        return Err(Error::Internal(format!(
            "the database's schema is version {applied}, newer than this build knows ({known}): \
             run a participants-facade at least as new as the one that migrated it"
        )));
    }
    let mut runner = embedded::migrations::runner()
        .set_abort_divergent(true)
        .set_abort_missing(true);
    let report = runner
        .set_migration_table_name(HISTORY_TABLE)
        .run_async(client)
        .await
        .map_err(|e| Error::Internal(format!("migrating the database's schema failed: {e}")))?;
    for migration in report.applied_migrations() {
        tracing::info!(
            version = migration.version(),
            name = migration.name(),
            "schema migration applied"
        );
    }
    Ok(known)
}

/// The newest version in the history table; 0 for a database never migrated.
async fn applied_version(client: &Client) -> Result<i32, Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY_TABLE])
        .await
        .map_err(super::errors::from_db)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let sql = format!("SELECT coalesce(max(version), 0) FROM {HISTORY_TABLE}");
    Ok(client
        .query_one(&sql, &[])
        .await
        .map_err(super::errors::from_db)?
        .get(0))
}

#[cfg(test)]
mod tests {
    use sha2::Digest as _;

    #[test]
    fn the_lock_key_is_the_documented_hash() {
        let digest = sha2::Sha256::digest(b"participants-facade schema");
        let key = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        assert_eq!(super::LOCK_KEY, key, "{key:#x}");
    }
}
