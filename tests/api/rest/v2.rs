//! The v2 routes (JSON, camelCase): a create is 201 and its fetch 200 over HTTP/1.1 and
//! HTTP/2, with every field in Twilio's shape; and a participant created over REST is the
//! one gRPC fetches, and back.

use chrono::Utc;
use participants_facade::proto::{Channel, ParticipantType};
use serde_json::json;

use super::*;

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
    // REST writes whole seconds, as Twilio does; gRPC keeps the milliseconds.
    assert_eq!(
        (created_at.seconds, 0),
        (
            rest_created.timestamp(),
            rest_created.timestamp_subsec_nanos()
        ),
        "the same instant on both fronts, to the second"
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
        (grpc_created.seconds, 0),
        (rest_seen.timestamp(), rest_seen.timestamp_subsec_nanos()),
        "the same instant, to the second"
    );
}
