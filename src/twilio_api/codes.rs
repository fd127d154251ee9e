//! The contract's table read for HTTP: the status and Twilio's error `code` of each
//! domain error, as the REST front writes them.

use crate::domain::error::{Conflict, Error, StoreFault};

/// The HTTP status, the contract's table read the other way.
pub(crate) fn http_status(err: &Error) -> u16 {
    match err {
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
        Error::Rejected { status, .. } => *status,
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
pub(crate) fn twilio_code(err: &Error) -> u32 {
    match err {
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
        Error::Rejected { status: 400, .. } => 70002,
        Error::Rejected { status: 404, .. } => 20404,
        Error::Internal(_) | Error::UpstreamProtocol(_) => 20500,
        Error::Store { .. } => match http_status(err) {
            503 => 20503,
            _ => 20500,
        },
        Error::Rejected { status, .. } => u32::from(*status),
        Error::DeadlineExceeded(_) => u32::from(http_status(err)),
    }
}
