//! Entry points for the fuzz targets in `fuzz/` (not part of the API, hidden from the
//! docs): Twilio's answers read and checked by the very functions the twilio backend uses
//! (`super::answer`), without a network exchange around them.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::answer::{self, V1Expected, V2Expected};
use super::client::Answer;
use super::errors::{parse_retry_after, upstream_error};
use crate::domain::error::{Error, UpstreamError};
use crate::domain::{Participant, ParticipantRef, ServiceParticipant, ServiceParticipantRef};

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = super::errors::MAX_RETRY_AFTER;

fn answer(status: StatusCode, headers: HeaderMap, body: &[u8]) -> Answer {
    Answer {
        status,
        headers,
        body: Bytes::copy_from_slice(body),
    }
}

/// A success answer to a fetch of the v2 participant `key`, as that call reads and checks
/// it.
pub fn v2_participant(
    status: StatusCode,
    body: &[u8],
    key: &ParticipantRef,
) -> Result<Participant, Error> {
    answer::participant(
        &answer(status, HeaderMap::new(), body),
        V2Expected::fetched(key),
    )
}

/// A success answer to a fetch of the v1 participant `key`, as that call reads and checks
/// it; the parents Twilio leaves out come from the request.
pub fn v1_participant(
    status: StatusCode,
    body: &[u8],
    key: &ServiceParticipantRef,
) -> Result<ServiceParticipant, Error> {
    answer::service_participant(
        &answer(status, HeaderMap::new(), body),
        V1Expected::fetched(key),
    )
}

/// An error answer (any status), as every call reads it.
pub fn error_answer(status: StatusCode, headers: HeaderMap, body: &[u8]) -> UpstreamError {
    upstream_error(&answer(status, headers, body))
}

/// A `Retry-After` value.
pub fn retry_after(value: &str) -> Option<Duration> {
    parse_retry_after(value)
}
