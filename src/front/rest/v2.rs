//! v2: Conversation Orchestrator participants (JSON in and out, camelCase; the types are
//! [`crate::twilio_api::v2`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::errors::RestError;
use super::extract::{TwilioJson, TwilioPath, idempotency_key};
use super::{Context, RestState, call_context};
use crate::domain::{ParticipantDraft, ParticipantRef};
use crate::twilio_api::TwilioErrorBody;
use crate::twilio_api::v2::{CreateParticipantBody, ParticipantJson};

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
