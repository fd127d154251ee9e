//! Observability of the binary, end to end: the spans it exports over OTLP (to a real
//! OTLP/gRPC receiver inside the test, `fixtures::otlp`), the trace it continues from a
//! caller's `traceparent` and hands on to the upstream, its JSON logs, and its Prometheus
//! metrics.
//! - `spans`: server and store spans of the local backend, per the semantic conventions,
//!   in the caller's trace, with `call served` log lines carrying the trace id;
//! - `propagation`: upstream attempts as client spans, and the context the upstream
//!   receives in `traceparent` (with and without an exporter);
//! - `export`: export switched off (no OTEL variables, `OTEL_TRACES_EXPORTER=none`) or not
//!   (a quiet log level);
//! - `metrics`: call, store, upstream and cache series, and calls in flight.
//!
//! The tracing subscriber is process-global, so every test runs the binary as a child
//! (`ChildServer`) with its own environment, stops it with SIGTERM (spans are flushed on
//! exit) and then inspects what the receiver, the loopback upstream (wiremock) and the
//! child's stderr got. Everything listens on 127.0.0.1. Here: what those tests share (the
//! names they expect, the conventions' finer checks, personal data that must not leak, a
//! loopback Twilio and the twilio-mode child).

mod connect;
mod export;
mod metrics;
mod propagation;
mod spans;

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use participants_facade::proto::{Channel, CreateParticipantRequest, ParticipantType};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fixtures::*;

/// gRPC server span names (and `rpc.method`).
const CREATE: &str = "participants.v1.ParticipantService/CreateParticipant";
const FETCH: &str = "participants.v1.ParticipantService/FetchParticipant";
const CREATE_V1: &str = "participants.v1.ParticipantService/CreateServiceParticipant";
const FETCH_V1: &str = "participants.v1.ParticipantService/FetchServiceParticipant";
/// REST route templates (`http.route`).
const REST_CREATE_ROUTE: &str = "/v2/Conversations/{ConversationSid}/Participants";
const REST_FETCH_ROUTE: &str = "/v2/Conversations/{ConversationSid}/Participants/{Sid}";
/// The upstream's route template (`url.template`).
const UPSTREAM_V2_CREATE: &str = "/v2/Conversations/{ConversationId}/Participants";

/// Checks of the conventions' finer points (attribute types, names set late), collected
/// so that a deviation is reported at the end of a test, after everything else in it was
/// checked, rather than hiding the rest.
#[derive(Default)]
struct Conventions(std::cell::RefCell<Vec<String>>);

impl Conventions {
    /// The integer value of `key`. The conventions type it `int`: a value sent as a
    /// string is compared by its number and recorded as a deviation.
    fn int(&self, span: &Span, key: &str) -> Option<i64> {
        match attr(span, key) {
            Some(AnyValue::IntValue(i)) => Some(*i),
            Some(AnyValue::StringValue(s)) => {
                self.0.borrow_mut().push(format!(
                    "{key} on span {:?} is exported as the string {s:?}, not as an int",
                    span.name
                ));
                Some(
                    s.parse()
                        .unwrap_or_else(|_| panic!("{key} is not a number: {s:?}")),
                )
            }
            Some(other) => panic!("{key} is not an integer on {:?}: {other:?}", span.name),
            None => None,
        }
    }

    /// Records a deviation unless the string attribute `key` is `expected`.
    fn string(&self, span: &Span, key: &str, expected: &str) {
        let found = str_attr(span, key);
        if found != Some(expected) {
            self.0.borrow_mut().push(format!(
                "{key} on span {:?} is {found:?}, expected {expected:?}",
                span.name
            ));
        }
    }

    /// Records a deviation unless `span` is named `expected`.
    fn name(&self, span: &Span, expected: &str) {
        if span.name != expected {
            self.0.borrow_mut().push(format!(
                "span named {:?}, expected {expected:?} (attributes: {:?})",
                span.name,
                span.attributes
                    .iter()
                    .map(|kv| (&kv.key, kv.value.as_ref().and_then(|v| v.value.as_ref())))
                    .collect::<Vec<_>>()
            ));
        }
    }

    fn assert_none(self) {
        let deviations = self.0.into_inner();
        assert!(
            deviations.is_empty(),
            "deviations from the semantic conventions:\n{}",
            deviations.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------
// The child, its logs, and what must not leak
// ---------------------------------------------------------------------------------------

/// SIGTERM, then a bounded wait for a clean exit (which flushes the last spans).
async fn stop(server: &mut ChildServer) {
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let status = server.wait_for_exit(WAIT).await;
    assert!(
        status.success(),
        "clean exit after SIGTERM: {status}; logs:\n{}",
        server.logs()
    );
}

/// The child's stderr as JSON objects, one per line; every line must be one.
fn json_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"))
        })
        .collect()
}

/// The `trace_id`s of the `call served` lines.
fn call_served_trace_ids(logs: &[Value]) -> Vec<String> {
    logs.iter()
        .filter(|l| l["message"] == "call served")
        .filter_map(|l| l["span"]["trace_id"].as_str().map(str::to_owned))
        .collect()
}

/// Personal data and credentials a test uses, none of which may be exported or logged.
struct Secrets {
    name: String,
    phone: String,
    email: String,
    identity: String,
    attributes_value: String,
    attributes: String,
    binding_phone: String,
    proxy_phone: String,
    credentials: Vec<String>,
}

impl Secrets {
    fn new() -> Secrets {
        let n = unique();
        let attributes_value = format!("attr-sentinel-{n}-qv");
        Secrets {
            name: format!("Ada Sentinel-{n} Lovelace"),
            phone: format!("+1555017{:04}", n % 10_000),
            email: format!("ada.sentinel.{n}@example.com"),
            identity: format!("ada.identity.{n}.lovelace"),
            attributes: json!({ "note": attributes_value }).to_string(),
            attributes_value,
            binding_phone: format!("+1555018{:04}", n % 10_000),
            proxy_phone: format!("+1555019{:04}", n % 10_000),
            credentials: Vec::new(),
        }
    }

    /// Adds a `user:secret` pair: the secret, and the pair as Basic auth carries it.
    fn basic(&mut self, user: &str, secret: &str) -> String {
        let authorization = basic(user, secret);
        let encoded = authorization.trim_start_matches("Basic ");
        self.credentials.push(secret.to_owned());
        self.credentials.push(encoded.to_owned());
        authorization
    }

    fn forbidden(&self) -> Vec<String> {
        let mut all = vec![
            self.name.clone(),
            self.phone.clone(),
            // The number without its `+`, as a form body or a URL would encode it.
            self.phone[1..].to_owned(),
            self.email.clone(),
            self.identity.clone(),
            self.attributes_value.clone(),
            self.binding_phone[1..].to_owned(),
            self.proxy_phone[1..].to_owned(),
        ];
        all.extend(self.credentials.iter().cloned());
        all
    }

    /// Asserts none of the values appears in any exported span or any log line.
    fn assert_not_in(&self, exported: &Exported, logs: &str) {
        for value in self.forbidden() {
            if let Some(at) = exported.dump.find(&value) {
                let from = exported.dump[..at]
                    .char_indices()
                    .rev()
                    .nth(600)
                    .map_or(0, |(i, _)| i);
                panic!(
                    "{value:?} appears in an exported span:\n...{}",
                    &exported.dump[from..(at + value.len())]
                );
            }
            for line in logs.lines() {
                assert!(
                    !line.contains(&value),
                    "{value:?} appears in a log line: {line}"
                );
            }
        }
    }
}

fn v2_request(secrets: &Secrets) -> CreateParticipantRequest {
    CreateParticipantRequest {
        conversation_id: conversation_id(),
        name: secrets.name.clone(),
        r#type: ParticipantType::Customer.into(),
        profile_id: String::new(),
        addresses: vec![
            address(Channel::Sms, &secrets.phone),
            address(Channel::Email, &secrets.email),
        ],
        idempotency_key: String::new(),
    }
}

fn v2_rest_body(secrets: &Secrets) -> Value {
    json!({
        "name": secrets.name,
        "type": "CUSTOMER",
        "addresses": [
            { "channel": "SMS", "address": secrets.phone },
            { "channel": "EMAIL", "address": secrets.email },
        ],
    })
}

// ---------------------------------------------------------------------------------------
// The twilio backend: a loopback Twilio and the child in front of it
// ---------------------------------------------------------------------------------------

/// A loopback Twilio: v2 creates answer 503 once (a retry) then 201 with the participant
/// the body asked for; v1 fetches answer the participant with `identity`.
async fn fake_twilio(secrets: &Secrets) -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v2/Conversations/[^/]+/Participants$"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "code": 20503, "message": "Service unavailable", "status": 503,
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v2/Conversations/[^/]+/Participants$"))
        .respond_with(|request: &wiremock::Request| {
            let conversation = request
                .url
                .path_segments()
                .and_then(|mut s| s.nth(2))
                .unwrap_or_default()
                .to_owned();
            let body: Value = request.body_json().unwrap_or_default();
            ResponseTemplate::new(201).set_body_json(json!({
                "id": participant_id(),
                "conversationId": conversation,
                "accountId": DEFAULT_ACCOUNT,
                "name": body["name"],
                "type": "CUSTOMER",
                "addresses": body["addresses"],
                "createdAt": "2025-01-01T00:00:00Z",
                "updatedAt": "2025-01-01T00:00:00Z",
            }))
        })
        .with_priority(2)
        .mount(&upstream)
        .await;
    let identity = secrets.identity.clone();
    let attributes = secrets.attributes.clone();
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/v1/Services/IS[0-9a-f]{32}/Conversations/CH[0-9a-f]{32}/Participants/[^/]+$",
        ))
        .respond_with(move |request: &wiremock::Request| {
            let segments: Vec<&str> = request.url.path_segments().unwrap().collect();
            ResponseTemplate::new(200).set_body_json(json!({
                "sid": format!("MB{:032x}", unique()),
                "account_sid": DEFAULT_ACCOUNT,
                "chat_service_sid": segments[2],
                "conversation_sid": segments[4],
                "identity": identity,
                "attributes": attributes,
                "date_created": "2025-01-01T00:00:00Z",
                "date_updated": "2025-01-01T00:00:00Z",
            }))
        })
        .mount(&upstream)
        .await;
    upstream
}

/// The twilio backend's child: upstream at `upstream`, API key and secret from the
/// environment (the secret recorded in `secrets`), fast retries.
async fn twilio_child(
    dir: &std::path::Path,
    upstream: &MockServer,
    secrets: &mut Secrets,
    mut env: Vec<(&'static str, String)>,
    extra: &[&str],
) -> (ChildServer, String) {
    let key = format!("SK{:032x}", rand::random::<u128>());
    let secret = format!("upstream-secret-{}-zq9", unique());
    let authorization = secrets.basic(&key, &secret);
    env.push(("TWILIO_API_KEY", key));
    env.push(("TWILIO_API_SECRET", secret));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let uri = upstream.uri();
    let mut args = vec![
        "--backend",
        "twilio",
        "--upstream-url",
        uri.as_str(),
        "--upstream-initial-backoff",
        "10ms",
    ];
    args.extend_from_slice(extra);
    let server = ChildServer::start_with_env(&dir.join("data"), &args, &env).await;
    (server, authorization)
}

/// The `traceparent` headers the upstream received for `trace`, in arrival order.
async fn upstream_traceparents(upstream: &MockServer, trace: &Trace) -> Vec<String> {
    upstream
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .filter_map(|r| r.headers.get("traceparent"))
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.contains(&trace.trace_id))
        .map(str::to_owned)
        .collect()
}
