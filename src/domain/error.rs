//! The one error type of the domain, whatever the front or backend. It carries no gRPC,
//! HTTP or SQLite type: the fronts map it into their protocol's answer
//! (`front::grpc::status`, `twilio_api::codes`), and the stores map their own errors
//! into it (`backend::local::fault`).

use std::time::Duration;

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
    /// A request refused before it reaches a backend, as HTTP would say it: malformed
    /// body (400), unknown route (404), wrong method (405), body too slow (408), too
    /// large (413), wrong content type (415), head too large (431), or more than one
    /// message in a unary call (501).
    #[error("{message}")]
    Rejected {
        /// The HTTP status code that names the refusal (a number: no HTTP type here).
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

    /// The error's kind as one word, for `ErrorInfo.reason` and logs: `NOT_FOUND`,
    /// `STORE_FULL`, ... (`None` for bad input, described field by field instead, and for
    /// Twilio's own errors, which carry Twilio's code).
    pub fn reason(&self) -> Option<&'static str> {
        Some(match self {
            Error::InvalidArgument(_) | Error::Rejected { .. } | Error::Upstream(_) => return None,
            Error::NotFound { .. } => "NOT_FOUND",
            Error::AlreadyExists { .. } => "ALREADY_EXISTS",
            Error::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Error::Unavailable { .. } => "UNAVAILABLE",
            Error::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
            Error::DeadlineExceeded(_) => "DEADLINE_EXCEEDED",
            Error::UpstreamProtocol(_) => "UPSTREAM_PROTOCOL_ERROR",
            Error::Unauthenticated(_) => "UNAUTHENTICATED",
            Error::Store { fault, .. } => match fault {
                StoreFault::Full => "STORE_FULL",
                StoreFault::Io => "STORE_IO_ERROR",
                StoreFault::Corrupt => "STORE_CORRUPT",
                StoreFault::Other => "INTERNAL",
            },
            Error::Internal(_) => "INTERNAL",
        })
    }

    /// Shorthand for [`Error::Unavailable`].
    pub fn unavailable(message: impl Into<String>, retry_after: Option<Duration>) -> Error {
        Error::Unavailable {
            message: message.into(),
            retry_after,
        }
    }

    /// Shorthand for [`Error::Rejected`].
    pub fn rejected(status: u16, message: impl Into<String>) -> Error {
        Error::Rejected {
            status,
            message: message.into(),
        }
    }
}
