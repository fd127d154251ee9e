//! SQLite's errors in the domain's terms: each is classified into a [`StoreFault`], which
//! decides what the caller is told and whether readiness changes.

use crate::domain::error::{Error, StoreFault};

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let fault = match err.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreFault::Full,
            // Under RLIMIT_FSIZE (SIGXFSZ ignored) a write fails with EFBIG, which SQLite
            // reports as SQLITE_IOERR_WRITE, like any other failed write.
            Some(ErrorCode::SystemIoFailure) => StoreFault::Io,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreFault::Corrupt,
            _ => StoreFault::Other,
        };
        Error::Store {
            fault,
            detail: err.to_string(),
        }
    }
}

/// A stored record that no longer decodes: the store's data is damaged.
impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Store {
            fault: StoreFault::Corrupt,
            detail: format!("stored record does not decode: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio_api::codes::{http_status, twilio_code};

    fn sqlite(code: i32) -> Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None).into()
    }

    #[test]
    fn store_failures_are_classified_and_answered_by_kind() {
        let full = sqlite(rusqlite::ffi::SQLITE_FULL);
        assert!(matches!(
            full,
            Error::Store {
                fault: StoreFault::Full,
                ..
            }
        ));
        assert_eq!(http_status(&full), 503);
        assert!(full.retry_after().is_some());
        assert!(full.public_message().contains("disk is full"));

        let io = sqlite(rusqlite::ffi::SQLITE_IOERR_WRITE);
        assert!(matches!(
            io,
            Error::Store {
                fault: StoreFault::Io,
                ..
            }
        ));
        assert_eq!(http_status(&io), 503);

        for code in [rusqlite::ffi::SQLITE_CORRUPT, rusqlite::ffi::SQLITE_NOTADB] {
            let corrupt = sqlite(code);
            assert_eq!(http_status(&corrupt), 500);
            assert_eq!(twilio_code(&corrupt), 20500);
            assert!(corrupt.public_message().contains("corrupt"));
        }

        // Anything else says nothing of SQLite to the caller.
        let busy = sqlite(rusqlite::ffi::SQLITE_BUSY);
        assert_eq!(http_status(&busy), 500);
        assert_eq!(busy.public_message(), "internal error");
    }
}
