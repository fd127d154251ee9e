//! v1: participants of a conversation in a chat service (form in, snake_case JSON out; the
//! types are [`crate::twilio_api::v1`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};

use super::errors::RestError;
use super::extract::{TwilioForm, TwilioPath, TwilioQuery, idempotency_key, webhooks};
use super::paging::{self, V1ListQuery};
use super::{Context, RestState, call_context, nothing_to_change};
use crate::domain::page::MAX_V1_PAGE_SIZE;
use crate::domain::{
    DeleteServiceParticipant, ListServiceParticipants, ServiceParticipantDraft,
    ServiceParticipantRef, ServiceParticipantUpdateDraft,
};
use crate::twilio_api::TwilioErrorBody;
use crate::twilio_api::v1::{
    CreateServiceParticipantForm, ListServiceParticipantsJson, PageAt, ServiceParticipantJson,
    UpdateServiceParticipantForm,
};

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

/// A path segment as written in a URL: everything but RFC 3986's unreserved characters
/// escaped.
fn segment(text: &str) -> String {
    const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, ESCAPED).to_string()
}

/// List a v1 conversation's participants, oldest first, one page at a time; `meta` holds
/// absolute URLs of the first and next pages, which Twilio's SDKs follow as they are.
#[utoipa::path(
    get,
    path = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants",
    tag = "v1",
    params(
        ("ChatServiceSid" = String, Path, description = "IS + 32 hex digits"),
        ("ConversationSid" = String, Path, description = "CH + 32 hex digits"),
        ("PageSize" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Participants per page, 1 to 100 (default 50)"),
        ("Page" = Option<u32>, Query, minimum = 0, description = "The page's index, for the caller's own count"),
        ("PageToken" = Option<String>, Query, description = "From meta.next_page_url; absent for the first page"),
    ),
    responses(
        (status = 200, description = "One page", body = ListServiceParticipantsJson),
        (status = 400, description = "Invalid PageSize, Page or PageToken", body = TwilioErrorBody),
    )
)]
pub(super) async fn list_service_participants(
    State(state): State<Arc<RestState>>,
    ctx: Context,
    TwilioPath((chat_service_sid, conversation_sid)): TwilioPath<(String, String)>,
    TwilioQuery(query): TwilioQuery<V1ListQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Json<ListServiceParticipantsJson>, RestError> {
    let names = paging::V1;
    let page_size = paging::page_size(
        query.page_size.as_deref(),
        names.page_size,
        MAX_V1_PAGE_SIZE,
    )?;
    let page_index = paging::page_index(query.page.as_deref())?;
    let request = ListServiceParticipants::validate(
        chat_service_sid,
        conversation_sid,
        page_size,
        query.page_token.unwrap_or_default(),
    )
    .map_err(|e| paging::renamed(e, names))?;
    let path = format!(
        "/v1/Services/{}/Conversations/{}/Participants",
        segment(&request.chat_service_sid),
        segment(&request.conversation_sid)
    );
    let (size, token) = (request.page.page_size, request.page.page_token.clone());
    let ctx = call_context(ctx);
    let page = state
        .backend
        .list_service_participants(&ctx, request)
        .await
        .map_err(|e| paging::renamed(e, names))?;
    let base = base_url(&state, &headers, &uri);
    let at = PageAt {
        base: &base,
        path: &path,
        page_size: size,
        page: page_index,
        page_token: token.as_deref(),
    };
    Ok(Json(ListServiceParticipantsJson::new(page, &at)))
}

/// Update a v1 participant named by sid or identity: the fields present in the form
/// change, the others are kept.
#[utoipa::path(
    post,
    path = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants/{Sid}",
    tag = "v1",
    params(
        ("ChatServiceSid" = String, Path, description = "IS + 32 hex digits"),
        ("ConversationSid" = String, Path, description = "CH + 32 hex digits"),
        ("Sid" = String, Path, description = "MB sid, or the participant's identity"),
        ("X-Twilio-Webhook-Enabled" = Option<String>, Header, description = "true or false"),
    ),
    request_body(content = UpdateServiceParticipantForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Updated", body = ServiceParticipantJson),
        (status = 400, description = "Invalid or malformed request", body = TwilioErrorBody),
        (status = 404, description = "Not found", body = TwilioErrorBody),
        (status = 409, description = "Identity or binding already in the conversation", body = TwilioErrorBody),
    )
)]
pub(super) async fn update_service_participant(
    State(state): State<Arc<RestState>>,
    ctx: Context,
    TwilioPath((chat_service_sid, conversation_sid, sid)): TwilioPath<(String, String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    TwilioForm(form): TwilioForm<UpdateServiceParticipantForm>,
) -> Result<Json<ServiceParticipantJson>, RestError> {
    let draft = ServiceParticipantUpdateDraft {
        webhooks: webhooks(&headers)?,
        ..form.into_draft(chat_service_sid, conversation_sid, sid)
    };
    if draft.mask.as_ref().is_some_and(Vec::is_empty) {
        return Err(nothing_to_change(
            "DateCreated, DateUpdated, Identity, Attributes, RoleSid, \
             MessagingBinding.ProxyAddress, MessagingBinding.ProjectedAddress, \
             LastReadMessageIndex or LastReadTimestamp",
        ));
    }
    let update = draft.validate()?;
    let ctx = call_context(ctx);
    let updated = state
        .backend
        .update_service_participant(&ctx, update)
        .await?;
    let base = base_url(&state, &headers, &uri);
    Ok(Json(ServiceParticipantJson::new(updated, &base)))
}

/// Remove a v1 participant named by sid or identity.
#[utoipa::path(
    delete,
    path = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants/{Sid}",
    tag = "v1",
    params(
        ("ChatServiceSid" = String, Path, description = "IS + 32 hex digits"),
        ("ConversationSid" = String, Path, description = "CH + 32 hex digits"),
        ("Sid" = String, Path, description = "MB sid, or the participant's identity"),
        ("X-Twilio-Webhook-Enabled" = Option<String>, Header, description = "true or false"),
    ),
    responses(
        (status = 204, description = "Removed; no body"),
        (status = 400, description = "Invalid request", body = TwilioErrorBody),
        (status = 404, description = "Not found", body = TwilioErrorBody),
    )
)]
pub(super) async fn delete_service_participant(
    State(state): State<Arc<RestState>>,
    ctx: Context,
    TwilioPath((chat_service_sid, conversation_sid, sid)): TwilioPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, RestError> {
    let key = ServiceParticipantRef {
        chat_service_sid,
        conversation_sid,
        sid,
    }
    .validate()?;
    let request = DeleteServiceParticipant {
        key,
        webhooks: webhooks(&headers)?,
    };
    let ctx = call_context(ctx);
    state
        .backend
        .delete_service_participant(&ctx, request)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
