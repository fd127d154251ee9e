//! Entry points for the fuzz targets in `fuzz/` (not part of the API, hidden from the
//! docs): Twilio's answers read by the very functions the twilio backend reads them with,
//! without a network exchange around them.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::{Answer, parse, parse_retry_after, upstream_error, wire};
use crate::error::{Error, UpstreamError};
use crate::model::{Participant, ServiceParticipant};

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = super::MAX_RETRY_AFTER;

fn answer(status: StatusCode, headers: HeaderMap, body: &[u8]) -> Answer {
    Answer {
        status,
        headers,
        body: Bytes::copy_from_slice(body),
    }
}

/// A success answer to a v2 create or fetch, as those calls read it.
pub fn v2_participant(status: StatusCode, body: &[u8]) -> Result<Participant, Error> {
    parse::<wire::V2Participant>(&answer(status, HeaderMap::new(), body)).map(Participant::from)
}

/// A success answer to a v1 create or fetch, as those calls read it; the parents Twilio
/// leaves out come from the request.
pub fn v1_participant(
    status: StatusCode,
    body: &[u8],
    chat_service_sid: &str,
    conversation_sid: &str,
) -> Result<ServiceParticipant, Error> {
    parse::<wire::V1Participant>(&answer(status, HeaderMap::new(), body))
        .map(|p| p.into_domain(chat_service_sid, conversation_sid))
}

/// An error answer (any status), as every call reads it.
pub fn error_answer(status: StatusCode, headers: HeaderMap, body: &[u8]) -> UpstreamError {
    upstream_error(&answer(status, headers, body))
}

/// A `Retry-After` value.
pub fn retry_after(value: &str) -> Option<Duration> {
    parse_retry_after(value)
}
