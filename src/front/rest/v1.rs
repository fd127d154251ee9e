//! v1: participants of a conversation in a chat service (form in, snake_case JSON out).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::errors::{RestError, http_error, path_rejection};
use super::extract::TwilioForm;
use super::{Context, RestState, call_context, format_date, idempotency_key, raw_date};
use crate::domain;
use crate::domain::{MessagingBinding, ServiceParticipantDraft, ServiceParticipantRef};
use crate::twilio_api::TwilioErrorBody;

/// Form fields of `POST /v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateServiceParticipantForm {
    /// Chat identity, at most 256 characters.
    #[serde(rename = "Identity")]
    pub identity: Option<String>,
    /// JSON text.
    #[serde(rename = "Attributes")]
    pub attributes: Option<String>,
    /// The participant's own number.
    #[serde(rename = "MessagingBinding.Address")]
    pub messaging_binding_address: Option<String>,
    /// The Twilio number the participant talks to.
    #[serde(rename = "MessagingBinding.ProxyAddress")]
    pub messaging_binding_proxy_address: Option<String>,
    /// The group MMS number a chat participant is projected as.
    #[serde(rename = "MessagingBinding.ProjectedAddress")]
    pub messaging_binding_projected_address: Option<String>,
    /// `RL` + 32 hex digits.
    #[serde(rename = "RoleSid")]
    pub role_sid: Option<String>,
    /// RFC 3339 creation date to record.
    #[serde(rename = "DateCreated")]
    pub date_created: Option<String>,
    /// RFC 3339 update date to record.
    #[serde(rename = "DateUpdated")]
    pub date_updated: Option<String>,
}

/// `messaging_binding` of a v1 participant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessagingBindingJson {
    /// `sms`, `whatsapp` or `rcs`, from the address.
    #[serde(rename = "type")]
    pub kind: String,
    /// The participant's own number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The Twilio number the participant talks to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_address: Option<String>,
    /// The group MMS number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected_address: Option<String>,
}

/// A v1 participant, in Twilio's snake_case shape.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceParticipantJson {
    /// `AC` + 32 hex.
    pub account_sid: String,
    /// `IS` + 32 hex.
    pub chat_service_sid: String,
    /// `CH` + 32 hex.
    pub conversation_sid: String,
    /// `MB` + 32 hex.
    pub sid: String,
    /// Chat identity, null for SMS/WhatsApp participants.
    pub identity: Option<String>,
    /// JSON text, `{}` when unset.
    pub attributes: String,
    /// How a non-chat participant is reached.
    pub messaging_binding: Option<MessagingBindingJson>,
    /// `RL` + 32 hex.
    pub role_sid: Option<String>,
    /// ISO 8601 creation date.
    pub date_created: Option<String>,
    /// ISO 8601 update date.
    pub date_updated: Option<String>,
    /// Absolute URL of this participant.
    pub url: String,
    /// Index of the last read message.
    pub last_read_message_index: Option<i64>,
    /// Timestamp of the last read message.
    pub last_read_timestamp: Option<String>,
}

fn binding_kind(address: Option<&str>) -> &'static str {
    match address {
        Some(a) if a.starts_with("whatsapp:") => "whatsapp",
        Some(a) if a.starts_with("rcs:") => "rcs",
        _ => "sms",
    }
}

fn service_participant_json(p: domain::ServiceParticipant, base: &str) -> ServiceParticipantJson {
    let url = format!("{base}{}", p.path());
    ServiceParticipantJson {
        account_sid: p.account_sid,
        chat_service_sid: p.chat_service_sid,
        conversation_sid: p.conversation_sid,
        sid: p.sid,
        identity: p.identity,
        attributes: p.attributes,
        messaging_binding: p.messaging_binding.map(|b| MessagingBindingJson {
            kind: binding_kind(b.address.as_deref().or(b.proxy_address.as_deref())).to_owned(),
            address: b.address,
            proxy_address: b.proxy_address,
            projected_address: b.projected_address,
        }),
        role_sid: p.role_sid,
        date_created: p.date_created.map(format_date),
        date_updated: p.date_updated.map(format_date),
        url,
        last_read_message_index: p.last_read_message_index,
        last_read_timestamp: p.last_read_timestamp,
    }
}

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

fn webhook_enabled(headers: &HeaderMap) -> Result<bool, RestError> {
    match headers
        .get("x-twilio-webhook-enabled")
        .map(HeaderValue::as_bytes)
    {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case(b"true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case(b"false") => Ok(false),
        Some(_) => Err(http_error(
            400,
            "X-Twilio-Webhook-Enabled must be true or false",
        )),
    }
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
    path: Result<Path<(String, String)>, PathRejection>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    form: Result<TwilioForm<CreateServiceParticipantForm>, RestError>,
) -> Result<(StatusCode, Json<ServiceParticipantJson>), RestError> {
    let Path((chat_service_sid, conversation_sid)) = path.map_err(path_rejection)?;
    let TwilioForm(form) = form?;
    let draft = ServiceParticipantDraft {
        chat_service_sid,
        conversation_sid,
        identity: form.identity.unwrap_or_default(),
        attributes: form.attributes.unwrap_or_default(),
        messaging_binding: MessagingBinding {
            address: form.messaging_binding_address,
            proxy_address: form.messaging_binding_proxy_address,
            projected_address: form.messaging_binding_projected_address,
        },
        role_sid: form.role_sid.unwrap_or_default(),
        date_created: raw_date(form.date_created),
        date_updated: raw_date(form.date_updated),
        webhook_enabled: webhook_enabled(&headers)?,
        idempotency_key: idempotency_key(&headers)?,
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
        Json(service_participant_json(created, &base)),
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
    path: Result<Path<(String, String, String)>, PathRejection>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Json<ServiceParticipantJson>, RestError> {
    let Path((chat_service_sid, conversation_sid, sid)) = path.map_err(path_rejection)?;
    let key = ServiceParticipantRef {
        chat_service_sid,
        conversation_sid,
        sid,
    }
    .validate()?;
    let ctx = call_context(ctx);
    let found = state.backend.fetch_service_participant(&ctx, key).await?;
    let base = base_url(&state, &headers, &uri);
    Ok(Json(service_participant_json(found, &base)))
}
