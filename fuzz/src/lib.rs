//! What the fuzz targets share: one tokio runtime per process, a backend stub that records
//! the validated requests the fronts hand it, the REST router and gRPC service built the
//! way the server builds them, and the checks every answer must pass.
//!
//! The targets call the crate's own code only (its fronts, extractors, validation and
//! Twilio parsers); nothing here re-implements what they do. The checks are the
//! properties the README promises:
//! - every REST answer that is not 2xx carries Twilio's error body (`code`, `message`,
//!   `more_info`, `status`) with the answer's own status;
//! - no error message echoes what the caller sent. Every message the facade writes is
//!   ASCII (field names, rules, expected types), so a message with any other character
//!   can only have copied it from the input: inputs with non-ASCII text find echoes;
//! - validation is a projection: a validated request, given back as a draft, validates
//!   to itself;
//! - what a gRPC caller receives is valid protobuf (`Timestamp`s in range).

#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use participants_facade::backend::{CallContext, ParticipantBackend};
use participants_facade::domain::error::{Error, Resource};
use participants_facade::domain::{
    AddressDraft, DeleteServiceParticipant, ListParticipants, ListServiceParticipants,
    NewParticipant, NewServiceParticipant, Page, Participant, ParticipantDraft, ParticipantRef,
    ParticipantUpdate, Raw, ServiceParticipant, ServiceParticipantDraft, ServiceParticipantRef,
    ServiceParticipantUpdate,
};
use participants_facade::front::rest::{self, RestState};
use participants_facade::twilio_api::TwilioErrorBody;
use tower::ServiceExt;

/// A valid chat service sid.
pub const SERVICE_SID: &str = "IS0123456789abcdef0123456789abcdef";
/// A valid conversation sid.
pub const CONVERSATION_SID: &str = "CH0123456789abcdef0123456789abcdef";
/// A valid v2 conversation id.
pub const CONVERSATION_ID: &str = "conv_fuzz";
/// The account written into created participants.
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
/// The REST front's body limit in the targets (the server's default `--max-message-bytes`).
pub const MAX_BODY: usize = 256 * 1024;

/// The process's runtime: one thread, as libFuzzer runs one input at a time.
pub fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
        })
        .block_on(future)
}

/// What the stub saw and what it answers.
#[derive(Default)]
struct StubState {
    v2_created: Option<NewParticipant>,
    v1_created: Option<NewServiceParticipant>,
    v2_fetched: Option<ParticipantRef>,
    v1_fetched: Option<ServiceParticipantRef>,
    v2_answer: Option<Participant>,
    v1_answer: Option<ServiceParticipant>,
    v2_listed: Option<ListParticipants>,
    v1_listed: Option<ListServiceParticipants>,
    v2_updated: Option<ParticipantUpdate>,
    v1_updated: Option<ServiceParticipantUpdate>,
    v1_deleted: Option<DeleteServiceParticipant>,
}

/// A backend that keeps the last request of each kind it was handed (always a validated
/// one: the fronts call a backend with nothing else) and answers creates with the
/// participant the request makes (`into_participant`, the local backend's own
/// conversion) and fetches with the participant set by [`StubBackend::answer_v2`] /
/// [`StubBackend::answer_v1`], else NOT_FOUND.
#[derive(Default)]
pub struct StubBackend(Mutex<StubState>);

impl StubBackend {
    fn state(&self) -> std::sync::MutexGuard<'_, StubState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what was seen and what to answer.
    pub fn reset(&self) {
        *self.state() = StubState::default();
    }

    /// The v2 create request the front passed on, if any.
    pub fn take_v2_created(&self) -> Option<NewParticipant> {
        self.state().v2_created.take()
    }

    /// The v1 create request the front passed on, if any.
    pub fn take_v1_created(&self) -> Option<NewServiceParticipant> {
        self.state().v1_created.take()
    }

    /// The v2 key the front passed on, if any.
    pub fn take_v2_fetched(&self) -> Option<ParticipantRef> {
        self.state().v2_fetched.take()
    }

    /// The v1 key the front passed on, if any.
    pub fn take_v1_fetched(&self) -> Option<ServiceParticipantRef> {
        self.state().v1_fetched.take()
    }

    /// The v2 list query the front passed on, if any.
    pub fn take_v2_listed(&self) -> Option<ListParticipants> {
        self.state().v2_listed.take()
    }

    /// The v1 list query the front passed on, if any.
    pub fn take_v1_listed(&self) -> Option<ListServiceParticipants> {
        self.state().v1_listed.take()
    }

    /// The v2 update the front passed on, if any.
    pub fn take_v2_updated(&self) -> Option<ParticipantUpdate> {
        self.state().v2_updated.take()
    }

    /// The v1 update the front passed on, if any.
    pub fn take_v1_updated(&self) -> Option<ServiceParticipantUpdate> {
        self.state().v1_updated.take()
    }

    /// The v1 delete the front passed on, if any.
    pub fn take_v1_deleted(&self) -> Option<DeleteServiceParticipant> {
        self.state().v1_deleted.take()
    }

    /// What v2 fetches answer.
    pub fn answer_v2(&self, p: Option<Participant>) {
        self.state().v2_answer = p;
    }

    /// What v1 fetches answer.
    pub fn answer_v1(&self, p: Option<ServiceParticipant>) {
        self.state().v1_answer = p;
    }
}

#[async_trait]
impl ParticipantBackend for StubBackend {
    async fn create_participant(
        &self,
        _ctx: &CallContext,
        request: NewParticipant,
    ) -> Result<Participant, Error> {
        self.state().v2_created = Some(request.clone());
        Ok(request.into_participant(ACCOUNT_SID))
    }

    async fn fetch_participant(
        &self,
        _ctx: &CallContext,
        key: ParticipantRef,
    ) -> Result<Participant, Error> {
        let mut state = self.state();
        state.v2_fetched = Some(key);
        state.v2_answer.clone().ok_or(Error::NotFound {
            resource: Resource::Participant,
        })
    }

    async fn create_service_participant(
        &self,
        _ctx: &CallContext,
        request: NewServiceParticipant,
    ) -> Result<ServiceParticipant, Error> {
        self.state().v1_created = Some(request.clone());
        Ok(request.into_participant(ACCOUNT_SID))
    }

    async fn fetch_service_participant(
        &self,
        _ctx: &CallContext,
        key: ServiceParticipantRef,
    ) -> Result<ServiceParticipant, Error> {
        let mut state = self.state();
        state.v1_fetched = Some(key);
        state.v1_answer.clone().ok_or(Error::NotFound {
            resource: Resource::ServiceParticipant,
        })
    }

    async fn list_participants(
        &self,
        _ctx: &CallContext,
        query: ListParticipants,
    ) -> Result<Page<Participant>, Error> {
        self.state().v2_listed = Some(query);
        Ok(Page {
            items: Vec::new(),
            next_page_token: None,
        })
    }

    async fn update_participant(
        &self,
        _ctx: &CallContext,
        update: ParticipantUpdate,
    ) -> Result<Participant, Error> {
        let mut state = self.state();
        state.v2_updated = Some(update);
        state.v2_answer.clone().ok_or(Error::NotFound {
            resource: Resource::Participant,
        })
    }

    async fn list_service_participants(
        &self,
        _ctx: &CallContext,
        query: ListServiceParticipants,
    ) -> Result<Page<ServiceParticipant>, Error> {
        self.state().v1_listed = Some(query);
        Ok(Page {
            items: Vec::new(),
            next_page_token: None,
        })
    }

    async fn update_service_participant(
        &self,
        _ctx: &CallContext,
        update: ServiceParticipantUpdate,
    ) -> Result<ServiceParticipant, Error> {
        let mut state = self.state();
        state.v1_updated = Some(update);
        state.v1_answer.clone().ok_or(Error::NotFound {
            resource: Resource::ServiceParticipant,
        })
    }

    async fn delete_service_participant(
        &self,
        _ctx: &CallContext,
        request: DeleteServiceParticipant,
    ) -> Result<(), Error> {
        self.state().v1_deleted = Some(request);
        Err(Error::NotFound {
            resource: Resource::ServiceParticipant,
        })
    }

    async fn close(&self) {}
}

/// The fronts over one [`StubBackend`], built once per process.
pub struct Fronts {
    /// The backend both fronts call.
    pub backend: Arc<StubBackend>,
    /// The REST router, as `server::run` builds it (no `--public-url`, no TLS).
    pub rest: axum::Router,
    /// The gRPC service implementation.
    pub grpc: participants_facade::front::grpc::ParticipantApi,
}

/// The process's [`Fronts`], its stub reset.
pub fn stub_fronts() -> &'static Fronts {
    static FRONTS: OnceLock<Fronts> = OnceLock::new();
    let fronts = FRONTS.get_or_init(|| {
        let backend = Arc::new(StubBackend::default());
        Fronts {
            rest: rest_router(backend.clone()),
            grpc: participants_facade::front::grpc::ParticipantApi::new(
                backend.clone(),
                "http://localhost:50051",
            ),
            backend,
        }
    });
    fronts.backend.reset();
    fronts
}

/// The REST router over `backend`, as the server builds it.
pub fn rest_router(backend: Arc<dyn ParticipantBackend>) -> axum::Router {
    rest::router(
        Arc::new(RestState {
            backend,
            public_url: None,
            draining: Arc::new(AtomicBool::new(false)),
            tls: false,
        }),
        MAX_BODY,
    )
}

/// A complete REST answer.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// Sends `request` through `router` in process and reads the whole answer.
pub fn call(router: &axum::Router, request: Request<Full<Bytes>>) -> Answer {
    block_on(async {
        let response = router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .expect("an in-memory answer body cannot fail")
            .to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
}

/// Panics unless `message` is one the facade could have written itself (see the crate
/// docs: only ASCII, so anything else came from the input).
pub fn assert_no_echo(what: &str, message: &str) {
    assert!(
        message.is_ascii(),
        "{what} echoes the caller's input: {message:?}"
    );
}

/// Panics unless a non-2xx REST answer is Twilio's JSON error body with the answer's own
/// status, and its message echoes nothing. `head`: the answer to a HEAD request, which
/// has no body.
pub fn assert_twilio_error(answer: &Answer, head: bool) -> Option<TwilioErrorBody> {
    if answer.status.is_success() || head {
        return None;
    }
    let content_type = answer
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    assert_eq!(
        content_type,
        Some("application/json"),
        "error answer without a JSON content type: {answer:?}"
    );
    let body: TwilioErrorBody = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("error answer is not Twilio's error body ({e}): {answer:?}"));
    // The REST front writes every field; the type reads them leniently, as Twilio's.
    assert_eq!(body.status, Some(answer.status.as_u16()), "{answer:?}");
    assert!(body.code.is_some_and(|c| c > 0), "{answer:?}");
    let message = body.message.as_deref().unwrap_or_default();
    assert!(!message.is_empty(), "{answer:?}");
    let more_info = body.more_info.as_deref().unwrap_or_default();
    assert!(more_info.starts_with("https://"), "{answer:?}");
    assert_no_echo("REST error message", message);
    if answer.status == StatusCode::UNAUTHORIZED {
        assert!(answer.headers.contains_key(http::header::WWW_AUTHENTICATE));
    }
    Some(body)
}

/// Panics unless `error` is INVALID_ARGUMENT whose violations echo nothing.
pub fn assert_plain_violations(error: &Error) {
    match error {
        Error::InvalidArgument(violations) => {
            assert!(!violations.is_empty());
            for v in violations {
                assert_no_echo("violation field", &v.field);
                assert_no_echo("violation description", &v.description);
            }
        }
        other => panic!("validation failed with something else than INVALID_ARGUMENT: {other:?}"),
    }
}

/// Validation is a projection: `request`, given back as a draft, validates to itself.
pub fn assert_v2_revalidates(request: &NewParticipant) {
    let draft = ParticipantDraft {
        conversation_id: request.conversation_id.clone(),
        name: request.name.clone().unwrap_or_default(),
        kind: Some(request.kind.map_or(Raw::Unset, Raw::Known)),
        profile_id: request.profile_id.clone().unwrap_or_default(),
        addresses: request
            .addresses
            .iter()
            .map(|a| AddressDraft {
                channel: Raw::Known(a.channel),
                address: a.address.clone(),
                channel_id: a.channel_id.clone().unwrap_or_default(),
            })
            .collect(),
        idempotency_key: request.idempotency_key.clone().unwrap_or_default(),
    };
    match draft.validate() {
        Ok(again) => assert_eq!(&again, request, "validation is not a projection"),
        Err(e) => panic!("a validated v2 request no longer validates: {e:?}\n{request:?}"),
    }
}

/// As [`assert_v2_revalidates`], for v1.
pub fn assert_v1_revalidates(request: &NewServiceParticipant) {
    let draft = ServiceParticipantDraft {
        chat_service_sid: request.chat_service_sid.clone(),
        conversation_sid: request.conversation_sid.clone(),
        identity: request.identity.clone().unwrap_or_default(),
        attributes: request.attributes.clone().unwrap_or_default(),
        messaging_binding: request.messaging_binding.clone().unwrap_or_default(),
        role_sid: request.role_sid.clone().unwrap_or_default(),
        date_created: request.date_created.map(Raw::Known),
        date_updated: request.date_updated.map(Raw::Known),
        webhooks: request.webhooks,
        idempotency_key: request.idempotency_key.clone().unwrap_or_default(),
    };
    match draft.validate() {
        Ok(again) => assert_eq!(&again, request, "validation is not a projection"),
        Err(e) => panic!("a validated v1 request no longer validates: {e:?}\n{request:?}"),
    }
}

/// Panics unless `t` is a valid `google.protobuf.Timestamp`: nanos in `0..10^9`, seconds
/// from 0001-01-01 to 9999-12-31 (what every protobuf runtime checks).
pub fn assert_valid_timestamp(what: &str, t: &prost_types::Timestamp) {
    assert!(
        (0..1_000_000_000).contains(&t.nanos),
        "{what}: Timestamp.nanos out of range: {t:?}"
    );
    assert!(
        (-62_135_596_800..=253_402_300_799).contains(&t.seconds),
        "{what}: Timestamp.seconds out of range: {t:?}"
    );
}

/// Panics unless `status` encodes into gRPC's headers (as a trailers-only answer or the
/// trailers) and decodes back to the same code and message.
pub fn assert_status_encodes(status: &tonic::Status) {
    let mut headers = HeaderMap::new();
    status
        .add_header(&mut headers)
        .unwrap_or_else(|e| panic!("the status does not encode: {e:?}"));
    let back = tonic::Status::from_header_map(&headers).expect("an encoded status decodes");
    assert_eq!(back.code(), status.code());
    assert_eq!(back.message(), status.message());
}
