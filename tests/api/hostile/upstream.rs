//! A hostile upstream, twilio backend side.
//!
//! - Answers of the wrong shape (wiremock as Twilio): a success whose participant has an
//!   empty id, no address, a malformed address, another conversation's or participant's
//!   id, or (v1) another sid, chat service, conversation or identity is INTERNAL (REST
//!   500 with Twilio's error body), says which field is wrong and never what it held,
//!   is sent once (never retried, so a create is never made twice because of it), and is
//!   counted in `upstream_invalid_answers_total{operation, reason}`.
//! - A fault-injecting Twilio under concurrent load (`super::faulty_twilio`): every call
//!   ends within its deadline with a code of the contract's table, no logical create
//!   becomes two participants, memory stays bounded, the server stays healthy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use participants_facade::proto::{
    self, Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fixtures::*;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// `upstream_invalid_answers_total{operation, reason}` as the facade at `app` serves it
/// (0 before the first refusal of that kind).
async fn invalid_answers(app: &TestApp, operation: &str, reason: &str) -> f64 {
    sample(
        &scrape(app.addr).await,
        "upstream_invalid_answers_total",
        &[("operation", operation), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// Mounts `status` + `body` for `method` on `route`, expected exactly once: the facade
/// must not retry a refused answer (wiremock verifies on drop).
async fn answer_once(server: &MockServer, verb: &str, route: &str, status: u16, body: Value) {
    Mock::given(method(verb))
        .and(path(route))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .expect(1)
        .mount(server)
        .await;
}

/// Asserts `result` is INTERNAL, reason UPSTREAM_PROTOCOL_ERROR, saying `says` and none of
/// `secret`; returns the message.
fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    says: &str,
    secret: &[&str],
    case: &str,
) -> String {
    let status = match result {
        Ok(value) => panic!("{case}: a refused answer reached the caller: {value:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::Internal, "{case}: {status:?}");
    let message = status.message().to_owned();
    assert!(
        message.contains(says),
        "{case}: should say {says:?}: {message}"
    );
    for value in secret.iter().filter(|s| !s.is_empty()) {
        assert!(
            !message.contains(value),
            "{case}: the message echoes {value:?}: {message}"
        );
    }
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("{case}: no ErrorInfo: {status:?}"));
    assert_eq!(info.reason, "UPSTREAM_PROTOCOL_ERROR", "{case}: {info:?}");
    message
}

// ---------------------------------------------------------------------------------------
// Answers of the wrong shape
// ---------------------------------------------------------------------------------------

/// Spoils a v2 body, given another conversation's id and a malformed phone number.
type Spoil = fn(&mut Value, &str, &str);

#[tokio::test]
async fn a_v2_create_answered_with_a_participant_that_is_not_the_one_asked_for_is_internal() {
    // Arrange: each case a fresh conversation, so each has its own route.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let other_conversation = conversation_id();
    let bad_number = "+1-555-0100 ext. 7";
    let cases: [(&str, Spoil, &str, &str); 7] = [
        (
            "an empty id",
            |b, _, _| b["id"] = json!(""),
            "id",
            "id: required",
        ),
        (
            "an id that is not a participant id",
            |b, _, _| b["id"] = json!("MB0123456789abcdef0123456789abcdef"),
            "id",
            "id: must be a v2 participant id",
        ),
        (
            "no addresses",
            |b, _, _| b["addresses"] = json!([]),
            "addresses",
            "addresses: is empty",
        ),
        (
            "addresses left out",
            |b, _, _| {
                b.as_object_mut().expect("object").remove("addresses");
            },
            "addresses",
            "addresses: is empty",
        ),
        (
            "another conversation's id",
            |b, other, _| b["conversationId"] = json!(other),
            "conversation_id",
            "conversation_id: names another conversation",
        ),
        (
            "a malformed address",
            |b, _, bad| b["addresses"][0]["address"] = json!(bad),
            "addresses",
            "addresses[0].address: must be an E.164 phone number",
        ),
        (
            "an account id that is not an AC sid",
            |b, _, _| b["accountId"] = json!("AC-not-a-sid"),
            "account_id",
            "account_id: must match",
        ),
    ];

    for (case, spoil, reason, says) in cases {
        let request = create_request();
        let id = participant_id();
        let mut body = v2_answer(&id, &request);
        spoil(&mut body, &other_conversation, bad_number);
        answer_once(
            &server,
            "POST",
            &v2_path(&request.conversation_id),
            201,
            body,
        )
        .await;
        let before = invalid_answers(&app, "CreateParticipant", reason).await;

        // Act
        let result = app.create(request.clone()).await;

        // Assert
        let secrets = [
            request.addresses[0].address.as_str(),
            request.name.as_str(),
            other_conversation.as_str(),
            bad_number,
            id.as_str(),
        ];
        assert_refused(result, says, &secrets, case);
        let after = invalid_answers(&app, "CreateParticipant", reason).await;
        assert!(
            after > before,
            "{case}: the metric did not move ({before} -> {after})"
        );
    }
    server.verify().await;
}

#[tokio::test]
async fn a_v2_fetch_answered_with_another_participant_or_conversation_is_internal() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let cases = [
        (
            "another participant's id",
            "id",
            "id: names another participant",
        ),
        (
            "another conversation's id",
            "conversation_id",
            "conversation_id: names another conversation",
        ),
    ];

    for (case, reason, says) in cases {
        let conversation = conversation_id();
        let asked = participant_id();
        let (answered_id, answered_conversation) = match reason {
            "id" => (participant_id(), conversation.clone()),
            _ => (asked.clone(), conversation_id()),
        };
        let created = CreateParticipantRequest {
            conversation_id: answered_conversation.clone(),
            ..create_request()
        };
        answer_once(
            &server,
            "GET",
            &v2_fetch_path(&conversation, &asked),
            200,
            v2_answer(&answered_id, &created),
        )
        .await;
        let before = invalid_answers(&app, "FetchParticipant", reason).await;

        let result = app.fetch(&conversation, &asked).await;

        let secrets = [
            answered_id.as_str(),
            answered_conversation.as_str(),
            created.addresses[0].address.as_str(),
        ];
        let secrets = if reason == "id" {
            &secrets[..1]
        } else {
            &secrets[1..]
        };
        assert_refused(result, says, secrets, case);
        let after = invalid_answers(&app, "FetchParticipant", reason).await;
        assert!(after > before, "{case}: the metric did not move");
    }
    server.verify().await;
}

#[tokio::test]
async fn v1_answers_for_another_participant_conversation_or_identity_are_internal() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;

    // Creates: the answer's parents and sid.
    let creates: [(&str, &str, &str, &str); 4] = [
        ("an empty sid", "sid", "", "sid: required"),
        (
            "another conversation's sid",
            "conversation_sid",
            "CH",
            "conversation_sid: names another conversation",
        ),
        (
            "another chat service's sid",
            "chat_service_sid",
            "IS",
            "chat_service_sid: names another chat service",
        ),
        (
            "an account sid that is not one",
            "account_sid",
            "AC",
            "account_sid: must match",
        ),
    ];
    for (case, field, prefix, says) in creates {
        let request = CreateServiceParticipantRequest {
            identity: format!("fox.mulder.{}", unique()),
            ..create_v1_request()
        };
        let mut body = v1_answer(&sid("MB"), &request);
        let spoiled = match (field, prefix) {
            ("sid", _) => String::new(),
            ("account_sid", _) => "AC1".to_owned(),
            (_, prefix) => sid(prefix),
        };
        body[field] = json!(spoiled);
        answer_once(
            &server,
            "POST",
            &v1_path(&request.chat_service_sid, &request.conversation_sid),
            201,
            body,
        )
        .await;
        let before = invalid_answers(&app, "CreateServiceParticipant", field).await;

        let result = app.create_v1(request.clone()).await;

        assert_refused(result, says, &[&spoiled, &request.identity], case);
        let after = invalid_answers(&app, "CreateServiceParticipant", field).await;
        assert!(after > before, "{case}: the metric did not move");
    }

    // Fetches: by sid, answered with another sid; by identity, with another identity.
    let (service, conversation) = (sid("IS"), sid("CH"));
    let base = CreateServiceParticipantRequest {
        chat_service_sid: service.clone(),
        conversation_sid: conversation.clone(),
        ..create_v1_request()
    };
    let asked_sid = sid("MB");
    let other_sid = sid("MB");
    answer_once(
        &server,
        "GET",
        &v1_fetch_path(&service, &conversation, &asked_sid),
        200,
        v1_answer(&other_sid, &base),
    )
    .await;
    let asked_identity = "dana.scully@fbi.example.gov";
    let other_identity = "fox.mulder@fbi.example.gov";
    answer_once(
        &server,
        "GET",
        &v1_fetch_path(&service, &conversation, asked_identity),
        200,
        v1_answer(
            &sid("MB"),
            &CreateServiceParticipantRequest {
                identity: other_identity.to_owned(),
                ..base.clone()
            },
        ),
    )
    .await;
    let sid_before = invalid_answers(&app, "FetchServiceParticipant", "sid").await;
    let identity_before = invalid_answers(&app, "FetchServiceParticipant", "identity").await;

    let by_sid = app.fetch_v1(&service, &conversation, &asked_sid).await;
    let by_identity = app.fetch_v1(&service, &conversation, asked_identity).await;

    assert_refused(
        by_sid,
        "sid: names another participant",
        &[&other_sid],
        "fetch by sid",
    );
    assert_refused(
        by_identity,
        "identity: is not the identity",
        &[asked_identity, other_identity, "scully", "mulder"],
        "fetch by identity",
    );
    assert!(invalid_answers(&app, "FetchServiceParticipant", "sid").await > sid_before);
    assert!(invalid_answers(&app, "FetchServiceParticipant", "identity").await > identity_before);
    server.verify().await;
}

#[tokio::test]
async fn the_rest_front_answers_a_refused_upstream_answer_with_twilios_500_body() {
    // Arrange: Twilio answers the create with a participant whose id is empty.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let request = create_request();
    let phone = request.addresses[0].address.clone();
    answer_once(
        &server,
        "POST",
        &v2_path(&request.conversation_id),
        201,
        v2_answer("", &request),
    )
    .await;
    let before = invalid_answers(&app, "CreateParticipant", "id").await;

    // Act: the same create through the REST front, as Twilio's SDKs send it.
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}{}",
            app.addr,
            v2_path(&request.conversation_id)
        ))
        .json(&json!({
            "name": request.name,
            "type": "CUSTOMER",
            "addresses": [{"channel": "SMS", "address": phone}],
        }))
        .send()
        .await
        .expect("REST create");

    // Assert
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.expect("Twilio's error body");
    assert_eq!(body["status"], 500, "{body}");
    assert_eq!(body["code"], 20500, "{body}");
    assert_eq!(
        body["more_info"], "https://www.twilio.com/docs/errors/20500",
        "{body}"
    );
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains("id: required"), "{message}");
    assert!(!message.contains(&phone), "{message}");
    assert!(!message.contains(&request.name), "{message}");
    assert!(invalid_answers(&app, "CreateParticipant", "id").await > before);
    server.verify().await;
}

#[tokio::test]
async fn real_answers_with_only_what_the_spec_requires_are_accepted() {
    // Arrange: the spec requires only id, conversationId and accountId (v2) and makes
    // every v1 field nullable; unknown channels may appear. None of that is refused.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let conversation = conversation_id();
    let id = participant_id();
    answer_once(
        &server,
        "GET",
        &v2_fetch_path(&conversation, &id),
        200,
        json!({"id": id, "conversationId": conversation, "accountId": ACCOUNT}),
    )
    .await;
    let request = create_request();
    let mut created = v2_answer(&participant_id(), &request);
    created["addresses"]
        .as_array_mut()
        .expect("addresses")
        .push(json!({"channel": "CARRIER_PIGEON", "address": "loft 7"}));
    answer_once(
        &server,
        "POST",
        &v2_path(&request.conversation_id),
        201,
        created,
    )
    .await;
    let (service, v1_conversation) = (sid("IS"), sid("CH"));
    let mb = sid("MB");
    answer_once(
        &server,
        "GET",
        &v1_fetch_path(&service, &v1_conversation, &mb),
        200,
        json!({"sid": mb, "account_sid": null, "chat_service_sid": null}),
    )
    .await;

    // Act
    let fetched = app
        .fetch(&conversation, &id)
        .await
        .expect("a bare participant");
    let created = app
        .create(request.clone())
        .await
        .expect("an unknown channel");
    let v1 = app
        .fetch_v1(&service, &v1_conversation, &mb)
        .await
        .expect("a bare v1 participant");

    // Assert
    assert!(fetched.addresses.is_empty());
    assert_eq!(
        created.addresses,
        vec![
            proto::Address {
                channel: Channel::Sms.into(),
                address: request.addresses[0].address.clone(),
                channel_id: String::new(),
                ..Default::default()
            },
            proto::Address {
                channel: Channel::Unspecified.into(),
                address: "loft 7".into(),
                channel_name: "CARRIER_PIGEON".into(),
                ..Default::default()
            }
        ],
        "an address on a channel this build does not know is kept"
    );
    assert_eq!(v1.chat_service_sid, service, "parent from the path");
    server.verify().await;
}

// ---------------------------------------------------------------------------------------
// A fault-injecting Twilio under concurrent load
// ---------------------------------------------------------------------------------------

/// Calls in the storm, and how many run at once.
const STORM_CALLS: usize = 200;
const STORM_CONCURRENCY: usize = 32;
/// What a call may take beyond its deadline before it counts as hanging: scheduling on
/// two cores under load, not performance.
const MARGIN: Duration = Duration::from_secs(1);
/// Growth of the server's resident memory the storm may cause.
const RSS_GROWTH: u64 = 64 * 1024 * 1024;

/// Codes a call may end with against this upstream (the contract's table): OK,
/// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (429), INTERNAL (500, wrong shapes),
/// UNAVAILABLE (503, resets). Never ALREADY_EXISTS: every logical create is its own
/// participant, so a conflict would be the facade meeting its own first attempt.
const STORM_CODES: [Code; 5] = [
    Code::Ok,
    Code::DeadlineExceeded,
    Code::ResourceExhausted,
    Code::Internal,
    Code::Unavailable,
];

/// One call of the storm.
#[derive(Debug, Clone)]
enum StormCall {
    CreateV2(CreateParticipantRequest),
    FetchV2(proto::FetchParticipantRequest),
    CreateV1(CreateServiceParticipantRequest),
    FetchV1(proto::FetchServiceParticipantRequest),
}

impl StormCall {
    /// The RPC's name and its request as a gRPC frame.
    fn frame(&self) -> (&'static str, Vec<u8>) {
        match self {
            StormCall::CreateV2(r) => ("CreateParticipant", grpc_frame(r)),
            StormCall::FetchV2(r) => ("FetchParticipant", grpc_frame(r)),
            StormCall::CreateV1(r) => ("CreateServiceParticipant", grpc_frame(r)),
            StormCall::FetchV1(r) => ("FetchServiceParticipant", grpc_frame(r)),
        }
    }

    /// For a create: the address or identity that names its logical create upstream.
    fn logical(&self) -> Option<&str> {
        match self {
            StormCall::CreateV2(r) => Some(&r.addresses[0].address),
            StormCall::CreateV1(r) => Some(&r.identity),
            _ => None,
        }
    }

    /// The id or sid in a successful answer's body.
    fn answered_id(&self, body: &[u8]) -> String {
        match self {
            StormCall::CreateV2(_) | StormCall::FetchV2(_) => {
                single_message::<proto::Participant>(body).id
            }
            _ => single_message::<proto::ServiceParticipant>(body).sid,
        }
    }
}

/// How one call ended.
struct Outcome {
    call: StormCall,
    deadline: Duration,
    elapsed: Duration,
    http_status: u16,
    code: Option<Code>,
    id: Option<String>,
}

impl std::fmt::Debug for Outcome {
    /// One line: the RPC, its key if any, and how and when it ended.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (method, _) = self.call.frame();
        let keyed = match &self.call {
            StormCall::CreateV2(r) => !r.idempotency_key.is_empty(),
            StormCall::CreateV1(r) => !r.idempotency_key.is_empty(),
            _ => false,
        };
        write!(
            f,
            "{method}{} HTTP {} {:?} after {:?} (deadline {:?})",
            if keyed { " (keyed)" } else { "" },
            self.http_status,
            self.code,
            self.elapsed,
            self.deadline
        )
    }
}

/// Sends `call` as a raw HTTP/2 gRPC call with `grpc-timeout`, so the answer and its
/// timing are the server's own, not a client library's deadline.
async fn storm_call(addr: std::net::SocketAddr, call: StormCall, deadline: Duration) -> Outcome {
    let (method, frame) = call.frame();
    let timeout = format!("{}m", deadline.as_millis());
    let started = std::time::Instant::now();
    let (response, mut body) = start_raw_call(
        addr,
        &format!("/participants.v1.ParticipantService/{method}"),
        &[("grpc-timeout", timeout.as_str())],
    )
    .await;
    body.send_data(bytes::Bytes::from(frame), true)
        .expect("send the request");
    let raw = read_raw_response(response).await;
    let elapsed = started.elapsed();
    let code = raw
        .grpc_status
        .as_deref()
        .and_then(|s| s.parse::<i32>().ok())
        .map(Code::from_i32);
    let id = (code == Some(Code::Ok)).then(|| call.answered_id(&raw.body));
    Outcome {
        call,
        deadline,
        elapsed,
        http_status: raw.http_status,
        code,
        id,
    }
}

/// The resident set of process `pid`, in bytes (`VmRSS` of `/proc/PID/status`).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// The storm's calls: v2 and v1 creates, each for an address or identity of its own (half
/// with an idempotency key, those sent twice at once), and fetches of participants that
/// exist. Deadlines of 1, 1.5 and 2 s.
fn storm_calls(fake: &FaultyTwilio) -> Vec<(StormCall, Duration)> {
    let conversations: Vec<String> = (0..4).map(|_| conversation_id()).collect();
    let (service, v1_conversation) = (sid("IS"), sid("CH"));
    let seeded_v2: Vec<(String, String)> = conversations
        .iter()
        .map(|c| (c.clone(), fake.seed_v2(c, &phone())))
        .collect();
    let seeded_v1: Vec<(String, String)> = (0..4)
        .map(|i| {
            let identity = format!("seeded.{}.{i}", unique());
            let sid = fake.seed_v1(&service, &v1_conversation, &identity);
            // Fetched by sid and by identity in turn.
            (sid, identity)
        })
        .collect();
    let mut calls = Vec::with_capacity(STORM_CALLS);
    let mut i = 0usize;
    while calls.len() < STORM_CALLS {
        let deadline = Duration::from_millis(1000 + 500 * (i as u64 % 3));
        let keyed = i.is_multiple_of(2);
        let key = || format!("00000000-0000-4000-8000-{:012x}", unique());
        match i % 5 {
            0 => {
                let (conversation, id) = &seeded_v2[i % seeded_v2.len()];
                calls.push((
                    StormCall::FetchV2(proto::FetchParticipantRequest {
                        conversation_id: conversation.clone(),
                        participant_id: id.clone(),
                    }),
                    deadline,
                ));
            }
            1 => {
                let (sid, identity) = &seeded_v1[i % seeded_v1.len()];
                calls.push((
                    StormCall::FetchV1(proto::FetchServiceParticipantRequest {
                        chat_service_sid: service.clone(),
                        conversation_sid: v1_conversation.clone(),
                        sid: if i.is_multiple_of(3) { identity } else { sid }.clone(),
                    }),
                    deadline,
                ));
            }
            2 | 3 => {
                let request = CreateParticipantRequest {
                    conversation_id: conversations[i % conversations.len()].clone(),
                    idempotency_key: if keyed { key() } else { String::new() },
                    ..create_request()
                };
                let call = StormCall::CreateV2(request);
                if keyed {
                    calls.push((call.clone(), deadline));
                }
                calls.push((call, deadline));
            }
            _ => {
                let request = CreateServiceParticipantRequest {
                    chat_service_sid: service.clone(),
                    conversation_sid: v1_conversation.clone(),
                    identity: format!("storm.{}", unique()),
                    idempotency_key: if keyed { key() } else { String::new() },
                    ..Default::default()
                };
                let call = StormCall::CreateV1(request);
                if keyed {
                    calls.push((call.clone(), deadline));
                }
                calls.push((call, deadline));
            }
        }
        i += 1;
    }
    calls.truncate(STORM_CALLS);
    calls
}

/// The participants `fake` created for `logical` (an address or identity).
fn created_for(fake: &FaultyTwilio, logical: &str) -> Vec<String> {
    fake.applied()
        .into_iter()
        .filter(|a| a.logical == logical)
        .map(|a| a.id)
        .collect()
}

#[tokio::test]
async fn a_create_whose_201_never_finishes_ends_at_the_deadline_and_makes_one_participant() {
    // Arrange: attempts may last longer than the caller waits.
    let fake = FaultyTwilio::start().await;
    let app = spawn_twilio_app(&fake.url, |c| {
        c.upstream.attempt_timeout = Duration::from_secs(5);
    })
    .await;
    let deadline = Duration::from_millis(800);
    let v2 = create_request();
    let v1 = CreateServiceParticipantRequest {
        identity: format!("hang.{}", unique()),
        ..create_v1_request()
    };
    let cases = [
        (
            StormCall::CreateV2(v2.clone()),
            v2_path(&v2.conversation_id),
        ),
        (
            StormCall::CreateV1(v1.clone()),
            v1_path(&v1.chat_service_sid, &v1.conversation_sid),
        ),
    ];

    for (call, route) in cases {
        // Act: Twilio creates the participant, sends 201's headers, and no body.
        fake.force(&[Fault::HeadersThenHang]);
        let outcome = storm_call(app.addr, call.clone(), deadline).await;

        // Assert: DEADLINE_EXCEEDED at the deadline, one request, one participant.
        assert_eq!(outcome.code, Some(Code::DeadlineExceeded), "{outcome:?}");
        assert!(outcome.elapsed < deadline + MARGIN, "{outcome:?}");
        assert_eq!(fake.received("POST", &route), 1, "{outcome:?}");
        let logical = call.logical().expect("a create");
        assert_eq!(created_for(&fake, logical).len(), 1, "{outcome:?}");
    }
}

#[tokio::test]
async fn after_a_201_that_hangs_a_v2_create_retries_into_its_own_participant_and_a_v1_create_does_not_retry()
 {
    // Arrange: attempts cut at 300 ms, well inside the caller's 3 s.
    let fake = FaultyTwilio::start().await;
    let app = spawn_twilio_app(&fake.url, |c| {
        c.upstream.attempt_timeout = Duration::from_millis(300);
    })
    .await;
    let deadline = Duration::from_secs(3);
    let v2 = create_request();
    let v1 = CreateServiceParticipantRequest {
        identity: format!("hang.{}", unique()),
        idempotency_key: format!("00000000-0000-4000-8000-{:012x}", unique()),
        ..create_v1_request()
    };
    let v2_route = v2_path(&v2.conversation_id);
    let v1_route = v1_path(&v1.chat_service_sid, &v1.conversation_sid);

    // Act and assert, v2: the retry meets a 409 naming the participant the first
    // attempt made, fetches it, and returns it.
    fake.force(&[Fault::HeadersThenHang]);
    let outcome = storm_call(app.addr, StormCall::CreateV2(v2.clone()), deadline).await;
    assert_eq!(outcome.code, Some(Code::Ok), "{outcome:?}");
    let created = created_for(&fake, &v2.addresses[0].address);
    assert_eq!(created.len(), 1, "one participant: {created:?}");
    assert_eq!(outcome.id.as_deref(), Some(created[0].as_str()));
    assert_eq!(
        fake.received("POST", &v2_route),
        2,
        "the hang, then the 409"
    );

    // v1: a second POST could be a second participant, so the hang is the answer...
    fake.force(&[Fault::HeadersThenHang]);
    let call = StormCall::CreateV1(v1.clone());
    let outcome = storm_call(app.addr, call.clone(), deadline).await;
    assert_eq!(outcome.code, Some(Code::DeadlineExceeded), "{outcome:?}");
    assert_eq!(fake.received("POST", &v1_route), 1, "not retried");
    // ...and the caller's retry with its key gets Twilio's replay: the same participant.
    let again = storm_call(app.addr, call, deadline).await;
    assert_eq!(again.code, Some(Code::Ok), "{again:?}");
    let created = created_for(&fake, &v1.identity);
    assert_eq!(created.len(), 1, "one participant: {created:?}");
    assert_eq!(again.id.as_deref(), Some(created[0].as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_injecting_twilio_under_load_never_hangs_a_call_duplicates_a_create_or_grows_memory()
 {
    // Arrange: the binary against the fake, attempts cut at 400 ms so that a call's
    // deadline leaves room for retries after a hang; the breaker kept shut so that every
    // fault reaches the retry logic.
    let fake = FaultyTwilio::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ChildServer::start_with_env(
        &dir.path().join("data"),
        &[
            "--backend",
            "twilio",
            "--upstream-url",
            &fake.url,
            "--upstream-attempt-timeout",
            "400ms",
            "--upstream-initial-backoff",
            "10ms",
            "--upstream-max-backoff",
            "50ms",
            "--upstream-breaker-failures",
            "1000000",
            "--upstream-connect-timeout",
            "1s",
        ],
        &[
            ("TWILIO_API_KEY", API_KEY),
            ("TWILIO_API_SECRET", API_SECRET),
        ],
    )
    .await;
    let calls = storm_calls(&fake);
    // Warm up on a healthy upstream (pools, allocator arenas), then measure.
    for _ in 0..8 {
        let warm = storm_call(
            server.addr,
            StormCall::CreateV2(create_request()),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(warm.code, Some(Code::Ok), "warm-up: {warm:?}");
    }
    let rss_before = rss_bytes(server.child.id());
    let warm_applied = fake.applied().len();
    fake.set_faulty();

    // Act: the storm, bounded in count, concurrency and time.
    let gate = Arc::new(tokio::sync::Semaphore::new(STORM_CONCURRENCY));
    let mut running = tokio::task::JoinSet::new();
    for (call, deadline) in calls {
        let gate = gate.clone();
        let addr = server.addr;
        running.spawn(async move {
            let _slot = gate.acquire_owned().await.expect("gate");
            storm_call(addr, call, deadline).await
        });
    }
    let outcomes = tokio::time::timeout(Duration::from_secs(40), async {
        let mut outcomes = Vec::new();
        while let Some(done) = running.join_next().await {
            outcomes.push(done.expect("a call task"));
        }
        outcomes
    })
    .await
    .expect("the storm ends");
    fake.set_healthy();
    let mut codes: HashMap<String, usize> = HashMap::new();
    for o in &outcomes {
        let (method, _) = o.call.frame();
        *codes.entry(format!("{method} {:?}", o.code)).or_default() += 1;
    }
    let slowest = outcomes.iter().map(|o| o.elapsed).max();
    eprintln!(
        "storm: {codes:?}; slowest {slowest:?}; faults {:?}; {} created",
        fake.faults(),
        fake.applied().len() - warm_applied
    );

    // Assert: every call ended within its deadline, with a code of the table.
    assert_eq!(outcomes.len(), STORM_CALLS);
    let late: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.elapsed > o.deadline + MARGIN)
        .collect();
    assert!(late.is_empty(), "calls past their deadline: {late:#?}");
    let odd: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.http_status != 200 || !o.code.is_some_and(|c| STORM_CODES.contains(&c)))
        .collect();
    assert!(odd.is_empty(), "codes outside the table: {odd:#?}");

    // ...no logical create became two participants, and a create answered OK names the
    // one participant created for it (both callers of a repeated key, the same one).
    let applied = fake.applied().split_off(warm_applied);
    let mut by_logical: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for a in &applied {
        by_logical.entry(&a.logical).or_default().push(&a.id);
        if let Some(key) = &a.key {
            *by_key.entry(key).or_default() += 1;
        }
    }
    let doubled: Vec<_> = by_logical.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(doubled.is_empty(), "creates applied twice: {doubled:?}");
    assert!(
        by_key.values().all(|n| *n == 1),
        "a key applied twice: {by_key:?}"
    );
    let mut ok_creates = 0;
    for o in &outcomes {
        let (Some(logical), Some(id)) = (o.call.logical(), &o.id) else {
            continue;
        };
        ok_creates += 1;
        assert_eq!(
            by_logical.get(logical).map(|ids| ids[0]),
            Some(id.as_str()),
            "an OK create names a participant that was not created for it: {o:?}"
        );
    }

    // ...the storm dealt every fault, and some calls still succeeded.
    let faults = fake.faults();
    for fault in Fault::ALL {
        assert!(
            faults.get(&fault).is_some_and(|n| *n > 0),
            "{fault:?} was never dealt: {faults:?}"
        );
    }
    assert!(ok_creates > 0, "no create succeeded: {outcomes:#?}");

    // ...memory stayed bounded, and the server serves again once Twilio does.
    let rss_after = rss_bytes(server.child.id());
    eprintln!("storm: resident memory {rss_before} -> {rss_after} bytes");
    assert!(
        rss_after < rss_before + RSS_GROWTH,
        "resident memory grew from {rss_before} to {rss_after} bytes"
    );
    assert_eq!(
        health_status(server.addr, "").await,
        Some(tonic_health::pb::health_check_response::ServingStatus::Serving)
    );
    let after = storm_call(
        server.addr,
        StormCall::CreateV2(create_request()),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(after.code, Some(Code::Ok), "after the storm: {after:?}");
}
