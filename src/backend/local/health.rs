//! The store's health as its own errors tell it: the readiness signal, and when a probe
//! write is due while the disk cannot write.

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::domain::error::{Error, StoreFault};
use crate::observability::metrics::METRICS;

/// Whether the store can serve, as its own errors tell: the readiness signal.
#[derive(Debug, Default)]
pub(super) struct StoreHealth {
    /// One of [`HEALTHY`], [`CANNOT_WRITE`], [`CORRUPT`].
    state: std::sync::atomic::AtomicU8,
    /// When the last probe write was asked for.
    last_probe: Mutex<Option<Instant>>,
}

pub(super) const HEALTHY: u8 = 0;
/// The disk is full, a file-size limit was reached, or writes fail with I/O errors.
pub(super) const CANNOT_WRITE: u8 = 1;
/// SQLite found the database corrupt; only an operator can mend it.
pub(super) const CORRUPT: u8 = 2;
/// Least time between two probe writes while the store cannot write.
pub(super) const PROBE_EVERY: Duration = Duration::from_secs(1);

impl StoreHealth {
    /// Takes note of an error the store met.
    pub(super) fn saw(&self, err: &Error) {
        let Error::Store { fault, detail } = err else {
            return;
        };
        let label = match fault {
            StoreFault::Full => "full",
            StoreFault::Io => "io",
            StoreFault::Corrupt => "corrupt",
            StoreFault::Other => return,
        };
        METRICS.store_faults.with_label_values(&[label]).inc();
        if *fault == StoreFault::Corrupt {
            if self.state.swap(CORRUPT, Ordering::AcqRel) != CORRUPT {
                tracing::error!(
                    error = %detail,
                    "the store's database is corrupt; readiness is NOT_SERVING until it is \
                     restored from a backup"
                );
            }
        } else if self
            .state
            .compare_exchange(HEALTHY, CANNOT_WRITE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::error!(
                error = %detail,
                "the store cannot write (disk full, file-size limit or I/O error); readiness \
                 is NOT_SERVING until a write succeeds, reads are still served"
            );
        }
    }

    /// Takes note of `result`'s error, if any.
    pub(super) fn check<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(err) = &result {
            self.saw(err);
        }
        result
    }

    /// A write committed: a disk that was failing writes again.
    pub(super) fn wrote(&self) {
        if self
            .state
            .compare_exchange(CANNOT_WRITE, HEALTHY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!("the store writes again; readiness is SERVING");
        }
    }

    pub(super) fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Whether a probe write is due (at most one per [`PROBE_EVERY`]).
    pub(super) fn probe_due(&self) -> bool {
        let mut last = self.last_probe.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < PROBE_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// What a caller whose write was not committed learns.
    pub(super) fn commit_failed(&self, err: &Error) -> Error {
        match err {
            Error::Store { fault, detail } if *fault != StoreFault::Other => Error::Store {
                fault: *fault,
                detail: detail.clone(),
            },
            _ => Error::unavailable(
                "the store could not commit this write; nothing was stored",
                None,
            ),
        }
    }
}
