//! The checkpointer: the write-ahead log copied into the database file on its own thread,
//! and started over by the writer when it grows too large.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use crate::domain::error::Error;

use super::health::StoreHealth;

/// Copies committed pages from the write-ahead log into the database file, on its own
/// thread and connection, so that the writer's commits do not wait for a checkpoint. A
/// passive checkpoint runs at most every [`CHECKPOINT_EVERY`] while there are new commits.
///
/// SQLite starts the log over from its beginning only when a checkpoint has copied all of
/// it and no reader is using it; under a steady stream of writes the passive checkpoint
/// never quite catches up, so the log would only grow (260 MB was seen under load). So
/// once the log holds more than [`RESTART_ABOVE_BYTES`], the writer itself, between two
/// transactions, runs a restarting checkpoint: it copies the little the passive one has
/// not yet copied, waits (within the busy timeout) for the readers of older snapshots to
/// finish, and makes the next commit start the log over; `journal_size_limit` then cuts
/// the file back to [`JOURNAL_SIZE_LIMIT`]. Writes queue meanwhile: when they outrun the
/// disk's checkpoints, that wait is what bounds the log. The final, truncating checkpoint
/// is the writer's, at close.
pub(super) struct Checkpointer {
    nudge: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
    /// Set by the checkpoint thread when the log is past its limit; taken by the writer.
    restart: Arc<AtomicBool>,
}

/// Least time between two checkpoints.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// A log holding more than this (frames: pages with their headers) is started over.
pub(super) const RESTART_ABOVE_BYTES: i64 = 16 << 20;
/// The size a started-over log's file is cut back to (`PRAGMA journal_size_limit`).
pub(super) const JOURNAL_SIZE_LIMIT: i64 = 16 << 20;

impl Checkpointer {
    pub(super) fn start(path: &Path, health: Arc<StoreHealth>) -> Result<Checkpointer, Error> {
        Checkpointer::start_with(path, health, RESTART_ABOVE_BYTES)
    }

    /// [`Checkpointer::start`], starting over a log larger than `restart_above_bytes`.
    fn start_with(
        path: &Path,
        health: Arc<StoreHealth>,
        restart_above_bytes: i64,
    ) -> Result<Checkpointer, Error> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        // A frame is a page and its 24-byte header.
        let restart_above_frames = restart_above_bytes / (page_size + 24);
        let restart = Arc::new(AtomicBool::new(false));
        let wanted = restart.clone();
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                // Ends when the writer drops its sender.
                while nudged.recv().is_ok() {
                    match checkpoint(&conn, PASSIVE) {
                        Ok(frames) if frames > restart_above_frames => {
                            wanted.store(true, Ordering::Release);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "checkpoint failed; will retry");
                            health.saw(&e.into());
                        }
                    }
                    std::thread::sleep(CHECKPOINT_EVERY);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the store checkpointer: {e}")))?;
        Ok(Checkpointer {
            nudge,
            thread,
            restart,
        })
    }

    /// Called by the writer, on its connection, after each commit: there are new commits
    /// to copy (a nudge coalesces with one already waiting); and if the log is past its
    /// limit, it is started over now (see [`Checkpointer`]).
    pub(super) fn committed(&self, writer: &Connection) -> Result<(), Error> {
        let _ = self.nudge.try_send(());
        if self.restart.swap(false, Ordering::AcqRel) {
            let frames = checkpoint(writer, RESTART)?;
            tracing::debug!(frames, "the write-ahead log was started over");
        }
        Ok(())
    }

    /// Waits for a checkpoint in progress, then ends the thread.
    pub(super) fn stop(self) {
        drop(self.nudge);
        if self.thread.join().is_err() {
            tracing::error!("the store checkpointer panicked");
        }
    }
}

const PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";
const RESTART: &str = "PRAGMA wal_checkpoint(RESTART)";

/// One checkpoint (`PASSIVE` or `RESTART`); the frames the log held (`-1`: not in WAL
/// mode).
fn checkpoint(conn: &Connection, pragma: &str) -> rusqlite::Result<i64> {
    conn.query_row(pragma, [], |row| row.get(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits `commits` transactions of 16 rows of ~1 KiB each, one per `pace` at most,
    /// while `readers` threads read without pause and `checkpointer` (if any) runs as the
    /// writer runs it; the largest size the log file reached.
    fn largest_log(
        checkpointer_limit: Option<i64>,
        commits: usize,
        readers: usize,
        pace: Duration,
    ) -> u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.db");
        let mut writer = Connection::open(&path).expect("open");
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        writer
            .pragma_update(None, "synchronous", "OFF")
            .expect("sync");
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .expect("auto");
        writer
            .pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
            .expect("limit");
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
            .expect("schema");
        let checkpointer = checkpointer_limit.map(|limit| {
            Checkpointer::start_with(&path, Arc::new(StoreHealth::default()), limit)
                .expect("checkpointer")
        });
        let stop = Arc::new(AtomicBool::new(false));
        let reading: Vec<_> = (0..readers)
            .map(|_| {
                let conn = Connection::open(&path).expect("reader");
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut read = conn.prepare("SELECT max(id) FROM t").expect("read");
                    while !stop.load(Ordering::Relaxed) {
                        let _: Option<i64> = read.query_row([], |r| r.get(0)).expect("max");
                    }
                })
            })
            .collect();
        let wal = dir.path().join("store.db-wal");
        let mut largest = 0;
        for _ in 0..commits {
            let tx = writer.transaction().expect("begin");
            for _ in 0..16 {
                tx.execute("INSERT INTO t (v) VALUES (zeroblob(1000))", [])
                    .expect("insert");
            }
            tx.commit().expect("commit");
            if let Some(checkpointer) = &checkpointer {
                checkpointer.committed(&writer).expect("checkpoint");
            }
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            std::thread::sleep(pace);
        }
        stop.store(true, Ordering::Relaxed);
        for reader in reading {
            reader.join().expect("reader thread");
        }
        if let Some(checkpointer) = checkpointer {
            checkpointer.stop();
        }
        largest
    }

    #[test]
    fn the_log_stays_bounded_under_steady_writes_and_reads() {
        // About 24 MiB of commits in all, with two readers that never pause. The bounded
        // writer commits at most one transaction (16 KiB) a millisecond, as the store's
        // writer, whose commits are fsynced, does at best: the log then overshoots the
        // limit by what one checkpoint interval (50 ms) writes, about 1 MiB. Unpaced and
        // unsynced, the overshoot is whatever this machine writes in 50 ms (13 MiB seen).
        let commits = 1500;
        let limit = 1 << 20;
        let bounded = largest_log(Some(limit), commits, 2, Duration::from_millis(1));
        let unbounded = largest_log(None, commits, 2, Duration::ZERO);
        // The restart is asked for past the limit; commits made meanwhile (one
        // checkpoint interval at most, and the wait for readers) add to it.
        assert!(
            bounded < 12 * limit as u64 && bounded * 3 < unbounded,
            "the log reached {bounded} bytes (limit {limit}; {unbounded} without a checkpointer)"
        );
        assert!(
            unbounded > 16 * limit as u64,
            "the test does not write enough to show the bound: {unbounded} bytes unchecked"
        );
    }
}
