//! The REST front: Twilio-compatible routes, so that Twilio's own SDKs and curl scripts
//! work with their base URL pointed at the facade. A thin adapter over the same
//! [`ParticipantBackend`] as the gRPC front: request JSON or form fields become the same
//! domain drafts, validated by the same rules, and errors become Twilio's error body
//! (`code`, `message`, `more_info`, `status`) with the status the contract's table gives.
//!
//! The OpenAPI 3.1 document at `/openapi.json` is generated (utoipa) from the very
//! handlers and types the routes use, so it cannot drift from them.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod errors;
mod extract;
mod paging;
mod probes;
mod v1;
mod v2;

pub use errors::{RestError, error_response};
pub use probes::{ProbeJson, metrics};

use crate::backend::{CallContext, ParticipantBackend};
use crate::domain::error::Error;

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
        .route("/metrics", axum::routing::get(probes::metrics))
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
        .routes(routes!(v2::create_participant, v2::list_participants))
        .routes(routes!(v2::fetch_participant, v2::update_participant))
        .routes(routes!(
            v1::create_service_participant,
            v1::list_service_participants
        ))
        .routes(routes!(
            v1::fetch_service_participant,
            v1::update_service_participant,
            v1::delete_service_participant
        ))
        .routes(routes!(probes::healthz))
        .routes(routes!(probes::readyz))
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

async fn observe_route(
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = matched.map(|m| m.as_str().to_owned());
    if let Some(route) = &route {
        crate::observability::record_route(request.method().as_str(), route);
    }
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response
            .extensions_mut()
            .insert(crate::observability::RouteTemplate(route));
    }
    response
}

async fn not_found() -> RestError {
    Error::rejected(404, "The requested resource was not found").into()
}

async fn method_not_allowed() -> RestError {
    Error::rejected(405, "Method not allowed for this resource").into()
}

/// An update whose body names no field: over REST the mask is the fields sent, so the
/// refusal names what may be sent.
fn nothing_to_change(fields: &str) -> RestError {
    Error::InvalidArgument(vec![crate::domain::error::FieldViolation {
        field: "body".to_owned(),
        description: format!("names no field to change; send at least one of {fields}"),
    }])
    .into()
}

/// The call's context as the server's dispatcher left it (deadline, auth verdict).
type Context = Option<axum::Extension<CallContext>>;

fn call_context(ctx: Context) -> CallContext {
    ctx.map(|axum::Extension(c)| c).unwrap_or_default()
}
