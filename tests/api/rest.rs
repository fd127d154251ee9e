//! The REST front: Twilio-compatible v2 (JSON) and v1 (form) routes against the real
//! server with reqwest, over HTTP/1.1 and HTTP/2; every error class with its status and
//! Twilio error body; `Idempotency-Key` and `X-Twilio-Webhook-Enabled`; REST and gRPC on
//! the same data; probes and `/openapi.json`; and, in twilio mode against a loopback
//! upstream (wiremock), the REST front passing calls through with the mapping intact.
//!
//! The REST helpers (`http_client`, `Answer`, `assert_twilio_error`, ...) are in
//! `fixtures::rest`.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest, ParticipantType,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::fixtures::*;

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn rfc3339(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a date string: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// Whether `text` is Twilio's v1 date shape, `2015-12-16T22:18:37Z`.
fn is_v1_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

const V2_KEYS: [&str; 9] = [
    "id",
    "conversationId",
    "accountId",
    "name",
    "type",
    "profileId",
    "addresses",
    "createdAt",
    "updatedAt",
];

const V1_KEYS: [&str; 13] = [
    "account_sid",
    "chat_service_sid",
    "conversation_sid",
    "sid",
    "identity",
    "attributes",
    "messaging_binding",
    "role_sid",
    "date_created",
    "date_updated",
    "url",
    "last_read_message_index",
    "last_read_timestamp",
];

fn expected_keys(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|k| (*k).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn v2_json_create_is_201_and_fetch_200_over_http1_and_http2() {
    // Arrange
    let app = spawn_app().await;
    let base = base_url(&app);
    for (client, version) in [
        (http_client(), reqwest::Version::HTTP_11),
        (h2c_client(), reqwest::Version::HTTP_2),
    ] {
        let conversation = conversation_id();
        let phone = phone();
        let body = json!({
            "name": "Grace Hopper",
            "type": "HUMAN_AGENT",
            "profileId": "mem_profile_01h2xcejqtf2nbrexx3vqjhp41",
            "addresses": [
                {"channel": "SMS", "address": phone},
                {"channel": "EMAIL", "address": "grace@example.com", "channelId": "email_sender_1"},
            ],
        });
        let before = Utc::now() - chrono::Duration::seconds(5);

        // Act
        let created = post_v2(&client, &base, &conversation, &body).await;
        let created_json = created.expect_status(201).json();
        let id = created_json["id"].as_str().expect("id").to_owned();
        let fetched = send(client.get(format!("{base}{}/{id}", v2_path(&conversation)))).await;

        // Assert
        assert_eq!(created.version, version);
        assert_eq!(fetched.version, version);
        assert!(
            created
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{created:?}"
        );
        assert!(is_participant_id(&id), "id {id}");
        assert_eq!(
            keys(&created_json),
            expected_keys(&V2_KEYS),
            "camelCase: {created_json}"
        );
        assert_eq!(created_json["conversationId"], json!(conversation));
        assert_eq!(created_json["accountId"], json!(DEFAULT_ACCOUNT));
        assert_eq!(created_json["name"], json!("Grace Hopper"));
        assert_eq!(created_json["type"], json!("HUMAN_AGENT"));
        assert_eq!(
            created_json["profileId"],
            json!("mem_profile_01h2xcejqtf2nbrexx3vqjhp41")
        );
        assert_eq!(created_json["addresses"], body["addresses"]);
        let created_at = rfc3339(&created_json["createdAt"]);
        assert!(
            created_at >= before && created_at <= Utc::now() + chrono::Duration::seconds(5),
            "createdAt {created_at} is about now"
        );
        assert_eq!(rfc3339(&created_json["updatedAt"]), created_at);
        assert_eq!(fetched.expect_status(200).json(), created_json);
    }
}

#[tokio::test]
async fn v1_form_create_is_201_and_fetch_by_sid_or_identity_200_over_http1_and_http2() {
    // Arrange
    let app = spawn_app().await;
    let base = base_url(&app);
    for (client, version) in [
        (http_client(), reqwest::Version::HTTP_11),
        (h2c_client(), reqwest::Version::HTTP_2),
    ] {
        let (service, conversation) = (sid("IS"), sid("CH"));
        let identity = format!("user-{}", unique());
        let role = sid("RL");

        // Act
        let created = post_v1(
            &client,
            &base,
            &service,
            &conversation,
            &[("Identity", &identity), ("RoleSid", &role)],
        )
        .await;
        let created_json = created.expect_status(201).json();
        let sid = created_json["sid"].as_str().expect("sid").to_owned();
        let by_sid =
            send(client.get(format!("{base}{}/{sid}", v1_path(&service, &conversation)))).await;
        let by_identity = send(client.get(format!(
            "{base}{}/{identity}",
            v1_path(&service, &conversation)
        )))
        .await;

        // Assert
        assert_eq!(created.version, version);
        assert!(is_lower_hex_sid(&sid, "MB"), "sid {sid}");
        assert_eq!(
            keys(&created_json),
            expected_keys(&V1_KEYS),
            "snake_case: {created_json}"
        );
        assert_eq!(created_json["account_sid"], json!(DEFAULT_ACCOUNT));
        assert_eq!(created_json["chat_service_sid"], json!(service));
        assert_eq!(created_json["conversation_sid"], json!(conversation));
        assert_eq!(created_json["identity"], json!(identity));
        assert_eq!(
            created_json["attributes"],
            json!("{}"),
            "unset attributes are {{}}"
        );
        assert_eq!(created_json["messaging_binding"], Value::Null);
        assert_eq!(created_json["role_sid"], json!(role));
        assert_eq!(created_json["last_read_message_index"], Value::Null);
        assert_eq!(created_json["last_read_timestamp"], Value::Null);
        for field in ["date_created", "date_updated"] {
            let date = created_json[field].as_str().expect("a date");
            assert!(
                is_v1_date(date),
                "{field} {date:?} is not like 2015-12-16T22:18:37Z"
            );
        }
        let url = created_json["url"].as_str().expect("url");
        assert!(
            url.starts_with("http://")
                && url.ends_with(&format!(
                    "/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}"
                )),
            "url is absolute: {url}"
        );
        if version == reqwest::Version::HTTP_11 {
            // (Over HTTP/2: see v1_url_over_http2_comes_from_the_request_authority.)
            assert_eq!(
                url,
                format!(
                    "http://{}/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}",
                    app.addr
                ),
                "url is from the Host header"
            );
        }
        assert_eq!(by_sid.expect_status(200).json(), created_json);
        assert_eq!(by_identity.expect_status(200).json(), created_json);
    }
}

#[tokio::test]
async fn v1_binding_participants_show_messaging_binding_with_type_and_keep_given_fields() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, conversation) = (sid("IS"), sid("CH"));
    let (sms, proxy) = (phone(), phone());
    let whatsapp = format!("whatsapp:{}", phone());
    let whatsapp_proxy = format!("whatsapp:{}", phone());

    // Act
    let sms_participant = post_v1(
        &client,
        &base,
        &service,
        &conversation,
        &[
            ("MessagingBinding.Address", &sms),
            ("MessagingBinding.ProxyAddress", &proxy),
            ("Attributes", r#"{"tier":"gold","n":1}"#),
            ("DateCreated", "2015-12-16T22:18:37Z"),
            ("DateUpdated", "2015-12-17T08:00:00Z"),
        ],
    )
    .await;
    let whatsapp_participant = post_v1(
        &client,
        &base,
        &service,
        &conversation,
        &[
            ("MessagingBinding.Address", &whatsapp),
            ("MessagingBinding.ProxyAddress", &whatsapp_proxy),
        ],
    )
    .await;

    // Assert
    let sms_json = sms_participant.expect_status(201).json();
    assert_eq!(
        sms_json["messaging_binding"],
        json!({"type": "sms", "address": sms, "proxy_address": proxy}),
        "{sms_json}"
    );
    assert_eq!(sms_json["identity"], Value::Null);
    assert_eq!(sms_json["attributes"], json!(r#"{"tier":"gold","n":1}"#));
    assert_eq!(sms_json["date_created"], json!("2015-12-16T22:18:37Z"));
    assert_eq!(sms_json["date_updated"], json!("2015-12-17T08:00:00Z"));
    let whatsapp_json = whatsapp_participant.expect_status(201).json();
    assert_eq!(
        whatsapp_json["messaging_binding"],
        json!({"type": "whatsapp", "address": whatsapp, "proxy_address": whatsapp_proxy}),
        "{whatsapp_json}"
    );
}

#[tokio::test]
async fn v1_url_comes_from_public_url_when_set_else_from_the_host_header() {
    // Arrange
    let public = spawn_app_configured(|c| {
        c.public_url = Some("https://facade.example.com".into());
    })
    .await;
    let plain = spawn_app().await;
    let client = http_client();
    let (service, conversation) = (sid("IS"), sid("CH"));

    // Act
    let with_public = post_v1(
        &client,
        &base_url(&public),
        &service,
        &conversation,
        &[("Identity", "ada")],
    )
    .await;
    let with_host = send(
        client
            .post(format!(
                "{}{}",
                base_url(&plain),
                v1_path(&service, &conversation)
            ))
            .header("host", "facade.internal:8443")
            .form(&[("Identity", "ada")]),
    )
    .await;

    // Assert
    let json = with_public.expect_status(201).json();
    let sid = json["sid"].as_str().expect("sid");
    assert_eq!(
        json["url"],
        json!(format!(
            "https://facade.example.com/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}"
        ))
    );
    let json = with_host.expect_status(201).json();
    let sid = json["sid"].as_str().expect("sid");
    assert_eq!(
        json["url"],
        json!(format!(
            "http://facade.internal:8443/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}"
        ))
    );
}

#[tokio::test]
async fn content_types_with_a_charset_and_percent_encoded_identities_are_accepted() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, channel) = (sid("IS"), sid("CH"));

    // Act
    let v2 = send(
        client
            .post(format!("{base}{}", v2_path(&conversation_id())))
            .header("content-type", "application/json; charset=utf-8")
            .body(v2_body(&phone()).to_string()),
    )
    .await;
    let v1 = send(
        client
            .post(format!("{base}{}", v1_path(&service, &channel)))
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body("Identity=ada%20lovelace%2Bco%40example.com"),
    )
    .await;
    let by_identity = send(client.get(format!(
        "{base}{}/ada%20lovelace+co%40example.com",
        v1_path(&service, &channel)
    )))
    .await;

    // Assert
    v2.expect_status(201);
    let created = v1.expect_status(201).json();
    assert_eq!(created["identity"], json!("ada lovelace+co@example.com"));
    assert_eq!(by_identity.expect_status(200).json(), created);
}

#[tokio::test]
async fn v1_url_over_http2_comes_from_the_request_authority() {
    // Arrange: HTTP/2 has no Host header; the authority travels as `:authority` (in the
    // request URI), RFC 9113 8.3.1.
    let app = spawn_app().await;
    let (service, conversation) = (sid("IS"), sid("CH"));

    // Act
    let created = post_v1(
        &h2c_client(),
        &base_url(&app),
        &service,
        &conversation,
        &[("Identity", "ada")],
    )
    .await;

    // Assert
    let created = created.expect_status(201).json();
    let sid = created["sid"].as_str().expect("sid");
    let grpc = app
        .fetch_v1(&service, &conversation, sid)
        .await
        .expect("gRPC fetch");
    let expected = format!(
        "http://{}/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}",
        app.addr
    );
    assert_eq!(created["url"], json!(expected), "REST over HTTP/2");
    assert_eq!(grpc.url, expected, "gRPC");
}

// ---------------------------------------------------------------------------------------
// Error classes: status and Twilio body, never an empty body
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_requests_are_400_with_code_70002_naming_the_fields() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());

    // Act
    let v2_no_addresses = post_v2(&client, &base, &conversation_id(), &json!({"name": "x"})).await;
    let v2_bad_email = post_v2(
        &client,
        &base,
        &conversation_id(),
        &json!({"addresses": [{"channel": "EMAIL", "address": "not-an-email"}]}),
    )
    .await;
    let v2_bad_type = post_v2(
        &client,
        &base,
        &conversation_id(),
        &json!({"type": "ROBOT", "addresses": [{"channel": "SMS", "address": phone()}]}),
    )
    .await;
    let v1_bad_service = post_v1(&client, &base, "IS123", &sid("CH"), &[("Identity", "ada")]).await;
    let v1_bad_attributes = post_v1(
        &client,
        &base,
        &sid("IS"),
        &sid("CH"),
        &[("Identity", "ada"), ("Attributes", "{not json")],
    )
    .await;
    let v1_neither = post_v1(&client, &base, &sid("IS"), &sid("CH"), &[]).await;

    // Assert
    for (answer, field) in [
        (&v2_no_addresses, "addresses"),
        (&v2_bad_email, "addresses[0].address"),
        (&v2_bad_type, "type"),
        (&v1_bad_service, "chat_service_sid"),
        (&v1_bad_attributes, "attributes"),
        (&v1_neither, "identity"),
    ] {
        let body = assert_twilio_error(answer, 400, 70002);
        let message = body["message"].as_str().expect("message");
        assert!(message.contains(field), "message names {field}: {message}");
    }
    assert!(
        !v2_bad_email.text.contains("not-an-email"),
        "rejected values are not echoed: {}",
        v2_bad_email.text
    );
}

#[tokio::test]
async fn malformed_json_and_form_bodies_are_400() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let v2 = format!("{base}{}", v2_path(&conversation_id()));
    let v1 = format!("{base}{}", v1_path(&sid("IS"), &sid("CH")));

    // Act
    let syntax = send(
        client
            .post(&v2)
            .header("content-type", "application/json")
            .body("{\"name\": \"x\", "),
    )
    .await;
    let wrong_shape = send(client.post(&v2).json(&json!({"addresses": "+18005550100"}))).await;
    let not_an_object = send(client.post(&v2).json(&json!([1, 2, 3]))).await;
    let duplicate_field = send(
        client
            .post(&v1)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("Identity=a&Identity=b"),
    )
    .await;

    // Assert
    assert_twilio_error(&syntax, 400, 70002);
    assert_twilio_error(&wrong_shape, 400, 70002);
    assert_twilio_error(&not_an_object, 400, 70002);
    assert_twilio_error(&duplicate_field, 400, 70002);
}

#[tokio::test]
async fn the_wrong_content_type_for_a_route_is_415() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let v2 = format!("{base}{}", v2_path(&conversation_id()));
    let v1 = format!("{base}{}", v1_path(&sid("IS"), &sid("CH")));

    // Act
    let v2_as_form = send(client.post(&v2).form(&[("name", "x")])).await;
    let v2_as_text = send(
        client
            .post(&v2)
            .header("content-type", "text/plain")
            .body(v2_body(&phone()).to_string()),
    )
    .await;
    let v2_without_type = send(client.post(&v2).body(v2_body(&phone()).to_string())).await;
    let v1_as_json = send(client.post(&v1).json(&json!({"Identity": "ada"}))).await;

    // Assert
    for answer in [&v2_as_form, &v2_as_text, &v2_without_type, &v1_as_json] {
        assert_twilio_error(answer, 415, 415);
    }
}

#[tokio::test]
async fn bodies_over_max_message_bytes_are_413() {
    // Arrange
    let app = spawn_app_configured(|c| c.max_message_bytes = 2048).await;
    let (base, client) = (base_url(&app), http_client());
    let long = "x".repeat(4096);

    // Act
    let v2 = post_v2(
        &client,
        &base,
        &conversation_id(),
        &json!({"name": long, "addresses": [{"channel": "SMS", "address": phone()}]}),
    )
    .await;
    let v1 = post_v1(
        &client,
        &base,
        &sid("IS"),
        &sid("CH"),
        &[
            ("Identity", "ada"),
            ("Attributes", &format!("{{\"k\":\"{long}\"}}")),
        ],
    )
    .await;
    let small = post_v2(&client, &base, &conversation_id(), &v2_body(&phone())).await;

    // Assert
    assert_twilio_error(&v2, 413, 413);
    assert_twilio_error(&v1, 413, 413);
    small.expect_status(201);
}

#[tokio::test]
async fn unknown_routes_are_404_with_code_20404_and_wrong_methods_405() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();
    let v2_item = format!(
        "{base}{}/conv_participant_01m8b7a6yqrhp4et8761yqjt4y",
        v2_path(&conversation)
    );
    let v1_collection = format!("{base}{}", v1_path(&sid("IS"), &sid("CH")));

    // Act
    let not_found = [
        send(client.get(format!("{base}/"))).await,
        send(client.get(format!("{base}/v3/Conversations/x/Participants"))).await,
        send(client.get(format!("{base}/v2/Conversations/{conversation}"))).await,
        send(
            client
                .post(format!("{base}/v1/Conversations/CH1/Participants"))
                .form(&[("Identity", "a")]),
        )
        .await,
    ];
    let wrong_method = [
        send(client.request(Method::DELETE, &v2_item)).await,
        send(client.post(&v2_item).json(&v2_body(&phone()))).await,
        send(client.get(format!("{base}{}", v2_path(&conversation)))).await,
        send(client.put(&v1_collection).form(&[("Identity", "a")])).await,
        send(client.post(format!("{base}/healthz"))).await,
    ];

    // Assert
    for answer in &not_found {
        assert_twilio_error(answer, 404, 20404);
    }
    for (answer, allow) in wrong_method
        .iter()
        .zip(["GET", "GET", "POST", "POST", "GET"])
    {
        assert_twilio_error(answer, 405, 405);
        assert!(
            answer.header("allow").is_some_and(|a| a.contains(allow)),
            "a 405 says what is allowed: {answer:?}"
        );
    }
}

#[tokio::test]
async fn conflicts_are_409_with_x_conflicting_resource_id_and_twilios_codes() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();
    let shared_phone = phone();
    let (service, channel) = (sid("IS"), sid("CH"));
    let (sms, proxy) = (phone(), phone());
    let first_v2 = post_v2(&client, &base, &conversation, &v2_body(&shared_phone)).await;
    let first_identity = post_v1(&client, &base, &service, &channel, &[("Identity", "ada")]).await;
    let binding = [
        ("MessagingBinding.Address", sms.as_str()),
        ("MessagingBinding.ProxyAddress", proxy.as_str()),
    ];
    let first_binding = post_v1(&client, &base, &service, &channel, &binding).await;
    let ids = [
        first_v2.expect_status(201).json()["id"].clone(),
        first_identity.expect_status(201).json()["sid"].clone(),
        first_binding.expect_status(201).json()["sid"].clone(),
    ];

    // Act
    let v2_again = post_v2(
        &client,
        &base,
        &conversation,
        &json!({"name": "someone else", "addresses": [{"channel": "SMS", "address": shared_phone}]}),
    )
    .await;
    let identity_again = post_v1(&client, &base, &service, &channel, &[("Identity", "ada")]).await;
    let binding_again = post_v1(&client, &base, &service, &channel, &binding).await;

    // Assert
    for ((answer, code), existing) in [
        (&v2_again, 50416),
        (&identity_again, 50433),
        (&binding_again, 50416),
    ]
    .into_iter()
    .zip(&ids)
    {
        assert_twilio_error(answer, 409, code);
        assert_eq!(
            answer.header("x-conflicting-resource-id"),
            existing.as_str(),
            "X-Conflicting-Resource-Id names the existing participant: {answer:?}"
        );
    }
}

#[tokio::test]
async fn unknown_participants_are_404_with_code_20404() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();
    let created = post_v2(&client, &base, &conversation, &v2_body(&phone())).await;
    let id = created.expect_status(201).json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (service, channel) = (sid("IS"), sid("CH"));
    let v1 = post_v1(&client, &base, &service, &channel, &[("Identity", "ada")]).await;
    let mb = v1.expect_status(201).json()["sid"]
        .as_str()
        .expect("sid")
        .to_owned();

    // Act
    let answers = [
        send(client.get(format!(
            "{base}{}/conv_participant_01m8b7a6yqrhp4et8761yqjt4y",
            v2_path(&conversation)
        )))
        .await,
        send(client.get(format!("{base}{}/{id}", v2_path(&conversation_id())))).await,
        send(client.get(format!(
            "{base}{}/{}",
            v1_path(&service, &channel),
            sid("MB")
        )))
        .await,
        send(client.get(format!("{base}{}/nobody", v1_path(&service, &channel)))).await,
        send(client.get(format!("{base}{}/{mb}", v1_path(&sid("IS"), &channel)))).await,
    ];

    // Assert
    for answer in &answers {
        assert_twilio_error(answer, 404, 20404);
    }
}

// ---------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn idempotency_key_replays_the_same_participant_created_once_and_refuses_another_body() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();
    let body = v2_body(&phone());
    let v2_url = format!("{base}{}", v2_path(&conversation));
    let v2_key = format!("key-{}", unique());
    let (service, channel) = (sid("IS"), sid("CH"));
    let v1_url = format!("{base}{}", v1_path(&service, &channel));
    let v1_key = format!("key-{}", unique());

    // Act
    let v2_first = send(
        client
            .post(&v2_url)
            .header("idempotency-key", &v2_key)
            .json(&body),
    )
    .await;
    let v2_second = send(
        client
            .post(&v2_url)
            .header("idempotency-key", &v2_key)
            .json(&body),
    )
    .await;
    let v2_other = send(
        client
            .post(&v2_url)
            .header("idempotency-key", &v2_key)
            .json(&v2_body(&phone())),
    )
    .await;
    let v2_no_key = post_v2(&client, &base, &conversation, &body).await;
    let v1_first = send(
        client
            .post(&v1_url)
            .header("idempotency-key", &v1_key)
            .form(&[("Identity", "ada")]),
    )
    .await;
    let v1_second = send(
        client
            .post(&v1_url)
            .header("idempotency-key", &v1_key)
            .form(&[("Identity", "ada")]),
    )
    .await;
    let v1_other = send(
        client
            .post(&v1_url)
            .header("idempotency-key", &v1_key)
            .form(&[("Identity", "bob")]),
    )
    .await;

    // Assert
    let v2_first = v2_first.expect_status(201).json();
    assert_eq!(
        v2_second.expect_status(201).json(),
        v2_first,
        "the same participant"
    );
    assert_twilio_error(&v2_other, 422, 20422);
    // Created once: the address is taken by that one participant, and only by it.
    assert_twilio_error(&v2_no_key, 409, 50416);
    assert_eq!(
        v2_no_key.header("x-conflicting-resource-id"),
        v2_first["id"].as_str()
    );
    let v1_first = v1_first.expect_status(201).json();
    assert_eq!(
        v1_second.expect_status(201).json(),
        v1_first,
        "the same participant"
    );
    assert_twilio_error(&v1_other, 422, 20422);
    let bob = send(client.get(format!("{v1_url}/bob"))).await;
    assert_twilio_error(&bob, 404, 20404);
}

#[tokio::test]
async fn x_twilio_webhook_enabled_must_be_true_or_false() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, channel) = (sid("IS"), sid("CH"));
    let url = format!("{base}{}", v1_path(&service, &channel));

    // Act / Assert
    for value in ["true", "false", "TRUE", "False"] {
        let identity = format!("user-{}", unique());
        let answer = send(
            client
                .post(&url)
                .header("x-twilio-webhook-enabled", value)
                .form(&[("Identity", identity.as_str())]),
        )
        .await;
        answer.expect_status(201);
    }
    // (Whitespace around a field value is not part of it, RFC 9110 5.5: "true " is "true".)
    for value in ["yes", "1", "", "on", "\"true\""] {
        let answer = send(
            client
                .post(&url)
                .header("x-twilio-webhook-enabled", value)
                .form(&[("Identity", "refused")]),
        )
        .await;
        assert_eq!(answer.status.as_u16(), 400, "{value:?}: {answer:?}");
        let body = assert_twilio_error(&answer, 400, 70002);
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("X-Twilio-Webhook-Enabled")),
            "{value:?}: {body}"
        );
    }
    let refused = send(client.get(format!("{url}/refused"))).await;
    assert_twilio_error(&refused, 404, 20404);
}

// ---------------------------------------------------------------------------------------
// REST and gRPC on the same data
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_v2_participant_created_over_rest_is_fetched_over_grpc_and_back() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();
    let phone = phone();
    let grpc_request = create_request();

    // Act
    let over_rest = post_v2(&client, &base, &conversation, &v2_body(&phone)).await;
    let over_rest = over_rest.expect_status(201).json();
    let id = over_rest["id"].as_str().expect("id");
    let via_grpc = app.fetch(&conversation, id).await.expect("gRPC fetch");
    let over_grpc = app.create(grpc_request.clone()).await.expect("gRPC create");
    let via_rest = send(client.get(format!(
        "{base}{}/{}",
        v2_path(&grpc_request.conversation_id),
        over_grpc.id
    )))
    .await;

    // Assert
    assert_eq!(via_grpc.id, id);
    assert_eq!(via_grpc.conversation_id, conversation);
    assert_eq!(via_grpc.name, "Ada Lovelace");
    assert_eq!(via_grpc.r#type, i32::from(ParticipantType::Customer));
    assert_eq!(via_grpc.addresses, vec![address(Channel::Sms, &phone)]);
    let created_at = via_grpc.created_at.expect("created_at");
    let rest_created = rfc3339(&over_rest["createdAt"]);
    assert_eq!(
        (created_at.seconds, created_at.nanos),
        (
            rest_created.timestamp(),
            rest_created.timestamp_subsec_nanos() as i32
        ),
        "the same instant on both fronts"
    );

    let via_rest = via_rest.expect_status(200).json();
    assert_eq!(via_rest["id"], json!(over_grpc.id));
    assert_eq!(
        via_rest["conversationId"],
        json!(grpc_request.conversation_id)
    );
    assert_eq!(via_rest["accountId"], json!(over_grpc.account_id));
    assert_eq!(via_rest["name"], json!(grpc_request.name));
    assert_eq!(via_rest["type"], json!("CUSTOMER"));
    assert_eq!(
        via_rest["addresses"],
        json!([{"channel": "SMS", "address": grpc_request.addresses[0].address}])
    );
    let grpc_created = over_grpc.created_at.expect("created_at");
    let rest_seen = rfc3339(&via_rest["createdAt"]);
    assert_eq!(
        (grpc_created.seconds, grpc_created.nanos),
        (
            rest_seen.timestamp(),
            rest_seen.timestamp_subsec_nanos() as i32
        )
    );
}

#[tokio::test]
async fn a_v1_participant_created_over_rest_is_fetched_over_grpc_and_back() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, channel) = (sid("IS"), sid("CH"));
    let grpc_request = CreateServiceParticipantRequest {
        attributes: r#"{"vip":true}"#.into(),
        ..create_v1_request()
    };

    // Act
    let over_rest = post_v1(
        &client,
        &base,
        &service,
        &channel,
        &[("Identity", "ada"), ("Attributes", r#"{"a":1}"#)],
    )
    .await;
    let over_rest = over_rest.expect_status(201).json();
    let mb = over_rest["sid"].as_str().expect("sid");
    let via_grpc = app
        .fetch_v1(&service, &channel, mb)
        .await
        .expect("gRPC fetch");
    let over_grpc = app
        .create_v1(grpc_request.clone())
        .await
        .expect("gRPC create");
    let via_rest = send(client.get(format!(
        "{base}{}/{}",
        v1_path(
            &grpc_request.chat_service_sid,
            &grpc_request.conversation_sid
        ),
        over_grpc.sid
    )))
    .await;

    // Assert
    assert_eq!(via_grpc.sid, mb);
    assert_eq!(via_grpc.identity, "ada");
    assert_eq!(via_grpc.attributes, r#"{"a":1}"#);
    assert_eq!(
        json!(via_grpc.url),
        over_rest["url"],
        "both fronts give the same url"
    );
    assert_eq!(
        via_grpc.date_created.expect("date_created").seconds,
        rfc3339(&over_rest["date_created"]).timestamp()
    );
    let via_rest = via_rest.expect_status(200).json();
    assert_eq!(via_rest["sid"], json!(over_grpc.sid));
    assert_eq!(via_rest["identity"], json!(grpc_request.identity));
    assert_eq!(via_rest["attributes"], json!(r#"{"vip":true}"#));
    assert_eq!(via_rest["url"], json!(over_grpc.url));
    assert_eq!(
        rfc3339(&via_rest["date_created"]).timestamp(),
        over_grpc.date_created.expect("date_created").seconds
    );
}

#[tokio::test]
async fn an_idempotency_key_used_over_rest_replays_the_same_participant_over_grpc() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let key = format!("cross-{}", unique());
    let request = CreateParticipantRequest {
        idempotency_key: key.clone(),
        ..create_request()
    };
    let body = json!({
        "name": request.name,
        "type": "CUSTOMER",
        "addresses": [{"channel": "SMS", "address": request.addresses[0].address}],
    });

    // Act
    let over_rest = send(
        client
            .post(format!("{base}{}", v2_path(&request.conversation_id)))
            .header("idempotency-key", &key)
            .json(&body),
    )
    .await;
    let over_grpc = app.create(request.clone()).await;

    // Assert
    let over_rest = over_rest.expect_status(201).json();
    let over_grpc = over_grpc.expect("the same key and request over gRPC replays");
    assert_eq!(
        json!(over_grpc.id),
        over_rest["id"],
        "one participant, created once"
    );
}

// ---------------------------------------------------------------------------------------
// Probes and the OpenAPI document
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn healthz_and_readyz_answer_200_serving() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());

    // Act
    let healthz = send(client.get(format!("{base}/healthz"))).await;
    let readyz = send(client.get(format!("{base}/readyz"))).await;

    // Assert
    assert_eq!(
        healthz.expect_status(200).json(),
        json!({"status": "SERVING"})
    );
    assert_eq!(
        readyz.expect_status(200).json(),
        json!({"status": "SERVING"})
    );
}

#[tokio::test]
async fn readyz_turns_503_while_draining_and_healthz_stays_200() {
    // Arrange
    let app = spawn_app_configured(|c| c.drain_delay = Duration::from_millis(1500)).await;
    let (base, client) = (base_url(&app), http_client());
    send(client.get(format!("{base}/readyz")))
        .await
        .expect_status(200);

    // Act: shut down; the server keeps answering for the drain delay.
    let stopping = tokio::spawn(app.stop());
    let mut readyz = None;
    for _ in 0..50 {
        let answer = send(client.get(format!("{base}/readyz"))).await;
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            readyz = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let healthz = send(client.get(format!("{base}/healthz"))).await;
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("the server stops")
        .expect("stop does not panic");

    // Assert
    let readyz = readyz.expect("/readyz answered 503 within 1 s of the shutdown request");
    assert_eq!(readyz.json(), json!({"status": "NOT_SERVING"}));
    assert_eq!(
        healthz.expect_status(200).json(),
        json!({"status": "SERVING"})
    );
}

#[tokio::test]
async fn openapi_json_is_openapi_3_1_and_documents_the_four_routes() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let doc = openapi_document(&app).await;

    // Assert
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1: {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = &doc["paths"];
    let v2 = "/v2/Conversations/{ConversationSid}/Participants";
    let v1 = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants";
    for (path, method, request_type, success) in [
        (v2.to_owned(), "post", Some("application/json"), "201"),
        (format!("{v2}/{{Sid}}"), "get", None, "200"),
        (
            v1.to_owned(),
            "post",
            Some("application/x-www-form-urlencoded"),
            "201",
        ),
        (format!("{v1}/{{Sid}}"), "get", None, "200"),
    ] {
        let operation = &paths[&path][method];
        assert!(
            operation.is_object(),
            "{method} {path} documented: {}",
            doc["paths"]
        );
        assert!(
            operation["responses"][success].is_object(),
            "{method} {path} answers {success}"
        );
        assert!(
            operation["responses"]["404"].is_object() || operation["responses"]["400"].is_object(),
            "{method} {path} documents its errors"
        );
        if let Some(content_type) = request_type {
            assert!(
                operation["requestBody"]["content"][content_type].is_object(),
                "{method} {path} takes {content_type}"
            );
        }
    }
    for probe in ["/healthz", "/readyz"] {
        assert!(paths[probe]["get"].is_object(), "{probe} documented");
    }
    assert!(doc["components"]["schemas"]["TwilioErrorBody"].is_object());
}

// ---------------------------------------------------------------------------------------
// Twilio mode: the REST front over the twilio backend and a loopback upstream
// ---------------------------------------------------------------------------------------

/// A v2 participant as Twilio answers it, with a field this build does not know.
fn twilio_v2_participant(id: &str, conversation: &str, phone: &str) -> Value {
    json!({
        "id": id,
        "conversationId": conversation,
        "accountId": "AC11111111111111111111111111111111",
        "name": "Ada Lovelace",
        "type": "CUSTOMER",
        "profileId": "mem_profile_01h2xcejqtf2nbrexx3vqjhp41",
        "addresses": [{"channel": "SMS", "address": phone}],
        "createdAt": "2026-01-02T03:04:05.678Z",
        "updatedAt": "2026-01-02T03:04:06Z",
        "somethingNew": {"x": 1},
    })
}

#[tokio::test]
async fn twilio_mode_v2_rest_calls_pass_through_with_the_mapping_intact() {
    // Arrange
    let upstream = MockServer::start().await;
    let conversation = conversation_id();
    let phone = phone();
    let id = "conv_participant_01m8b7a6yqrhp4et8761yqjt4y";
    let body = json!({
        "name": "Ada Lovelace",
        "type": "CUSTOMER",
        "profileId": "mem_profile_01h2xcejqtf2nbrexx3vqjhp41",
        "addresses": [{"channel": "SMS", "address": phone}],
    });
    Mock::given(method("POST"))
        .and(path(v2_path(&conversation)))
        .and(header(
            "idempotency-key",
            "01890a5d-aa0f-7c80-b8e6-000000000001",
        ))
        .and(body_json(&body))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(twilio_v2_participant(
                id,
                &conversation,
                &phone,
            )),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{}/{id}", v2_path(&conversation))))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(twilio_v2_participant(
                id,
                &conversation,
                &phone,
            )),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let app = spawn_twilio_app(&upstream.uri(), |_| {}).await;
    let (base, client) = (base_url(&app), http_client());

    // Act
    let created = send(
        client
            .post(format!("{base}{}", v2_path(&conversation)))
            .header("idempotency-key", "01890a5d-aa0f-7c80-b8e6-000000000001")
            .json(&body),
    )
    .await;
    let fetched = send(client.get(format!("{base}{}/{id}", v2_path(&conversation)))).await;

    // Assert
    let expected = json!({
        "id": id,
        "conversationId": conversation,
        "accountId": "AC11111111111111111111111111111111",
        "name": "Ada Lovelace",
        "type": "CUSTOMER",
        "profileId": "mem_profile_01h2xcejqtf2nbrexx3vqjhp41",
        "addresses": [{"channel": "SMS", "address": phone}],
        "createdAt": "2026-01-02T03:04:05.678Z",
        "updatedAt": "2026-01-02T03:04:06Z",
    });
    assert_eq!(created.expect_status(201).json(), expected);
    assert_eq!(fetched.expect_status(200).json(), expected);
    let posts = received(&upstream, "/Participants").await;
    assert_eq!(posts.len(), 1, "one upstream create");
    assert!(
        posts[0]
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json")),
        "v2 goes upstream as JSON: {:?}",
        posts[0].headers
    );
}

#[tokio::test]
async fn twilio_mode_v1_rest_calls_pass_through_with_the_mapping_intact() {
    // Arrange
    let upstream = MockServer::start().await;
    let (service, channel) = (sid("IS"), sid("CH"));
    let mb = sid("MB");
    let role = sid("RL");
    let twilio_answer = json!({
        "account_sid": "AC11111111111111111111111111111111",
        "chat_service_sid": service,
        "conversation_sid": channel,
        "sid": mb,
        "identity": "ada",
        "attributes": "{\"a\":1}",
        "messaging_binding": null,
        "role_sid": role,
        "date_created": "2015-12-16T22:18:37Z",
        "date_updated": "2015-12-16T22:18:38Z",
        "url": format!("https://conversations.twilio.com/v1/Services/{service}/Conversations/{channel}/Participants/{mb}"),
        "last_read_message_index": null,
        "last_read_timestamp": null,
        "links": {},
    });
    Mock::given(method("POST"))
        .and(path(v1_path(&service, &channel)))
        .and(header("x-twilio-webhook-enabled", "true"))
        .and(header(
            "idempotency-key",
            "01890a5d-aa0f-7c80-b8e6-0000000000a1",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(&twilio_answer))
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{}/{mb}", v1_path(&service, &channel))))
        .respond_with(ResponseTemplate::new(200).set_body_json(&twilio_answer))
        .expect(1)
        .mount(&upstream)
        .await;
    let app = spawn_twilio_app(&upstream.uri(), |_| {}).await;
    let (base, client) = (base_url(&app), http_client());

    // Act
    let created = send(
        client
            .post(format!("{base}{}", v1_path(&service, &channel)))
            .header("x-twilio-webhook-enabled", "true")
            .header("idempotency-key", "01890a5d-aa0f-7c80-b8e6-0000000000a1")
            .form(&[
                ("Identity", "ada"),
                ("Attributes", "{\"a\":1}"),
                ("RoleSid", role.as_str()),
                ("DateCreated", "2015-12-16T22:18:37Z"),
            ]),
    )
    .await;
    let fetched = send(client.get(format!("{base}{}/{mb}", v1_path(&service, &channel)))).await;

    // Assert
    let created = created.expect_status(201).json();
    assert_eq!(created["sid"], json!(mb));
    assert_eq!(
        created["account_sid"],
        json!("AC11111111111111111111111111111111")
    );
    assert_eq!(created["identity"], json!("ada"));
    assert_eq!(created["attributes"], json!("{\"a\":1}"));
    assert_eq!(created["role_sid"], json!(role));
    assert_eq!(created["date_created"], json!("2015-12-16T22:18:37Z"));
    assert_eq!(created["date_updated"], json!("2015-12-16T22:18:38Z"));
    assert_eq!(created["messaging_binding"], Value::Null);
    assert_eq!(created["last_read_message_index"], Value::Null);
    assert_eq!(
        created["url"],
        json!(format!(
            "http://{}/v1/Services/{service}/Conversations/{channel}/Participants/{mb}",
            app.addr
        )),
        "url points back at the facade"
    );
    assert_eq!(keys(&created), expected_keys(&V1_KEYS));
    assert_eq!(fetched.expect_status(200).json(), created);
    let posts: Vec<Request> = received(&upstream, "/Participants")
        .await
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::POST)
        .collect();
    assert_eq!(posts.len(), 1, "one upstream create");
    let form = parse_form(&posts[0].body);
    let expected: BTreeSet<(String, String)> = [
        ("Identity", "ada"),
        ("Attributes", "{\"a\":1}"),
        ("RoleSid", role.as_str()),
        ("DateCreated", "2015-12-16T22:18:37Z"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(form, expected, "v1 goes upstream as Twilio's form fields");
}

#[tokio::test]
async fn twilio_mode_upstream_errors_keep_their_status_code_and_headers_on_rest() {
    // Arrange
    let upstream = MockServer::start().await;
    let conversation = conversation_id();
    let existing = "conv_participant_01m8b7amrd1kj5jte30345xsfg";
    Mock::given(method("GET"))
        .and(path(format!(
            "{}/conv_participant_01m8b7a6yqrhp4et8761yqjt4y",
            v2_path(&conversation)
        )))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "code": 20404,
            "message": "The requested resource was not found",
            "more_info": "https://www.twilio.com/docs/errors/20404",
            "status": 404,
        })))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path(v2_path(&conversation)))
        .respond_with(
            ResponseTemplate::new(409)
                .insert_header("X-Conflicting-Resource-Id", existing)
                .set_body_json(json!({
                    "code": 50416,
                    "message": "Participant already exists",
                    "more_info": "https://www.twilio.com/docs/errors/50416",
                    "status": 409,
                })),
        )
        .mount(&upstream)
        .await;
    let app = spawn_twilio_app(&upstream.uri(), |_| {}).await;
    let (base, client) = (base_url(&app), http_client());

    // Act
    let missing = send(client.get(format!(
        "{base}{}/conv_participant_01m8b7a6yqrhp4et8761yqjt4y",
        v2_path(&conversation)
    )))
    .await;
    let conflict = post_v2(&client, &base, &conversation, &v2_body(&phone())).await;

    // Assert
    let body = assert_twilio_error(&missing, 404, 20404);
    assert_eq!(
        body["message"],
        json!("The requested resource was not found")
    );
    assert_eq!(
        body["more_info"],
        json!("https://www.twilio.com/docs/errors/20404")
    );
    let body = assert_twilio_error(&conflict, 409, 50416);
    assert_eq!(body["message"], json!("Participant already exists"));
    assert_eq!(conflict.header("x-conflicting-resource-id"), Some(existing));
}

#[tokio::test]
async fn twilio_mode_throttling_keeps_retry_after_and_a_slow_upstream_is_504() {
    // Arrange
    let upstream = MockServer::start().await;
    let (service, channel) = (sid("IS"), sid("CH"));
    let (throttled, slow) = (sid("MB"), sid("MB"));
    Mock::given(method("GET"))
        .and(path(format!("{}/{throttled}", v1_path(&service, &channel))))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .set_body_json(json!({
                    "code": 20429,
                    "message": "Too Many Requests",
                    "more_info": "https://www.twilio.com/docs/errors/20429",
                    "status": 429,
                })),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{}/{slow}", v1_path(&service, &channel))))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&upstream)
        .await;
    let app = spawn_twilio_app(&upstream.uri(), |c| {
        c.request_timeout = Duration::from_millis(300);
    })
    .await;
    let (base, client) = (base_url(&app), http_client());

    // Act
    let started = std::time::Instant::now();
    let throttled =
        send(client.get(format!("{base}{}/{throttled}", v1_path(&service, &channel)))).await;
    let slow = send(client.get(format!("{base}{}/{slow}", v1_path(&service, &channel)))).await;
    let elapsed = started.elapsed();

    // Assert
    assert_twilio_error(&throttled, 429, 20429);
    assert_eq!(throttled.header("retry-after"), Some("30"), "{throttled:?}");
    assert_twilio_error(&slow, 504, 504);
    assert!(
        elapsed < Duration::from_secs(3),
        "the deadline cut the call short: {elapsed:?}"
    );
}

#[tokio::test]
async fn twilio_mode_readyz_is_503_while_the_circuit_breaker_is_open() {
    // Arrange
    let upstream = MockServer::start().await;
    let conversation = conversation_id();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "code": 20500,
            "message": "Internal Server Error",
            "more_info": "https://www.twilio.com/docs/errors/20500",
            "status": 500,
        })))
        .mount(&upstream)
        .await;
    let app = spawn_twilio_app(&upstream.uri(), |c| {
        c.upstream_max_attempts = 1;
        c.upstream_breaker_failures = 1;
        c.upstream_breaker_cooldown = Duration::from_secs(30);
    })
    .await;
    let (base, client) = (base_url(&app), http_client());
    let url = format!(
        "{base}{}/conv_participant_01m8b7a6yqrhp4et8761yqjt4y",
        v2_path(&conversation)
    );
    let ready_before = send(client.get(format!("{base}/readyz"))).await;

    // Act
    let failed = send(client.get(&url)).await;
    let refused = send(client.get(&url)).await;
    let ready_after = send(client.get(format!("{base}/readyz"))).await;
    let live_after = send(client.get(format!("{base}/healthz"))).await;

    // Assert
    ready_before.expect_status(200);
    assert_twilio_error(&failed, 500, 20500);
    assert_twilio_error(&refused, 503, 20503);
    assert!(
        refused
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| (1..=30).contains(&s)),
        "{refused:?}"
    );
    assert_eq!(
        ready_after.expect_status(503).json(),
        json!({"status": "NOT_SERVING"})
    );
    live_after.expect_status(200);
    assert_eq!(
        received(&upstream, "").await.len(),
        1,
        "the open breaker sent nothing more"
    );
}
