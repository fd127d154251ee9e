//! Observability of the binary, end to end: the spans it exports over OTLP (to a real
//! OTLP/gRPC receiver inside the test), the trace it continues from a caller's
//! `traceparent` and hands on to the upstream, its JSON logs, and its Prometheus metrics.
//!
//! The tracing subscriber is process-global, so every test runs the binary as a child
//! (`ChildServer`) with its own environment, stops it with SIGTERM (spans are flushed on
//! exit) and then inspects what the receiver, the loopback upstream (wiremock) and the
//! child's stderr got. Everything listens on 127.0.0.1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest, FetchParticipantRequest,
    FetchServiceParticipantRequest, ParticipantType,
};
use serde_json::{Value, json};
use tonic::Code;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fixtures::*;

const CREATE: &str = "participants.v1.ParticipantService/CreateParticipant";
const FETCH: &str = "participants.v1.ParticipantService/FetchParticipant";
const CREATE_V1: &str = "participants.v1.ParticipantService/CreateServiceParticipant";
const FETCH_V1: &str = "participants.v1.ParticipantService/FetchServiceParticipant";
const REST_CREATE_ROUTE: &str = "/v2/Conversations/{ConversationSid}/Participants";
const REST_FETCH_ROUTE: &str = "/v2/Conversations/{ConversationSid}/Participants/{Sid}";
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
// Traces, calls, logs
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
// Spans, local backend
// ---------------------------------------------------------------------------------------

/// gRPC and REST calls with a known `traceparent`: server spans named, typed and
/// attributed per the conventions, in the caller's trace; store spans as their children;
/// `call served` log lines carrying the trace id; and no personal data or credential in
/// any span or log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_calls_export_server_and_store_spans_in_the_callers_trace() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut secrets = Secrets::new();
    let inbound_secret = format!("inbound-secret-{}-kx", unique());
    let authorization = secrets.basic("facade-client", &inbound_secret);
    let mut env = receiver.child_env();
    env.push((
        "PARTICIPANTS_AUTH_BASIC",
        format!("facade-client:{inbound_secret}"),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let mut client = server.client().await;
    let auth = [("authorization", authorization.as_str())];

    // Act
    let create_trace = Trace::new();
    let create = v2_request(&secrets);
    let created = client
        .create_participant(traced(create.clone(), &create_trace, &auth))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.name, secrets.name, "the sentinel name was stored");

    let missing_trace = Trace::new();
    let missing = client
        .fetch_participant(traced(
            FetchParticipantRequest {
                conversation_id: create.conversation_id.clone(),
                participant_id: participant_id(),
            },
            &missing_trace,
            &auth,
        ))
        .await;
    assert_eq!(missing.expect_err("unknown").code(), Code::NotFound);

    let v1_trace = Trace::new();
    let v1 = CreateServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        identity: secrets.identity.clone(),
        attributes: secrets.attributes.clone(),
        ..Default::default()
    };
    client
        .create_service_participant(traced(v1.clone(), &Trace::new(), &auth))
        .await
        .expect("v1 create");
    let fetched_v1 = client
        .fetch_service_participant(traced(
            FetchServiceParticipantRequest {
                chat_service_sid: v1.chat_service_sid.clone(),
                conversation_sid: v1.conversation_sid.clone(),
                sid: secrets.identity.clone(),
            },
            &v1_trace,
            &auth,
        ))
        .await
        .expect("v1 fetch by identity")
        .into_inner();
    assert_eq!(fetched_v1.attributes, secrets.attributes);

    let binding = CreateServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        messaging_binding: crate::fixtures::binding(&secrets.binding_phone, &secrets.proxy_phone),
        ..Default::default()
    };
    client
        .create_service_participant(traced(binding, &Trace::new(), &auth))
        .await
        .expect("v1 create with a binding");

    let rest_trace = Trace::new();
    let rest_conversation = conversation_id();
    let response = http_client()
        .post(format!(
            "http://{}/v2/Conversations/{rest_conversation}/Participants",
            server.addr
        ))
        .header("traceparent", rest_trace.traceparent())
        .header("authorization", &authorization)
        .json(&v2_rest_body(&secrets))
        .send()
        .await
        .expect("REST create");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);

    stop(&mut server).await;
    let exported = receiver
        .wait_for_server_spans(&[&create_trace, &missing_trace, &v1_trace, &rest_trace])
        .await;
    let logs = server.logs();

    // Assert: the gRPC create's server span continues the caller's trace.
    let conv = Conventions::default();
    let span = exported.server_span(&create_trace);
    assert_eq!(span.name, CREATE);
    assert_continues(span, &create_trace);
    assert_eq!(str_attr(span, "rpc.system.name"), Some("grpc"));
    assert_eq!(str_attr(span, "rpc.method"), Some(CREATE));
    assert_eq!(str_attr(span, "rpc.response.status_code"), Some("OK"));
    assert_ne!(span_status(span), SpanStatus::Error as i32, "{span:#?}");
    for old in ["rpc.system", "rpc.service", "rpc.grpc.status_code"] {
        assert!(
            attr(span, old).is_none(),
            "{old} only with OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup: {span:#?}"
        );
    }
    // ... and its store span is its child.
    let children = exported.children(span);
    assert_eq!(children.len(), 1, "one store span: {children:#?}");
    let store = children[0];
    assert_eq!(store.name, "create_participant");
    assert_eq!(store.kind, SpanKind::Internal as i32);
    assert_eq!(str_attr(store, "db.system.name"), Some("sqlite"));
    assert_eq!(str_attr(store, "db.operation.name"), Some("INSERT"));

    // network.protocol.version is the bare version ("2", "1.1"), per the conventions.
    conv.string(span, "network.protocol.version", "2");

    // A client error (NOT_FOUND) is recorded, but is not a server error.
    let span = exported.server_span(&missing_trace);
    assert_eq!(span.name, FETCH);
    assert_continues(span, &missing_trace);
    assert_eq!(
        str_attr(span, "rpc.response.status_code"),
        Some("NOT_FOUND")
    );
    assert_ne!(span_status(span), SpanStatus::Error as i32, "{span:#?}");
    let store = exported.children(span);
    assert_eq!(
        store.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["fetch_participant"]
    );
    assert_eq!(str_attr(store[0], "db.system.name"), Some("sqlite"));
    assert_eq!(str_attr(store[0], "db.operation.name"), Some("SELECT"));

    // The v1 fetch by identity.
    let span = exported.server_span(&v1_trace);
    assert_eq!(span.name, FETCH_V1);
    assert_continues(span, &v1_trace);
    assert_eq!(str_attr(span, "rpc.response.status_code"), Some("OK"));
    let store = exported.children(span);
    assert_eq!(
        store.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["fetch_service_participant"]
    );

    // The REST create: named after its route template, with the HTTP attributes.
    let span = exported.server_span(&rest_trace);
    conv.name(span, &format!("POST {REST_CREATE_ROUTE}"));
    assert_continues(span, &rest_trace);
    assert_eq!(str_attr(span, "http.request.method"), Some("POST"));
    assert_eq!(str_attr(span, "http.route"), Some(REST_CREATE_ROUTE));
    assert_eq!(conv.int(span, "http.response.status_code"), Some(201));
    assert!(attr(span, "rpc.system.name").is_none(), "{span:#?}");
    conv.string(span, "network.protocol.version", "1.1");
    let store = exported.children(span);
    assert_eq!(
        store.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["create_participant"]
    );

    // The resource names the service.
    assert!(!exported.resources.is_empty());
    for resource in &exported.resources {
        let get = |key: &str| {
            resource
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.clone())
        };
        assert_eq!(
            get("service.name"),
            Some(AnyValue::StringValue("participants-facade".into()))
        );
        assert_eq!(
            get("service.version"),
            Some(AnyValue::StringValue(env!("CARGO_PKG_VERSION").into()))
        );
    }

    // Logs: JSON, and the lines inside a call carry its trace id.
    let lines = json_lines(&logs);
    let served = call_served_trace_ids(&lines);
    for trace in [&create_trace, &missing_trace, &v1_trace, &rest_trace] {
        assert!(
            served.contains(&trace.trace_id),
            "a `call served` line with trace_id {}; got {served:?}",
            trace.trace_id
        );
    }
    // No personal data or credentials anywhere.
    secrets.assert_not_in(&exported, &logs);
    conv.assert_none();
}

/// Every operation of the local store has its span (child of the server span, sqlite)
/// and its `store_operation_duration_seconds` series, v1 creates included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_local_store_operation_has_a_span_and_a_duration_series() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = receiver.child_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let mut client = server.client().await;

    // Act
    let mut calls = Vec::new();
    let v2 = crate::fixtures::create_request();
    let trace = Trace::new();
    let created = client
        .create_participant(traced(v2.clone(), &trace, &[]))
        .await
        .expect("create")
        .into_inner();
    calls.push((trace, CREATE, "create_participant"));
    let trace = Trace::new();
    client
        .fetch_participant(traced(
            FetchParticipantRequest {
                conversation_id: v2.conversation_id.clone(),
                participant_id: created.id.clone(),
            },
            &trace,
            &[],
        ))
        .await
        .expect("fetch");
    calls.push((trace, FETCH, "fetch_participant"));
    let v1 = crate::fixtures::create_v1_request();
    let trace = Trace::new();
    let created = client
        .create_service_participant(traced(v1.clone(), &trace, &[]))
        .await
        .expect("v1 create")
        .into_inner();
    calls.push((trace, CREATE_V1, "create_service_participant"));
    let trace = Trace::new();
    client
        .fetch_service_participant(traced(
            FetchServiceParticipantRequest {
                chat_service_sid: v1.chat_service_sid.clone(),
                conversation_sid: v1.conversation_sid.clone(),
                sid: created.sid.clone(),
            },
            &trace,
            &[],
        ))
        .await
        .expect("v1 fetch");
    calls.push((trace, FETCH_V1, "fetch_service_participant"));
    let scrape = scrape(server.addr).await;
    stop(&mut server).await;
    let traces: Vec<&Trace> = calls.iter().map(|(t, _, _)| t).collect();
    let exported = receiver.wait_for_server_spans(&traces).await;

    // Assert
    let mut failures = Vec::new();
    for (trace, rpc, operation) in &calls {
        let span = exported.server_span(trace);
        assert_eq!(span.name, *rpc);
        let children = exported.children(span);
        let store: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
        if store != [*operation] {
            failures.push(format!(
                "{rpc}: expected one store span {operation:?}, got {store:?}"
            ));
        }
        for child in children {
            assert_eq!(str_attr(child, "db.system.name"), Some("sqlite"));
        }
        let count = sample(
            &scrape,
            "store_operation_duration_seconds_count",
            &[("operation", operation)],
        );
        if count != Some(1.0) {
            failures.push(format!(
                "store_operation_duration_seconds_count{{operation={operation:?}}}: expected 1, got {count:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup` (here in a list) adds the older RPC attributes
/// next to the current ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_dup_opt_in_adds_the_older_rpc_attributes() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = receiver.child_env();
    env.push((
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        "http/dup, rpc/dup".to_owned(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let mut client = server.client().await;

    // Act
    let ok = Trace::new();
    let request = crate::fixtures::create_request();
    client
        .create_participant(traced(request.clone(), &ok, &[]))
        .await
        .expect("create");
    let not_found = Trace::new();
    let missing = client
        .fetch_participant(traced(
            FetchParticipantRequest {
                conversation_id: request.conversation_id,
                participant_id: participant_id(),
            },
            &not_found,
            &[],
        ))
        .await;
    assert_eq!(missing.expect_err("unknown").code(), Code::NotFound);
    stop(&mut server).await;
    let exported = receiver.wait_for_server_spans(&[&ok, &not_found]).await;

    // Assert
    let conv = Conventions::default();
    for (trace, rpc, code, number) in [(&ok, CREATE, "OK", 0), (&not_found, FETCH, "NOT_FOUND", 5)]
    {
        let span = exported.server_span(trace);
        assert_eq!(span.name, rpc);
        assert_continues(span, trace);
        // The current conventions...
        assert_eq!(str_attr(span, "rpc.system.name"), Some("grpc"));
        assert_eq!(str_attr(span, "rpc.method"), Some(rpc));
        assert_eq!(str_attr(span, "rpc.response.status_code"), Some(code));
        // ... and the older ones.
        assert_eq!(str_attr(span, "rpc.system"), Some("grpc"));
        assert_eq!(
            str_attr(span, "rpc.service"),
            Some("participants.v1.ParticipantService")
        );
        assert_eq!(conv.int(span, "rpc.grpc.status_code"), Some(number));
    }
    conv.assert_none();
}

// ---------------------------------------------------------------------------------------
// Spans, twilio backend: client spans and propagation upstream
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
                "id": format!("conv_participant_{:026}", unique()),
                "conversationId": conversation,
                "accountId": crate::fixtures::DEFAULT_ACCOUNT,
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
                "account_sid": crate::fixtures::DEFAULT_ACCOUNT,
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

/// Calls through the twilio backend: a client span per upstream attempt, child of the
/// server span, with the HTTP client attributes (`url.full` without credentials or
/// identity); the retry marked with `http.request.resend_count`; and the `traceparent`
/// the upstream received naming the same trace and that attempt's span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_attempts_are_client_spans_whose_context_reaches_the_upstream() {
    // Arrange
    let receiver = Receiver::start().await;
    let mut secrets = Secrets::new();
    let upstream = fake_twilio(&secrets).await;
    let upstream_port = upstream.address().port();
    let dir = tempfile::tempdir().unwrap();
    let (mut server, upstream_authorization) = twilio_child(
        dir.path(),
        &upstream,
        &mut secrets,
        receiver.child_env(),
        &[],
    )
    .await;
    let mut client = server.client().await;

    // Act: a create that is retried once (503, then 201).
    let create_trace = Trace::new();
    let create = v2_request(&secrets);
    let created = client
        .create_participant(traced(create.clone(), &create_trace, &[]))
        .await
        .expect("create through the upstream")
        .into_inner();
    assert_eq!(created.name, secrets.name);
    // A v1 fetch by identity.
    let v1_trace = Trace::new();
    let v1_key = FetchServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        sid: secrets.identity.clone(),
    };
    let fetched = client
        .fetch_service_participant(traced(v1_key.clone(), &v1_trace, &[]))
        .await
        .expect("v1 fetch by identity")
        .into_inner();
    assert_eq!(fetched.identity, secrets.identity);
    // A REST create.
    let rest_trace = Trace::new();
    let rest_conversation = conversation_id();
    let response = http_client()
        .post(format!(
            "http://{}/v2/Conversations/{rest_conversation}/Participants",
            server.addr
        ))
        .header("traceparent", rest_trace.traceparent())
        .json(&v2_rest_body(&secrets))
        .send()
        .await
        .expect("REST create");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    stop(&mut server).await;
    let exported = receiver
        .wait_for_server_spans(&[&create_trace, &v1_trace, &rest_trace])
        .await;
    let logs = server.logs();

    let conv = Conventions::default();
    // Assert: the upstream got the configured credentials and the personal data (so the
    // searches below look for values that really went through the process).
    let received = upstream.received_requests().await.expect("recording is on");
    assert_eq!(
        received.len(),
        4,
        "two create attempts, a fetch, a REST create"
    );
    for request in &received {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some(upstream_authorization.as_str())
        );
    }
    assert!(
        received
            .iter()
            .any(|r| r.url.path().ends_with(&format!("/{}", secrets.identity)))
    );

    // The gRPC create: server span, then two client spans, one per attempt.
    let server_span = exported.server_span(&create_trace);
    assert_eq!(server_span.name, CREATE);
    assert_continues(server_span, &create_trace);
    assert_eq!(
        str_attr(server_span, "rpc.response.status_code"),
        Some("OK")
    );
    let attempts = exported.children(server_span);
    assert_eq!(
        attempts.len(),
        2,
        "one client span per attempt: {attempts:#?}"
    );
    let expected_url = format!(
        "http://127.0.0.1:{upstream_port}/v2/Conversations/{}/Participants",
        create.conversation_id
    );
    for (i, span) in attempts.iter().enumerate() {
        assert_eq!(span.kind, SpanKind::Client as i32, "{span:#?}");
        assert!(span.name.starts_with("POST"), "{span:#?}");
        assert_eq!(str_attr(span, "http.request.method"), Some("POST"));
        assert_eq!(str_attr(span, "server.address"), Some("127.0.0.1"));
        assert_eq!(
            conv.int(span, "server.port"),
            Some(i64::from(upstream_port))
        );
        assert_eq!(str_attr(span, "url.full"), Some(expected_url.as_str()));
        assert_eq!(str_attr(span, "url.template"), Some(UPSTREAM_V2_CREATE));
        let resend = conv.int(span, "http.request.resend_count");
        assert_eq!(
            resend,
            (i > 0).then_some(i as i64),
            "attempt {i}: {span:#?}"
        );
    }
    assert_eq!(
        conv.int(attempts[0], "http.response.status_code"),
        Some(503)
    );
    assert_eq!(span_status(attempts[0]), SpanStatus::Error as i32);
    assert_eq!(str_attr(attempts[0], "error.type"), Some("503"));
    assert_eq!(
        conv.int(attempts[1], "http.response.status_code"),
        Some(201)
    );
    assert_ne!(span_status(attempts[1]), SpanStatus::Error as i32);
    // The upstream saw each attempt's own span as the parent, in the caller's trace.
    let expected: Vec<String> = attempts
        .iter()
        .map(|s| format!("00-{}-{}-01", create_trace.trace_id, hex(&s.span_id)))
        .collect();
    assert_eq!(
        upstream_traceparents(&upstream, &create_trace).await,
        expected
    );

    // The v1 fetch by identity: the identity is not in url.full.
    let server_span = exported.server_span(&v1_trace);
    assert_eq!(server_span.name, FETCH_V1);
    let attempts = exported.children(server_span);
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let span = attempts[0];
    assert_eq!(span.kind, SpanKind::Client as i32);
    assert_eq!(str_attr(span, "http.request.method"), Some("GET"));
    assert_eq!(
        str_attr(span, "url.full"),
        Some(
            format!(
                "http://127.0.0.1:{upstream_port}/v1/Services/{}/Conversations/{}/Participants/REDACTED",
                v1_key.chat_service_sid, v1_key.conversation_sid
            )
            .as_str()
        )
    );
    assert_eq!(conv.int(span, "http.response.status_code"), Some(200));
    assert!(attr(span, "http.request.resend_count").is_none());
    assert_eq!(
        upstream_traceparents(&upstream, &v1_trace).await,
        [format!(
            "00-{}-{}-01",
            v1_trace.trace_id,
            hex(&span.span_id)
        )]
    );

    // The REST create: the same, under the REST server span.
    let server_span = exported.server_span(&rest_trace);
    conv.name(server_span, &format!("POST {REST_CREATE_ROUTE}"));
    assert_continues(server_span, &rest_trace);
    assert_eq!(
        conv.int(server_span, "http.response.status_code"),
        Some(201)
    );
    let attempts = exported.children(server_span);
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].kind, SpanKind::Client as i32);
    assert_eq!(
        upstream_traceparents(&upstream, &rest_trace).await,
        [format!(
            "00-{}-{}-01",
            rest_trace.trace_id,
            hex(&attempts[0].span_id)
        )]
    );

    // Logs inside the calls carry their trace ids; nothing personal or secret anywhere
    // (the search covers attribute values: the conversation id of url.full is found).
    assert!(exported.dump.contains(&create.conversation_id));
    let lines = json_lines(&logs);
    let served = call_served_trace_ids(&lines);
    for trace in [&create_trace, &v1_trace, &rest_trace] {
        assert!(served.contains(&trace.trace_id), "{served:?}");
    }
    secrets.assert_not_in(&exported, &logs);
    conv.assert_none();
}

/// `url.full` must not show an identity, whatever it looks like: one shaped like a
/// conversation id (`conv_...`) is still an identity in a v1 fetch's last segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_that_looks_like_an_id_is_still_redacted_from_url_full() {
    // Arrange
    let receiver = Receiver::start().await;
    let mut secrets = Secrets::new();
    secrets.identity = format!("conv_ada_lovelace_{}", unique());
    let upstream = fake_twilio(&secrets).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _) = twilio_child(
        dir.path(),
        &upstream,
        &mut secrets,
        receiver.child_env(),
        &[],
    )
    .await;
    let mut client = server.client().await;

    // Act
    let trace = Trace::new();
    client
        .fetch_service_participant(traced(
            FetchServiceParticipantRequest {
                chat_service_sid: sid("IS"),
                conversation_sid: sid("CH"),
                sid: secrets.identity.clone(),
            },
            &trace,
            &[],
        ))
        .await
        .expect("v1 fetch by identity");
    stop(&mut server).await;
    let exported = receiver.wait_for_server_spans(&[&trace]).await;

    // Assert
    let attempts = exported.children(exported.server_span(&trace));
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let url = str_attr(attempts[0], "url.full").expect("url.full");
    assert!(url.ends_with("/Participants/REDACTED"), "url.full = {url}");
    secrets.assert_not_in(&exported, &server.logs());
}

// ---------------------------------------------------------------------------------------
// Export switched off
// ---------------------------------------------------------------------------------------

/// Without any OTEL_* variable nothing is exported (a receiver listens on OTLP's default
/// port, 4317, when it is free), the server works, and log lines still carry the
/// caller's trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_otel_variables_nothing_is_exported_and_logs_still_carry_trace_ids() {
    // Arrange
    let receiver = match tokio::net::TcpListener::bind("127.0.0.1:4317").await {
        Ok(listener) => Receiver::serve(listener),
        Err(_) => Receiver::start().await,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        ChildServer::start_with_env(&dir.path().join("data"), &[], &[("RUST_LOG", "debug")]).await;
    let mut client = server.client().await;

    // Act
    let trace = Trace::new();
    let request = crate::fixtures::create_request();
    let created = client
        .create_participant(traced(request.clone(), &trace, &[]))
        .await
        .expect("create")
        .into_inner();
    let fetched = client
        .fetch_participant(FetchParticipantRequest {
            conversation_id: request.conversation_id,
            participant_id: created.id.clone(),
        })
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(fetched, created);
    stop(&mut server).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Assert
    assert_eq!(receiver.request_count(), 0, "nothing exported");
    let lines = json_lines(&server.logs());
    let served = call_served_trace_ids(&lines);
    assert!(served.contains(&trace.trace_id), "{served:?}");
}

/// Without an exporter no OpenTelemetry span is built, yet the caller's trace still
/// reaches Twilio: the upstream receives the caller's own `traceparent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_exporter_the_callers_traceparent_still_reaches_the_upstream() {
    // Arrange
    let mut secrets = Secrets::new();
    let upstream = fake_twilio(&secrets).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _) = twilio_child(
        dir.path(),
        &upstream,
        &mut secrets,
        vec![("RUST_LOG", "warn".to_owned())],
        &[],
    )
    .await;
    let mut client = server.client().await;

    // Act
    let trace = Trace::new();
    client
        .create_participant(traced(v2_request(&secrets), &trace, &[]))
        .await
        .expect("create through the upstream");
    stop(&mut server).await;

    // Assert: every attempt (a 503, then the 201) carried the caller's trace.
    let sent = upstream_traceparents(&upstream, &trace).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|t| *t == trace.traceparent()), "{sent:?}");
}

/// Span export does not depend on the log level: `RUST_LOG=warn` quiets the logs only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_log_level_does_not_stop_span_export() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = receiver.child_env();
    env.retain(|(k, _)| *k != "RUST_LOG");
    env.push(("RUST_LOG", "warn".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let mut client = server.client().await;

    // Act
    let trace = Trace::new();
    client
        .create_participant(traced(crate::fixtures::create_request(), &trace, &[]))
        .await
        .expect("create");
    stop(&mut server).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while receiver.exported().server_spans(&trace).is_empty()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Assert
    let exported = receiver.exported();
    assert_continues(exported.server_span(&trace), &trace);
}

/// `OTEL_TRACES_EXPORTER=none` turns export off even with an endpoint set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_traces_exporter_none_turns_export_off() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = receiver.child_env();
    env.push(("OTEL_TRACES_EXPORTER", "none".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let mut client = server.client().await;

    // Act
    client
        .create_participant(traced(
            crate::fixtures::create_request(),
            &Trace::new(),
            &[],
        ))
        .await
        .expect("create");
    stop(&mut server).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Assert
    assert_eq!(receiver.request_count(), 0, "nothing exported");
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

/// Known gRPC and REST traffic, then /metrics on the main port and on
/// `--metrics-listen`: call counts by method/route and status, store operations, calls in
/// flight back to zero, build info; no id or path in any label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_method_route_and_status() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let server = ChildServer::start(
        &dir.path().join("data"),
        &["--metrics-listen", &metrics_addr.to_string()],
    )
    .await;
    let mut client = server.client().await;

    // Act: 3 gRPC creates, 1 gRPC fetch NOT_FOUND, 2 REST creates, 1 REST fetch 404,
    // 1 request to no route.
    let conversation = conversation_id();
    for _ in 0..3 {
        let mut request = crate::fixtures::create_request();
        request.conversation_id = conversation.clone();
        client.create_participant(request).await.expect("create");
    }
    let missing_id = participant_id();
    let missing = client
        .fetch_participant(FetchParticipantRequest {
            conversation_id: conversation.clone(),
            participant_id: missing_id.clone(),
        })
        .await;
    assert_eq!(missing.expect_err("unknown").code(), Code::NotFound);
    let base = format!("http://{}", server.addr);
    for _ in 0..2 {
        let response = http_client()
            .post(format!(
                "{base}/v2/Conversations/{conversation}/Participants"
            ))
            .json(&v2_rest_body(&Secrets::new()))
            .send()
            .await
            .expect("REST create");
        assert_eq!(response.status(), 201);
    }
    let response = http_client()
        .get(format!(
            "{base}/v2/Conversations/{conversation}/Participants/{missing_id}"
        ))
        .send()
        .await
        .expect("REST fetch");
    assert_eq!(response.status(), 404);
    let response = http_client()
        .get(format!("{base}/no/such/{conversation}"))
        .send()
        .await
        .expect("unrouted");
    assert_eq!(response.status(), 404);
    let main = scrape(server.addr).await;
    let second = scrape(metrics_addr).await;

    // Assert
    for (port, scrape) in [("main", &main), ("--metrics-listen", &second)] {
        let count = |metric: &str, labels: &[(&str, &str)]| sample(scrape, metric, labels);
        let rpc = "rpc_server_call_duration_seconds_count";
        assert_eq!(
            count(rpc, &[("rpc_method", CREATE), ("rpc_status_code", "OK")]),
            Some(3.0),
            "{port}"
        );
        assert_eq!(
            count(
                rpc,
                &[("rpc_method", FETCH), ("rpc_status_code", "NOT_FOUND")]
            ),
            Some(1.0),
            "{port}"
        );
        assert_eq!(
            count(rpc, &[("rpc_method", FETCH), ("rpc_status_code", "OK")]),
            None
        );
        // Every call here was answered: none may also be counted as cancelled.
        let cancelled: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| {
                s.labels.get("rpc_status_code") == Some("CANCELLED")
                    || s.labels.get("http_response_status_code") == Some("499")
            })
            .map(|s| &s.metric)
            .collect();
        assert!(
            cancelled.is_empty(),
            "{port}: answered calls counted as cancelled: {cancelled:?}"
        );
        assert_eq!(
            histogram_total(
                scrape,
                "rpc_server_call_duration_seconds",
                &[("rpc_method", CREATE), ("rpc_status_code", "OK")]
            ),
            Some(3.0),
            "{port}: the +Inf bucket matches the count"
        );
        let http = "http_server_request_duration_seconds_count";
        assert_eq!(
            count(
                http,
                &[
                    ("http_request_method", "POST"),
                    ("http_route", REST_CREATE_ROUTE),
                    ("http_response_status_code", "201"),
                ]
            ),
            Some(2.0),
            "{port}"
        );
        assert_eq!(
            count(
                http,
                &[
                    ("http_request_method", "GET"),
                    ("http_route", REST_FETCH_ROUTE),
                    ("http_response_status_code", "404"),
                ]
            ),
            Some(1.0),
            "{port}"
        );
        assert_eq!(
            count(
                http,
                &[
                    ("http_route", "unmatched"),
                    ("http_response_status_code", "404")
                ]
            ),
            Some(1.0),
            "{port}"
        );
        assert_eq!(
            count(
                "store_operation_duration_seconds_count",
                &[("operation", "create_participant")]
            ),
            Some(5.0),
            "{port}: 3 gRPC and 2 REST creates"
        );
        assert_eq!(
            count(
                "store_operation_duration_seconds_count",
                &[("operation", "fetch_participant")]
            ),
            Some(2.0),
            "{port}"
        );
        assert_eq!(
            count("server_calls_in_flight", &[("protocol", "grpc")]),
            Some(0.0),
            "{port}"
        );
        assert_eq!(
            count(
                "participants_facade_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            Some(1.0),
            "{port}"
        );
        assert_eq!(count("backend_ready", &[]), Some(1.0), "{port}");
        // Labels carry templates and codes, never ids or concrete paths.
        for s in &scrape.samples {
            for value in s.labels.values() {
                assert!(
                    !value.contains(&conversation) && !value.contains(&missing_id),
                    "{port}: an id in a label: {s:?}"
                );
            }
        }
    }
    // The second port is not behind the call accounting: nothing is in flight while it
    // is scraped (the main port's own scrape is a call in flight there).
    assert_eq!(
        sample(&second, "server_calls_in_flight", &[("protocol", "http")]),
        Some(0.0)
    );
    // The main port's scrape was itself counted, under its route.
    let after = scrape(metrics_addr).await;
    assert_eq!(
        sample(
            &after,
            "http_server_request_duration_seconds_count",
            &[
                ("http_route", "/metrics"),
                ("http_response_status_code", "200")
            ]
        ),
        Some(1.0)
    );
}

/// Twilio mode: upstream attempts by route template and status, and retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_upstream_attempts_and_retries() {
    // Arrange
    let mut secrets = Secrets::new();
    let upstream = fake_twilio(&secrets).await;
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = twilio_child(dir.path(), &upstream, &mut secrets, Vec::new(), &[]).await;
    let mut client = server.client().await;

    // Act: one create retried once (503, then 201), one create at once.
    for _ in 0..2 {
        client
            .create_participant(v2_request(&secrets))
            .await
            .expect("create");
    }
    let scrape = scrape(server.addr).await;

    // Assert
    let attempts = |status: &str| {
        sample(
            &scrape,
            "upstream_request_duration_seconds_count",
            &[
                ("http_request_method", "POST"),
                ("url_template", UPSTREAM_V2_CREATE),
                ("http_response_status_code", status),
            ],
        )
    };
    assert_eq!(attempts("503"), Some(1.0));
    assert_eq!(attempts("201"), Some(2.0));
    assert_eq!(
        sample(
            &scrape,
            "upstream_retries_total",
            &[("url_template", UPSTREAM_V2_CREATE)]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "rpc_server_call_duration_seconds_count",
            &[("rpc_method", CREATE), ("rpc_status_code", "OK")]
        ),
        Some(2.0)
    );
    assert!(
        !scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("store_operation_duration_seconds")
                && s.labels.get("operation").is_some()),
        "no local store in twilio mode"
    );
}

/// A call the client cancels while the server waits on the upstream is no longer in
/// flight: `server_calls_in_flight` goes back to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_client_cancels_is_no_longer_counted_in_flight() {
    // Arrange: an upstream that takes 10 s to answer.
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_secs(10)))
        .mount(&upstream)
        .await;
    let mut secrets = Secrets::new();
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let metrics_flag = metrics_addr.to_string();
    let (server, _) = twilio_child(
        dir.path(),
        &upstream,
        &mut secrets,
        Vec::new(),
        &["--metrics-listen", &metrics_flag],
    )
    .await;
    let mut client = server.client().await;
    let in_flight = || async {
        sample(
            &scrape(metrics_addr).await,
            "server_calls_in_flight",
            &[("protocol", "grpc")],
        )
    };

    // Act: start a call, see it in flight, then cancel it (the client drops it, which
    // resets the HTTP/2 stream).
    let request = v2_request(&secrets);
    let call = tokio::spawn(async move { client.create_participant(request).await });
    let deadline = Instant::now() + WAIT;
    while in_flight().await != Some(1.0) {
        assert!(Instant::now() < deadline, "the call never showed in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.abort();
    let _ = call.await;

    // Assert: back to zero well before the upstream would have answered.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut now = in_flight().await;
    while now != Some(0.0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        now = in_flight().await;
    }
    assert_eq!(
        now,
        Some(0.0),
        "server_calls_in_flight{{protocol=\"grpc\"}} after the client cancelled its only call"
    );
}

/// The fetch cache is visible in the metrics: a first fetch misses and reads the store,
/// the next ones hit; a fetch of an unknown id misses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_fetch_cache_hits_and_misses() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(&dir.path().join("data"), &[]).await;
    let mut client = server.client().await;
    let created = client
        .create_participant(crate::fixtures::create_request())
        .await
        .expect("create")
        .into_inner();
    let fetch = |participant_id: String| participants_facade::proto::FetchParticipantRequest {
        conversation_id: created.conversation_id.clone(),
        participant_id,
    };

    // Act: three fetches of the participant, one of an unknown id.
    for _ in 0..3 {
        let fetched = client
            .fetch_participant(fetch(created.id.clone()))
            .await
            .expect("fetch")
            .into_inner();
        assert_eq!(fetched, created);
    }
    let missing = client.fetch_participant(fetch(participant_id())).await;
    assert_eq!(
        missing.expect_err("unknown id").code(),
        tonic::Code::NotFound
    );
    let scrape = scrape(server.addr).await;

    // Assert
    let lookups = |result: &str| {
        sample(
            &scrape,
            "store_cache_lookups_total",
            &[("table", "participants"), ("result", result)],
        )
    };
    assert_eq!(lookups("miss"), Some(2.0));
    assert_eq!(lookups("hit"), Some(2.0));
    assert_eq!(
        sample(
            &scrape,
            "store_operation_duration_seconds_count",
            &[("operation", "fetch_participant")]
        ),
        Some(2.0),
        "only the misses read the store"
    );
}
