//! Bytes that are not what they claim: invalid UTF-8 in a form, a path or an
//! `Idempotency-Key` is refused with 400, never replaced by U+FFFD (two different inputs
//! would collide); and a refused value never comes back in the error or reaches a log:
//! the error names the field and the expected type only.

use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::fixtures::*;

/// Twilio's "invalid parameter" on REST.
const INVALID: u64 = 70002;

async fn post_form(url: &str, body: &'static str) -> Answer {
    send(
        http_client()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

fn message(body: &Value) -> String {
    body["message"]
        .as_str()
        .expect("message is text")
        .to_owned()
}

#[tokio::test]
async fn invalid_utf8_in_a_v1_form_is_400_naming_the_field_and_stores_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (service, conversation) = (sid("IS"), sid("CH"));
    let url = format!("{}{}", base_url(&app), v1_path(&service, &conversation));
    let cases: [(&'static str, &str); 4] = [
        ("Identity=%FF%FE", "Identity"),
        (
            "Identity=ada&Attributes=%7B%22a%22%3A%22%C3%22%7D",
            "Attributes",
        ),
        (
            "MessagingBinding.Address=%2B1800555%E0%80%AF0199",
            "MessagingBinding.Address",
        ),
        ("Identity=ada&%FF%FE=1", "field name"),
    ];

    for (body, field) in cases {
        // Act
        let answer = post_form(&url, body).await;

        // Assert
        let error = assert_twilio_error(&answer, 400, INVALID);
        let text = message(&error);
        assert!(text.contains("UTF-8"), "{body}: says why: {text}");
        if field != "field name" {
            assert!(text.contains(field), "{body}: names {field}: {text}");
        }
        assert!(
            !text.contains('\u{FFFD}'),
            "{body}: nothing replaced: {text}"
        );
    }
    // U+FFFD itself, sent as valid UTF-8, is a value like any other; the invalid bytes
    // above did not become it.
    let stored = post_form(&url, "Identity=%EF%BF%BD").await;
    stored.expect_status(201);
    assert_eq!(stored.json()["identity"], json!("\u{FFFD}"));
    let list = app
        .fetch_v1(
            &service,
            &conversation,
            stored.json()["sid"].as_str().unwrap(),
        )
        .await
        .expect("the one participant created");
    assert_eq!(list.identity, "\u{FFFD}");
    app.stop().await;
}

#[tokio::test]
async fn json_type_errors_name_the_field_and_type_without_echoing_the_value() {
    // Arrange
    let app = spawn_app().await;
    let url = format!("{}{}", base_url(&app), v2_path(&conversation_id()));
    let secret_phone = "+18005550199";
    let secret_mail = "ada.lovelace@example.com";
    let cases: Vec<(Value, &str)> = vec![
        (json!({"addresses": secret_phone}), "addresses"),
        (
            json!({"addresses": [{"channel": "SMS", "address": 18005550199_u64}]}),
            "addresses[0].address",
        ),
        (
            json!({"addresses": [{"channel": ["EMAIL"], "address": secret_mail}]}),
            "addresses[0].channel",
        ),
        (
            json!({"name": {"first": "Ada Lovelace"}, "addresses": []}),
            "name",
        ),
        (json!({"type": 7, "name": secret_mail}), "type"),
    ];

    for (body, field) in cases {
        // Act
        let answer = send(http_client().post(&url).json(&body)).await;

        // Assert
        let error = assert_twilio_error(&answer, 400, INVALID);
        let text = message(&error);
        assert!(text.contains(field), "{body}: names {field}: {text}");
        assert!(
            text.contains("expected"),
            "{body}: says what was expected: {text}"
        );
        for value in [secret_phone, "18005550199", secret_mail, "Ada", "EMAIL"] {
            assert!(
                !answer.text.contains(value),
                "{body}: echoes {value}: {text}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_says_where_without_echoing_the_bytes() {
    let app = spawn_app().await;
    let url = format!("{}{}", base_url(&app), v2_path(&conversation_id()));
    for (body, says) in [
        (
            "{\"addresses\": [{\"address\": \"+18005550199\"",
            "ends before",
        ),
        (
            "{\"name\": \"Ada Lovelace\"} {\"name\": \"Ada Lovelace\"}",
            "line 1, column",
        ),
        ("{\"name\": \"Ada \\x Lovelace\"}", "line 1, column"),
    ] {
        let answer = send(
            http_client()
                .post(&url)
                .header("content-type", "application/json")
                .body(body),
        )
        .await;

        let error = assert_twilio_error(&answer, 400, INVALID);
        let text = message(&error);
        assert!(text.contains(says), "{body}: says {says:?}: {text}");
        for value in ["18005550199", "Ada", "Lovelace"] {
            assert!(
                !answer.text.contains(value),
                "{body}: echoes {value}: {text}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn invalid_utf8_in_an_idempotency_key_or_a_path_is_400() {
    // Arrange
    let app = spawn_app().await;
    let base = base_url(&app);
    let conversation = conversation_id();
    let key = HeaderValue::from_bytes(b"key-\xff\xfe").expect("obs-text is a header value");

    // Act
    let keyed = send(
        http_client()
            .post(format!("{base}{}", v2_path(&conversation)))
            .header("idempotency-key", key)
            .json(&v2_body(&phone())),
    )
    .await;
    let path = send(http_client().get(format!(
        "{base}/v2/Conversations/{conversation}/Participants/conv_participant_%FF%FE"
    )))
    .await;

    // Assert
    let error = assert_twilio_error(&keyed, 400, INVALID);
    assert!(message(&error).contains("Idempotency-Key"), "{error}");
    let error = assert_twilio_error(&path, 400, INVALID);
    assert!(message(&error).contains("UTF-8"), "{error}");
    assert!(!path.text.contains('\u{FFFD}'), "{error}");
    app.stop().await;
}

#[tokio::test]
async fn a_refused_value_never_reaches_the_log() {
    // Arrange: the real binary, logging every request at debug.
    let dir = tempfile::tempdir().expect("temp dir");
    let server =
        ChildServer::start_with_env(&dir.path().join("data"), &[], &[("RUST_LOG", "debug")]).await;
    let base = format!("http://{}", server.addr);
    let url = format!("{base}{}", v2_path(&conversation_id()));
    let (phone, mail) = ("+18005550123", "grace.hopper@example.com");

    // Act
    let typed = send(http_client().post(&url).json(&json!({
        "name": ["Grace Hopper"],
        "addresses": [{"channel": "EMAIL", "address": mail}],
    })))
    .await;
    let shaped = send(http_client().post(&url).json(&json!({"addresses": phone}))).await;
    let form = send(
        http_client()
            .post(format!("{base}{}", v1_path(&sid("IS"), &sid("CH"))))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "Identity=Grace%20Hopper&MessagingBinding.Address={phone}&X=%FF"
            )),
    )
    .await;

    // Assert
    for answer in [&typed, &shaped, &form] {
        assert_twilio_error(answer, 400, INVALID);
    }
    let logs = server.logs();
    assert!(logs.contains("400"), "the refusals were logged: {logs}");
    for value in [phone, "18005550123", mail, "Grace", "Hopper"] {
        assert!(!logs.contains(value), "the log holds {value}:\n{logs}");
    }
}
