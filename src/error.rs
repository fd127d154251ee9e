//! The one error type of the domain, and the one place where it becomes a gRPC status
//! (with `google.rpc` details) or an HTTP status.
//!
//! Codes follow the contract's table: 400/422 INVALID_ARGUMENT, 404 NOT_FOUND,
//! 409 ALREADY_EXISTS, 503 UNAVAILABLE (with RetryInfo), 500 INTERNAL.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of errors the facade raises itself.
pub const DOMAIN: &str = "participants-facade";
/// `ErrorInfo.domain` of errors Twilio answered.
pub const UPSTREAM_DOMAIN: &str = "twilio.com";

/// An error answer from Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    /// The HTTP status Twilio answered.
    pub http_status: u16,
    /// Twilio's error code (`code` in its body), such as 20404.
    pub code: Option<i64>,
    /// Twilio's message, or a description of the answer when it had none.
    pub message: String,
    /// Twilio's `more_info` link.
    pub more_info: Option<String>,
    /// `X-Conflicting-Resource-Id` of a 409.
    pub conflicting_id: Option<String>,
    /// `Retry-After`, when Twilio said.
    pub retry_after: Option<Duration>,
}

/// One violated rule of one request field, reported in a `google.rpc.BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, such as `addresses[0].address`.
    pub field: String,
    /// What the field must be; never the rejected value itself (it may be personal data).
    pub description: String,
}

/// The kind of resource an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A Conversation Orchestrator (v2) participant.
    Participant,
    /// A Conversations (v1) service participant.
    ServiceParticipant,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Participant => "participant",
            Resource::ServiceParticipant => "service participant",
        }
    }
}

/// Which uniqueness rule a create broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// v2: a participant of the conversation already has this channel and address.
    Address,
    /// v1: a participant with this identity is already in the conversation.
    Identity,
    /// v1: a participant with this messaging binding is already in the conversation.
    Binding,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conflict::Address => {
                "a participant of this conversation already has this channel and address"
            }
            Conflict::Identity => "a participant with this identity is already in the conversation",
            Conflict::Binding => {
                "a participant with this messaging binding is already in the conversation"
            }
        })
    }
}

/// What kind of failure the local store met, as far as it decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// The disk is full, or a file-size limit (`RLIMIT_FSIZE`) was reached: writes fail,
    /// reads go on; it passes once space is freed.
    Full,
    /// Reading or writing the files failed (an I/O error; also a write past a file-size
    /// limit, which SQLite cannot tell from other write errors).
    Io,
    /// The database is corrupt; it does not pass by itself.
    Corrupt,
    /// Anything else (a bug, a busy timeout).
    Other,
}

/// Everything that can go wrong in a call, whatever the front or backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request breaks one or more input rules.
    #[error("invalid request: {}", summary(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No such resource, or it belongs to another parent.
    #[error("{} not found", .resource.name())]
    NotFound {
        /// What was looked for.
        resource: Resource,
    },
    /// The request collides with an existing resource.
    #[error("{} already exists: {conflict}", .resource.name())]
    AlreadyExists {
        /// The kind of resource.
        resource: Resource,
        /// The id of the existing resource (Twilio's `X-Conflicting-Resource-Id`).
        conflicting_id: String,
        /// Which uniqueness rule was hit.
        conflict: Conflict,
    },
    /// An idempotency key was sent again with a different request.
    #[error(
        "idempotency key was already used with a different request; use a new key for a new request"
    )]
    IdempotencyKeyReused,
    /// The backend cannot serve now (store closed, upstream unreachable, circuit open);
    /// retrying later may succeed.
    #[error("service unavailable: {message}")]
    Unavailable {
        /// What is unavailable.
        message: String,
        /// When to try again, if known.
        retry_after: Option<Duration>,
    },
    /// Too many calls in flight to an upstream; retry later.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The call's deadline passed before an answer.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// Twilio answered with an error status.
    #[error("upstream error: {}", .0.message)]
    Upstream(Box<UpstreamError>),
    /// Twilio answered success with a body that is not what the API promises.
    #[error("upstream protocol error: {0}")]
    UpstreamProtocol(String),
    /// The caller did not prove who it is (inbound auth).
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// A request the HTTP front refuses before it reaches a backend: malformed body (400),
    /// unknown route (404), wrong method (405), body too large (413), wrong content
    /// type (415).
    #[error("{message}")]
    Http {
        /// The HTTP status to answer.
        status: u16,
        /// What was wrong.
        message: String,
    },
    /// The local store failed to read or write. The detail is logged, not sent to the
    /// caller, who learns only what kind of failure it was.
    #[error("store: {detail}")]
    Store {
        /// What kind of failure.
        fault: StoreFault,
        /// SQLite's own words, for the log.
        detail: String,
    },
    /// A bug or an environment failure. The detail is logged, not sent to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summary(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The gRPC code, per the contract's table.
    pub fn grpc_code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) | Error::IdempotencyKeyReused => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            Error::AlreadyExists { .. } => Code::AlreadyExists,
            Error::Unavailable { .. } => Code::Unavailable,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Upstream(e) => grpc_code_of_http(e.http_status),
            Error::Unauthenticated(_) => Code::Unauthenticated,
            // A message over the size limit: what gRPC's status-code table says.
            Error::Http { status: 413, .. } => Code::ResourceExhausted,
            // This server's own 408 (--body-timeout) and 431 (request head too large).
            Error::Http { status: 408, .. } => Code::DeadlineExceeded,
            Error::Http { status: 431, .. } => Code::ResourceExhausted,
            Error::Http { status, .. } => grpc_code_of_http(*status),
            Error::Store { fault, .. } => match fault {
                StoreFault::Full | StoreFault::Io => Code::Unavailable,
                StoreFault::Corrupt | StoreFault::Other => Code::Internal,
            },
            Error::UpstreamProtocol(_) | Error::Internal(_) => Code::Internal,
        }
    }

    /// The HTTP status, the contract's table read the other way.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidArgument(_) => 400,
            Error::NotFound { .. } => 404,
            Error::AlreadyExists { .. } => 409,
            // draft-ietf-httpapi-idempotency-key-header: a reused key with another payload is 422.
            Error::IdempotencyKeyReused => 422,
            Error::Unavailable { .. } => 503,
            Error::ResourceExhausted(_) => 429,
            Error::DeadlineExceeded(_) => 504,
            Error::Upstream(e) => e.http_status,
            // INTERNAL both ways, as the contract's table reads (502 would read back as
            // UNAVAILABLE, which invites a retry that would meet the same answer).
            Error::UpstreamProtocol(_) => 500,
            Error::Unauthenticated(_) => 401,
            Error::Http { status, .. } => *status,
            Error::Store { fault, .. } => match fault {
                StoreFault::Full | StoreFault::Io => 503,
                StoreFault::Corrupt | StoreFault::Other => 500,
            },
            Error::Internal(_) => 500,
        }
    }

    /// The `code` of Twilio's error body on the REST front: Twilio's own code where Twilio
    /// has one for the case (20404 not found, 50416 binding exists, 50433 participant
    /// exists, 20003 authentication, 20422 invalid parameter value, 20429 too many
    /// requests, 20500 internal error, 20503 unavailable, 70002 malformed request), the
    /// upstream's code for upstream errors, else the HTTP status itself.
    pub fn twilio_code(&self) -> u32 {
        match self {
            Error::InvalidArgument(_) => 70002,
            Error::NotFound { .. } => 20404,
            Error::AlreadyExists { conflict, .. } => match conflict {
                Conflict::Identity => 50433,
                Conflict::Address | Conflict::Binding => 50416,
            },
            Error::IdempotencyKeyReused => 20422,
            Error::Unavailable { .. } => 20503,
            Error::ResourceExhausted(_) => 20429,
            Error::Unauthenticated(_) => 20003,
            Error::Upstream(e) => e
                .code
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(u32::from(e.http_status)),
            Error::Http { status: 400, .. } => 70002,
            Error::Http { status: 404, .. } => 20404,
            Error::Internal(_) | Error::UpstreamProtocol(_) => 20500,
            Error::Store { .. } => match self.http_status() {
                503 => 20503,
                _ => 20500,
            },
            Error::Http { status, .. } => u32::from(*status),
            Error::DeadlineExceeded(_) => u32::from(self.http_status()),
        }
    }

    /// The message a caller sees: the error's own words, except for internal errors, whose
    /// detail is logged here and replaced by a generic message.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".to_owned()
            }
            Error::Store { fault, detail } => {
                tracing::error!(error = %detail, ?fault, "store error");
                match fault {
                    StoreFault::Full => {
                        "the store cannot write: its disk is full or its file-size limit is \
                         reached; nothing was stored"
                    }
                    StoreFault::Io => "the store cannot read or write its files (an I/O error or a file-size limit)",
                    StoreFault::Corrupt => {
                        "the store's database is corrupt; its operator must restore it"
                    }
                    StoreFault::Other => "internal error",
                }
                .to_owned()
            }
            Error::Upstream(e) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// When the caller may try again, for RetryInfo and `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Unavailable { retry_after, .. } => {
                Some(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            Error::ResourceExhausted(_) => Some(Duration::from_secs(1)),
            Error::Store {
                fault: StoreFault::Full | StoreFault::Io,
                ..
            } => Some(Duration::from_secs(1)),
            Error::Upstream(e) => e
                .retry_after
                .or((e.http_status == 503).then_some(Duration::from_secs(1))),
            _ => None,
        }
    }

    /// The existing resource a conflict names (`X-Conflicting-Resource-Id`).
    pub fn conflicting_id(&self) -> Option<&str> {
        match self {
            Error::AlreadyExists { conflicting_id, .. } => Some(conflicting_id),
            Error::Upstream(e) => e.conflicting_id.as_deref(),
            _ => None,
        }
    }

    /// Shorthand for [`Error::Unavailable`].
    pub fn unavailable(message: impl Into<String>, retry_after: Option<Duration>) -> Error {
        Error::Unavailable {
            message: message.into(),
            retry_after,
        }
    }
}

/// The contract's table: an upstream (or REST) HTTP status as a gRPC code.
pub fn grpc_code_of_http(status: u16) -> Code {
    match status {
        400 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::AlreadyExists,
        412 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        500 => Code::Internal,
        501 => Code::Unimplemented,
        502 | 503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        400..=499 => Code::FailedPrecondition,
        _ => Code::Unknown,
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let mut details = ErrorDetails::new();
        let (reason, domain) = match &err {
            Error::InvalidArgument(_) | Error::Http { .. } => (None, DOMAIN),
            Error::Upstream(e) => (
                Some(
                    e.code
                        .map_or_else(|| format!("HTTP_{}", e.http_status), |c| c.to_string()),
                ),
                UPSTREAM_DOMAIN,
            ),
            other => {
                let reason = match other {
                    Error::NotFound { .. } => "NOT_FOUND",
                    Error::AlreadyExists { .. } => "ALREADY_EXISTS",
                    Error::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
                    Error::Unavailable { .. } => "UNAVAILABLE",
                    Error::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
                    Error::DeadlineExceeded(_) => "DEADLINE_EXCEEDED",
                    Error::UpstreamProtocol(_) => "UPSTREAM_PROTOCOL_ERROR",
                    Error::Unauthenticated(_) => "UNAUTHENTICATED",
                    Error::Store {
                        fault: StoreFault::Full,
                        ..
                    } => "STORE_FULL",
                    Error::Store {
                        fault: StoreFault::Io,
                        ..
                    } => "STORE_IO_ERROR",
                    Error::Store {
                        fault: StoreFault::Corrupt,
                        ..
                    } => "STORE_CORRUPT",
                    _ => "INTERNAL",
                };
                (Some(reason.to_owned()), DOMAIN)
            }
        };
        if let Some(reason) = reason {
            let mut metadata = HashMap::new();
            if let Some(id) = err.conflicting_id() {
                metadata.insert("conflicting_resource_id".to_owned(), id.to_owned());
            }
            if let Error::Upstream(e) = &err {
                metadata.insert("http_status".to_owned(), e.http_status.to_string());
                if let Some(more_info) = &e.more_info {
                    metadata.insert("more_info".to_owned(), more_info.clone());
                }
            }
            details.set_error_info(reason, domain, metadata);
        }
        match &err {
            Error::InvalidArgument(violations) => {
                for v in violations {
                    details.add_bad_request_violation(&v.field, &v.description);
                }
            }
            Error::IdempotencyKeyReused => {
                details.add_bad_request_violation(
                    "idempotency_key",
                    "already used with a different request",
                );
            }
            _ => {}
        }
        if let Some(after) = err.retry_after() {
            details.set_retry_info(Some(after));
        }
        Status::with_error_details(err.grpc_code(), err.public_message(), details)
    }
}

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
        assert_eq!(full.grpc_code(), Code::Unavailable);
        assert_eq!(full.http_status(), 503);
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
        assert_eq!(io.grpc_code(), Code::Unavailable);

        for code in [rusqlite::ffi::SQLITE_CORRUPT, rusqlite::ffi::SQLITE_NOTADB] {
            let corrupt = sqlite(code);
            assert_eq!(corrupt.grpc_code(), Code::Internal);
            assert_eq!(corrupt.twilio_code(), 20500);
            assert!(corrupt.public_message().contains("corrupt"));
        }

        // Anything else says nothing of SQLite to the caller.
        let busy = sqlite(rusqlite::ffi::SQLITE_BUSY);
        assert_eq!(busy.grpc_code(), Code::Internal);
        assert_eq!(busy.public_message(), "internal error");
    }
}
