//! The gRPC front: `participants.v1.ParticipantService` as a thin adapter over a
//! [`ParticipantBackend`]. Each method converts the protobuf request into a domain draft,
//! validates it, calls the backend, and converts the result back; errors become statuses
//! in `status.rs`. Protobuf types go no further than this module (`convert.rs`).
//! `connect.rs` serves the same methods over Connect (unary, JSON or binary), through the
//! same routes.

use std::sync::Arc;

use tonic::{Request, Response, Status};

pub(crate) mod connect;
mod convert;
pub(crate) mod status;
mod timeout;
mod wire_json;

pub(crate) use timeout::{parse_connect_timeout, parse_grpc_timeout};

use tonic::service::Routes;
use tonic_health::ServingStatus;

use crate::backend::{CallContext, ParticipantBackend};
use crate::domain::{
    DeleteServiceParticipant, ListParticipants, ListServiceParticipants, ParticipantDraft,
    ParticipantRef, ParticipantUpdateDraft, ServiceParticipantDraft, ServiceParticipantRef,
    ServiceParticipantUpdateDraft,
};
use crate::proto::participant_service_server::ParticipantService;
use crate::proto::participant_service_server::SERVICE_NAME;
use crate::proto::{self, participant_service_server::ParticipantServiceServer};

/// The ParticipantService implementation (public for the fuzz targets, which call its
/// methods in process).
pub struct ParticipantApi {
    backend: Arc<dyn ParticipantBackend>,
    public_url: Arc<str>,
}

impl ParticipantApi {
    /// A tonic service over `backend`; `public_url` prefixes v1 participants' `url`.
    pub fn new(backend: Arc<dyn ParticipantBackend>, public_url: &str) -> Self {
        ParticipantApi {
            backend,
            public_url: public_url.into(),
        }
    }

    /// Wraps the implementation in the generated server with message size limits.
    pub(crate) fn into_server(self, max_message_bytes: usize) -> ParticipantServiceServer<Self> {
        ParticipantServiceServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            // An answer echoes its request plus ids and timestamps: it may exceed the
            // request limit, and must not fail a create that was already stored.
            .max_encoding_message_size(max_message_bytes.saturating_mul(2))
    }
}

/// The call's context, as the server's dispatcher left it in the request (deadline,
/// auth verdict); a default one when the service runs without it (embedded use).
fn call_context<T>(request: &Request<T>) -> CallContext {
    request
        .extensions()
        .get::<CallContext>()
        .cloned()
        .unwrap_or_default()
}

#[tonic::async_trait]
impl ParticipantService for ParticipantApi {
    async fn create_participant(
        &self,
        request: Request<proto::CreateParticipantRequest>,
    ) -> Result<Response<proto::Participant>, Status> {
        let ctx = call_context(&request);
        let new = ParticipantDraft::from(request.into_inner()).validate()?;
        let created = self.backend.create_participant(&ctx, new).await?;
        Ok(Response::new(created.into()))
    }

    async fn fetch_participant(
        &self,
        request: Request<proto::FetchParticipantRequest>,
    ) -> Result<Response<proto::Participant>, Status> {
        let ctx = call_context(&request);
        let req = request.into_inner();
        let key = ParticipantRef {
            conversation_id: req.conversation_id,
            participant_id: req.participant_id,
        }
        .validate()?;
        let found = self.backend.fetch_participant(&ctx, key).await?;
        Ok(Response::new(found.into()))
    }

    async fn create_service_participant(
        &self,
        request: Request<proto::CreateServiceParticipantRequest>,
    ) -> Result<Response<proto::ServiceParticipant>, Status> {
        let ctx = call_context(&request);
        let new = ServiceParticipantDraft::from(request.into_inner()).validate()?;
        let created = self.backend.create_service_participant(&ctx, new).await?;
        Ok(Response::new(self.service_participant(created)))
    }

    async fn fetch_service_participant(
        &self,
        request: Request<proto::FetchServiceParticipantRequest>,
    ) -> Result<Response<proto::ServiceParticipant>, Status> {
        let ctx = call_context(&request);
        let req = request.into_inner();
        let key = ServiceParticipantRef {
            chat_service_sid: req.chat_service_sid,
            conversation_sid: req.conversation_sid,
            sid: req.sid,
        }
        .validate()?;
        let found = self.backend.fetch_service_participant(&ctx, key).await?;
        Ok(Response::new(self.service_participant(found)))
    }

    async fn list_participants(
        &self,
        request: Request<proto::ListParticipantsRequest>,
    ) -> Result<Response<proto::ListParticipantsResponse>, Status> {
        let ctx = call_context(&request);
        let req = request.into_inner();
        let query = ListParticipants::validate(
            req.conversation_id,
            i64::from(req.page_size),
            req.page_token,
        )?;
        let page = self.backend.list_participants(&ctx, query).await?;
        Ok(Response::new(proto::ListParticipantsResponse {
            participants: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn update_participant(
        &self,
        request: Request<proto::UpdateParticipantRequest>,
    ) -> Result<Response<proto::Participant>, Status> {
        let ctx = call_context(&request);
        let update = ParticipantUpdateDraft::from(request.into_inner()).validate()?;
        let updated = self.backend.update_participant(&ctx, update).await?;
        Ok(Response::new(updated.into()))
    }

    async fn list_service_participants(
        &self,
        request: Request<proto::ListServiceParticipantsRequest>,
    ) -> Result<Response<proto::ListServiceParticipantsResponse>, Status> {
        let ctx = call_context(&request);
        let req = request.into_inner();
        let query = ListServiceParticipants::validate(
            req.chat_service_sid,
            req.conversation_sid,
            i64::from(req.page_size),
            req.page_token,
        )?;
        let page = self.backend.list_service_participants(&ctx, query).await?;
        Ok(Response::new(proto::ListServiceParticipantsResponse {
            participants: page
                .items
                .into_iter()
                .map(|p| self.service_participant(p))
                .collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn update_service_participant(
        &self,
        request: Request<proto::UpdateServiceParticipantRequest>,
    ) -> Result<Response<proto::ServiceParticipant>, Status> {
        let ctx = call_context(&request);
        let update = ServiceParticipantUpdateDraft::from(request.into_inner()).validate()?;
        let updated = self
            .backend
            .update_service_participant(&ctx, update)
            .await?;
        Ok(Response::new(self.service_participant(updated)))
    }

    async fn delete_service_participant(
        &self,
        request: Request<proto::DeleteServiceParticipantRequest>,
    ) -> Result<Response<()>, Status> {
        let ctx = call_context(&request);
        let req = request.into_inner();
        let key = ServiceParticipantRef {
            chat_service_sid: req.chat_service_sid,
            conversation_sid: req.conversation_sid,
            sid: req.sid,
        }
        .validate()?;
        let webhooks = convert::webhooks(req.webhook_enabled, req.webhook_mode);
        self.backend
            .delete_service_participant(&ctx, DeleteServiceParticipant { key, webhooks })
            .await?;
        Ok(Response::new(()))
    }
}

/// Every gRPC service of the server, routed by path.
pub(crate) async fn routes(
    backend: Arc<dyn ParticipantBackend>,
    public_url: &str,
    max_message_bytes: usize,
) -> anyhow::Result<(Routes, tonic_health::server::HealthReporter)> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in ["", SERVICE_NAME] {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc.BadRequest, ErrorInfo, RetryInfo: lets grpcurl and other
            // reflection clients decode our error details.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let participants = ParticipantApi::new(backend, public_url).into_server(max_message_bytes);
    let routes = Routes::new(health_service)
        .add_service(reflection().build_v1()?)
        // Older grpcurl builds and many IDE plugins speak only v1alpha.
        .add_service(reflection().build_v1alpha()?)
        .add_service(participants)
        .prepare();
    Ok((routes, health))
}
