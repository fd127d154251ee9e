//! The `twilio` backend: every call becomes the matching call of Twilio's REST API.
//!
//! One pooled reqwest client (HTTP/2 where upstream offers it, rustls with the webpki
//! roots) carries all calls. Each call runs under one deadline (the caller's, else
//! `--upstream-timeout`) that covers every attempt and pause. Around it (the stack is
//! built in `client`):
//! - a bound on requests in flight, failing fast with RESOURCE_EXHAUSTED when full;
//! - retries after gRFC A6 (exponential backoff, full jitter, `Retry-After` honoured):
//!   fetches, lists, updates (v2 `PUT`, v1 `POST` of values) and deletes on connection
//!   errors, timeouts, 429 and 5xx; creates only where a second attempt cannot create a
//!   second participant (`retry`, see [`RetryPolicy`]); a delete whose repeat finds
//!   nothing after an attempt that may have landed is done;
//! - a circuit breaker, failing fast with UNAVAILABLE while Twilio keeps failing
//!   (`breaker`).
//!
//! Twilio's error answers become [`Error::Upstream`], which `error.rs` maps per the
//! contract's table. Its success answers are checked as strictly as requests
//! (`answer.rs`): one that is not the participant asked for is [`Error::UpstreamProtocol`]
//! (INTERNAL), never retried. Credentials live in [`Credentials`], a secret that never
//! prints. Lists hand out the facade's own page tokens (`pages`), bound to their list; a
//! v1 next-page link is followed on the configured upstream only, never another host.

mod answer;
mod breaker;
mod client;
mod conflict;
mod errors;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod idempotency;
mod pages;
mod redact;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{RequestBuilder, Url};
use tokio::sync::Semaphore;

pub use retry::RetryPolicy;

#[cfg(feature = "postgres")]
use crate::backend::postgres::keys::SharedKeys;
use crate::backend::{CallContext, Credentials, ParticipantBackend};
use crate::domain::CreateRequest;
use crate::domain::error::Error;
use crate::domain::{
    DeleteServiceParticipant, ListParticipants, ListServiceParticipants, NewParticipant,
    NewServiceParticipant, Page, Participant, ParticipantRef, ParticipantUpdate,
    ServiceParticipant, ServiceParticipantRef, ServiceParticipantUpdate,
};
use crate::twilio_api::v1::{CreateServiceParticipantForm, UpdateServiceParticipantForm};
use crate::twilio_api::v2::CreateParticipantBody;
use idempotency::{IdempotencyCache, idempotency_header};

use answer::{Operation, V1Expected, V2Expected};
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

/// What a create produced, as the idempotency tables keep it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// With `--database-url`: the keys every replica shares, behind `keys`.
    #[cfg(feature = "postgres")]
    shared: Option<SharedKeys>,
    /// The key of [`Self::key_scope`]'s hash: random per process, or the shared store's.
    scope_key: [u8; 64],
}

impl TwilioBackend {
    /// Builds the client; fails on a base URL that cannot take path segments. Idempotency
    /// keys are kept per replica unless [`Self::sharing_keys`] is given the shared store's.
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
            #[cfg(feature = "postgres")]
            shared: None,
        })
    }

    /// Idempotency keys kept in the shared store (`--database-url`), so that a retry
    /// reaching another replica is recognised; their hash keyed by the store's key.
    #[cfg(feature = "postgres")]
    pub fn sharing_keys(mut self, shared: SharedKeys) -> Self {
        self.scope_key = *shared.scope_key();
        self.shared = Some(shared);
        self
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

    /// `create`, run once for its idempotency key across every replica when the keys are
    /// shared (`--database-url`); else as it is (the in-memory table alone decides).
    async fn across_replicas<R: CreateRequest>(
        &self,
        scope: &str,
        request: &R,
        create: impl std::future::Future<Output = Result<Created, Error>>,
    ) -> Result<Created, Error> {
        #[cfg(feature = "postgres")]
        if let (Some(shared), Some(key)) = (&self.shared, request.idempotency_key()) {
            // A claim is waited for as long as the create that holds it may take.
            let lease = self.default_timeout + self.attempt_timeout;
            return shared
                .run(
                    &format!("twilio:{scope}:{key}"),
                    &request.fingerprint(),
                    lease,
                    create,
                )
                .await;
        }
        #[cfg(not(feature = "postgres"))]
        let _ = (scope, request);
        create.await
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

/// The lifecycle beyond create and fetch: lists, updates and the v1 delete.
impl TwilioBackend {
    /// `GET /v2/Conversations/{id}/Participants?pageSize=&pageToken=`.
    async fn list_v2(
        &self,
        ctx: &CallContext,
        query: &ListParticipants,
    ) -> Result<Page<Participant>, Error> {
        let list = pages::List::V2 {
            conversation_id: &query.conversation_id,
        };
        let upstream_token = match &query.page.page_token {
            Some(token) => Some(pages::decode(list, token)?),
            None => None,
        };
        let mut url = self.url(&[
            "v2",
            "Conversations",
            &query.conversation_id,
            "Participants",
        ])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("pageSize", &query.page.page_size.to_string());
            if let Some(token) = &upstream_token {
                q.append_pair("pageToken", token);
            }
        }
        let answer = self
            .exchange(ctx, Call::Fetch, Route::V2_LIST, &url, || {
                self.http.get(url.clone())
            })
            .await?;
        let (items, next) = answer::participant_page(&answer, &query.conversation_id)?;
        let next_page_token = match next {
            Some(next) => Some(pages::encode(list, &next).ok_or_else(|| {
                answer::bad_next_page(
                    answer.status,
                    Operation::ListParticipants,
                    "is too long to be a page token",
                )
            })?),
            None => None,
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Twilio's update is a `PUT` of the whole participant: fetch it, apply the changes,
    /// and put the result back.
    ///
    /// Lost-update window: Twilio's v2 API offers no precondition (no ETag, no
    /// If-Match), so a change another writer makes between our GET and our PUT is
    /// overwritten by the PUT, which carries the participant as we read it plus our
    /// changes. The window is one round trip; see docs/operations.md.
    async fn update_v2(
        &self,
        ctx: &CallContext,
        update: &ParticipantUpdate,
    ) -> Result<Participant, Error> {
        let key = &update.key;
        let url = self.url(&[
            "v2",
            "Conversations",
            &key.conversation_id,
            "Participants",
            &key.participant_id,
        ])?;
        let read = self
            .exchange(ctx, Call::Fetch, Route::V2_FETCH, &url, || {
                self.http.get(url.clone())
            })
            .await?;
        let mut participant = answer::participant(&read, V2Expected::updated(key))?;
        update
            .changes
            .apply(&mut participant, crate::domain::v2_now());
        let body = CreateParticipantBody::from(&participant);
        let answer = self
            .exchange(ctx, Call::Idempotent, Route::V2_UPDATE, &url, || {
                self.http.put(url.clone()).json(&body)
            })
            .await?;
        answer::participant(&answer, V2Expected::updated(key))
    }

    /// The URL of a v1 conversation's participant list.
    fn v1_list_url(&self, chat_service_sid: &str, conversation_sid: &str) -> Result<Url, Error> {
        self.url(&[
            "v1",
            "Services",
            chat_service_sid,
            "Conversations",
            conversation_sid,
            "Participants",
        ])
    }

    /// `GET /v1/Services/{IS}/Conversations/{CH}/Participants?PageSize=`, then Twilio's
    /// `next_page_url`, followed on the configured upstream only.
    async fn list_v1(
        &self,
        ctx: &CallContext,
        query: &ListServiceParticipants,
    ) -> Result<Page<ServiceParticipant>, Error> {
        let list = pages::List::V1 {
            chat_service_sid: &query.chat_service_sid,
            conversation_sid: &query.conversation_sid,
        };
        let list_url = self.v1_list_url(&query.chat_service_sid, &query.conversation_sid)?;
        let url = match &query.page.page_token {
            Some(token) => {
                let state = pages::decode(list, token)?;
                let own = self.v1_state_list(query, &list_url, &state)?;
                pages::v1_follow(&own, &state)?
            }
            None => {
                let mut url = list_url.clone();
                url.query_pairs_mut()
                    .append_pair("PageSize", &query.page.page_size.to_string());
                url
            }
        };
        let answer = self
            .exchange(ctx, Call::Fetch, Route::V1_LIST, &url, || {
                self.http.get(url.clone())
            })
            .await?;
        let expected = V1Expected::listed(&query.chat_service_sid, &query.conversation_sid);
        let (items, next) = answer::service_participant_page(&answer, expected)?;
        let next_page_token = match next {
            None => None,
            Some(link) => {
                let refuse = |what| {
                    answer::bad_next_page(answer.status, Operation::ListServiceParticipants, what)
                };
                // Never another host, nor another list: Twilio's link is kept only as the
                // path and query of this very list on the configured upstream.
                // A conversation named by its unique name may come back named by its
                // CH sid (the one its participants carry).
                let by_sid = items
                    .first()
                    .map(|p| p.conversation_sid.as_str())
                    .filter(|ch| {
                        !crate::domain::is_conversation_sid(&query.conversation_sid)
                            && crate::domain::is_conversation_sid(ch)
                    })
                    .map(|ch| self.v1_list_url(&query.chat_service_sid, ch))
                    .transpose()?;
                let state = pages::v1_next(&list_url, &link)
                    .or_else(|| by_sid.as_ref().and_then(|u| pages::v1_next(u, &link)))
                    .ok_or_else(|| {
                        refuse("is not this list on the configured upstream (another host or path)")
                    })?;
                Some(
                    pages::encode(list, &state)
                        .ok_or_else(|| refuse("is too long to be a page token"))?,
                )
            }
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// `POST .../Participants/{Sid}` with the changed fields only.
    async fn update_v1(
        &self,
        ctx: &CallContext,
        update: &ServiceParticipantUpdate,
    ) -> Result<ServiceParticipant, Error> {
        let key = &update.key;
        let url = self.v1_participant_url(key)?;
        let form = UpdateServiceParticipantForm::from(&update.changes);
        let build = || {
            let mut r = self.http.post(url.clone()).form(&form);
            if let Some(value) = update.webhooks.header() {
                r = r.header("X-Twilio-Webhook-Enabled", value);
            }
            r
        };
        // Retried like a PUT: the same values sent again leave the same participant.
        let answer = self
            .exchange(ctx, Call::Idempotent, Route::V1_UPDATE, &url, build)
            .await?;
        let expected = V1Expected::updated(key, update.changes.identity.as_ref());
        answer::service_participant(&answer, expected)
    }

    /// `DELETE .../Participants/{Sid}`, 204. A 404 to a repeat, after an attempt that may
    /// have landed (a timeout, a broken exchange, a 5xx), is that attempt's doing: the
    /// delete is done. A 404 to the first attempt is NOT_FOUND.
    async fn delete_v1(
        &self,
        ctx: &CallContext,
        request: &DeleteServiceParticipant,
    ) -> Result<(), Error> {
        let url = self.v1_participant_url(&request.key)?;
        let build = || {
            let mut r = self.http.delete(url.clone());
            if let Some(value) = request.webhooks.header() {
                r = r.header("X-Twilio-Webhook-Enabled", value);
            }
            r
        };
        match self
            .exchange(ctx, Call::Idempotent, Route::V1_DELETE, &url, build)
            .await
        {
            Ok(_) => Ok(()),
            Err(failure) => match &failure.error {
                Error::Upstream(e) if e.http_status == 404 && failure.maybe_landed => {
                    tracing::info!(
                        "a retried delete found the participant gone after an attempt that may have landed; done"
                    );
                    Ok(())
                }
                _ => Err(failure.error),
            },
        }
    }

    /// The list a decoded v1 state names: `list_url` itself, or, for a conversation
    /// named by its unique name, the same list under a CH sid (as Twilio's links may name
    /// it). Anything else is not a token of this list.
    fn v1_state_list(
        &self,
        query: &ListServiceParticipants,
        list_url: &Url,
        state: &str,
    ) -> Result<Url, Error> {
        let path = state.split('?').next().unwrap_or_default();
        if path == list_url.path() || crate::domain::is_conversation_sid(&query.conversation_sid) {
            return Ok(list_url.clone());
        }
        let segments: Vec<&str> = path.rsplit('/').take(2).collect();
        match segments.get(1) {
            Some(ch) if crate::domain::is_conversation_sid(ch) => {
                self.v1_list_url(&query.chat_service_sid, ch)
            }
            _ => Err(crate::domain::page::bad_page_token()),
        }
    }

    fn v1_participant_url(&self, key: &ServiceParticipantRef) -> Result<Url, Error> {
        self.url(&[
            "v1",
            "Services",
            &key.chat_service_sid,
            "Conversations",
            &key.conversation_sid,
            "Participants",
            &key.sid,
        ])
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
    async fn list_participants(
        &self,
        ctx: &CallContext,
        query: ListParticipants,
    ) -> Result<Page<Participant>, Error> {
        self.list_v2(ctx, &query).await
    }

    async fn update_participant(
        &self,
        ctx: &CallContext,
        update: ParticipantUpdate,
    ) -> Result<Participant, Error> {
        self.update_v2(ctx, &update).await
    }

    async fn list_service_participants(
        &self,
        ctx: &CallContext,
        query: ListServiceParticipants,
    ) -> Result<Page<ServiceParticipant>, Error> {
        self.list_v1(ctx, &query).await
    }

    async fn update_service_participant(
        &self,
        ctx: &CallContext,
        update: ServiceParticipantUpdate,
    ) -> Result<ServiceParticipant, Error> {
        self.update_v1(ctx, &update).await
    }

    async fn delete_service_participant(
        &self,
        ctx: &CallContext,
        request: DeleteServiceParticipant,
    ) -> Result<(), Error> {
        self.delete_v1(ctx, &request).await
    }

    async fn create_participant(
        &self,
        ctx: &CallContext,
        request: NewParticipant,
    ) -> Result<Participant, Error> {
        let scope = self.key_scope(ctx);
        let create = async { self.create_v2(ctx, &request).await.map(Created::V2) };
        let create = self.across_replicas(&scope, &request, create);
        match self.keys.run(&scope, &request, create).await? {
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
        let scope = self.key_scope(ctx);
        let create = async { self.create_v1(ctx, &request).await.map(Created::V1) };
        let create = self.across_replicas(&scope, &request, create);
        match self.keys.run(&scope, &request, create).await? {
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
        #[cfg(feature = "postgres")]
        let shared_ready = self.shared.as_ref().is_none_or(SharedKeys::ready);
        #[cfg(not(feature = "postgres"))]
        let shared_ready = true;
        !self.breaker.is_open() && shared_ready
    }

    async fn close(&self) {
        // Nothing to flush: the pool's connections close when the client drops.
        self.in_flight.close();
        #[cfg(feature = "postgres")]
        if let Some(shared) = &self.shared {
            shared.close();
        }
    }
}
