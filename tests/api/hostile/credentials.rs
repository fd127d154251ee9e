//! Forged credentials and flag combinations that would weaken auth: a passthrough caller
//! with the right account sid and a wrong secret learns nothing from someone else's
//! `Idempotency-Key`; `--auth-passthrough` without the twilio backend, and auth variables
//! that are set but hold no credential, stop the binary; two `Authorization` headers are
//! refused on every front.

use std::sync::Arc;

use participants_facade::proto::FetchParticipantRequest;
use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::transport::auth::InboundAuth;
use serde_json::{Value, json};
use tonic::Code;
use tonic::metadata::MetadataValue;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fixtures::*;

const ACCOUNT: &str = "AC22222222222222222222222222222222";
const VICTIM_SECRET: &str = "the-victims-auth-token";

/// Twilio's answer to credentials it does not know.
fn twilio_401() -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_json(json!({
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }))
}

/// A v2 participant as Twilio creates it from `phone`.
fn created(id: &str, conversation: &str, phone: &str) -> Value {
    json!({
        "id": id,
        "conversationId": conversation,
        "accountId": ACCOUNT,
        "type": "CUSTOMER",
        "addresses": [{"channel": "SMS", "address": phone}],
        "createdAt": "2026-01-02T03:04:05Z",
        "updatedAt": "2026-01-02T03:04:05Z",
    })
}

async fn create_with(url: &str, key: &str, authorization: &str, phone: &str) -> Answer {
    send(
        http_client()
            .post(url)
            .header("authorization", authorization)
            .header("idempotency-key", key)
            .json(&v2_body(phone)),
    )
    .await
}

#[tokio::test]
async fn a_forged_secret_replaying_an_idempotency_key_reaches_twilio_not_the_remembered_answer() {
    // Arrange: Twilio creates for the victim's credentials and refuses any others.
    let upstream = MockServer::start().await;
    let conversation = conversation_id();
    let id = "conv_participant_01m8b7a6yqrhp4et8761yqjt4y";
    let phone = phone();
    let victim = basic(ACCOUNT, VICTIM_SECRET);
    Mock::given(method("POST"))
        .and(path(v2_path(&conversation)))
        .and(header("authorization", victim.as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(created(id, &conversation, &phone)))
        .with_priority(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path(v2_path(&conversation)))
        .respond_with(twilio_401())
        .mount(&upstream)
        .await;
    let app = spawn_passthrough_app(&upstream.uri(), None, None).await;
    let url = format!("{}{}", base_url(&app), v2_path(&conversation));
    let key = format!("00000000-0000-4000-8000-{:012x}", unique());
    let forged = basic(ACCOUNT, "a-guess");
    let first = create_with(&url, &key, &victim, &phone).await;

    // Act
    let same_body = create_with(&url, &key, &forged, &phone).await;
    let other_body = create_with(&url, &key, &forged, &crate::fixtures::phone()).await;
    let victim_again = create_with(&url, &key, &victim, &phone).await;

    // Assert
    assert_eq!(first.expect_status(201).json()["id"], json!(id));
    for (answer, case) in [(&same_body, "same body"), (&other_body, "other body")] {
        // Twilio's refusal of the forged secret, not the victim's participant and not
        // "this key was used for another request".
        assert_twilio_error(answer, 401, 20003);
        assert!(
            !answer.text.contains(id),
            "{case}: no participant: {answer:?}"
        );
        assert!(
            !answer.text.to_lowercase().contains("idempotency"),
            "{case}: nothing says the key exists: {answer:?}"
        );
    }
    assert_eq!(
        victim_again.expect_status(201).json(),
        first.json(),
        "the victim's replay is the remembered answer"
    );
    let posts: Vec<Option<String>> = received(&upstream, &v2_path(&conversation))
        .await
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        posts,
        vec![Some(victim.clone()), Some(forged.clone()), Some(forged)],
        "the victim created once; each forged call was Twilio's to check"
    );
}

#[tokio::test]
async fn auth_passthrough_without_the_twilio_backend_stops_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");

    let output = run_binary(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--auth-passthrough",
        ],
        &[],
    )
    .await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "exit 2; stderr {stderr:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.contains("--auth-passthrough") && stderr.contains("--backend twilio"),
        "names both flags: {stderr:?}"
    );
    assert!(!dir.path().join("data").exists(), "nothing touched on disk");
}

#[tokio::test]
async fn auth_variables_set_without_a_credential_stop_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    for (name, value) in [
        ("PARTICIPANTS_AUTH_BASIC", ","),
        ("PARTICIPANTS_AUTH_BASIC", " , , "),
        ("PARTICIPANTS_AUTH_BEARER_TOKENS", ","),
        ("PARTICIPANTS_AUTH_BASIC", "no-colon"),
    ] {
        let output = run_binary(
            &["--listen", "127.0.0.1:0", "--data-dir", data],
            &[(name, value)],
        )
        .await;

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{name}={value:?}: exit 2, not auth silently off; stderr {stderr:?}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
        assert!(stderr.contains(name), "names {name}: {stderr:?}");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_invalid_argument_on_rest_and_grpc() {
    // Arrange: the first header is right, so "first one wins" would let the call in.
    let app = spawn_app_with(|s| {
        s.inbound_auth = Some(Arc::new(
            InboundAuth::from_values(Some("svc:s3cret"), Some("tok"), false).expect("auth"),
        ));
    })
    .await;
    let right = basic("svc", "s3cret");
    let url = format!("{}{}", base_url(&app), v2_path(&conversation_id()));
    let mut grpc = tonic::Request::new(FetchParticipantRequest {
        conversation_id: conversation_id(),
        participant_id: "conv_participant_01m8b7a6yqrhp4et8761yqjt4y".into(),
    });
    for value in [right.as_str(), "Bearer tok"] {
        grpc.metadata_mut().append(
            "authorization",
            MetadataValue::try_from(value).expect("ascii"),
        );
    }

    // Act
    let rest = send(
        http_client()
            .post(&url)
            .header("authorization", &right)
            .header("authorization", basic("svc", "wrong"))
            .json(&v2_body(&phone())),
    )
    .await;
    let grpc = ParticipantServiceClient::new(app.channel.clone())
        .fetch_participant(grpc)
        .await;

    // Assert
    let body = assert_twilio_error(&rest, 400, 70002);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("authorization")),
        "names the header: {body}"
    );
    let status = expect_code(grpc, Code::InvalidArgument);
    assert_eq!(
        bad_request_fields(&status),
        ["authorization".to_owned()].into(),
        "{status:?}"
    );
    // One header still works: the refusal is about the duplicate, not the credentials.
    send(
        http_client()
            .post(&url)
            .header("authorization", &right)
            .json(&v2_body(&phone())),
    )
    .await
    .expect_status(201);
    app.stop().await;
}
