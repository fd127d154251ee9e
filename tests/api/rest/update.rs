//! The update routes: v2 `PUT` (JSON: the keys present change, null clears, absent keeps)
//! and v1 `POST .../Participants/{Sid}` (form: the fields present change; `null` clears a
//! binding address); refusals with Twilio's error body.

use serde_json::{Value, json};

use super::*;

/// A v2 participant with every field set; returns its JSON.
async fn full_v2(client: &reqwest::Client, base: &str, conversation: &str) -> Value {
    let body = json!({
        "name": "Grace Hopper",
        "type": "HUMAN_AGENT",
        "profileId": "mem_profile_01h2xcejqtf2nbrexx3vqjhp41",
        "addresses": [{"channel": "SMS", "address": phone()}],
    });
    post_v2(client, base, conversation, &body)
        .await
        .expect_status(201)
        .json()
}

#[tokio::test]
async fn v2_put_changes_the_keys_present_clears_nulls_and_keeps_the_rest() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();
    let new_phone = phone();
    // (body, the fields expected to change, to what)
    let steps = [
        (
            json!({"name": "Amazing Grace"}),
            json!({"name": "Amazing Grace"}),
        ),
        (json!({"profileId": null}), json!({"profileId": null})),
        (
            json!({"type": "AGENT", "name": null}),
            json!({"type": "AGENT", "name": null}),
        ),
        (json!({"type": null}), json!({"type": null})),
        (
            json!({"addresses": [{"channel": "SMS", "address": new_phone}]}),
            json!({"addresses": [{"channel": "SMS", "address": new_phone}]}),
        ),
    ];
    let mut expected = full_v2(&client, &base, &conversation).await;
    let id = expected["id"].as_str().expect("id").to_owned();

    for (body, changes) in steps {
        // Act
        let answer = put_v2(&client, &base, &conversation, &id, &body).await;

        // Assert: the changed fields, and every other field as it was.
        let updated = answer.expect_status(200).json();
        for (field, value) in changes.as_object().expect("changes") {
            expected[field] = value.clone();
        }
        assert_eq!(keys(&updated), expected_keys(&V2_KEYS), "{updated}");
        for field in V2_KEYS.iter().filter(|f| **f != "updatedAt") {
            assert_eq!(updated[field], expected[field], "{field} after {body}");
        }
        assert!(
            rfc3339(&updated["updatedAt"]) >= rfc3339(&expected["updatedAt"]),
            "updatedAt moves forward: {updated}"
        );
        expected = updated;
    }
    let fetched = send(client.get(format!("{base}{}", v2_fetch_path(&conversation, &id)))).await;
    assert_eq!(
        fetched.expect_status(200).json(),
        expected,
        "the update is kept"
    );
}

#[tokio::test]
async fn v2_put_refusals_are_twilios_error_body() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();
    let created = full_v2(&client, &base, &conversation).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let other = full_v2(&client, &base, &conversation).await;
    let taken = other["addresses"][0]["address"].clone();
    // (body, status, Twilio code, text the message must hold)
    let cases = [
        (json!({}), 400, 70002, "no field"),
        (json!({"addresses": null}), 400, 70002, "addresses"),
        (json!({"addresses": []}), 400, 70002, "addresses"),
        (json!({"type": "SUPERVISOR"}), 400, 70002, "type"),
        (json!({"name": 5}), 400, 70002, "`name`"),
        (
            json!({"profileID": "mem_x"}),
            400,
            70002,
            "not part of this resource",
        ),
        (
            json!({"addresses": [{"channel": "SMS", "address": taken}]}),
            409,
            50416,
            "",
        ),
    ];

    for (body, status, code, text) in cases {
        // Act
        let answer = put_v2(&client, &base, &conversation, &id, &body).await;

        // Assert
        let error = assert_twilio_error(&answer, status, code);
        assert!(
            error["message"].as_str().is_some_and(|m| m.contains(text)),
            "{body}: {error}"
        );
    }
    let missing = put_v2(
        &client,
        &base,
        &conversation,
        &participant_id(),
        &json!({"name": "x"}),
    )
    .await;
    assert_twilio_error(&missing, 404, 20404);
    let as_form = send(
        client
            .put(format!("{base}{}", v2_fetch_path(&conversation, &id)))
            .form(&[("name", "x")]),
    )
    .await;
    assert_twilio_error(&as_form, 415, 415);
    let fetched = send(client.get(format!("{base}{}", v2_fetch_path(&conversation, &id)))).await;
    assert_eq!(
        fetched.expect_status(200).json(),
        created,
        "nothing changed"
    );
}

#[tokio::test]
async fn v1_update_changes_the_fields_present_and_keeps_the_rest() {
    // Arrange: a chat participant with a projected address.
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, conversation) = (sid("IS"), sid("CH"));
    let identity = format!("user-{}", unique());
    let (role, new_role) = (sid("RL"), sid("RL"));
    let projected = phone();
    let created = post_v1(
        &client,
        &base,
        &service,
        &conversation,
        &[
            ("Identity", identity.as_str()),
            ("Attributes", r#"{"a":1}"#),
            ("RoleSid", role.as_str()),
            ("MessagingBinding.ProjectedAddress", projected.as_str()),
        ],
    )
    .await
    .expect_status(201)
    .json();
    let mb = created["sid"].as_str().expect("sid").to_owned();

    // Act: by sid, then by identity.
    let first = post_v1_update(
        &client,
        &base,
        &service,
        &conversation,
        &mb,
        &[
            ("RoleSid", new_role.as_str()),
            ("LastReadMessageIndex", "4"),
            ("LastReadTimestamp", "2026-01-02T03:04:05Z"),
            ("DateUpdated", "2026-01-02T03:04:05Z"),
        ],
    )
    .await
    .expect_status(200)
    .json();
    let second = post_v1_update(
        &client,
        &base,
        &service,
        &conversation,
        &identity,
        &[
            ("MessagingBinding.ProjectedAddress", "null"),
            ("LastReadMessageIndex", "null"),
            ("Attributes", ""),
        ],
    )
    .await
    .expect_status(200)
    .json();
    let fetched = send(client.get(format!(
        "{base}{}",
        v1_fetch_path(&service, &conversation, &mb)
    )))
    .await
    .expect_status(200)
    .json();

    // Assert
    assert_eq!(keys(&first), expected_keys(&V1_KEYS), "{first}");
    assert_eq!(first["role_sid"], json!(new_role));
    assert_eq!(first["last_read_message_index"], json!(4));
    assert_eq!(first["last_read_timestamp"], json!("2026-01-02T03:04:05Z"));
    assert_eq!(first["date_updated"], json!("2026-01-02T03:04:05Z"));
    for kept in [
        "sid",
        "identity",
        "attributes",
        "messaging_binding",
        "date_created",
        "url",
    ] {
        assert_eq!(first[kept], created[kept], "{kept} kept: {first}");
    }
    assert_eq!(
        second["messaging_binding"],
        Value::Null,
        "`null` clears the projected address: {second}"
    );
    assert_eq!(second["last_read_message_index"], Value::Null);
    assert_eq!(
        second["attributes"],
        json!("{}"),
        "empty attributes are {{}}"
    );
    assert_eq!(second["role_sid"], json!(new_role), "kept");
    assert_eq!(second["last_read_timestamp"], first["last_read_timestamp"]);
    assert_eq!(fetched, second, "the update is kept");
}

#[tokio::test]
async fn v1_update_null_clears_the_proxy_address_and_a_new_one_replaces_it() {
    // Arrange: an SMS participant (address and proxy address).
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, conversation) = (sid("IS"), sid("CH"));
    let (address, proxy, new_proxy) = (phone(), phone(), phone());
    let created = post_v1(
        &client,
        &base,
        &service,
        &conversation,
        &[
            ("MessagingBinding.Address", address.as_str()),
            ("MessagingBinding.ProxyAddress", proxy.as_str()),
        ],
    )
    .await
    .expect_status(201)
    .json();
    let mb = created["sid"].as_str().expect("sid").to_owned();
    let update = |form: Vec<(&'static str, String)>| {
        let (client, base, service, conversation, mb) = (
            client.clone(),
            base.clone(),
            service.clone(),
            conversation.clone(),
            mb.clone(),
        );
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_v1_update(&client, &base, &service, &conversation, &mb, &form).await
        }
    };

    // Act
    let replaced = update(vec![("MessagingBinding.ProxyAddress", new_proxy.clone())]).await;
    // `null` is read as "clear", not as an address: an SMS participant without a proxy
    // address is then refused for the pair, not for the text.
    let cleared = update(vec![("MessagingBinding.ProxyAddress", "null".into())]).await;
    let not_a_number = update(vec![("MessagingBinding.ProxyAddress", "nil".into())]).await;

    // Assert
    let replaced = replaced.expect_status(200).json();
    assert_eq!(
        replaced["messaging_binding"],
        json!({"type": "sms", "address": address, "proxy_address": new_proxy})
    );
    let cleared = assert_twilio_error(&cleared, 400, 70002);
    let message = cleared["message"].as_str().expect("message");
    assert!(
        message.contains("messaging_binding.proxy_address") && message.contains("required"),
        "{message}"
    );
    let refused = assert_twilio_error(&not_a_number, 400, 70002);
    assert!(
        !refused["message"]
            .as_str()
            .expect("message")
            .contains("nil"),
        "{refused}"
    );
}

#[tokio::test]
async fn v1_update_refusals_are_twilios_error_body_and_webhooks_header_is_checked() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, conversation) = (sid("IS"), sid("CH"));
    let identity = format!("user-{}", unique());
    let other = format!("user-{}", unique());
    post_v1(
        &client,
        &base,
        &service,
        &conversation,
        &[("Identity", &other)],
    )
    .await
    .expect_status(201);
    let created = post_v1(
        &client,
        &base,
        &service,
        &conversation,
        &[("Identity", &identity)],
    )
    .await
    .expect_status(201)
    .json();
    let mb = created["sid"].as_str().expect("sid").to_owned();
    // (form, status, code, text the message holds)
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, u64, &'a str);
    let cases: [Case; 8] = [
        (&[], 400, 70002, "no field"),
        (&[("Bogus", "1")], 400, 70002, "not part of this resource"),
        (
            &[("MessagingBinding.Address", "+18005550100")],
            400,
            70002,
            "not part of this resource",
        ),
        (&[("RoleSid", "RLnope")], 400, 70002, "role_sid"),
        (
            &[("LastReadMessageIndex", "-1")],
            400,
            70002,
            "last_read_message_index",
        ),
        (
            &[("LastReadMessageIndex", "four")],
            400,
            70002,
            "last_read_message_index",
        ),
        (&[("DateCreated", "yesterday")], 400, 70002, "date_created"),
        (&[("Identity", other.as_str())], 409, 50433, ""),
    ];

    for (form, status, code, text) in cases {
        // Act
        let answer = post_v1_update(&client, &base, &service, &conversation, &mb, form).await;

        // Assert
        let error = assert_twilio_error(&answer, status, code);
        let message = error["message"].as_str().expect("message");
        assert!(message.contains(text), "{form:?}: {message}");
        assert!(
            !message.contains("four") && !message.contains("yesterday"),
            "{message}"
        );
    }
    let missing = post_v1_update(
        &client,
        &base,
        &service,
        &conversation,
        &sid("MB"),
        &[("Attributes", "{}")],
    )
    .await;
    assert_twilio_error(&missing, 404, 20404);
    let bad_header = send(
        client
            .post(format!(
                "{base}{}",
                v1_fetch_path(&service, &conversation, &mb)
            ))
            .header("x-twilio-webhook-enabled", "maybe")
            .form(&[("Attributes", "{}")]),
    )
    .await;
    assert_twilio_error(&bad_header, 400, 70002);
    let as_json = send(
        client
            .post(format!(
                "{base}{}",
                v1_fetch_path(&service, &conversation, &mb)
            ))
            .json(&json!({"Attributes": "{}"})),
    )
    .await;
    assert_twilio_error(&as_json, 415, 415);
    let with_header = send(
        client
            .post(format!(
                "{base}{}",
                v1_fetch_path(&service, &conversation, &mb)
            ))
            .header("x-twilio-webhook-enabled", "true")
            .form(&[("Attributes", r#"{"b":2}"#)]),
    )
    .await;
    assert_eq!(
        with_header.expect_status(200).json()["attributes"],
        json!(r#"{"b":2}"#)
    );
}
