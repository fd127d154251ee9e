//! Twilio mode: the REST front over the twilio backend and a loopback upstream (wiremock).
//! v2 and v1 calls pass through with the mapping intact (bodies, headers, forms, `url`
//! pointing back at the facade); upstream errors keep their status, code and headers;
//! throttling keeps `Retry-After`, a slow upstream is 504; `/readyz` is 503 while the
//! circuit breaker is open.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;

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
        // Twilio's fractional seconds are read, and written back as Twilio writes dates.
        "createdAt": "2026-01-02T03:04:05Z",
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
        c.server.request_timeout = Duration::from_millis(300);
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
        c.upstream.max_attempts = 1;
        c.upstream.breaker_failures = 1;
        c.upstream.breaker_cooldown = Duration::from_secs(30);
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
