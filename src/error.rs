//! The one error type of the domain, and the one place where it becomes a gRPC status
//! (with `google.rpc` details) or an HTTP status.
//!
//! Codes follow the contract's table: 400/422 INVALID_ARGUMENT, 404 NOT_FOUND,
//! 409 ALREADY_EXISTS, 503 UNAVAILABLE (with RetryInfo), 500 INTERNAL.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of errors the facade raises itself (upstream errors use `twilio.com`).
pub const DOMAIN: &str = "participants-facade";

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
    /// The backend cannot serve now (store closed, draining); retrying later may succeed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
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
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
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
            Error::Unavailable(_) => 503,
            Error::Internal(_) => 500,
        }
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
            Error::Unavailable(_) => {
                details.set_retry_info(Some(Duration::from_secs(1)));
                err.to_string()
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
