//! Twilio's error body: what the REST front answers for every error, and what Twilio
//! answers for its own.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::codes::{http_status, twilio_code};
use crate::domain::error::Error;

/// Twilio's error body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TwilioErrorBody {
    /// Twilio's error code (see the README's error table).
    pub code: u32,
    /// What went wrong.
    pub message: String,
    /// Link to the error code's documentation.
    pub more_info: String,
    /// The HTTP status, repeated.
    pub status: u16,
}

/// Twilio's error body for `err`.
pub fn error_body(err: &Error) -> TwilioErrorBody {
    let status = http_status(err);
    let code = twilio_code(err);
    let more_info = match err {
        Error::Upstream(e) => e.more_info.clone(),
        _ => None,
    }
    .unwrap_or_else(|| format!("https://www.twilio.com/docs/errors/{code}"));
    TwilioErrorBody {
        code,
        message: err.public_message(),
        more_info,
        status,
    }
}
