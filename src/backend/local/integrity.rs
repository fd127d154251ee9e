//! The start-up integrity check: SQLite's `quick_check` within a time budget.

use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::domain::error::{Error, StoreFault};

/// SQLite's `quick_check` (page structure, not index contents: linear in the file's
/// size), stopped after `budget`: a very large store opens unchecked, with a warning,
/// rather than late. A damaged store is [`StoreFault::Corrupt`], named by SQLite's first
/// findings (page numbers and structure, no values).
pub(super) fn quick_check(conn: &mut Connection, budget: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let deadline = started + budget;
    conn.progress_handler(10_000, Some(move || Instant::now() > deadline))?;
    let findings = conn.prepare("PRAGMA quick_check(5)").and_then(|mut check| {
        check
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()
    });
    conn.progress_handler(0, None::<fn() -> bool>)?;
    match findings {
        Ok(findings) if findings.len() == 1 && findings[0] == "ok" => {
            tracing::info!(elapsed = ?started.elapsed(), "store integrity check passed");
            Ok(())
        }
        Ok(findings) => Err(Error::Store {
            fault: StoreFault::Corrupt,
            detail: format!("integrity check: {}", findings.join("; ")),
        }),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
            tracing::warn!(
                ?budget,
                "store integrity check not finished within --integrity-check-timeout; \
                 opening the store unchecked"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
