//! The `twilio` backend: every call becomes the matching call of Twilio's REST API.
//!
//! One pooled reqwest client (HTTP/2 where upstream offers it, rustls with the webpki
//! roots) carries all calls. Each call runs under one deadline (the caller's, else
//! `--upstream-timeout`) that covers every attempt and pause. Around it (the stack is
//! built in `client`):
//! - a bound on requests in flight, failing fast with RESOURCE_EXHAUSTED when full;
//! - retries after gRFC A6 (exponential backoff, full jitter, `Retry-After` honoured):
//!   fetches on connection errors, timeouts, 429 and 5xx; creates only where a second
//!   attempt cannot create a second participant (`retry`, see [`RetryPolicy`]);
//! - a circuit breaker, failing fast with UNAVAILABLE while Twilio keeps failing
//!   (`breaker`).
//!
//! Twilio's error answers become [`Error::Upstream`], which `error.rs` maps per the
//! contract's table. Its success answers are checked as strictly as requests
//! (`answer.rs`): one that is not the participant asked for is [`Error::UpstreamProtocol`]
//! (INTERNAL), never retried. Credentials live in [`Credentials`], a secret that never
//! prints.

mod answer;
mod breaker;
mod client;
mod conflict;
mod errors;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod idempotency;
mod redact;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{RequestBuilder, Url};
use tokio::sync::Semaphore;

pub use retry::RetryPolicy;

use crate::backend::{CallContext, Credentials, ParticipantBackend};
use crate::domain::error::Error;
use crate::domain::{
    NewParticipant, NewServiceParticipant, Participant, ParticipantRef, ServiceParticipant,
    ServiceParticipantRef,
};
use crate::twilio_api::v1::CreateServiceParticipantForm;
use crate::twilio_api::v2::CreateParticipantBody;
use idempotency::{IdempotencyCache, idempotency_header};

use answer::{V1Expected, V2Expected};
use breaker::CircuitBreaker;
use client::Route;
use retry::{Call, Failure};

/// Keys remembered per replica by the idempotency table.
const IDEMPOTENCY_CAPACITY: usize = 100_000;

/// Everything the twilio backend is built from.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL, such as `https://conversations.twilio.com`.
    pub base_url: String,
    /// Basic-auth credentials.
    pub credentials: Credentials,
    /// Retry rules.
    pub retry: RetryPolicy,
    /// Longest a single attempt may take (the call's deadline may cut it shorter).
    pub attempt_timeout: Duration,
    /// The call's deadline when the caller set none.
    pub default_timeout: Duration,
    /// Most upstream calls in flight at once.
    pub max_in_flight: usize,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long the open breaker refuses calls before probing.
    pub breaker_cooldown: Duration,
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

/// What a create produced, as the idempotency table keeps it.
#[derive(Debug, Clone)]
enum Created {
    V2(Participant),
    V1(ServiceParticipant),
}

/// The twilio backend.
pub struct TwilioBackend {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
    retry: RetryPolicy,
    attempt_timeout: Duration,
    default_timeout: Duration,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    breaker: Arc<CircuitBreaker>,
    keys: IdempotencyCache<Created>,
    /// The key of [`Self::key_scope`]'s hash, random per process.
    scope_key: [u8; 64],
}

impl TwilioBackend {
    /// Builds the client; fails on a base URL that cannot take path segments.
    pub fn new(config: UpstreamConfig) -> Result<Self, Error> {
        let base = Url::parse(&config.base_url)
            .ok()
            .filter(|u| !u.cannot_be_a_base() && matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| Error::Internal("--upstream-url is not an http(s) base URL".into()))?;
        let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .filter_map(|der| reqwest::Certificate::from_der(der).ok());
        let http = reqwest::Client::builder()
            .user_agent(concat!("participants-facade/", env!("CARGO_PKG_VERSION")))
            .tls_certs_only(roots)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_timeout(Duration::from_secs(10))
            // Redirects would replay credentials elsewhere; Twilio's API does not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(format!("building the HTTP client: {e}")))?;
        Ok(TwilioBackend {
            http,
            base,
            credentials: config.credentials,
            retry: config.retry,
            attempt_timeout: config.attempt_timeout,
            default_timeout: config.default_timeout,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            max_in_flight: config.max_in_flight,
            breaker: Arc::new(CircuitBreaker::new(
                config.breaker_threshold,
                config.breaker_cooldown,
            )),
            keys: IdempotencyCache::new(config.idempotency_ttl, IDEMPOTENCY_CAPACITY),
            scope_key: rand::random(),
        })
    }

    /// `base` + the segments, each percent-encoded, so that no input can change the path,
    /// the query or the host. Validation already refuses `.` and `..`, which URL
    /// normalisation would drop; this refuses them again rather than trust it.
    fn url(&self, segments: &[&str]) -> Result<Url, Error> {
        if segments
            .iter()
            .any(|s| s.is_empty() || crate::domain::rules::is_dot_segment(s))
        {
            return Err(Error::InvalidArgument(vec![
                crate::domain::error::FieldViolation {
                    field: "path".into(),
                    description: "identifiers must not be empty, '.' or '..'".into(),
                },
            ]));
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Internal("upstream base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Signs a request with the caller's passed-through credentials, else the configured ones.
    fn authorized(&self, ctx: &CallContext, request: RequestBuilder) -> RequestBuilder {
        let credentials = ctx
            .upstream_credentials
            .as_ref()
            .unwrap_or(&self.credentials);
        request.basic_auth(credentials.username(), Some(credentials.secret()))
    }

    /// The space a caller's idempotency keys live in: a keyed hash (HMAC-SHA-256 under a
    /// key drawn at start-up) of the whole credential, username and secret. Scoping by the
    /// username alone let a passthrough caller with the right account sid and a wrong
    /// secret replay someone else's key and receive their participant, or learn that the
    /// key exists. The table never holds the secret itself, and the hash is useless
    /// outside this process.
    fn key_scope(&self, ctx: &CallContext) -> String {
        let credentials = ctx
            .upstream_credentials
            .as_ref()
            .unwrap_or(&self.credentials);
        credentials.scope(&self.scope_key)
    }

    async fn create_v2(
        &self,
        ctx: &CallContext,
        request: &NewParticipant,
    ) -> Result<Participant, Error> {
        let url = self.url(&[
            "v2",
            "Conversations",
            &request.conversation_id,
            "Participants",
        ])?;
        let body = CreateParticipantBody::from(request);
        let build = || {
            let mut r = self.http.post(url.clone()).json(&body);
            if let Some(key) = &request.idempotency_key {
                r = r.header("Idempotency-Key", idempotency_header(key));
            }
            r
        };
        match self
            .exchange(ctx, Call::CreateV2, Route::V2_CREATE, &url, build)
            .await
        {
            // A refused answer is final: the exchange is over, and the participant it
            // may have created is not to be created again.
            Ok(answer) => answer::participant(&answer, V2Expected::created(request)),
            Err(failure) => self.resolve_conflict(ctx, request, failure).await,
        }
    }

    /// After an ambiguous failure, a retried v2 create may meet its own first attempt:
    /// Twilio answers 409 naming it. If that participant is exactly what was asked for, it
    /// is the caller's participant, created once; if it is another that holds one of the
    /// request's addresses (or Twilio has none by that id), the conflict is real. If it
    /// cannot be fetched, or holds none of the addresses it conflicts on (Twilio's answers
    /// disagree, or it changed in between), nobody knows yet: the caller gets UNAVAILABLE
    /// (DEADLINE_EXCEEDED when time ran out), which invites the retry that settles it,
    /// never ALREADY_EXISTS for what is most likely its own participant.
    async fn resolve_conflict(
        &self,
        ctx: &CallContext,
        request: &NewParticipant,
        failure: Failure,
    ) -> Result<Participant, Error> {
        let conflicting_id = match &failure.error {
            Error::Upstream(e) if e.http_status == 409 && failure.maybe_landed => {
                e.conflicting_id.clone()
            }
            _ => None,
        };
        let Some(participant_id) = conflicting_id else {
            return Err(failure.error);
        };
        let key = ParticipantRef {
            conversation_id: request.conversation_id.clone(),
            participant_id,
        };
        match self.fetch_v2(ctx, &key).await {
            Ok(existing) if conflict::same_participant(request, &existing) => {
                tracing::info!("a retried create found its own first attempt; returning it");
                Ok(existing)
            }
            Ok(existing) if conflict::shares_an_address(request, &existing) => Err(failure.error),
            Ok(_) => {
                tracing::info!(
                    "a retried create met a 409 naming a participant without the conflicting address"
                );
                Err(unsettled(
                    "holds none of the addresses it conflicts on",
                    None,
                ))
            }
            Err(Error::Upstream(e)) if e.http_status == 404 => Err(failure.error),
            Err(e @ Error::DeadlineExceeded(_)) => Err(e),
            Err(e) => {
                let kind = match &e {
                    Error::Upstream(u) => format!("Twilio answered HTTP {}", u.http_status),
                    other => other.reason().unwrap_or("INVALID_ARGUMENT").to_owned(),
                };
                tracing::info!(
                    kind,
                    "a retried create met a participant that could not be fetched to compare"
                );
                Err(unsettled(
                    &format!("could not be fetched to compare ({kind})"),
                    e.retry_after(),
                ))
            }
        }
    }

    async fn fetch_v2(
        &self,
        ctx: &CallContext,
        key: &ParticipantRef,
    ) -> Result<Participant, Error> {
        let url = self.url(&[
            "v2",
            "Conversations",
            &key.conversation_id,
            "Participants",
            &key.participant_id,
        ])?;
        let answer = self
            .exchange(ctx, Call::Fetch, Route::V2_FETCH, &url, || {
                self.http.get(url.clone())
            })
            .await?;
        answer::participant(&answer, V2Expected::fetched(key))
    }

    async fn create_v1(
        &self,
        ctx: &CallContext,
        request: &NewServiceParticipant,
    ) -> Result<ServiceParticipant, Error> {
        let url = self.url(&[
            "v1",
            "Services",
            &request.chat_service_sid,
            "Conversations",
            &request.conversation_sid,
            "Participants",
        ])?;
        let form = CreateServiceParticipantForm::from(request);
        let build = || {
            let mut r = self.http.post(url.clone()).form(&form);
            if let Some(value) = request.webhooks.header() {
                r = r.header("X-Twilio-Webhook-Enabled", value);
            }
            if let Some(key) = &request.idempotency_key {
                r = r.header("Idempotency-Key", idempotency_header(key));
            }
            r
        };
        let answer = self
            .exchange(ctx, Call::CreateV1, Route::V1_CREATE, &url, build)
            .await?;
        answer::service_participant(&answer, V1Expected::created(request))
    }
}

/// A retried v2 create whose 409 could not be resolved: the participant it names `what`.
fn unsettled(what: &str, retry_after: Option<Duration>) -> Error {
    Error::unavailable(
        format!(
            "Twilio refused this create as a conflict with a participant that an earlier \
             attempt of it may have made, and that participant {what}; retry the create"
        ),
        retry_after,
    )
}

#[async_trait]
impl ParticipantBackend for TwilioBackend {
    // LIFECYCLE-STUB: replaced by the lifecycle work; never merged to main as is.
    async fn list_participants(
        &self,
        _ctx: &CallContext,
        _query: crate::domain::ListParticipants,
    ) -> Result<crate::domain::Page<Participant>, Error> {
        Err(Error::Internal("ListParticipants is not built yet".into()))
    }

    async fn update_participant(
        &self,
        _ctx: &CallContext,
        _update: crate::domain::ParticipantUpdate,
    ) -> Result<Participant, Error> {
        Err(Error::Internal("UpdateParticipant is not built yet".into()))
    }

    async fn list_service_participants(
        &self,
        _ctx: &CallContext,
        _query: crate::domain::ListServiceParticipants,
    ) -> Result<crate::domain::Page<ServiceParticipant>, Error> {
        Err(Error::Internal(
            "ListServiceParticipants is not built yet".into(),
        ))
    }

    async fn update_service_participant(
        &self,
        _ctx: &CallContext,
        _update: crate::domain::ServiceParticipantUpdate,
    ) -> Result<ServiceParticipant, Error> {
        Err(Error::Internal(
            "UpdateServiceParticipant is not built yet".into(),
        ))
    }

    async fn delete_service_participant(
        &self,
        _ctx: &CallContext,
        _request: crate::domain::DeleteServiceParticipant,
    ) -> Result<(), Error> {
        Err(Error::Internal(
            "DeleteServiceParticipant is not built yet".into(),
        ))
    }

    async fn create_participant(
        &self,
        ctx: &CallContext,
        request: NewParticipant,
    ) -> Result<Participant, Error> {
        let create = async { self.create_v2(ctx, &request).await.map(Created::V2) };
        match self
            .keys
            .run(&self.key_scope(ctx), &request, create)
            .await?
        {
            Created::V2(p) => Ok(p),
            // The fingerprint names the operation, so a key's result is of its operation.
            Created::V1(_) => Err(Error::IdempotencyKeyReused),
        }
    }

    async fn fetch_participant(
        &self,
        ctx: &CallContext,
        key: ParticipantRef,
    ) -> Result<Participant, Error> {
        self.fetch_v2(ctx, &key).await
    }

    async fn create_service_participant(
        &self,
        ctx: &CallContext,
        request: NewServiceParticipant,
    ) -> Result<ServiceParticipant, Error> {
        let create = async { self.create_v1(ctx, &request).await.map(Created::V1) };
        match self
            .keys
            .run(&self.key_scope(ctx), &request, create)
            .await?
        {
            Created::V1(p) => Ok(p),
            Created::V2(_) => Err(Error::IdempotencyKeyReused),
        }
    }

    async fn fetch_service_participant(
        &self,
        ctx: &CallContext,
        key: ServiceParticipantRef,
    ) -> Result<ServiceParticipant, Error> {
        let url = self.url(&[
            "v1",
            "Services",
            &key.chat_service_sid,
            "Conversations",
            &key.conversation_sid,
            "Participants",
            &key.sid,
        ])?;
        let answer = self
            .exchange(ctx, Call::Fetch, Route::V1_FETCH, &url, || {
                self.http.get(url.clone())
            })
            .await?;
        answer::service_participant(&answer, V1Expected::fetched(&key))
    }

    fn ready(&self) -> bool {
        !self.breaker.is_open()
    }

    async fn close(&self) {
        // Nothing to flush: the pool's connections close when the client drops.
        self.in_flight.close();
    }
}
