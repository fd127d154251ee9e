//! The `twilio` backend against real HTTP servers on 127.0.0.1, never a mock of our own
//! client: wiremock for scripted answers, raw tokio listeners for what wiremock cannot do
//! (connection resets, an upstream that never answers), and the Prism mock server serving
//! Twilio's official OpenAPI specs.
//!
//! - `mapping`: upstream statuses and bodies become the contract's gRPC codes and details.
//! - `retries`: which calls are retried, how often, and within which deadlines.
//! - `requests`: what goes over the wire (auth, user agent, JSON and form encodings,
//!   headers, path encoding of hostile input).
//! - `idempotency`: the facade's idempotency key over an upstream that has none.
//! - `resilience`: circuit breaker, in-flight limit, cancellation, start-up without
//!   credentials, and no credential in any log line or error.
//! - `prism`: every request of the four RPCs is valid against Twilio's spec.

mod idempotency;
mod mapping;
mod prism;
mod requests;
mod resilience;
mod retries;

use std::time::{Duration, Instant};

use base64::Engine as _;
use participants_facade::config::{BackendKind, Config};
use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest, FetchParticipantRequest,
    FetchServiceParticipantRequest, ParticipantType,
};
use participants_facade::upstream::Credentials;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tonic::Status;
use tonic_types::{ErrorInfo, StatusExt};
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::*;

/// The API key the tests' facade authenticates with.
pub const API_KEY: &str = "SKf00dfacef00dfacef00dfacef00dface";
/// Its secret: must never appear in a log line or an error.
pub const API_SECRET: &str = "s3cret-Hunter2-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// The account Twilio answers with in scripted bodies.
pub const ACCOUNT: &str = "ACabcdefabcdefabcdefabcdefabcdefab";
/// `ErrorInfo.domain` of Twilio's errors.
pub const TWILIO_DOMAIN: &str = "twilio.com";

/// The test credentials.
pub fn credentials() -> Credentials {
    Credentials::from_lookup(|name| match name {
        "TWILIO_API_KEY" => Some(API_KEY.to_owned()),
        "TWILIO_API_SECRET" => Some(API_SECRET.to_owned()),
        _ => None,
    })
    .expect("test credentials")
}

/// `user:secret` in base64, as HTTP basic auth sends it.
pub fn basic_token() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:{API_SECRET}"))
}

/// The `Authorization` header value every upstream request must carry.
pub fn authorization() -> String {
    format!("Basic {}", basic_token())
}

/// The facade's `User-Agent` upstream.
pub fn user_agent() -> String {
    format!("participants-facade/{}", env!("CARGO_PKG_VERSION"))
}

/// Starts an in-process server in twilio mode against `upstream`, with backoffs of a few
/// milliseconds and a breaker that does not open (tests of the breaker set their own),
/// then applies `configure`.
pub async fn spawn_twilio_app(upstream: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
    let upstream = upstream.to_owned();
    spawn_app_configured(move |config| {
        config.backend = BackendKind::Twilio;
        config.upstream_url = upstream;
        config.credentials = Some(credentials());
        config.upstream_initial_backoff = Duration::from_millis(5);
        config.upstream_max_backoff = Duration::from_millis(20);
        config.upstream_breaker_failures = 10_000;
        config.upstream_connect_timeout = Duration::from_secs(2);
        configure(config);
    })
    .await
}

/// A wiremock server on 127.0.0.1 (wiremock binds loopback only).
pub async fn upstream() -> MockServer {
    let server = MockServer::start().await;
    assert!(
        server.address().ip().is_loopback(),
        "upstream must be on loopback: {}",
        server.address()
    );
    server
}

// ---------------------------------------------------------------------------------------
// Paths and bodies in Twilio's shapes
// ---------------------------------------------------------------------------------------

/// `/v2/Conversations/{c}/Participants`.
pub fn v2_create_path(conversation_id: &str) -> String {
    format!("/v2/Conversations/{conversation_id}/Participants")
}

/// `/v2/Conversations/{c}/Participants/{id}`.
pub fn v2_fetch_path(conversation_id: &str, id: &str) -> String {
    format!("/v2/Conversations/{conversation_id}/Participants/{id}")
}

/// `/v1/Services/{IS}/Conversations/{CH}/Participants`.
pub fn v1_create_path(service: &str, conversation: &str) -> String {
    format!("/v1/Services/{service}/Conversations/{conversation}/Participants")
}

/// `/v1/Services/{IS}/Conversations/{CH}/Participants/{sid}`.
pub fn v1_fetch_path(service: &str, conversation: &str, sid: &str) -> String {
    format!("/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}")
}

/// A fresh v2 participant id.
pub fn participant_id() -> String {
    format!("conv_participant_{:026}", unique())
}

/// Twilio's name of a proto channel (`SMS` for `CHANNEL_SMS`).
pub fn channel_name(channel: i32) -> &'static str {
    let name = Channel::try_from(channel)
        .expect("known channel")
        .as_str_name();
    name.strip_prefix("CHANNEL_").expect("prefixed")
}

/// Twilio's name of a proto participant type (`CUSTOMER` for `PARTICIPANT_TYPE_CUSTOMER`).
pub fn type_name(kind: i32) -> &'static str {
    let name = ParticipantType::try_from(kind)
        .expect("known type")
        .as_str_name();
    name.strip_prefix("PARTICIPANT_TYPE_").expect("prefixed")
}

/// The v2 participant Twilio would answer for `request`, under `id`.
pub fn v2_body(id: &str, request: &CreateParticipantRequest) -> Value {
    let mut body = json!({
        "id": id,
        "conversationId": request.conversation_id,
        "accountId": ACCOUNT,
        "name": if request.name.is_empty() { Value::Null } else { json!(request.name) },
        "addresses": request.addresses.iter().map(|a| {
            let mut address = json!({"channel": channel_name(a.channel), "address": a.address});
            if !a.channel_id.is_empty() {
                address["channelId"] = json!(a.channel_id);
            }
            address
        }).collect::<Vec<_>>(),
        "createdAt": "2026-01-02T03:04:05Z",
        "updatedAt": "2026-01-02T03:04:06Z",
    });
    if request.r#type != 0 {
        body["type"] = json!(type_name(request.r#type));
    }
    if !request.profile_id.is_empty() {
        body["profileId"] = json!(request.profile_id);
    }
    body
}

/// The v2 participant Twilio would answer to the fetch `request` (a GET of
/// `/v2/Conversations/{c}/Participants/{id}`): the one its path names, for mocks that
/// answer any fetch.
pub fn v2_fetched_body(request: &wiremock::Request) -> Value {
    let segments: Vec<String> = request
        .url
        .path_segments()
        .map(|s| s.map(path_decode).collect())
        .unwrap_or_default();
    let [_, _, conversation, _, id] = &segments[..] else {
        panic!("not a v2 fetch: {}", request.url.path());
    };
    let created = CreateParticipantRequest {
        conversation_id: conversation.clone(),
        ..create_request()
    };
    v2_body(id, &created)
}

/// The v1 participant Twilio would answer for `request`, under `sid`.
pub fn v1_body(sid: &str, request: &CreateServiceParticipantRequest) -> Value {
    let binding = request.messaging_binding.clone().unwrap_or_default();
    let text = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
    json!({
        "account_sid": ACCOUNT,
        "chat_service_sid": request.chat_service_sid,
        "conversation_sid": request.conversation_sid,
        "sid": sid,
        "identity": text(&request.identity),
        "attributes": if request.attributes.is_empty() { "{}" } else { &request.attributes },
        "messaging_binding": if binding.address.is_empty() && binding.projected_address.is_empty() {
            Value::Null
        } else {
            json!({
                "type": "sms",
                "address": text(&binding.address),
                "proxy_address": text(&binding.proxy_address),
                "projected_address": text(&binding.projected_address),
            })
        },
        "role_sid": text(&request.role_sid),
        "date_created": "2026-01-02T03:04:05Z",
        "date_updated": "2026-01-02T03:04:06Z",
        "url": format!("https://conversations.twilio.com{}/{sid}",
            v1_create_path(&request.chat_service_sid, &request.conversation_sid)),
        "last_read_message_index": null,
        "last_read_timestamp": null,
    })
}

/// Twilio's JSON error body.
pub fn twilio_error_body(status: u16, code: i64, message: &str) -> Value {
    json!({
        "code": code,
        "message": message,
        "more_info": more_info(code),
        "status": status,
    })
}

/// Twilio's documentation link for `code`.
pub fn more_info(code: i64) -> String {
    format!("https://www.twilio.com/docs/errors/{code}")
}

/// An answer with `status` and Twilio's JSON error body.
pub fn twilio_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(twilio_error_body(status, code, message))
}

// ---------------------------------------------------------------------------------------
// Requests and what upstream received
// ---------------------------------------------------------------------------------------

/// A fetch request for a v2 participant.
pub fn fetch_v2_request(conversation_id: &str, id: &str) -> FetchParticipantRequest {
    FetchParticipantRequest {
        conversation_id: conversation_id.to_owned(),
        participant_id: id.to_owned(),
    }
}

/// A fetch request for a v1 participant.
pub fn fetch_v1_request(
    service: &str,
    conversation: &str,
    sid: &str,
) -> FetchServiceParticipantRequest {
    FetchServiceParticipantRequest {
        chat_service_sid: service.to_owned(),
        conversation_sid: conversation.to_owned(),
        sid: sid.to_owned(),
    }
}

/// `request` with a gRPC deadline (`grpc-timeout`) of `timeout`.
pub fn with_deadline<T>(request: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(request);
    request.set_timeout(timeout);
    request
}

/// The requests `server` received on `path` (exact, as sent).
pub async fn received_on(server: &MockServer, method: &str, path: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .into_iter()
        .filter(|r| r.method.as_str() == method && r.url.path() == path)
        .collect()
}

/// How many requests `server` received in all.
pub async fn received_count(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .len()
}

/// A header of a received request, as text.
pub fn header<'a>(request: &'a wiremock::Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Decodes an `application/x-www-form-urlencoded` body into its pairs, in order.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(body).expect("form bodies are ASCII");
    if text.is_empty() {
        return Vec::new();
    }
    text.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as space, as forms do) into UTF-8 text.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("a %XX escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}

/// Decodes one URL path segment (where `+` is itself, not a space).
pub fn path_decode(segment: &str) -> String {
    percent_decode(&segment.replace('+', "%2B"))
}

// ---------------------------------------------------------------------------------------
// Assertions on Twilio errors
// ---------------------------------------------------------------------------------------

/// The ErrorInfo of an upstream error, checked to be in Twilio's domain.
pub fn twilio_error_info(status: &Status) -> ErrorInfo {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, TWILIO_DOMAIN, "{status:?}");
    info
}

/// The RetryInfo delay of `status`, if any.
pub fn retry_delay(status: &Status) -> Option<Duration> {
    status.get_details_retry_info().and_then(|r| r.retry_delay)
}

// ---------------------------------------------------------------------------------------
// Raw TCP upstreams
// ---------------------------------------------------------------------------------------

/// Reads one HTTP/1.1 request head (up to the blank line); `None` when the peer closed
/// first. Bounded in size and by [`WAIT`].
pub async fn read_request_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(head.len() < 64 * 1024, "request head too large");
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buf))
            .await
            .expect("request head within the bound")
            .ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// Polls `condition` every 20 ms until it holds or `bound` passes; returns whether it held.
pub async fn eventually<F, Fut>(bound: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The four RPCs, for tests that run the same case through each
// ---------------------------------------------------------------------------------------

/// One of the four RPCs, named as in the service.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    CreateParticipant,
    FetchParticipant,
    CreateServiceParticipant,
    FetchServiceParticipant,
}

/// Every RPC.
pub const RPCS: [Rpc; 4] = [
    Rpc::CreateParticipant,
    Rpc::FetchParticipant,
    Rpc::CreateServiceParticipant,
    Rpc::FetchServiceParticipant,
];

/// A request of one RPC, ready to send, with the upstream route it goes to.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub rpc: Rpc,
    pub method: &'static str,
    pub path: String,
    create_v2: Option<CreateParticipantRequest>,
    fetch_v2: Option<FetchParticipantRequest>,
    create_v1: Option<CreateServiceParticipantRequest>,
    fetch_v1: Option<FetchServiceParticipantRequest>,
}

impl Rpc {
    /// A valid request on fresh identifiers (so on a route no other case uses).
    pub fn fresh(self) -> Prepared {
        let mut p = Prepared {
            rpc: self,
            method: "GET",
            path: String::new(),
            create_v2: None,
            fetch_v2: None,
            create_v1: None,
            fetch_v1: None,
        };
        match self {
            Rpc::CreateParticipant => {
                let r = create_request();
                p.method = "POST";
                p.path = v2_create_path(&r.conversation_id);
                p.create_v2 = Some(r);
            }
            Rpc::FetchParticipant => {
                let r = fetch_v2_request(&conversation_id(), &participant_id());
                p.path = v2_fetch_path(&r.conversation_id, &r.participant_id);
                p.fetch_v2 = Some(r);
            }
            Rpc::CreateServiceParticipant => {
                let r = create_v1_request();
                p.method = "POST";
                p.path = v1_create_path(&r.chat_service_sid, &r.conversation_sid);
                p.create_v1 = Some(r);
            }
            Rpc::FetchServiceParticipant => {
                let r = fetch_v1_request(&sid("IS"), &sid("CH"), &sid("MB"));
                p.path = v1_fetch_path(&r.chat_service_sid, &r.conversation_sid, &r.sid);
                p.fetch_v1 = Some(r);
            }
        }
        p
    }
}

impl Prepared {
    /// The success answer Twilio would give to this request.
    pub fn success(&self) -> ResponseTemplate {
        if let Some(r) = &self.create_v2 {
            return ResponseTemplate::new(201).set_body_json(v2_body(&participant_id(), r));
        }
        if let Some(r) = &self.fetch_v2 {
            let created = CreateParticipantRequest {
                conversation_id: r.conversation_id.clone(),
                ..create_request()
            };
            return ResponseTemplate::new(200).set_body_json(v2_body(&r.participant_id, &created));
        }
        if let Some(r) = &self.create_v1 {
            return ResponseTemplate::new(201).set_body_json(v1_body(&sid("MB"), r));
        }
        let r = self.fetch_v1.as_ref().expect("one request is set");
        let created = CreateServiceParticipantRequest {
            chat_service_sid: r.chat_service_sid.clone(),
            conversation_sid: r.conversation_sid.clone(),
            ..create_v1_request()
        };
        ResponseTemplate::new(200).set_body_json(v1_body(&r.sid, &created))
    }

    /// Sends the request (with a gRPC deadline when `deadline` is set); the id or sid of
    /// the participant on success.
    pub async fn call(&self, app: &TestApp, deadline: Option<Duration>) -> Result<String, Status> {
        self.call_with(app.client.clone(), deadline).await
    }

    /// As [`Prepared::call`], through `client`.
    pub async fn call_with(
        &self,
        mut client: ParticipantServiceClient<tonic::transport::Channel>,
        deadline: Option<Duration>,
    ) -> Result<String, Status> {
        fn wrap<T>(r: T, deadline: Option<Duration>) -> tonic::Request<T> {
            match deadline {
                Some(d) => with_deadline(r, d),
                None => tonic::Request::new(r),
            }
        }
        if let Some(r) = &self.create_v2 {
            let p = client.create_participant(wrap(r.clone(), deadline)).await?;
            return Ok(p.into_inner().id);
        }
        if let Some(r) = &self.fetch_v2 {
            let p = client.fetch_participant(wrap(r.clone(), deadline)).await?;
            return Ok(p.into_inner().id);
        }
        if let Some(r) = &self.create_v1 {
            let p = client
                .create_service_participant(wrap(r.clone(), deadline))
                .await?;
            return Ok(p.into_inner().sid);
        }
        let r = self.fetch_v1.clone().expect("one request is set");
        let p = client.fetch_service_participant(wrap(r, deadline)).await?;
        Ok(p.into_inner().sid)
    }

    /// Mounts `template` for this request's route on `server`.
    pub async fn mount(&self, server: &MockServer, template: ResponseTemplate) {
        wiremock::Mock::given(wiremock::matchers::method(self.method))
            .and(wiremock::matchers::path(self.path.as_str()))
            .respond_with(template)
            .mount(server)
            .await;
    }

    /// How many requests `server` received on this request's route.
    pub async fn attempts(&self, server: &MockServer) -> usize {
        received_on(server, self.method, &self.path).await.len()
    }
}

impl Prepared {
    /// Sends the request over a raw HTTP/2 stream with `grpc-timeout: grpc_timeout`, so
    /// that the answer is the server's own and not the client library's (tonic enforces a
    /// deadline itself and reports it as CANCELLED).
    pub async fn raw_call(&self, app: &TestApp, grpc_timeout: &str) -> RawResponse {
        let (name, frame) = if let Some(r) = &self.create_v2 {
            ("CreateParticipant", grpc_frame(r))
        } else if let Some(r) = &self.fetch_v2 {
            ("FetchParticipant", grpc_frame(r))
        } else if let Some(r) = &self.create_v1 {
            ("CreateServiceParticipant", grpc_frame(r))
        } else {
            let r = self.fetch_v1.as_ref().expect("one request is set");
            ("FetchServiceParticipant", grpc_frame(r))
        };
        let method = format!("/participants.v1.ParticipantService/{name}");
        let (response, mut body) =
            start_raw_call(app.addr, &method, &[("grpc-timeout", grpc_timeout)]).await;
        body.send_data(bytes::Bytes::from(frame), true)
            .expect("send the request");
        read_raw_response(response).await
    }
}
