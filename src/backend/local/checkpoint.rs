//! The checkpointer: the write-ahead log copied into the database file on its own thread.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use crate::domain::error::Error;

use super::health::StoreHealth;

/// Copies committed pages from the write-ahead log into the database file, on its own
/// thread and connection, so that the writer's commits never wait for a checkpoint. A
/// passive checkpoint runs at most every [`CHECKPOINT_EVERY`] while there are new commits;
/// SQLite restarts the log from its beginning once a checkpoint has caught up, so the log
/// stays small. The final, truncating checkpoint is the writer's, at close.
pub(super) struct Checkpointer {
    nudge: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Least time between two checkpoints.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

impl Checkpointer {
    pub(super) fn start(path: &Path, health: Arc<StoreHealth>) -> Result<Checkpointer, Error> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                // Ends when the writer drops its sender.
                while nudged.recv().is_ok() {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "checkpoint failed; will retry");
                        health.saw(&e.into());
                    }
                    std::thread::sleep(CHECKPOINT_EVERY);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the store checkpointer: {e}")))?;
        Ok(Checkpointer { nudge, thread })
    }

    /// There are new commits to copy; coalesces with a nudge already waiting.
    pub(super) fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }

    /// Waits for a checkpoint in progress, then ends the thread.
    pub(super) fn stop(self) {
        drop(self.nudge);
        if self.thread.join().is_err() {
            tracing::error!("the store checkpointer panicked");
        }
    }
}
