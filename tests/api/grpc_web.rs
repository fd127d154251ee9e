//! gRPC-Web on the one port (tonic-web behind the content-type dispatcher), spoken by hand
//! with reqwest over HTTP/1.1 as a browser would: binary (`application/grpc-web+proto`)
//! and text (`application/grpc-web-text`, base64) framing, errors, and CORS.

use participants_facade::proto::{
    Channel, CreateParticipantRequest, FetchParticipantRequest, Participant, ParticipantType,
};
use prost::Message as _;
use serde_json::json;

use crate::fixtures::*;

const ORIGIN: &str = "https://app.example.com";

#[tokio::test]
async fn grpc_web_fetch_of_a_participant_created_over_rest_returns_a_data_frame_and_ok_trailers() {
    // Arrange
    let app = spawn_app().await;
    let conversation = conversation_id();
    let phone = phone();
    let created = post_v2(
        &http_client(),
        &base_url(&app),
        &conversation,
        &v2_body(&phone),
    )
    .await;
    let id = created.expect_status(201).json()["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Act
    let answer = grpc_web_call(
        &app,
        FETCH_PARTICIPANT,
        &FetchParticipantRequest {
            conversation_id: conversation.clone(),
            participant_id: id.clone(),
        },
        false,
        &[],
    )
    .await;

    // Assert
    assert_eq!(answer.http_status, 200, "{answer:?}");
    assert!(
        answer.content_type.starts_with("application/grpc-web"),
        "{answer:?}"
    );
    assert_eq!(answer.messages.len(), 1, "one data frame: {answer:?}");
    let trailers = answer.trailers.as_deref().expect("a trailers frame");
    assert!(
        trailers.lines().any(|l| l.trim() == "grpc-status:0"),
        "trailers: {trailers:?}"
    );
    let participant = Participant::decode(answer.messages[0].as_slice()).expect("a Participant");
    assert_eq!(participant.id, id);
    assert_eq!(participant.conversation_id, conversation);
    assert_eq!(participant.name, "Ada Lovelace");
    assert_eq!(participant.r#type, i32::from(ParticipantType::Customer));
    assert_eq!(participant.addresses, vec![address(Channel::Sms, &phone)]);
}

#[tokio::test]
async fn grpc_web_text_create_round_trips_and_is_seen_over_grpc() {
    // Arrange
    let app = spawn_app().await;
    let request = CreateParticipantRequest {
        idempotency_key: format!("web-{}", unique()),
        ..create_request()
    };

    // Act
    let answer = grpc_web_call(&app, CREATE_PARTICIPANT, &request, true, &[]).await;

    // Assert
    assert_eq!(answer.http_status, 200, "{answer:?}");
    assert!(
        answer.content_type.starts_with("application/grpc-web-text"),
        "{answer:?}"
    );
    assert_eq!(answer.grpc_status.as_deref(), Some("0"), "{answer:?}");
    assert_eq!(answer.messages.len(), 1, "{answer:?}");
    let created = Participant::decode(answer.messages[0].as_slice()).expect("a Participant");
    assert!(is_participant_id(&created.id), "{created:?}");
    assert_eq!(created.addresses, request.addresses);
    let fetched = app
        .fetch(&request.conversation_id, &created.id)
        .await
        .expect("the participant is there for gRPC");
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn grpc_web_errors_carry_grpc_status_and_message() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let not_found = grpc_web_call(
        &app,
        FETCH_PARTICIPANT,
        &FetchParticipantRequest {
            conversation_id: conversation_id(),
            participant_id: "conv_participant_01m8b7a6yqrhp4et8761yqjt4y".into(),
        },
        false,
        &[],
    )
    .await;
    let invalid = grpc_web_call(
        &app,
        CREATE_PARTICIPANT,
        &CreateParticipantRequest::default(),
        true,
        &[],
    )
    .await;
    // Over --max-message-bytes (256 KiB by default): RESOURCE_EXHAUSTED here too.
    let oversized = grpc_web_call(
        &app,
        CREATE_PARTICIPANT,
        &CreateParticipantRequest {
            name: "n".repeat(300 * 1024),
            ..create_request()
        },
        false,
        &[],
    )
    .await;

    // Assert
    for (answer, code) in [(&not_found, "5"), (&invalid, "3"), (&oversized, "8")] {
        assert_eq!(
            answer.http_status, 200,
            "gRPC-Web errors ride on HTTP 200: {answer:?}"
        );
        assert!(
            answer.content_type.starts_with("application/grpc-web"),
            "{answer:?}"
        );
        assert_eq!(answer.grpc_status.as_deref(), Some(code), "{answer:?}");
        assert!(answer.messages.is_empty(), "no data frame: {answer:?}");
        assert!(
            answer
                .grpc_message
                .as_deref()
                .is_some_and(|m| !m.is_empty()),
            "{answer:?}"
        );
    }
}

fn preflight(app: &TestApp, path: &str, origin: &str, headers: &str) -> reqwest::RequestBuilder {
    http_client()
        .request(reqwest::Method::OPTIONS, format!("{}{path}", base_url(app)))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", headers)
}

fn allow_origin(answer: &Answer) -> Option<&str> {
    answer.header("access-control-allow-origin")
}

#[tokio::test]
async fn cors_preflight_and_calls_allow_the_configured_origin_only() {
    // Arrange
    let app = spawn_app_configured(|c| c.server.cors_allow_origin = vec![ORIGIN.into()]).await;

    // Act
    let grpc_web = send(preflight(
        &app,
        FETCH_PARTICIPANT,
        ORIGIN,
        "content-type,x-grpc-web,x-user-agent",
    ))
    .await;
    let rest = send(preflight(
        &app,
        &v2_path(&conversation_id()),
        ORIGIN,
        "content-type,idempotency-key,authorization",
    ))
    .await;
    let other_origin = send(preflight(
        &app,
        FETCH_PARTICIPANT,
        "https://evil.example.net",
        "content-type,x-grpc-web",
    ))
    .await;
    let call = grpc_web_call(
        &app,
        FETCH_PARTICIPANT,
        &FetchParticipantRequest {
            conversation_id: conversation_id(),
            participant_id: "conv_participant_01m8b7a6yqrhp4et8761yqjt4y".into(),
        },
        false,
        &[("origin", ORIGIN)],
    )
    .await;

    // Assert
    for answer in [&grpc_web, &rest] {
        assert!(answer.status.is_success(), "{answer:?}");
        assert_eq!(allow_origin(answer), Some(ORIGIN), "{answer:?}");
        let methods = answer
            .header("access-control-allow-methods")
            .unwrap_or_default()
            .to_ascii_uppercase();
        assert!(methods.contains("POST"), "{answer:?}");
    }
    // The REST front's update and delete are callable from browsers too.
    let methods = rest
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_uppercase();
    for method in ["GET", "PUT", "DELETE"] {
        assert!(methods.contains(method), "{method} allowed: {methods}");
    }
    let allowed = grpc_web
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["content-type", "x-grpc-web", "x-user-agent"] {
        assert!(allowed.contains(name), "{name} allowed: {allowed}");
    }
    let allowed = rest
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["idempotency-key", "authorization"] {
        assert!(allowed.contains(name), "{name} allowed: {allowed}");
    }
    assert_eq!(allow_origin(&other_origin), None, "{other_origin:?}");
    assert_eq!(
        call.headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(ORIGIN),
        "{call:?}"
    );
    let exposed = call
        .headers
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("grpc-status"), "{exposed}");
    assert_eq!(call.grpc_status.as_deref(), Some("5"));
}

#[tokio::test]
async fn without_cors_configuration_no_cors_headers_are_sent() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let grpc_web = send(preflight(
        &app,
        FETCH_PARTICIPANT,
        ORIGIN,
        "content-type,x-grpc-web",
    ))
    .await;
    let rest = send(
        http_client()
            .post(format!("{}{}", base_url(&app), v2_path(&conversation_id())))
            .header("origin", ORIGIN)
            .json(&json!({"addresses": [{"channel": "SMS", "address": phone()}]})),
    )
    .await;

    // Assert
    assert_eq!(allow_origin(&grpc_web), None, "{grpc_web:?}");
    assert_eq!(allow_origin(&rest), None, "{rest:?}");
    rest.expect_status(201);
}

/// The lifecycle RPCs are served over gRPC-Web like the others: a list, an update and a
/// v1 delete, each answered with its message (or an empty one) and OK trailers.
#[tokio::test]
async fn grpc_web_lists_updates_and_deletes() {
    use participants_facade::proto::{
        DeleteServiceParticipantRequest, ListParticipantsRequest, ListParticipantsResponse,
        UpdateParticipantRequest,
    };
    // Arrange
    let app = spawn_app().await;
    let request = create_request();
    let created = app.create(request.clone()).await.expect("created");
    let v1 = app
        .create_v1(create_v1_request())
        .await
        .expect("v1 created");
    let service = "/participants.v1.ParticipantService";

    // Act
    let listed = grpc_web_call(
        &app,
        &format!("{service}/ListParticipants"),
        &ListParticipantsRequest {
            conversation_id: request.conversation_id.clone(),
            page_size: 10,
            page_token: String::new(),
        },
        false,
        &[],
    )
    .await;
    let updated = grpc_web_call(
        &app,
        &format!("{service}/UpdateParticipant"),
        &UpdateParticipantRequest {
            participant: Some(Participant {
                conversation_id: created.conversation_id.clone(),
                id: created.id.clone(),
                name: "Grace Hopper".into(),
                ..Default::default()
            }),
            update_mask: None,
        },
        true,
        &[],
    )
    .await;
    let deleted = grpc_web_call(
        &app,
        &format!("{service}/DeleteServiceParticipant"),
        &DeleteServiceParticipantRequest {
            chat_service_sid: v1.chat_service_sid.clone(),
            conversation_sid: v1.conversation_sid.clone(),
            sid: v1.sid.clone(),
            ..Default::default()
        },
        false,
        &[],
    )
    .await;

    // Assert
    for answer in [&listed, &updated, &deleted] {
        assert_eq!(answer.http_status, 200, "{answer:?}");
        assert_eq!(answer.grpc_status.as_deref(), Some("0"), "{answer:?}");
        assert_eq!(answer.messages.len(), 1, "{answer:?}");
    }
    let page = ListParticipantsResponse::decode(listed.messages[0].as_slice()).expect("a page");
    assert_eq!(page.participants, vec![created.clone()]);
    assert_eq!(page.next_page_token, "");
    let renamed = Participant::decode(updated.messages[0].as_slice()).expect("a Participant");
    assert_eq!(renamed.name, "Grace Hopper");
    assert_eq!(renamed.created_at, created.created_at);
    assert!(
        deleted.messages[0].is_empty(),
        "google.protobuf.Empty encodes to nothing"
    );
    let sid = v1.sid.clone();
    let gone = app
        .fetch_v1(&v1.chat_service_sid, &v1.conversation_sid, &sid)
        .await;
    assert_eq!(gone.unwrap_err().code(), tonic::Code::NotFound);
}
