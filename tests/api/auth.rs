//! Inbound authentication on both fronts (REST, gRPC, gRPC-Web): refused without or with
//! wrong credentials, accepted with Basic or Bearer, probes exempt, ignored when off; and
//! passthrough, where a caller's own Basic credentials are the ones Twilio receives.

use std::sync::Arc;

use participants_facade::proto::FetchParticipantRequest;
use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::transport::auth::InboundAuth;
use serde_json::json;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_health::pb::HealthCheckRequest;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fixtures::*;

const USER: &str = "svc";
const SECRET: &str = "s3cret";
const TOKEN: &str = "tok";

/// A server requiring `svc:s3cret` (Basic) or `tok` (Bearer).
async fn spawn_app_with_auth() -> TestApp {
    spawn_app_with(|s| {
        s.inbound_auth = Some(Arc::new(
            InboundAuth::from_values(Some("svc:s3cret"), Some(TOKEN), false).expect("auth"),
        ));
    })
    .await
}

fn assert_unauthenticated(answer: &Answer, case: &str) {
    assert_twilio_error(answer, 401, 20003);
    assert!(
        answer
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic ")),
        "{case}: WWW-Authenticate: {answer:?}"
    );
}

/// A gRPC request carrying `authorization` metadata, if any.
fn with_authorization<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(value).expect("ascii metadata"),
        );
    }
    request
}

#[tokio::test]
async fn rest_without_or_with_wrong_credentials_is_401_with_www_authenticate() {
    // Arrange
    let app = spawn_app_with_auth().await;
    let (base, client) = (base_url(&app), http_client());
    let create = format!("{base}{}", v2_path(&conversation_id()));
    let fetch = format!("{base}{}/{}", v1_path(&sid("IS"), &sid("CH")), sid("MB"));
    let wrong = [
        None,
        Some(basic(USER, "wrong")),
        Some(basic("nobody", SECRET)),
        Some("Bearer wrong".to_owned()),
        Some(format!("Bearer {SECRET}")),
        Some("Basic !!not-base64".to_owned()),
        Some(format!("Token {TOKEN}")),
    ];

    for authorization in wrong {
        // Act
        let mut post = client.post(&create).json(&v2_body(&phone()));
        let mut get = client.get(&fetch);
        let mut openapi = client.get(format!("{base}/openapi.json"));
        if let Some(value) = &authorization {
            post = post.header("authorization", value);
            get = get.header("authorization", value);
            openapi = openapi.header("authorization", value);
        }
        let answers = [send(post).await, send(get).await, send(openapi).await];

        // Assert
        for answer in &answers {
            assert_unauthenticated(answer, &format!("{authorization:?}"));
        }
    }
}

#[tokio::test]
async fn rest_with_basic_or_bearer_credentials_is_served() {
    // Arrange
    let app = spawn_app_with_auth().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();

    // Act
    let created = send(
        client
            .post(format!("{base}{}", v2_path(&conversation)))
            .basic_auth(USER, Some(SECRET))
            .json(&v2_body(&phone())),
    )
    .await;
    let id = created.expect_status(201).json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let fetched = send(
        client
            .get(format!("{base}{}/{id}", v2_path(&conversation)))
            .bearer_auth(TOKEN),
    )
    .await;
    let v1 = send(
        client
            .post(format!("{base}{}", v1_path(&sid("IS"), &sid("CH"))))
            .header("authorization", format!("bearer {TOKEN}"))
            .form(&[("Identity", "ada")]),
    )
    .await;

    // Assert
    assert_eq!(fetched.expect_status(200).json()["id"], json!(id));
    v1.expect_status(201);
}

#[tokio::test]
async fn grpc_without_or_with_wrong_credentials_is_unauthenticated_and_served_with_them() {
    // Arrange
    let app = spawn_app_with_auth().await;
    let created_without = app.create(create_request()).await;
    let request = create_request();

    // Act
    let wrong = app
        .client
        .clone()
        .create_participant(with_authorization(request.clone(), Some(&basic(USER, "x"))))
        .await;
    let with_basic = app
        .client
        .clone()
        .create_participant(with_authorization(
            request.clone(),
            Some(&basic(USER, SECRET)),
        ))
        .await;
    let with_bearer = app
        .client
        .clone()
        .fetch_participant(with_authorization(
            FetchParticipantRequest {
                conversation_id: request.conversation_id.clone(),
                participant_id: with_basic
                    .as_ref()
                    .map(|r| r.get_ref().id.clone())
                    .unwrap_or_default(),
            },
            Some(&format!("Bearer {TOKEN}")),
        ))
        .await;

    // Assert
    let status = expect_code(created_without, Code::Unauthenticated);
    assert!(!status.message().is_empty());
    expect_code(wrong, Code::Unauthenticated);
    let created = with_basic
        .expect("Basic credentials are accepted")
        .into_inner();
    let fetched = with_bearer
        .expect("Bearer credentials are accepted")
        .into_inner();
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn grpc_web_without_credentials_is_unauthenticated_in_grpc_web_framing() {
    // Arrange
    let app = spawn_app_with_auth().await;
    let request = FetchParticipantRequest {
        conversation_id: conversation_id(),
        participant_id: "conv_participant_01m8b7a6yqrhp4et8761yqjt4y".into(),
    };
    let fetch = "/participants.v1.ParticipantService/FetchParticipant";

    // Act
    let without = grpc_web_call(&app, fetch, &request, false, &[]).await;
    let with = grpc_web_call(
        &app,
        fetch,
        &request,
        false,
        &[("authorization", &basic(USER, SECRET))],
    )
    .await;

    // Assert
    assert_eq!(without.grpc_status.as_deref(), Some("16"), "{without:?}");
    assert_eq!(
        with.grpc_status.as_deref(),
        Some("5"),
        "authenticated, then not found: {with:?}"
    );
    // A browser's gRPC-Web client only reads answers in gRPC-Web's own content type.
    assert!(
        without.content_type.starts_with("application/grpc-web"),
        "the refusal of a gRPC-Web call is a gRPC-Web answer: {without:?}"
    );
}

#[tokio::test]
async fn probes_and_grpc_health_need_no_credentials() {
    // Arrange
    let app = spawn_app_with_auth().await;
    let (base, client) = (base_url(&app), http_client());

    // Act
    let healthz = send(client.get(format!("{base}/healthz"))).await;
    let readyz = send(client.get(format!("{base}/readyz"))).await;
    let health = app
        .health
        .clone()
        .check(HealthCheckRequest {
            service: SERVICE_NAME.into(),
        })
        .await;

    // Assert
    healthz.expect_status(200);
    readyz.expect_status(200);
    assert_eq!(
        health
            .expect("health check without credentials")
            .into_inner()
            .status,
        i32::from(tonic_health::pb::health_check_response::ServingStatus::Serving)
    );
}

#[tokio::test]
async fn cors_preflight_needs_no_credentials_and_refusals_carry_cors_headers() {
    // Arrange
    let origin = "https://app.example.com";
    let app = spawn_app_with(|s| {
        s.config.server.cors_allow_origin = vec![origin.into()];
        s.inbound_auth = Some(Arc::new(
            InboundAuth::from_values(Some("svc:s3cret"), Some(TOKEN), false).expect("auth"),
        ));
    })
    .await;
    let (base, client) = (base_url(&app), http_client());
    let url = format!("{base}{}", v2_path(&conversation_id()));

    // Act: browsers send preflights without credentials.
    let preflight = send(
        client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            ),
    )
    .await;
    let refused = send(
        client
            .post(&url)
            .header("origin", origin)
            .json(&v2_body(&phone())),
    )
    .await;

    // Assert
    assert!(preflight.status.is_success(), "{preflight:?}");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(origin)
    );
    assert_unauthenticated(&refused, "no credentials");
    assert_eq!(
        refused.header("access-control-allow-origin"),
        Some(origin),
        "the browser may read the 401: {refused:?}"
    );
}

#[tokio::test]
async fn with_auth_off_any_authorization_header_is_ignored() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());

    for authorization in [
        basic("AC00000000000000000000000000000000", "any-token"),
        "Bearer whatever".to_owned(),
        "Basic !!not-base64".to_owned(),
        "Negotiate abc".to_owned(),
    ] {
        // Act
        let rest = send(
            client
                .post(format!("{base}{}", v2_path(&conversation_id())))
                .header("authorization", &authorization)
                .json(&v2_body(&phone())),
        )
        .await;
        let grpc = app
            .client
            .clone()
            .create_participant(with_authorization(create_request(), Some(&authorization)))
            .await;

        // Assert
        assert_eq!(rest.status.as_u16(), 201, "{authorization:?}: {rest:?}");
        assert!(grpc.is_ok(), "{authorization:?}: {grpc:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Passthrough (twilio backend)
// ---------------------------------------------------------------------------------------

fn authorization_received(request: &wiremock::Request) -> Option<String> {
    request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn passthrough_forwards_the_callers_basic_credentials_else_the_configured_ones() {
    // Arrange
    let upstream = MockServer::start().await;
    let conversation = conversation_id();
    let id = "conv_participant_01m8b7a6yqrhp4et8761yqjt4y";
    Mock::given(method("GET"))
        .and(path(format!("{}/{id}", v2_path(&conversation))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": id,
            "conversationId": conversation,
            "accountId": "AC11111111111111111111111111111111",
            "addresses": [{"channel": "SMS", "address": "+18005550100"}],
        })))
        .mount(&upstream)
        .await;
    let app = spawn_passthrough_app(&upstream.uri(), None, None).await;
    let url = format!("{}{}/{id}", base_url(&app), v2_path(&conversation));
    let client = http_client();
    let caller = "AC22222222222222222222222222222222";

    // Act
    let with_rest_caller = send(client.get(&url).basic_auth(caller, Some("caller-token"))).await;
    let without = send(client.get(&url)).await;
    let with_grpc_caller = ParticipantServiceClient::new(app.channel.clone())
        .fetch_participant(with_authorization(
            FetchParticipantRequest {
                conversation_id: conversation.clone(),
                participant_id: id.into(),
            },
            Some(&basic(caller, "grpc-token")),
        ))
        .await;

    // Assert
    with_rest_caller.expect_status(200);
    without.expect_status(200);
    with_grpc_caller.expect("gRPC fetch with passthrough credentials");
    let seen: Vec<Option<String>> = received(&upstream, id)
        .await
        .iter()
        .map(authorization_received)
        .collect();
    assert_eq!(
        seen,
        vec![
            Some(basic(caller, "caller-token")),
            Some(authorization()),
            Some(basic(caller, "grpc-token")),
        ],
        "the upstream saw the caller's credentials, else the configured ones"
    );
}

#[tokio::test]
async fn passthrough_with_required_auth_still_refuses_callers_without_credentials() {
    // Arrange
    let upstream = MockServer::start().await;
    let (service, channel) = (sid("IS"), sid("CH"));
    let mb = sid("MB");
    Mock::given(method("GET"))
        .and(path(format!("{}/{mb}", v1_path(&service, &channel))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sid": mb,
            "account_sid": "AC22222222222222222222222222222222",
            "chat_service_sid": service,
            "conversation_sid": channel,
            "identity": "ada",
            "attributes": "{}",
        })))
        .mount(&upstream)
        .await;
    let app = spawn_passthrough_app(&upstream.uri(), Some("svc:s3cret"), Some(TOKEN)).await;
    let url = format!("{}{}/{mb}", base_url(&app), v1_path(&service, &channel));
    let client = http_client();

    // Act
    let without = send(client.get(&url)).await;
    let with_bearer = send(client.get(&url).bearer_auth(TOKEN)).await;
    let with_tenant = send(
        client
            .get(&url)
            .basic_auth("AC22222222222222222222222222222222", Some("tenant-token")),
    )
    .await;

    // Assert
    assert_unauthenticated(&without, "no credentials");
    assert_eq!(
        with_bearer.expect_status(200).json()["identity"],
        json!("ada")
    );
    with_tenant.expect_status(200);
    let seen: Vec<Option<String>> = received(&upstream, &mb)
        .await
        .iter()
        .map(authorization_received)
        .collect();
    assert_eq!(
        seen,
        vec![
            Some(authorization()),
            Some(basic("AC22222222222222222222222222222222", "tenant-token")),
        ],
        "a bearer caller uses the configured credentials; a Basic caller its own"
    );
}
