//! A Rust client of `participants.v1.ParticipantService`.
//!
//! - [`proto`]: the messages and the tonic client, generated from the repository's proto.
//! - [`connect`]: a channel with the defaults a service wants (connect timeout,
//!   HTTP/2 keep-alive).
//! - [`ApiError`]: a failed call as a typed error, decoded from the `google.rpc` details
//!   the server sends (`BadRequest`, `ErrorInfo`, `RetryInfo`), so callers match on what
//!   went wrong instead of parsing messages.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use participants_client::{ApiError, connect, proto};
//! let mut client = connect("http://127.0.0.1:50051").await?;
//! let mut request = tonic::Request::new(proto::FetchParticipantRequest {
//!     conversation_id: "conv_1".into(),
//!     participant_id: "conv_participant_1".into(),
//! });
//! request.set_timeout(std::time::Duration::from_secs(5));
//! match client.fetch_participant(request).await.map_err(ApiError::from) {
//!     Ok(found) => println!("{}", found.into_inner().id),
//!     Err(ApiError::NotFound { .. }) => println!("no such participant"),
//!     Err(other) => return Err(other.into()),
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// The generated messages and client of `participants.v1`.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("participants.v1");
}

pub use proto::participant_service_client::ParticipantServiceClient;

/// `ErrorInfo.metadata` key naming the participant that already holds an address or
/// identity (ALREADY_EXISTS).
pub const CONFLICTING_RESOURCE_ID: &str = "conflicting_resource_id";

/// Connects to `uri` (e.g. `http://127.0.0.1:50051`) with a connect timeout and HTTP/2
/// keep-alive, so a dead peer is noticed. Set a deadline on each call as well
/// (`Request::set_timeout`); it travels as `grpc-timeout`.
pub async fn connect(
    uri: impl Into<String>,
) -> Result<ParticipantServiceClient<Channel>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(uri.into())?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    Ok(ParticipantServiceClient::new(channel))
}

/// `message` as a request whose `grpc-timeout` is what is left until `deadline`, so the
/// server stops working on it when the caller stops waiting. With [`within`], the call
/// also ends on the caller's side at `deadline`.
pub fn request<T>(message: T, deadline: tokio::time::Instant) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    request.set_timeout(left.max(Duration::from_millis(1)));
    request
}

/// Runs `call` until `deadline` (a budget handed down by the caller's own caller, say):
/// its answer, its error as an [`ApiError`], or [`ApiError::DeadlineExceeded`] once the
/// deadline passes, whether or not the server has answered.
pub async fn within<T>(
    deadline: tokio::time::Instant,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, ApiError> {
    // A budget already spent ends the call before it is sent: tokio's timer rounds a
    // deadline up to its next millisecond tick, so a fast server could otherwise still
    // answer a call whose deadline had passed.
    if tokio::time::Instant::now() >= deadline {
        return Err(ApiError::DeadlineExceeded {
            status: Status::deadline_exceeded("the caller's deadline passed"),
        });
    }
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status.into()),
        Err(_) => Err(ApiError::DeadlineExceeded {
            status: Status::deadline_exceeded("the caller's deadline passed"),
        }),
    }
}

/// One invalid field of a request, as the server's `BadRequest` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `addresses[0].address`.
    pub field: String,
    /// What it must be.
    pub description: String,
}

/// A failed call, by what the caller can do about it.
#[derive(Debug)]
pub enum ApiError {
    /// INVALID_ARGUMENT: fix the request; one violation per invalid field.
    InvalidArgument {
        /// The fields at fault.
        violations: Vec<FieldViolation>,
        /// The status, for logs.
        status: Status,
    },
    /// ALREADY_EXISTS: another participant holds the address or identity.
    AlreadyExists {
        /// `ErrorInfo.reason`.
        reason: String,
        /// The participant that holds it, when the server names it.
        conflicting_resource_id: Option<String>,
        /// The status, for logs.
        status: Status,
    },
    /// NOT_FOUND.
    NotFound {
        /// The status, for logs.
        status: Status,
    },
    /// UNAVAILABLE or RESOURCE_EXHAUSTED: try again, after `retry_after` when given.
    Retryable {
        /// `RetryInfo.retry_delay`.
        retry_after: Option<Duration>,
        /// The status, for logs.
        status: Status,
    },
    /// DEADLINE_EXCEEDED: the call's deadline passed before an answer.
    DeadlineExceeded {
        /// The status, for logs.
        status: Status,
    },
    /// Anything else (PERMISSION_DENIED, INTERNAL, ...).
    Other(Status),
}

impl ApiError {
    /// The status the error was made from.
    pub fn status(&self) -> &Status {
        match self {
            ApiError::InvalidArgument { status, .. }
            | ApiError::AlreadyExists { status, .. }
            | ApiError::NotFound { status }
            | ApiError::Retryable { status, .. }
            | ApiError::DeadlineExceeded { status }
            | ApiError::Other(status) => status,
        }
    }
}

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        // Details that do not decode are treated as absent: the code still says what
        // kind of failure it is.
        let details = status.get_error_details();
        match status.code() {
            Code::InvalidArgument => ApiError::InvalidArgument {
                violations: details
                    .bad_request()
                    .map(|bad| {
                        bad.field_violations
                            .iter()
                            .map(|v| FieldViolation {
                                field: v.field.clone(),
                                description: v.description.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                status,
            },
            Code::AlreadyExists => {
                let info = details.error_info();
                ApiError::AlreadyExists {
                    reason: info.map(|i| i.reason.clone()).unwrap_or_default(),
                    conflicting_resource_id: info
                        .and_then(|i| i.metadata.get(CONFLICTING_RESOURCE_ID).cloned()),
                    status,
                }
            }
            Code::NotFound => ApiError::NotFound { status },
            Code::Unavailable | Code::ResourceExhausted => ApiError::Retryable {
                retry_after: details.retry_info().and_then(|r| r.retry_delay),
                status,
            },
            Code::DeadlineExceeded => ApiError::DeadlineExceeded { status },
            // tonic's client enforces the request's timeout itself and reports it as
            // CANCELLED with `TimeoutExpired` as the source; gRPC calls it
            // DEADLINE_EXCEEDED.
            Code::Cancelled if timed_out(&status) => ApiError::DeadlineExceeded { status },
            _ => ApiError::Other(status),
        }
    }
}

/// Whether `status` is tonic's client-side timeout (`TimeoutExpired` in its sources).
fn timed_out(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = err.source();
    }
    false
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.status();
        write!(f, "{}: {}", status.code(), status.message())
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn invalid_argument_lists_the_fields() {
        let mut details = ErrorDetails::new();
        details
            .add_bad_request_violation("conversation_id", "required")
            .add_bad_request_violation("addresses[0].address", "must be an e-mail address");
        let status = Status::with_error_details(Code::InvalidArgument, "invalid", details);
        let ApiError::InvalidArgument { violations, .. } = ApiError::from(status) else {
            panic!("not InvalidArgument");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["conversation_id", "addresses[0].address"]);
    }

    #[test]
    fn already_exists_names_the_holder() {
        let details = ErrorDetails::with_error_info(
            "ALREADY_EXISTS",
            "participants-facade",
            HashMap::from([(
                CONFLICTING_RESOURCE_ID.to_owned(),
                "conv_participant_1".to_owned(),
            )]),
        );
        let status = Status::with_error_details(Code::AlreadyExists, "taken", details);
        match ApiError::from(status) {
            ApiError::AlreadyExists {
                reason,
                conflicting_resource_id,
                ..
            } => {
                assert_eq!(reason, "ALREADY_EXISTS");
                assert_eq!(
                    conflicting_resource_id.as_deref(),
                    Some("conv_participant_1")
                );
            }
            other => panic!("not AlreadyExists: {other:?}"),
        }
    }

    #[test]
    fn unavailable_carries_the_retry_delay() {
        let details = ErrorDetails::with_retry_info(Some(Duration::from_millis(1500)));
        let status = Status::with_error_details(Code::Unavailable, "draining", details);
        match ApiError::from(status) {
            ApiError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_millis(1500)))
            }
            other => panic!("not Retryable: {other:?}"),
        }
    }

    #[test]
    fn the_clients_own_timeout_is_a_deadline() {
        let status = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(status.code(), Code::Cancelled);
        assert!(matches!(
            ApiError::from(status),
            ApiError::DeadlineExceeded { .. }
        ));
        assert!(matches!(
            ApiError::from(Status::cancelled("the caller went away")),
            ApiError::Other(_)
        ));
    }

    #[tokio::test]
    async fn a_spent_deadline_ends_the_call_before_it_is_sent() {
        let spent = tokio::time::Instant::now();
        let answered = async { Ok(tonic::Response::new(())) };
        assert!(matches!(
            within(spent, answered).await,
            Err(ApiError::DeadlineExceeded { .. })
        ));
    }

    #[test]
    fn a_status_without_details_keeps_its_kind() {
        assert!(matches!(
            ApiError::from(Status::already_exists("taken")),
            ApiError::AlreadyExists {
                conflicting_resource_id: None,
                ..
            }
        ));
        assert!(matches!(
            ApiError::from(Status::internal("boom")),
            ApiError::Other(_)
        ));
    }
}
