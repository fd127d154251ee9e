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
        /// Which uniqueness rule was hit, in words.
        conflict: &'static str,
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
    /// A bug or an environment failure (disk, corrupt data). The detail is logged, not
    /// sent to the caller.
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
            Error::UpstreamProtocol(_) => 502,
            Error::Internal(_) => 500,
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
        let code = err.grpc_code();
        let mut details = ErrorDetails::new();
        let message = match &err {
            Error::InvalidArgument(violations) => {
                for v in violations {
                    details.add_bad_request_violation(&v.field, &v.description);
                }
                err.to_string()
            }
            Error::NotFound { .. } => {
                details.set_error_info("NOT_FOUND", DOMAIN, HashMap::new());
                err.to_string()
            }
            Error::AlreadyExists { conflicting_id, .. } => {
                details.set_error_info(
                    "ALREADY_EXISTS",
                    DOMAIN,
                    HashMap::from([("conflicting_resource_id".to_owned(), conflicting_id.clone())]),
                );
                err.to_string()
            }
            Error::IdempotencyKeyReused => {
                details
                    .set_error_info("IDEMPOTENCY_KEY_REUSED", DOMAIN, HashMap::new())
                    .add_bad_request_violation(
                        "idempotency_key",
                        "already used with a different request",
                    );
                err.to_string()
            }
            Error::Unavailable { retry_after, .. } => {
                details.set_retry_info(Some(retry_after.unwrap_or(Duration::from_secs(1))));
                err.to_string()
            }
            Error::ResourceExhausted(_) => {
                details.set_retry_info(Some(Duration::from_secs(1)));
                err.to_string()
            }
            Error::DeadlineExceeded(_) | Error::UpstreamProtocol(_) => err.to_string(),
            Error::Upstream(e) => {
                let mut metadata =
                    HashMap::from([("http_status".to_owned(), e.http_status.to_string())]);
                if let Some(more_info) = &e.more_info {
                    metadata.insert("more_info".to_owned(), more_info.clone());
                }
                if let Some(id) = &e.conflicting_id {
                    metadata.insert("conflicting_resource_id".to_owned(), id.clone());
                }
                let reason = e
                    .code
                    .map_or_else(|| format!("HTTP_{}", e.http_status), |c| c.to_string());
                details.set_error_info(reason, UPSTREAM_DOMAIN, metadata);
                match (e.retry_after, e.http_status) {
                    (Some(after), _) => {
                        details.set_retry_info(Some(after));
                    }
                    (None, 503) => {
                        details.set_retry_info(Some(Duration::from_secs(1)));
                    }
                    _ => {}
                }
                e.message.clone()
            }
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".to_owned()
            }
        };
        Status::with_error_details(code, message, details)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Error::Internal(format!("store: {err}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Internal(format!("stored record does not decode: {err}"))
    }
}
