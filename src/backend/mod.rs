//! The seam between the fronts (gRPC, and later REST) and the backends (the local store,
//! and later Twilio's REST API). Fronts validate, call one method, and map the error;
//! backends only ever receive valid requests.

mod credentials;
pub mod local;
mod observe;
mod page_token;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod twilio;

pub use credentials::Credentials;

use async_trait::async_trait;

use crate::domain::error::{Error, FieldViolation};
use crate::domain::{
    DeleteServiceParticipant, ListParticipants, ListServiceParticipants, NewParticipant,
    NewServiceParticipant, Page, Participant, ParticipantRef, ParticipantUpdate,
    ServiceParticipant, ServiceParticipantRef, ServiceParticipantUpdate,
};

/// What a front knows about a call beyond its request: passed to every backend method so
/// that a remote backend can honour the caller's deadline.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// When the caller stops waiting (from `grpc-timeout`), if it said.
    pub deadline: Option<tokio::time::Instant>,
    /// When the server stops the call whatever the caller said (`--request-timeout`).
    pub server_deadline: Option<tokio::time::Instant>,
    /// The caller's trace context (W3C `traceparent`, `tracestate`, baggage), continued
    /// in upstream requests.
    pub trace: opentelemetry::Context,
    /// The caller's own upstream credentials, when inbound auth passes them through.
    pub upstream_credentials: Option<Credentials>,
}

/// The whole participant lifecycle: create, fetch, list, update and (v1) delete. Implemented by [`crate::backend::local::LocalBackend`] and
/// [`crate::backend::twilio::TwilioBackend`].
#[async_trait]
pub trait ParticipantBackend: Send + Sync + 'static {
    /// Adds a v2 participant; ALREADY_EXISTS when one of its addresses is taken in the
    /// conversation; replays the first result for a repeated idempotency key.
    async fn create_participant(
        &self,
        ctx: &CallContext,
        request: NewParticipant,
    ) -> Result<Participant, Error>;

    /// Returns a v2 participant; NOT_FOUND when unknown or under another conversation.
    async fn fetch_participant(
        &self,
        ctx: &CallContext,
        key: ParticipantRef,
    ) -> Result<Participant, Error>;

    /// Adds a v1 participant; ALREADY_EXISTS when its identity or binding is taken.
    async fn create_service_participant(
        &self,
        ctx: &CallContext,
        request: NewServiceParticipant,
    ) -> Result<ServiceParticipant, Error>;

    /// Returns a v1 participant by sid or identity; NOT_FOUND when unknown or elsewhere.
    async fn fetch_service_participant(
        &self,
        ctx: &CallContext,
        key: ServiceParticipantRef,
    ) -> Result<ServiceParticipant, Error>;

    /// One page of a v2 conversation's participants, oldest first (creation order, ties
    /// broken by id). A page token the backend did not issue for this list is
    /// INVALID_ARGUMENT ([`crate::domain::page::bad_page_token`]).
    async fn list_participants(
        &self,
        ctx: &CallContext,
        query: ListParticipants,
    ) -> Result<Page<Participant>, Error>;

    /// Changes a v2 participant; NOT_FOUND when unknown, ALREADY_EXISTS when a new
    /// address is another participant's.
    async fn update_participant(
        &self,
        ctx: &CallContext,
        update: ParticipantUpdate,
    ) -> Result<Participant, Error>;

    /// One page of a v1 conversation's participants, oldest first.
    async fn list_service_participants(
        &self,
        ctx: &CallContext,
        query: ListServiceParticipants,
    ) -> Result<Page<ServiceParticipant>, Error>;

    /// Changes a v1 participant named by sid or identity; NOT_FOUND when unknown,
    /// ALREADY_EXISTS when the new identity or binding is another participant's.
    async fn update_service_participant(
        &self,
        ctx: &CallContext,
        update: ServiceParticipantUpdate,
    ) -> Result<ServiceParticipant, Error>;

    /// Removes a v1 participant named by sid or identity; NOT_FOUND when unknown.
    async fn delete_service_participant(
        &self,
        ctx: &CallContext,
        request: DeleteServiceParticipant,
    ) -> Result<(), Error>;

    /// Whether the backend can serve calls now: the readiness signal. A backend that
    /// depends on a remote service reports its persistent failure here, not single errors.
    fn ready(&self) -> bool {
        true
    }

    /// Flushes and releases what the backend holds. Calls after this fail with UNAVAILABLE.
    async fn close(&self);
}

/// The stores (embedded and PostgreSQL) know v1 conversations by their `CH` sid only: they
/// have no conversation resources to resolve a unique name against (twilio mode passes
/// unique names to Twilio). A unique name is therefore the same INVALID_ARGUMENT it always
/// was there.
pub(crate) fn conversation_by_sid(conversation_sid: &str) -> Result<(), Error> {
    if crate::domain::is_conversation_sid(conversation_sid) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(vec![FieldViolation {
            field: "conversation_sid".to_owned(),
            description: "must be CH and 32 hex digits: the local backend knows conversations \
                          by sid only (unique names are resolved by Twilio, in twilio mode)"
                .to_owned(),
        }]))
    }
}
