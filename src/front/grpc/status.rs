//! The domain error as a gRPC status: the code per the contract's table, and the
//! `google.rpc` details (ErrorInfo, BadRequest, RetryInfo) that clients decode.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::error::{Error, StoreFault};

/// `ErrorInfo.domain` of errors the facade raises itself.
pub(crate) const DOMAIN: &str = "participants-facade";
/// `ErrorInfo.domain` of errors Twilio answered.
pub(crate) const UPSTREAM_DOMAIN: &str = "twilio.com";

/// The gRPC code, per the contract's table.
pub(crate) fn code(err: &Error) -> Code {
    match err {
        Error::InvalidArgument(_) | Error::IdempotencyKeyReused => Code::InvalidArgument,
        Error::NotFound { .. } => Code::NotFound,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::Unavailable { .. } => Code::Unavailable,
        Error::ResourceExhausted(_) => Code::ResourceExhausted,
        Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
        Error::Upstream(e) => code_of_http(e.http_status),
        Error::Unauthenticated(_) => Code::Unauthenticated,
        // A message over the size limit: what gRPC's status-code table says.
        Error::Rejected { status: 413, .. } => Code::ResourceExhausted,
        // This server's own 408 (--body-timeout) and 431 (request head too large).
        Error::Rejected { status: 408, .. } => Code::DeadlineExceeded,
        Error::Rejected { status: 431, .. } => Code::ResourceExhausted,
        Error::Rejected { status, .. } => code_of_http(*status),
        Error::Store { fault, .. } => match fault {
            StoreFault::Full | StoreFault::Io => Code::Unavailable,
            StoreFault::Corrupt | StoreFault::Other => Code::Internal,
        },
        Error::UpstreamProtocol(_) | Error::Internal(_) => Code::Internal,
    }
}

/// The contract's table: an upstream (or REST) HTTP status as a gRPC code.
pub(crate) fn code_of_http(status: u16) -> Code {
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
            Error::InvalidArgument(_) | Error::Rejected { .. } => (None, DOMAIN),
            Error::Upstream(e) => (
                Some(
                    e.code
                        .map_or_else(|| format!("HTTP_{}", e.http_status), |c| c.to_string()),
                ),
                UPSTREAM_DOMAIN,
            ),
            other => (other.reason().map(str::to_owned), DOMAIN),
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
        Status::with_error_details(code(&err), err.public_message(), details)
    }
}
