//! Twilio's error body: what the REST front answers for every error, and what Twilio
//! answers for its own.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::codes::{http_status, twilio_code};
use super::fields::lenient;
use crate::domain::error::Error;

// The REST front writes every field, as its schema says. Twilio's spec makes every field
// optional, so each is read as it comes: `code`, `message` and `more_info` must have
// their type or the body is not Twilio's error at all, and `status`, which the answer's
// own status line says better, is read leniently.

/// Twilio's error body.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TwilioErrorBody {
    /// Twilio's error code (see the README's error table).
    #[serde(default)]
    #[schema(value_type = u32, required = true)]
    pub code: Option<i64>,
    /// What went wrong.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub message: Option<String>,
    /// Link to the error code's documentation.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub more_info: Option<String>,
    /// The HTTP status, repeated.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = u16, required = true)]
    pub status: Option<u16>,
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
        code: Some(i64::from(code)),
        message: Some(err.public_message()),
        more_info: Some(more_info),
        status: Some(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_front_writes_every_field_in_twilios_order() {
        let body = error_body(&Error::Internal("boom".into()));
        let json = serde_json::to_string(&body).expect("serialises");
        assert!(json.starts_with(r#"{"code":20500,"message":"#), "{json}");
        assert!(
            json.ends_with(
                r#","more_info":"https://www.twilio.com/docs/errors/20500","status":500}"#
            ),
            "{json}"
        );
    }

    #[test]
    fn twilios_answers_are_read_whatever_they_leave_out() {
        let read = |json: &str| serde_json::from_str::<TwilioErrorBody>(json);
        let body = read(r#"{"code": 20404, "message": "gone", "status": "404"}"#).expect("read");
        assert_eq!((body.code, body.status), (Some(20404), None));
        assert!(read("{}").is_ok());
        assert!(read(r#"{"code": "20404"}"#).is_err(), "a mistyped code");
    }
}
