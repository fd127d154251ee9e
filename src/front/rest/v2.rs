//! v2: Conversation Orchestrator participants (JSON in and out, camelCase).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::errors::{RestError, path_rejection};
use super::extract::TwilioJson;
use super::{Context, RestState, call_context, format_date, idempotency_key, raw_enum};
use crate::domain;
use crate::domain::{AddressDraft, ParticipantDraft, ParticipantRef};
use crate::twilio_api::TwilioErrorBody;

/// Body of `POST /v2/Conversations/{ConversationSid}/Participants`, Twilio's field names.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateParticipantBody {
    /// Display name.
    #[schema(example = "Dana")]
    pub name: Option<String>,
    /// HUMAN_AGENT, CUSTOMER, AI_AGENT, AGENT or UNKNOWN.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Customer profile id.
    pub profile_id: Option<String>,
    /// At least one address.
    pub addresses: Option<Vec<AddressBody>>,
}

/// One address in a v2 body.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressBody {
    /// VOICE, SMS, RCS, EMAIL, WHATSAPP, CHAT or VIDEO.
    #[schema(example = "SMS")]
    pub channel: Option<String>,
    /// The address in the channel's format.
    #[schema(example = "+18005550100")]
    pub address: Option<String>,
    /// Channel-specific identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
}

/// A v2 participant, as Twilio returns it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantJson {
    /// `conv_participant_` + 26 ULID characters.
    pub id: String,
    /// The conversation.
    pub conversation_id: String,
    /// The account (`AC...`).
    pub account_id: String,
    /// Display name.
    pub name: Option<String>,
    /// The participant's role.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Customer profile id.
    pub profile_id: Option<String>,
    /// How the participant is reached.
    pub addresses: Vec<AddressBody>,
    /// RFC 3339 creation time.
    pub created_at: Option<String>,
    /// RFC 3339 update time.
    pub updated_at: Option<String>,
}

impl From<domain::Participant> for ParticipantJson {
    fn from(p: domain::Participant) -> Self {
        ParticipantJson {
            id: p.id,
            conversation_id: p.conversation_id,
            account_id: p.account_id,
            name: p.name,
            kind: p.kind.map(|k| enum_name(&k)),
            profile_id: p.profile_id,
            addresses: p
                .addresses
                .into_iter()
                .map(|a| AddressBody {
                    channel: Some(a.channel.as_str().to_owned()),
                    address: Some(a.address),
                    channel_id: a.channel_id,
                })
                .collect(),
            created_at: p.created_at.map(format_date),
            updated_at: p.updated_at.map(format_date),
        }
    }
}

fn enum_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

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
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<TwilioJson<CreateParticipantBody>, RestError>,
) -> Result<(StatusCode, Json<ParticipantJson>), RestError> {
    let Path(conversation_id) = path.map_err(path_rejection)?;
    let TwilioJson(body) = body?;
    let draft = ParticipantDraft {
        conversation_id,
        name: body.name.unwrap_or_default(),
        kind: Some(raw_enum(body.kind)),
        profile_id: body.profile_id.unwrap_or_default(),
        addresses: body
            .addresses
            .unwrap_or_default()
            .into_iter()
            .map(|a| AddressDraft {
                channel: raw_enum(a.channel),
                address: a.address.unwrap_or_default(),
                channel_id: a.channel_id.unwrap_or_default(),
            })
            .collect(),
        idempotency_key: idempotency_key(&headers)?,
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
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ParticipantJson>, RestError> {
    let Path((conversation_id, participant_id)) = path.map_err(path_rejection)?;
    let key = ParticipantRef {
        conversation_id,
        participant_id,
    }
    .validate()?;
    let ctx = call_context(ctx);
    let found = state.backend.fetch_participant(&ctx, key).await?;
    Ok(Json(found.into()))
}
