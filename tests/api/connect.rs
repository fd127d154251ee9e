//! Connect (unary) on the one port, spoken with reqwest as curl or a Connect client speaks
//! it: every RPC over JSON in protobuf's JSON mapping, binary (`application/proto`) for
//! create and fetch, Connect's error JSON with the same `google.rpc` details as gRPC, the
//! deadline from `Connect-Timeout-Ms`, inbound auth, the refusals of a call's head, and
//! `buf curl --protocol connect`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use participants_facade::proto::{FetchParticipantRequest, Participant};
use participants_facade::transport::auth::InboundAuth;
use prost::Message as _;
use serde_json::{Value, json};
use tonic_types::pb::{BadRequest, ErrorInfo};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::fixtures::*;

const SERVICE: &str = "participants.v1.ParticipantService";

/// Extra request headers.
type Headers = Vec<(&'static str, &'static str)>;

fn url(addr: std::net::SocketAddr, rpc: &str) -> String {
    format!("http://{addr}/{SERVICE}/{rpc}")
}

/// A Connect JSON call as a Connect client sends it.
async fn call(addr: std::net::SocketAddr, rpc: &str, body: &Value) -> Answer {
    send(
        http_client()
            .post(url(addr, rpc))
            .header("content-type", "application/json")
            .header("connect-protocol-version", "1")
            .body(body.to_string()),
    )
    .await
}

/// The answer's JSON after asserting a 200 in `application/json`.
fn ok_json(answer: &Answer, rpc: &str) -> Value {
    assert_eq!(answer.status, 200, "{rpc}: {answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{rpc}: {answer:?}"
    );
    answer.json()
}

/// Connect's error JSON, after asserting its HTTP status, content type and code.
fn connect_error(answer: &Answer, http: u16, code: &str, case: &str) -> Value {
    assert_eq!(answer.status.as_u16(), http, "{case}: {answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{case}: errors are JSON: {answer:?}"
    );
    let body = answer.json();
    assert_eq!(body["code"], code, "{case}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{case}: a message: {body}"
    );
    body
}

/// The detail of type `name` (`google.rpc.BadRequest`, ...), decoded from its `value`
/// (standard base64, padding optional) as a client decodes it.
fn detail<M: prost::Message + Default>(body: &Value, name: &str, case: &str) -> M {
    let detail = body["details"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["type"] == name))
        .unwrap_or_else(|| panic!("{case}: no {name} detail: {body}"));
    let value = detail["value"].as_str().expect("value is a string");
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(value.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("{case}: value is not base64 ({e}): {value}"));
    M::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("{case}: {name} does not decode: {e}"))
}

fn bad_request_fields(body: &Value, case: &str) -> Vec<String> {
    detail::<BadRequest>(body, "google.rpc.BadRequest", case)
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// An RFC 3339 timestamp in UTC written with `Z`, as protobuf's JSON mapping writes it.
fn assert_rfc3339_z(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is a string: {value}"));
    assert!(text.ends_with('Z'), "{what} ends with Z: {text}");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{what} is RFC 3339 ({e}): {text}"));
}

#[tokio::test]
async fn every_rpc_is_served_over_connect_json_in_protobufs_json_mapping() {
    // Arrange
    let app = spawn_app().await;
    let addr = app.addr;
    let conversation = conversation_id();
    let phone = phone();
    let (service, channel) = (sid("IS"), sid("CH"));
    let identity = format!("user-{}", unique());

    // Act and assert, one RPC after another (each uses what the one before made).
    // CreateParticipant: proto field names and an enum number accepted on input.
    let created = ok_json(
        &call(
            addr,
            "CreateParticipant",
            &json!({
                "conversation_id": conversation,
                "name": "Ada Lovelace",
                "type": 2,
                "addresses": [{"channel": "CHANNEL_SMS", "address": phone}],
            }),
        )
        .await,
        "CreateParticipant",
    );
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(is_participant_id(&id), "{created}");
    assert_eq!(
        created["conversationId"], conversation,
        "lowerCamelCase out"
    );
    assert!(created.get("conversation_id").is_none(), "{created}");
    assert_eq!(
        created["type"], "PARTICIPANT_TYPE_CUSTOMER",
        "enums by name"
    );
    assert_eq!(
        created["addresses"],
        json!([{"channel": "CHANNEL_SMS", "address": phone}]),
        "defaults (channelId, channelName) omitted"
    );
    assert!(
        created.get("profileId").is_none(),
        "default omitted: {created}"
    );
    assert_rfc3339_z(&created["createdAt"], "createdAt");
    assert_rfc3339_z(&created["updatedAt"], "updatedAt");

    // FetchParticipant: lowerCamelCase names on input.
    let fetched = ok_json(
        &call(
            addr,
            "FetchParticipant",
            &json!({"conversationId": conversation, "participantId": id}),
        )
        .await,
        "FetchParticipant",
    );
    assert_eq!(
        fetched, created,
        "the fetch answers what the create answered"
    );

    let listed = ok_json(
        &call(
            addr,
            "ListParticipants",
            &json!({"conversationId": conversation, "pageSize": 10}),
        )
        .await,
        "ListParticipants",
    );
    assert_eq!(listed["participants"], json!([created]));
    assert!(listed.get("nextPageToken").is_none(), "{listed}");

    // UpdateParticipant: a FieldMask is one comma-separated lowerCamelCase string.
    let updated = ok_json(
        &call(
            addr,
            "UpdateParticipant",
            &json!({
                "participant": {"id": id, "conversationId": conversation, "name": "Grace Hopper"},
                "updateMask": "name",
            }),
        )
        .await,
        "UpdateParticipant",
    );
    assert_eq!(updated["name"], "Grace Hopper", "{updated}");
    assert_eq!(updated["addresses"], created["addresses"], "{updated}");

    let created_v1 = ok_json(
        &call(
            addr,
            "CreateServiceParticipant",
            &json!({
                "chatServiceSid": service,
                "conversationSid": channel,
                "identity": identity,
                "attributes": "{\"tier\":1}",
            }),
        )
        .await,
        "CreateServiceParticipant",
    );
    let v1_sid = created_v1["sid"].as_str().expect("sid").to_owned();
    assert_eq!(created_v1["chatServiceSid"], service);
    assert_eq!(created_v1["identity"], identity);
    assert_rfc3339_z(&created_v1["dateCreated"], "dateCreated");
    assert!(
        created_v1.get("lastReadMessageIndex").is_none(),
        "{created_v1}"
    );

    let fetched_v1 = ok_json(
        &call(
            addr,
            "FetchServiceParticipant",
            &json!({"chatServiceSid": service, "conversationSid": channel, "sid": v1_sid}),
        )
        .await,
        "FetchServiceParticipant",
    );
    assert_eq!(fetched_v1, created_v1);

    let listed_v1 = ok_json(
        &call(
            addr,
            "ListServiceParticipants",
            &json!({"chatServiceSid": service, "conversationSid": channel}),
        )
        .await,
        "ListServiceParticipants",
    );
    assert_eq!(listed_v1["participants"], json!([created_v1]));

    // UpdateServiceParticipant: an int64 goes in and comes out as a string.
    let updated_v1 = ok_json(
        &call(
            addr,
            "UpdateServiceParticipant",
            &json!({
                "serviceParticipant": {
                    "chatServiceSid": service,
                    "conversationSid": channel,
                    "sid": v1_sid,
                    "attributes": "{\"tier\":2}",
                    "lastReadMessageIndex": "5",
                },
                "updateMask": "attributes,lastReadMessageIndex",
            }),
        )
        .await,
        "UpdateServiceParticipant",
    );
    assert_eq!(updated_v1["attributes"], "{\"tier\":2}", "{updated_v1}");
    assert_eq!(updated_v1["lastReadMessageIndex"], "5", "int64 as a string");

    let deleted = ok_json(
        &call(
            addr,
            "DeleteServiceParticipant",
            &json!({"chatServiceSid": service, "conversationSid": channel, "sid": v1_sid}),
        )
        .await,
        "DeleteServiceParticipant",
    );
    assert_eq!(deleted, json!({}), "google.protobuf.Empty is {{}}");
    let gone = call(
        addr,
        "FetchServiceParticipant",
        &json!({"chatServiceSid": service, "conversationSid": channel, "sid": v1_sid}),
    )
    .await;
    connect_error(&gone, 404, "not_found", "fetch after delete");
}

#[tokio::test]
async fn binary_create_and_fetch_round_trip_as_application_proto() {
    // Arrange
    let app = spawn_app().await;
    let request = create_request();
    let client = http_client();
    let proto_call = |rpc: &'static str, body: Vec<u8>| {
        client
            .post(url(app.addr, rpc))
            .header("content-type", "application/proto")
            .body(body)
            .send()
    };

    // Act
    let created = proto_call("CreateParticipant", request.encode_to_vec())
        .await
        .expect("create answered");
    let created_type = created.headers()["content-type"].clone();
    let created_status = created.status();
    let created = Participant::decode(created.bytes().await.expect("body")).expect("Participant");
    let fetch = FetchParticipantRequest {
        conversation_id: created.conversation_id.clone(),
        participant_id: created.id.clone(),
    };
    let fetched = proto_call("FetchParticipant", fetch.encode_to_vec())
        .await
        .expect("fetch answered");
    let fetched_status = fetched.status();
    let fetched = Participant::decode(fetched.bytes().await.expect("body")).expect("Participant");

    // Assert
    assert_eq!(created_status, 200);
    assert_eq!(created_type, "application/proto");
    assert_eq!(created.addresses, request.addresses);
    assert_eq!(created.name, request.name);
    assert_eq!(fetched_status, 200);
    assert_eq!(fetched, created);
    let over_grpc = app
        .fetch(&created.conversation_id, &created.id)
        .await
        .expect("the same participant over gRPC");
    assert_eq!(over_grpc, created);
}

#[tokio::test]
async fn unknown_json_fields_are_ignored_as_connect_go_ignores_them() {
    // Arrange
    let app = spawn_app().await;
    let request = create_request();
    let body = json!({
        "conversationId": request.conversation_id,
        "name": "Ada Lovelace",
        "type": "PARTICIPANT_TYPE_CUSTOMER",
        "addresses": [{"channel": "CHANNEL_SMS", "address": request.addresses[0].address, "since": 2027}],
        "aFieldOfANewerSchema": {"nested": [1, 2, 3]},
    });

    // Act
    let answer = call(app.addr, "CreateParticipant", &body).await;

    // Assert
    let created = ok_json(&answer, "CreateParticipant with unknown fields");
    assert!(created.get("aFieldOfANewerSchema").is_none(), "{created}");
    assert_eq!(created["addresses"][0]["channel"], "CHANNEL_SMS");
}

/// Every error answer is Connect's error JSON with the HTTP status of its code, carrying
/// the details gRPC carries.
#[tokio::test]
async fn errors_are_connects_error_json_with_the_grpc_details() {
    // Arrange: an existing participant, to conflict with.
    let app = spawn_app().await;
    let existing = app.create(create_request()).await.expect("create");
    let duplicate = json!({
        "conversationId": existing.conversation_id,
        "name": "Ada Lovelace",
        "addresses": [{"channel": "CHANNEL_SMS", "address": existing.addresses[0].address}],
    });
    let create_json = |body: &str| ("CreateParticipant", "application/json", body.to_owned());
    let huge = format!(r#"{{"name":"{}"}}"#, "n".repeat(300_000));
    // (case, (rpc, content type, body), extra headers, HTTP status, code, detail check)
    type Check = fn(&Value, &str);
    type Request = (&'static str, &'static str, String);
    type Case = (&'static str, Request, Headers, u16, &'static str, Check);
    let cases: Vec<Case> = vec![
        (
            "invalid argument",
            create_json(r#"{"conversationId":"","addresses":[]}"#),
            vec![],
            400,
            "invalid_argument",
            |body, case| {
                let fields = bad_request_fields(body, case);
                assert!(
                    fields.contains(&"conversation_id".to_owned()),
                    "{case}: {fields:?}"
                );
                let debug = &body["details"][0]["debug"]["fieldViolations"];
                assert!(debug.is_array(), "{case}: a debug rendering: {body}");
            },
        ),
        (
            "already exists",
            create_json(&duplicate.to_string()),
            vec![],
            409,
            "already_exists",
            |body, case| {
                let info: ErrorInfo = detail(body, "google.rpc.ErrorInfo", case);
                assert_eq!(info.reason, "ALREADY_EXISTS", "{case}");
                assert_eq!(info.domain, "participants-facade", "{case}");
                assert!(
                    info.metadata.contains_key("conflicting_resource_id"),
                    "{case}: {info:?}"
                );
            },
        ),
        (
            "not found",
            (
                "FetchParticipant",
                "application/json",
                json!({"conversationId": conversation_id(), "participantId": participant_id()})
                    .to_string(),
            ),
            vec![],
            404,
            "not_found",
            |body, case| {
                let info: ErrorInfo = detail(body, "google.rpc.ErrorInfo", case);
                assert_eq!(info.reason, "NOT_FOUND", "{case}");
            },
        ),
        (
            "malformed JSON",
            create_json(r#"{"conversationId": "#),
            vec![],
            400,
            "invalid_argument",
            |body, case| assert_eq!(bad_request_fields(body, case), ["body"], "{case}"),
        ),
        (
            "a value of the wrong type",
            create_json(r#"{"addresses": [{"channel": {"sms": true}}]}"#),
            vec![],
            400,
            "invalid_argument",
            |body, case| {
                assert_eq!(
                    bad_request_fields(body, case),
                    ["addresses[0].channel"],
                    "{case}"
                );
            },
        ),
        (
            "an empty JSON body",
            create_json(""),
            vec![],
            400,
            "invalid_argument",
            |body, case| assert_eq!(bad_request_fields(body, case), ["body"], "{case}"),
        ),
        (
            "a message over --max-message-bytes",
            create_json(&huge),
            vec![],
            429,
            "resource_exhausted",
            |_, _| {},
        ),
        (
            "Connect-Protocol-Version other than 1",
            create_json("{}"),
            vec![("connect-protocol-version", "2")],
            400,
            "invalid_argument",
            |_, _| {},
        ),
        (
            "a malformed Connect-Timeout-Ms",
            create_json("{}"),
            vec![("connect-timeout-ms", "5s")],
            400,
            "invalid_argument",
            |body, case| {
                assert_eq!(
                    bad_request_fields(body, case),
                    ["connect-timeout-ms"],
                    "{case}"
                );
            },
        ),
        (
            "a compressed body",
            create_json("{}"),
            vec![("content-encoding", "gzip")],
            501,
            "unimplemented",
            |_, _| {},
        ),
        (
            "an unknown method",
            ("DeleteParticipant", "application/json", "{}".to_owned()),
            vec![],
            404,
            "unimplemented",
            |_, _| {},
        ),
        (
            "an unsupported content type",
            ("FetchParticipant", "text/plain", "{}".to_owned()),
            vec![],
            415,
            "unimplemented",
            |_, _| {},
        ),
    ];

    for (case, (rpc, content_type, body), headers, http, code, check) in cases {
        // Act
        let mut request = http_client()
            .post(url(app.addr, rpc))
            .header("content-type", content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let answer = send(request).await;

        // Assert
        let error = connect_error(&answer, http, code, case);
        check(&error, case);
        if http == 415 {
            assert_eq!(
                answer.header("accept-post"),
                Some("application/json, application/proto"),
                "{case}"
            );
        }
    }
}

/// `Connect-Timeout-Ms` is the call's deadline: a fetch from a Twilio that takes 3 s is
/// answered deadline_exceeded (504) once it passes.
#[tokio::test]
async fn a_call_past_its_connect_timeout_is_answered_deadline_exceeded() {
    // Arrange
    let upstream = upstream().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&upstream)
        .await;
    let app = spawn_twilio_app(&upstream.uri(), |_| {}).await;
    let body = json!({"conversationId": conversation_id(), "participantId": participant_id()});

    for timeout_ms in [1_u64, 300] {
        // Act
        let started = Instant::now();
        let answer = send(
            http_client()
                .post(url(app.addr, "FetchParticipant"))
                .header("content-type", "application/json")
                .header("connect-timeout-ms", timeout_ms.to_string())
                .body(body.to_string()),
        )
        .await;

        // Assert
        let case = format!("Connect-Timeout-Ms: {timeout_ms}");
        connect_error(&answer, 504, "deadline_exceeded", &case);
        assert!(
            started.elapsed() >= Duration::from_millis(timeout_ms),
            "{case}: answered before the deadline"
        );
    }
}

#[tokio::test]
async fn connect_calls_pass_the_same_inbound_auth() {
    // Arrange
    let app = spawn_app_with(|s| {
        s.inbound_auth = Some(Arc::new(
            InboundAuth::from_values(Some("svc:s3cret"), Some("tok"), false).expect("auth"),
        ));
    })
    .await;
    let request = create_request();
    let body = json!({
        "conversationId": request.conversation_id,
        "name": "Ada Lovelace",
        "addresses": [{"channel": "CHANNEL_SMS", "address": request.addresses[0].address}],
    });
    let create = || {
        http_client()
            .post(url(app.addr, "CreateParticipant"))
            .header("content-type", "application/json")
            .body(body.to_string())
    };

    // Act
    let without = send(create()).await;
    let wrong = send(create().bearer_auth("not-the-token")).await;
    let with_bearer = send(create().bearer_auth("tok")).await;

    // Assert
    for (case, answer) in [("no credentials", &without), ("wrong token", &wrong)] {
        let body = connect_error(answer, 401, "unauthenticated", case);
        assert!(
            !body.to_string().contains("not-the-token"),
            "{case}: {body}"
        );
    }
    ok_json(&with_bearer, "CreateParticipant with a bearer token");
}

/// The buf CLI installed by scripts/install-tools.
fn buf_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/buf");
    assert!(
        bin.exists(),
        "the buf CLI is not installed ({} is missing): run scripts/install-tools",
        bin.display()
    );
    bin
}

/// `buf curl --protocol connect` with the proto as its schema: its exit status, stdout
/// and stderr.
async fn buf_curl(url: &str, body: &Value, http2: bool) -> (Option<i32>, String, String) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let mut command = tokio::process::Command::new(buf_bin());
    command
        .arg("curl")
        .arg("--protocol")
        .arg("connect")
        .arg("--schema")
        .arg(&schema)
        .arg("--data")
        .arg(body.to_string());
    if http2 {
        command.arg("--http2-prior-knowledge");
    }
    command.arg(url).kill_on_drop(true);
    let output = tokio::time::timeout(WAIT, command.output())
        .await
        .expect("buf curl finishes within the bound")
        .expect("buf curl runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn buf_curl_speaks_connect_to_the_server_successes_and_errors() {
    // Arrange
    let app = spawn_app().await;
    let created = app.create(create_request()).await.expect("create");
    let fetch = url(app.addr, "FetchParticipant");

    for http2 in [false, true] {
        // Act
        let (found_status, found, found_err) = buf_curl(
            &fetch,
            &json!({"conversation_id": created.conversation_id, "participant_id": created.id}),
            http2,
        )
        .await;
        let (missing_status, _, missing_err) = buf_curl(
            &fetch,
            &json!({"conversationId": created.conversation_id, "participantId": participant_id()}),
            http2,
        )
        .await;

        // Assert
        let case = if http2 { "HTTP/2" } else { "HTTP/1.1" };
        assert_eq!(found_status, Some(0), "{case}: {found} {found_err}");
        let found: Value = serde_json::from_str(&found)
            .unwrap_or_else(|e| panic!("{case}: buf curl printed JSON ({e}): {found}"));
        assert_eq!(found["id"], created.id, "{case}");
        assert_eq!(found["type"], "PARTICIPANT_TYPE_CUSTOMER", "{case}");
        assert_ne!(missing_status, Some(0), "{case}: {missing_err}");
        let error: Value = serde_json::from_str(missing_err.trim())
            .unwrap_or_else(|e| panic!("{case}: buf curl printed the error ({e}): {missing_err}"));
        assert_eq!(error["code"], "not_found", "{case}: {error}");
        assert_eq!(
            error["details"][0]["type"], "google.rpc.ErrorInfo",
            "{case}: {error}"
        );
    }
}
