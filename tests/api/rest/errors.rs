//! Error classes on the REST front, each with its status and Twilio's error body (never an
//! empty body): 400/70002 naming the fields, malformed bodies, 415, 413, unknown routes
//! (404/20404) and wrong methods (405 with `Allow`), conflicts (409 with
//! `X-Conflicting-Resource-Id`), unknown participants.

use reqwest::Method;
use serde_json::json;

use super::*;

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
    let app = spawn_app_configured(|c| c.server.max_message_bytes = 2048).await;
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
        send(client.patch(format!("{base}{}", v2_path(&conversation)))).await,
        send(client.put(&v1_collection).form(&[("Identity", "a")])).await,
        send(client.patch(format!("{v1_collection}/{}", sid("MB")))).await,
        send(client.post(format!("{base}/healthz"))).await,
    ];

    // Assert
    for answer in &not_found {
        assert_twilio_error(answer, 404, 20404);
    }
    for (answer, allow) in wrong_method
        .iter()
        .zip(["GET", "PUT", "POST", "POST", "DELETE", "GET"])
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
