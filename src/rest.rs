//! The REST front: Twilio-compatible routes, so that Twilio's own SDKs and curl scripts
//! work with their base URL pointed at the facade. A thin adapter over the same
//! [`ParticipantBackend`] as the gRPC front: request JSON or form fields become the same
//! domain drafts, validated by the same rules, and errors become Twilio's error body
//! (`code`, `message`, `more_info`, `status`) with the status the contract's table gives.
//!
//! The OpenAPI 3.1 document at `/openapi.json` is generated (utoipa) from the very
//! handlers and types the routes use, so it cannot drift from them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::backend::{CallContext, ParticipantBackend};
use crate::error::Error;
use crate::extract::{TwilioForm, TwilioJson};
use crate::model::{
    self, AddressDraft, MessagingBinding, ParticipantDraft, ParticipantRef, Raw,
    ServiceParticipantDraft, ServiceParticipantRef,
};

/// What the REST handlers share.
pub struct RestState {
    /// The backend every route calls, in process.
    pub backend: Arc<dyn ParticipantBackend>,
    /// `--public-url`; unset: `http://` and the request's Host header.
    pub public_url: Option<String>,
    /// Set once shutdown starts: `/readyz` answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    /// Whether the listener serves TLS, for the scheme of absolute URLs.
    pub tls: bool,
}

/// The Twilio-compatible routes, `/healthz`, `/readyz` and `/openapi.json`, with
/// Twilio-shaped answers for unknown routes (404), wrong methods (405) and bodies over
/// `max_body` bytes (413).
pub fn router(state: Arc<RestState>, max_body: usize) -> Router {
    let (router, openapi) = api().split_for_parts();
    let openapi = Arc::new(openapi);
    router
        .route(
            "/metrics",
            axum::routing::get(|| async {
                (
                    [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
                    crate::metrics::METRICS.render(),
                )
            }),
        )
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        // Spans and metrics name requests by route template, never by concrete path.
        .route_layer(axum::middleware::from_fn(observe_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// The documented routes, as one OpenAPI router.
fn api() -> OpenApiRouter<Arc<RestState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_participant))
        .routes(routes!(fetch_participant))
        .routes(routes!(create_service_participant))
        .routes(routes!(fetch_service_participant))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(OpenApi)]
#[openapi(info(
    title = "participants-facade REST front",
    description = "Twilio-compatible participant routes of Conversations v1 (service-scoped) and v2 (Conversation Orchestrator). Errors use Twilio's error body.",
))]
struct ApiDoc;

/// The OpenAPI document of the REST front, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

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
    let status =
        StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = err.twilio_code();
    let more_info = match err {
        Error::Upstream(e) => e.more_info.clone(),
        _ => None,
    }
    .unwrap_or_else(|| format!("https://www.twilio.com/docs/errors/{code}"));
    TwilioErrorBody {
        code,
        message: err.public_message(),
        more_info,
        status: status.as_u16(),
    }
}

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
        StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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

async fn observe_route(
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = matched.map(|m| m.as_str().to_owned());
    if let Some(route) = &route {
        crate::telemetry::record_route(request.method().as_str(), route);
    }
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response
            .extensions_mut()
            .insert(crate::telemetry::RouteTemplate(route));
    }
    response
}

fn http_error(status: u16, message: impl Into<String>) -> RestError {
    RestError(Error::Http {
        status,
        message: message.into(),
    })
}

/// A path that does not decode. Every path parameter is a string, so the only failure is
/// a segment that is not UTF-8 once percent-decoded; the message names the parameter (a
/// name from the route template), never the segment.
fn path_rejection(r: PathRejection) -> RestError {
    use axum::extract::path::ErrorKind;
    let message = match &r {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => {
                format!("Invalid URL: the path parameter `{key}` is not valid UTF-8")
            }
            _ => "Invalid URL: a path parameter cannot be read".to_owned(),
        },
        _ => "Invalid URL: a path parameter cannot be read".to_owned(),
    };
    http_error(400, message)
}

async fn not_found() -> RestError {
    http_error(404, "The requested resource was not found")
}

async fn method_not_allowed() -> RestError {
    http_error(405, "Method not allowed for this resource")
}

/// The call's context as the server's dispatcher left it (deadline, auth verdict).
type Context = Option<axum::Extension<CallContext>>;

fn call_context(ctx: Context) -> CallContext {
    ctx.map(|axum::Extension(c)| c).unwrap_or_default()
}

/// The `Idempotency-Key` header. Bytes that are not UTF-8 are refused rather than
/// replaced, so two different keys can never collide on one.
fn idempotency_key(headers: &HeaderMap) -> Result<String, RestError> {
    headers
        .get("idempotency-key")
        .map(|v| std::str::from_utf8(v.as_bytes()).map(str::to_owned))
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(|_| http_error(400, "Idempotency-Key must be UTF-8 text"))
}

fn format_date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn raw_enum<T: serde::de::DeserializeOwned>(value: Option<String>) -> Raw<T> {
    match value {
        None => Raw::Unset,
        Some(s) if s.is_empty() => Raw::Unset,
        Some(s) => serde_json::from_value(serde_json::Value::String(s.clone()))
            .map_or(Raw::Unknown(s), Raw::Known),
    }
}

fn raw_date(value: Option<String>) -> Option<Raw<DateTime<Utc>>> {
    let value = value.filter(|s| !s.is_empty())?;
    Some(
        DateTime::parse_from_rfc3339(&value)
            .map(|t| Raw::Known(t.with_timezone(&Utc)))
            .unwrap_or(Raw::Unknown(value)),
    )
}

// ----------------------------------------------------------------------------------------
// v2: Conversation Orchestrator participants (JSON, camelCase)
// ----------------------------------------------------------------------------------------

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

impl From<model::Participant> for ParticipantJson {
    fn from(p: model::Participant) -> Self {
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
async fn create_participant(
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
async fn fetch_participant(
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

// ----------------------------------------------------------------------------------------
// v1: participants of a conversation in a chat service (form in, snake_case JSON out)
// ----------------------------------------------------------------------------------------

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

fn service_participant_json(p: model::ServiceParticipant, base: &str) -> ServiceParticipantJson {
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
async fn create_service_participant(
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
async fn fetch_service_participant(
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

// ----------------------------------------------------------------------------------------
// Probes
// ----------------------------------------------------------------------------------------

/// A probe's answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProbeJson {
    /// SERVING or NOT_SERVING.
    pub status: String,
}

/// Liveness: 200 while the process serves at all.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, body = ProbeJson)))]
async fn healthz() -> Json<ProbeJson> {
    Json(ProbeJson {
        status: "SERVING".into(),
    })
}

/// Readiness: 200 when the backend can serve (store open, upstream not persistently
/// failing) and the server is not draining; 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses((status = 200, body = ProbeJson), (status = 503, body = ProbeJson))
)]
async fn readyz(State(state): State<Arc<RestState>>) -> (StatusCode, Json<ProbeJson>) {
    let ready = !state.draining.load(Ordering::SeqCst) && state.backend.ready();
    let (code, status) = if ready {
        (StatusCode::OK, "SERVING")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING")
    };
    (
        code,
        Json(ProbeJson {
            status: status.into(),
        }),
    )
}
