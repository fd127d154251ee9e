//! Request headers of Twilio's API: `Idempotency-Key` replays the participant created once
//! and refuses another body (also across REST and gRPC), and `X-Twilio-Webhook-Enabled`
//! must be `true` or `false`.

use participants_facade::proto::CreateParticipantRequest;
use serde_json::json;

use super::*;

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
