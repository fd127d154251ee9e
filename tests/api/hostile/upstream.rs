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

use participants_facade::proto::{
    self, Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::twilio::{
    ACCOUNT, participant_id, spawn_twilio_app, upstream, v1_body, v1_create_path, v1_fetch_path,
    v2_body, v2_create_path, v2_fetch_path,
};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// `upstream_invalid_answers_total{operation, reason}` as the facade at `app` serves it
/// (0 before the first refusal of that kind).
async fn invalid_answers(app: &TestApp, operation: &str, reason: &str) -> f64 {
    let body = reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    let lines = body
        .lines()
        .filter(|l| l.starts_with("upstream_invalid_answers_total"))
        .map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(
        std::iter::once(Ok(
            "# TYPE upstream_invalid_answers_total counter".to_owned()
        ))
        .chain(lines),
    )
    .expect("the metric parses");
    scrape
        .samples
        .iter()
        .find(|s| {
            s.labels.get("operation") == Some(operation) && s.labels.get("reason") == Some(reason)
        })
        .map_or(0.0, |s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("not a counter: {other:?}"),
        })
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
        let mut body = v2_body(&id, &request);
        spoil(&mut body, &other_conversation, bad_number);
        answer_once(
            &server,
            "POST",
            &v2_create_path(&request.conversation_id),
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
            v2_body(&answered_id, &created),
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
        let mut body = v1_body(&sid("MB"), &request);
        let spoiled = match (field, prefix) {
            ("sid", _) => String::new(),
            ("account_sid", _) => "AC1".to_owned(),
            (_, prefix) => sid(prefix),
        };
        body[field] = json!(spoiled);
        answer_once(
            &server,
            "POST",
            &v1_create_path(&request.chat_service_sid, &request.conversation_sid),
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
        v1_body(&other_sid, &base),
    )
    .await;
    let asked_identity = "dana.scully@fbi.example.gov";
    let other_identity = "fox.mulder@fbi.example.gov";
    answer_once(
        &server,
        "GET",
        &v1_fetch_path(&service, &conversation, asked_identity),
        200,
        v1_body(
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
        &v2_create_path(&request.conversation_id),
        201,
        v2_body("", &request),
    )
    .await;
    let before = invalid_answers(&app, "CreateParticipant", "id").await;

    // Act: the same create through the REST front, as Twilio's SDKs send it.
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}{}",
            app.addr,
            v2_create_path(&request.conversation_id)
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
    let mut created = v2_body(&participant_id(), &request);
    created["addresses"]
        .as_array_mut()
        .expect("addresses")
        .push(json!({"channel": "CARRIER_PIGEON", "address": "loft 7"}));
    answer_once(
        &server,
        "POST",
        &v2_create_path(&request.conversation_id),
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
        vec![proto::Address {
            channel: Channel::Sms.into(),
            address: request.addresses[0].address.clone(),
            channel_id: String::new(),
        }]
    );
    assert_eq!(v1.chat_service_sid, service, "parent from the path");
    server.verify().await;
}
