//! v2: Conversation Orchestrator participants (JSON in and out, camelCase; the types are
//! [`crate::twilio_api::v2`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::errors::RestError;
use super::extract::{TwilioJson, TwilioPath, TwilioQuery, idempotency_key};
use super::paging::{self, V2ListQuery};
use super::{Context, RestState, call_context, nothing_to_change};
use crate::domain::page::MAX_V2_PAGE_SIZE;
use crate::domain::{ListParticipants, ParticipantDraft, ParticipantRef};
use crate::twilio_api::TwilioErrorBody;
use crate::twilio_api::v2::{
    CreateParticipantBody, ListParticipantsJson, ParticipantJson, UpdateParticipantBody,
};

/// Create a v2 participant.
#[utoipa::path(
    post,
    path = "/v2/Conversations/{ConversationSid}/Participants",
    tag = "v2",
    params(
        ("ConversationSid" = String, Path, description = "The conversation"),
        ("Idempotency-Key" = Option<String>, Header, description = "Same key and same body: the same participant, created once"),
    ),
    request_body(content = CreateParticipantBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = ParticipantJson),
        (status = 400, description = "Invalid or malformed request", body = TwilioErrorBody),
        (status = 409, description = "An address is already taken in the conversation", body = TwilioErrorBody,
            headers(("X-Conflicting-Resource-Id" = String, description = "The existing participant"))),
        (status = 422, description = "Idempotency key reused with another request", body = TwilioErrorBody),
    )
)]
pub(super) async fn create_participant(
    State(state): State<Arc<RestState>>,
    ctx: Context,
    TwilioPath(conversation_id): TwilioPath<String>,
    headers: HeaderMap,
    TwilioJson(body): TwilioJson<CreateParticipantBody>,
) -> Result<(StatusCode, Json<ParticipantJson>), RestError> {
    let draft = ParticipantDraft {
        idempotency_key: idempotency_key(&headers)?,
        ..body.into_draft(conversation_id)
    };
    let request = draft.validate()?;
    let ctx = call_context(ctx);
    let created = state.backend.create_participant(&ctx, request).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Fetch a v2 participant.
#[utoipa::path(
    get,
    path = "/v2/Conversations/{ConversationSid}/Participants/{Sid}",
    tag = "v2",
    params(
        ("ConversationSid" = String, Path, description = "The conversation"),
        ("Sid" = String, Path, description = "The participant id"),
    ),
    responses(
        (status = 200, description = "OK", body = ParticipantJson),
        (status = 404, description = "Not found", body = TwilioErrorBody),
    )
)]
pub(super) async fn fetch_participant(
    State(state): State<Arc<RestState>>,
    ctx: Context,
    TwilioPath((conversation_id, participant_id)): TwilioPath<(String, String)>,
) -> Result<Json<ParticipantJson>, RestError> {
    let key = ParticipantRef {
        conversation_id,
        participant_id,
    }
    .validate()?;
    let ctx = call_context(ctx);
    let found = state.backend.fetch_participant(&ctx, key).await?;
    Ok(Json(found.into()))
}

/// List a v2 conversation's participants, oldest first, one page at a time.
#[utoipa::path(
    get,
    path = "/v2/Conversations/{ConversationSid}/Participants",
    tag = "v2",
    params(
        ("ConversationSid" = String, Path, description = "The conversation"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Participants per page, 1 to 1000 (default 50)"),
        ("pageToken" = Option<String>, Query, description = "meta.nextToken of the previous page; absent for the first page"),
    ),
    responses(
        (status = 200, description = "One page", body = ListParticipantsJson),
        (status = 400, description = "Invalid pageSize or pageToken", body = TwilioErrorBody),
    )
)]
pub(super) async fn list_participants(
    State(state): State<Arc<RestState>>,
    ctx: Context,
    TwilioPath(conversation_id): TwilioPath<String>,
    TwilioQuery(query): TwilioQuery<V2ListQuery>,
) -> Result<Json<ListParticipantsJson>, RestError> {
    let names = paging::V2;
    let page_size = paging::page_size(
        query.page_size.as_deref(),
        names.page_size,
        MAX_V2_PAGE_SIZE,
    )?;
    let request = ListParticipants::validate(
        conversation_id,
        page_size,
        query.page_token.unwrap_or_default(),
    )
    .map_err(|e| paging::renamed(e, names))?;
    let size = request.page.page_size;
    let ctx = call_context(ctx);
    let page = state
        .backend
        .list_participants(&ctx, request)
        .await
        .map_err(|e| paging::renamed(e, names))?;
    Ok(Json(ListParticipantsJson::new(page, size)))
}

/// Update a v2 participant: the fields present in the body change (null clears one), the
/// others are kept.
#[utoipa::path(
    put,
    path = "/v2/Conversations/{ConversationSid}/Participants/{Sid}",
    tag = "v2",
    params(
        ("ConversationSid" = String, Path, description = "The conversation"),
        ("Sid" = String, Path, description = "The participant id"),
    ),
    request_body(content = UpdateParticipantBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated", body = ParticipantJson),
        (status = 400, description = "Invalid or malformed request", body = TwilioErrorBody),
        (status = 404, description = "Not found", body = TwilioErrorBody),
        (status = 409, description = "An address is already taken in the conversation", body = TwilioErrorBody,
            headers(("X-Conflicting-Resource-Id" = String, description = "The existing participant"))),
    )
)]
pub(super) async fn update_participant(
    State(state): State<Arc<RestState>>,
    ctx: Context,
    TwilioPath((conversation_id, participant_id)): TwilioPath<(String, String)>,
    TwilioJson(body): TwilioJson<UpdateParticipantBody>,
) -> Result<Json<ParticipantJson>, RestError> {
    let draft = body.into_draft(conversation_id, participant_id);
    if draft.mask.as_ref().is_some_and(Vec::is_empty) {
        return Err(nothing_to_change("name, type, profileId or addresses"));
    }
    let update = draft.validate()?;
    let ctx = call_context(ctx);
    let updated = state.backend.update_participant(&ctx, update).await?;
    Ok(Json(updated.into()))
}
