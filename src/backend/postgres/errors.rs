//! PostgreSQL's failures as the domain's errors. What the caller may retry (the database
//! unreachable, restarting, out of connections or disk, a serialization failure or a
//! deadlock) is UNAVAILABLE with RetryInfo; anything else is INTERNAL. The detail goes to
//! the log only: the caller never sees the server's words, and neither side ever sees the
//! connection URL (the driver's errors do not carry it).

use std::time::Duration;

use deadpool_postgres::PoolError;

use crate::domain::error::Error;

/// How long a caller is told to wait before retrying a call the database could not take.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the caller reads when the database cannot take the call.
const UNAVAILABLE: &str = "the shared store (PostgreSQL) is unavailable; nothing was changed \
                           unless a retry with the same idempotency key finds it";

/// SQLSTATE classes and codes a retry may get past.
fn transient(code: &str) -> bool {
    matches!(
        code.get(..2),
        // 08 connection, 53 insufficient resources, 57 operator intervention (shutdown,
        // cannot connect now), 58 system error (I/O).
        Some("08" | "53" | "57" | "58")
    ) || matches!(code, "40001" | "40P01" | "55P03")
}

/// A driver error as the domain's: UNAVAILABLE when the database may take the call later.
pub(super) fn from_db(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        if transient(code) {
            tracing::warn!(sqlstate = code, error = %db.message(), "the database refused a call; it may be retried");
            return Error::unavailable(UNAVAILABLE, Some(RETRY_AFTER));
        }
        return Error::Internal(format!("database error {code}: {}", db.message()));
    }
    // No answer from the server: the connection broke, or was never made.
    tracing::warn!(error = %e, "the database is unreachable");
    Error::unavailable(UNAVAILABLE, Some(RETRY_AFTER))
}

/// A pool error (no connection within the connect timeout, or the pool closed).
pub(super) fn from_pool(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => from_db(e),
        PoolError::Closed => super::closed(),
        other => {
            tracing::warn!(error = %other, "no database connection");
            Error::unavailable(UNAVAILABLE, Some(RETRY_AFTER))
        }
    }
}

/// Whether `e` says the connection, not the statement, failed: the group's other writes
/// would fail the same way, so they are not retried one by one.
pub(super) fn connection_failed(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => transient(db.code().code()) && !matches!(db.code().code(), "40001" | "40P01"),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_retry_may_get_past() {
        for code in [
            "08006", "53100", "53300", "57P01", "57P03", "58030", "40001", "40P01",
        ] {
            assert!(transient(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "XX000"] {
            assert!(!transient(code), "{code}");
        }
    }
}
