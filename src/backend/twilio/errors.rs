//! Twilio's error answers in the domain's terms: an [`UpstreamError`] whatever the body
//! looks like, and `Retry-After` read as RFC 9110 writes it.

use std::time::Duration;

use super::client::Answer;
use crate::domain::error::UpstreamError;
use crate::twilio_api::TwilioErrorBody;

/// Longest `Retry-After` honoured; beyond it the call fails with RetryInfo instead.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Twilio's error answer as an [`UpstreamError`], whatever its body looks like.
pub(super) fn upstream_error(answer: &Answer) -> UpstreamError {
    let status = answer.status.as_u16();
    let body: Option<TwilioErrorBody> = serde_json::from_slice(&answer.body).ok();
    let message = body
        .as_ref()
        .and_then(|b| b.message.clone())
        // An empty message says no more than an absent one.
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| {
            let what = if answer.body.is_empty() {
                "an empty body"
            } else if body.is_some() {
                "no message"
            } else {
                "a body that is not Twilio's JSON error"
            };
            format!("Twilio answered HTTP {status} with {what}")
        });
    let header = |name: &str| answer.headers.get(name).and_then(|v| v.to_str().ok());
    UpstreamError {
        http_status: status,
        code: body.as_ref().and_then(|b| b.code),
        message,
        more_info: body.and_then(|b| b.more_info),
        conflicting_id: header("x-conflicting-resource-id").map(str::to_owned),
        retry_after: header("retry-after").and_then(parse_retry_after),
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110), capped at [`MAX_RETRY_AFTER`].
pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;

    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date_and_is_capped() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("999999"), Some(MAX_RETRY_AFTER));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let d = parse_retry_after(&soon).expect("http date");
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn an_error_answer_always_has_a_message() {
        // Found by fuzz/fuzz_targets/upstream_answer.rs: `{"message": ""}` gave callers
        // an error with an empty message.
        for body in [
            &br#"{"message": "", "code": 20429}"#[..],
            b"{\"message\": \" \"}",
        ] {
            let error = upstream_error(&Answer {
                status: StatusCode::TOO_MANY_REQUESTS,
                headers: HeaderMap::new(),
                body: Bytes::from_static(body),
            });
            assert_eq!(error.message, "Twilio answered HTTP 429 with no message");
        }
        let error = upstream_error(&Answer {
            status: StatusCode::NOT_FOUND,
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"message": "not found", "code": 20404}"#),
        });
        assert_eq!(
            (error.message.as_str(), error.code),
            ("not found", Some(20404))
        );
    }
}
