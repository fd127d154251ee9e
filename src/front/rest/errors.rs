//! Errors the REST way: Twilio's error body with the status the contract's table gives,
//! and `Retry-After`, `X-Conflicting-Resource-Id` and `WWW-Authenticate` where they apply.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::domain::error::Error;
use crate::twilio_api::codes::http_status;
use crate::twilio_api::error_body;

/// An [`Error`] answered the REST way.
pub struct RestError(pub Error);

impl From<Error> for RestError {
    fn from(e: Error) -> Self {
        RestError(e)
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

/// Twilio's error body for `err`, with `Retry-After`, `X-Conflicting-Resource-Id` and
/// `WWW-Authenticate` where they apply.
pub fn error_response(err: &Error) -> Response {
    let status =
        StatusCode::from_u16(http_status(err)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(error_body(err))).into_response();
    let headers = response.headers_mut();
    if let Some(after) = err.retry_after() {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(after.as_secs().max(1)),
        );
    }
    if let Some(id) = err
        .conflicting_id()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        headers.insert("x-conflicting-resource-id", id);
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"participants-facade\""),
        );
    }
    response
}
