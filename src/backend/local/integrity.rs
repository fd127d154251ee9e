//! The start-up integrity check: SQLite's `quick_check` within a time budget, on its own
//! thread and read connection, so that a large store does not hold start-up back.
//!
//! A small store (up to [`CHECK_WHOLE_UP_TO`] bytes, a few milliseconds to check) is
//! checked before the store opens, so a damaged one refuses to start. A larger one is
//! waited for at most [`WAIT_AT_OPEN`]; past that the store serves while the check goes
//! on, and damage it finds then turns readiness NOT_SERVING for good, as damage met by a
//! call does. The check reads one snapshot: the log cannot be checkpointed past it while
//! it runs, which is why it keeps its budget (`--integrity-check-timeout`) even there.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::domain::error::{Error, StoreFault};

use super::health::StoreHealth;

/// Stores up to this size are checked whole before they open.
const CHECK_WHOLE_UP_TO: u64 = 16 << 20;
/// How long the opening of a larger store waits for the check before serving.
const WAIT_AT_OPEN: Duration = Duration::from_millis(250);

/// Runs [`quick_check`] on `path` for up to `budget`: waits for its verdict on a small
/// store (a damaged one is an error here), for at most [`WAIT_AT_OPEN`] on a larger one;
/// a verdict that comes later goes to `health`.
pub(super) fn check_at_open(
    path: &Path,
    budget: Duration,
    health: Arc<StoreHealth>,
) -> Result<(), Error> {
    check(path, budget, health, CHECK_WHOLE_UP_TO, WAIT_AT_OPEN)
}

/// [`check_at_open`] with its two limits given.
fn check(
    path: &Path,
    budget: Duration,
    health: Arc<StoreHealth>,
    check_whole_up_to: u64,
    wait_at_open: Duration,
) -> Result<(), Error> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut conn = super::open_reader(path)?;
    let (verdict, verdict_rx) = sync_channel(1);
    std::thread::Builder::new()
        .name("store-check".into())
        .spawn(move || {
            let found = quick_check(&mut conn, budget);
            if let Err(found) = verdict.send(found) {
                // Open stopped waiting: the store serves, and learns of damage here.
                if let Err(err) = found.0 {
                    health.saw(&err);
                }
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start the integrity check: {e}")))?;
    if size <= check_whole_up_to {
        return verdict_rx.recv().unwrap_or(Ok(()));
    }
    match verdict_rx.recv_timeout(wait_at_open) {
        Ok(verdict) => verdict,
        Err(RecvTimeoutError::Timeout) => {
            tracing::info!(
                bytes = size,
                "store integrity check goes on while the store serves"
            );
            Ok(())
        }
        Err(RecvTimeoutError::Disconnected) => Ok(()),
    }
}

/// SQLite's `quick_check` (page structure, not index contents: linear in the file's
/// size), stopped after `budget`: a very large store stays unchecked, with a warning,
/// rather than holding a snapshot for long. A damaged store is [`StoreFault::Corrupt`],
/// named by SQLite's first findings (page numbers and structure, no values).
fn quick_check(conn: &mut Connection, budget: Duration) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use std::io::{Seek as _, SeekFrom, Write as _};

    use super::super::health::{CORRUPT, HEALTHY};
    use super::*;

    const PAGE: u64 = 4096;

    /// A database of a table with an index and `rows` rows, then every page after the
    /// first half overwritten with noise from its 16th byte, as a failing disk would.
    fn damaged_store(dir: &Path, rows: usize) -> std::path::PathBuf {
        let path = dir.join("store.db");
        let mut conn = Connection::open(&path).expect("open");
        let tx = conn.transaction().expect("transaction");
        tx.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
             CREATE INDEX t_by_v ON t (v);",
        )
        .expect("schema");
        for i in 0..rows {
            tx.execute("INSERT INTO t (v) VALUES (?1)", [format!("value {i:>200}")])
                .expect("row");
        }
        tx.commit().expect("commit");
        drop(conn);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("reopen");
        let len = file.metadata().expect("len").len();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut page = 1;
        while (page + 1) * PAGE <= len {
            let noise: Vec<u8> = (0..PAGE / 2)
                .map(|_| {
                    // xorshift64: deterministic noise.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            file.seek(SeekFrom::Start(page * PAGE + 16)).expect("seek");
            file.write_all(&noise).expect("scribble");
            page += 1;
        }
        path
    }

    #[test]
    fn damage_in_a_small_store_is_an_error_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = damaged_store(dir.path(), 2000);
        let health = Arc::new(StoreHealth::default());
        let found = check(
            &path,
            Duration::from_secs(10),
            health.clone(),
            u64::MAX,
            WAIT_AT_OPEN,
        );
        assert!(
            matches!(
                found,
                Err(Error::Store {
                    fault: StoreFault::Corrupt,
                    ..
                })
            ),
            "{found:?}"
        );
        assert_eq!(
            health.state(),
            HEALTHY,
            "the caller refuses the store itself"
        );
    }

    #[test]
    fn damage_found_after_the_store_serves_turns_it_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = damaged_store(dir.path(), 2000);
        // Too large to wait for (every store is, here), and no wait at all. A check may
        // still be quicker than the wait of zero; the first that is not is the one
        // looked at.
        let health = (0..20)
            .map(|_| Arc::new(StoreHealth::default()))
            .find(|health| {
                check(
                    &path,
                    Duration::from_secs(10),
                    health.clone(),
                    0,
                    Duration::ZERO,
                )
                .is_ok()
            })
            .expect("every check ended before open stopped waiting");
        let deadline = Instant::now() + Duration::from_secs(30);
        while health.state() != CORRUPT {
            assert!(
                Instant::now() < deadline,
                "the check never reported the damage"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_sound_store_passes_either_way() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.db");
        Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"))
            .expect("store");
        let health = Arc::new(StoreHealth::default());
        let budget = Duration::from_secs(10);
        assert!(check(&path, budget, health.clone(), u64::MAX, WAIT_AT_OPEN).is_ok());
        assert!(check(&path, budget, health.clone(), 0, Duration::ZERO).is_ok());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(health.state(), HEALTHY);
    }
}
