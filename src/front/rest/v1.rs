//! v1: participants of a conversation in a chat service (form in, snake_case JSON out; the
//! types are [`crate::twilio_api::v1`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};

use super::errors::RestError;
use super::extract::{TwilioForm, TwilioPath, idempotency_key, webhooks};
use super::{Context, RestState, call_context};
use crate::domain::{ServiceParticipantDraft, ServiceParticipantRef};
use crate::twilio_api::TwilioErrorBody;
use crate::twilio_api::v1::{CreateServiceParticipantForm, ServiceParticipantJson};

/// The base of absolute `url` fields: `--public-url`, else the host the caller used. The
/// request target's authority comes first: RFC 9112 (3.2.2) says a server must ignore
/// `Host` when the target is in absolute form, and RFC 9113 prefers `:authority` over
/// HTTP/2; then the `Host` header. Only a plain `host[:port]` is taken (no user info,
/// nothing a URL could be bent with); anything else is `localhost`.
fn base_url(state: &RestState, headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    if let Some(url) = &state.public_url {
        return url.clone();
    }
    let plain = |h: &str| {
        !h.is_empty()
            && h.parse::<axum::http::uri::Authority>()
                .is_ok_and(|a| a.as_str() == a.host() || a.port().is_some())
            && !h.contains('@')
    };
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .filter(|h| plain(h))
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| plain(h))
        })
        .unwrap_or("localhost");
    let scheme = if state.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// Create a v1 participant in a conversation of a chat service.
#[utoipa::path(
    post,
    path = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants",
    tag = "v1",
    params(
        ("ChatServiceSid" = String, Path, description = "IS + 32 hex digits"),
        ("ConversationSid" = String, Path, description = "CH + 32 hex digits"),
        ("X-Twilio-Webhook-Enabled" = Option<String>, Header, description = "true or false"),
        ("Idempotency-Key" = Option<String>, Header, description = "Same key and same form: the same participant, created once"),
    ),
    request_body(content = CreateServiceParticipantForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, description = "Created", body = ServiceParticipantJson),
        (status = 400, description = "Invalid or malformed request", body = TwilioErrorBody),
        (status = 409, description = "Identity or binding already in the conversation", body = TwilioErrorBody),
    )
)]
pub(super) async fn create_service_participant(
    State(state): State<Arc<RestState>>,
    ctx: Context,
    TwilioPath((chat_service_sid, conversation_sid)): TwilioPath<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm<CreateServiceParticipantForm>,
) -> Result<(StatusCode, Json<ServiceParticipantJson>), RestError> {
    let draft = ServiceParticipantDraft {
        webhooks: webhooks(&headers)?,
        idempotency_key: idempotency_key(&headers)?,
        ..form.into_draft(chat_service_sid, conversation_sid)
    };
    let request = draft.validate()?;
    let ctx = call_context(ctx);
    let created = state
        .backend
        .create_service_participant(&ctx, request)
        .await?;
    let base = base_url(&state, &headers, &uri);
    Ok((
        StatusCode::CREATED,
        Json(ServiceParticipantJson::new(created, &base)),
    ))
}

/// Fetch a v1 participant by sid or identity.
#[utoipa::path(
    get,
    path = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants/{Sid}",
    tag = "v1",
    params(
        ("ChatServiceSid" = String, Path, description = "IS + 32 hex digits"),
        ("ConversationSid" = String, Path, description = "CH + 32 hex digits"),
        ("Sid" = String, Path, description = "MB sid, or the participant's identity"),
    ),
    responses(
        (status = 200, description = "OK", body = ServiceParticipantJson),
        (status = 404, description = "Not found", body = TwilioErrorBody),
    )
)]
pub(super) async fn fetch_service_participant(
    State(state): State<Arc<RestState>>,
    ctx: Context,
    TwilioPath((chat_service_sid, conversation_sid, sid)): TwilioPath<(String, String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Json<ServiceParticipantJson>, RestError> {
    let key = ServiceParticipantRef {
        chat_service_sid,
        conversation_sid,
        sid,
    }
    .validate()?;
    let ctx = call_context(ctx);
    let found = state.backend.fetch_service_participant(&ctx, key).await?;
    let base = base_url(&state, &headers, &uri);
    Ok(Json(ServiceParticipantJson::new(found, &base)))
}
