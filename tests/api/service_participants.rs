//! Conversations (v1) participants: CreateServiceParticipant and FetchServiceParticipant.

use participants_facade::proto::{CreateServiceParticipantRequest, MessagingBinding};
use prost_types::Timestamp;
use tonic::Code;
use tonic_types::StatusExt;

use crate::fixtures::*;

#[tokio::test]
async fn create_identity_participant_then_fetch_by_sid_and_by_identity_returns_it() {
    // Arrange
    let app = spawn_app().await;
    let request = CreateServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        identity: format!("alice-{}", unique()),
        ..Default::default()
    };
    let before = now_seconds();

    // Act
    let created = app
        .create_v1(request.clone())
        .await
        .expect("create succeeds");
    let by_sid = app
        .fetch_v1(
            &request.chat_service_sid,
            &request.conversation_sid,
            &created.sid,
        )
        .await
        .expect("fetch by sid");
    let by_identity = app
        .fetch_v1(
            &request.chat_service_sid,
            &request.conversation_sid,
            &request.identity,
        )
        .await
        .expect("fetch by identity");

    // Assert
    assert_eq!(by_sid, created);
    assert_eq!(by_identity, created);
    assert!(is_lower_hex_sid(&created.sid, "MB"), "sid {}", created.sid);
    assert_eq!(created.account_sid, DEFAULT_ACCOUNT);
    assert_eq!(created.chat_service_sid, request.chat_service_sid);
    assert_eq!(created.conversation_sid, request.conversation_sid);
    assert_eq!(created.identity, request.identity);
    assert_eq!(
        created.attributes, "{}",
        "attributes default to an empty object"
    );
    assert_eq!(
        created.messaging_binding, None,
        "a chat participant has no binding"
    );
    assert_eq!(created.role_sid, "");
    assert_eq!(created.last_read_message_index, None);
    assert_eq!(created.last_read_timestamp, "");
    let date_created = created.date_created.expect("date_created set");
    let date_updated = created.date_updated.expect("date_updated set");
    assert!(
        (before - 5..=now_seconds() + 5).contains(&date_created.seconds),
        "date_created {date_created:?} is not about now"
    );
    assert_eq!(date_updated, date_created);
    let path = format!(
        "/v1/Services/{}/Conversations/{}/Participants/{}",
        request.chat_service_sid, request.conversation_sid, created.sid
    );
    assert!(created.url.ends_with(&path), "url {}", created.url);
    assert!(
        created.url.starts_with("http://") || created.url.starts_with("https://"),
        "url {} is absolute",
        created.url
    );
}

#[tokio::test]
async fn create_sms_binding_participant_then_fetch_by_sid_returns_it() {
    // Arrange
    let app = spawn_app().await;
    let request = CreateServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        messaging_binding: binding(&phone(), "+18005550100"),
        ..Default::default()
    };

    // Act
    let created = app
        .create_v1(request.clone())
        .await
        .expect("create succeeds");
    let fetched = app
        .fetch_v1(
            &request.chat_service_sid,
            &request.conversation_sid,
            &created.sid,
        )
        .await
        .expect("fetch by sid");

    // Assert
    assert_eq!(fetched, created);
    assert!(is_lower_hex_sid(&created.sid, "MB"), "sid {}", created.sid);
    assert_eq!(created.identity, "");
    assert_eq!(
        created.messaging_binding,
        request.messaging_binding.clone().map(|b| MessagingBinding {
            r#type: "sms".into(),
            ..b
        }),
        "the binding's type, as Twilio reports it, from the address"
    );
    assert_eq!(created.attributes, "{}");
    assert!(created.url.ends_with(&format!(
        "/v1/Services/{}/Conversations/{}/Participants/{}",
        request.chat_service_sid, request.conversation_sid, created.sid
    )));
}

#[tokio::test]
async fn whatsapp_binding_and_projected_address_participants_round_trip() {
    let app = spawn_app().await;
    let service = sid("IS");
    let conversation = sid("CH");

    let whatsapp = app
        .create_v1(CreateServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: conversation.clone(),
            messaging_binding: binding(&format!("whatsapp:{}", phone()), "whatsapp:+18005550100"),
            ..Default::default()
        })
        .await
        .expect("whatsapp binding participant");
    let projected = app
        .create_v1(CreateServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: conversation.clone(),
            identity: format!("mms-{}", unique()),
            messaging_binding: Some(MessagingBinding {
                projected_address: "+18005550199".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("chat participant projected into group MMS");

    for created in [whatsapp, projected] {
        let fetched = app
            .fetch_v1(&service, &conversation, &created.sid)
            .await
            .unwrap();
        assert_eq!(fetched, created);
    }
}

#[tokio::test]
async fn attributes_role_and_dates_given_in_the_request_are_echoed() {
    // Arrange
    let app = spawn_app().await;
    let date_created = Timestamp {
        seconds: 1_600_000_000,
        nanos: 123_000_000,
    };
    let date_updated = Timestamp {
        seconds: 1_650_000_000,
        nanos: 0,
    };
    let request = CreateServiceParticipantRequest {
        attributes: r#"{"team":"blue","tier":3,"tags":["a","b"]}"#.into(),
        role_sid: "RL0123456789ABCDEF0123456789abcdef".into(),
        date_created: Some(date_created),
        date_updated: Some(date_updated),
        webhook_enabled: true,
        ..create_v1_request()
    };

    // Act
    let created = app
        .create_v1(request.clone())
        .await
        .expect("create succeeds");
    let fetched = app
        .fetch_v1(
            &request.chat_service_sid,
            &request.conversation_sid,
            &created.sid,
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(fetched, created);
    assert_eq!(created.attributes, request.attributes);
    assert_eq!(created.role_sid, request.role_sid);
    assert_eq!(created.date_created, Some(date_created));
    assert_eq!(created.date_updated, Some(date_updated));
}

#[tokio::test]
async fn only_date_created_given_keeps_it_and_stamps_date_updated_with_the_clock() {
    let app = spawn_app().await;
    let date_created = Timestamp {
        seconds: 1_500_000_000,
        nanos: 0,
    };
    let created = app
        .create_v1(CreateServiceParticipantRequest {
            date_created: Some(date_created),
            ..create_v1_request()
        })
        .await
        .unwrap();

    assert_eq!(created.date_created, Some(date_created));
    let updated = created.date_updated.expect("date_updated set");
    assert!((now_seconds() - 60..=now_seconds() + 5).contains(&updated.seconds));
}

// --- conflicts ---------------------------------------------------------------------------

#[tokio::test]
async fn same_identity_in_the_same_conversation_is_already_exists_naming_the_existing_sid() {
    let app = spawn_app().await;
    let request = create_v1_request();
    let first = app.create_v1(request.clone()).await.unwrap();

    let result = app
        .create_v1(CreateServiceParticipantRequest {
            attributes: r#"{"second":true}"#.into(),
            ..request
        })
        .await;

    let status = expect_code(result, Code::AlreadyExists);
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.metadata["conflicting_resource_id"], first.sid);
}

#[tokio::test]
async fn same_identity_in_another_conversation_or_service_is_not_a_conflict() {
    let app = spawn_app().await;
    let request = create_v1_request();
    let first = app.create_v1(request.clone()).await.unwrap();

    let other_conversation = app
        .create_v1(CreateServiceParticipantRequest {
            conversation_sid: sid("CH"),
            ..request.clone()
        })
        .await
        .expect("same identity, other conversation");
    let other_service = app
        .create_v1(CreateServiceParticipantRequest {
            chat_service_sid: sid("IS"),
            ..request
        })
        .await
        .expect("same identity, other service");

    assert_ne!(other_conversation.sid, first.sid);
    assert_ne!(other_service.sid, first.sid);
}

#[tokio::test]
async fn same_messaging_binding_in_the_same_conversation_is_already_exists() {
    let app = spawn_app().await;
    let request = CreateServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        messaging_binding: binding(&phone(), "+18005550100"),
        ..Default::default()
    };
    let first = app.create_v1(request.clone()).await.unwrap();

    let result = app.create_v1(request).await;

    assert_conflict_with(result, &first.sid);
}

#[tokio::test]
async fn the_same_address_with_another_proxy_address_is_not_a_conflict() {
    let app = spawn_app().await;
    let number = phone();
    let request = CreateServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        messaging_binding: binding(&number, "+18005550100"),
        ..Default::default()
    };
    app.create_v1(request.clone()).await.unwrap();

    app.create_v1(CreateServiceParticipantRequest {
        messaging_binding: binding(&number, "+18005550101"),
        ..request
    })
    .await
    .expect("another proxy address is another binding");
}

// --- idempotency -------------------------------------------------------------------------

#[tokio::test]
async fn same_idempotency_key_and_request_returns_the_same_service_participant_created_once() {
    let app = spawn_app().await;
    let request = CreateServiceParticipantRequest {
        idempotency_key: format!("v1-key-{}", unique()),
        ..create_v1_request()
    };

    let first = app.create_v1(request.clone()).await.unwrap();
    let replay = app.create_v1(request.clone()).await.unwrap();

    assert_eq!(replay, first);
    let without_key = CreateServiceParticipantRequest {
        idempotency_key: String::new(),
        ..request
    };
    assert_conflict_with(app.create_v1(without_key).await, &first.sid);
}

#[tokio::test]
async fn same_idempotency_key_with_a_different_v1_request_is_key_reused() {
    let app = spawn_app().await;
    let request = CreateServiceParticipantRequest {
        idempotency_key: format!("v1-key-{}", unique()),
        ..create_v1_request()
    };
    app.create_v1(request.clone()).await.unwrap();

    let result = app
        .create_v1(CreateServiceParticipantRequest {
            attributes: r#"{"changed":1}"#.into(),
            ..request
        })
        .await;

    assert_key_reused(result);
}

// --- not found ---------------------------------------------------------------------------

#[tokio::test]
async fn fetching_an_unknown_sid_or_identity_is_not_found() {
    let app = spawn_app().await;
    let created = app.create_v1(create_v1_request()).await.unwrap();

    let unknown_sid = app
        .fetch_v1(
            &created.chat_service_sid,
            &created.conversation_sid,
            "MB00000000000000000000000000000000",
        )
        .await;
    let unknown_identity = app
        .fetch_v1(
            &created.chat_service_sid,
            &created.conversation_sid,
            "nobody-by-this-name",
        )
        .await;

    expect_code(unknown_sid, Code::NotFound);
    expect_code(unknown_identity, Code::NotFound);
}

#[tokio::test]
async fn fetching_an_existing_sid_under_another_conversation_or_service_is_not_found() {
    let app = spawn_app().await;
    let created = app.create_v1(create_v1_request()).await.unwrap();

    // Cold, then with the record in the fetch cache.
    for round in ["cold", "after a fetch"] {
        let other_conversation = app
            .fetch_v1(&created.chat_service_sid, &sid("CH"), &created.sid)
            .await;
        let other_service = app
            .fetch_v1(&sid("IS"), &created.conversation_sid, &created.sid)
            .await;
        let identity_elsewhere = app
            .fetch_v1(&created.chat_service_sid, &sid("CH"), &created.identity)
            .await;

        expect_code(other_conversation, Code::NotFound);
        expect_code(other_service, Code::NotFound);
        expect_code(identity_elsewhere, Code::NotFound);
        let own = app
            .fetch_v1(
                &created.chat_service_sid,
                &created.conversation_sid,
                &created.sid,
            )
            .await;
        assert_eq!(own.expect(round), created, "{round}");
    }
}

#[tokio::test]
async fn an_identity_equal_to_a_cached_sid_of_another_conversation_finds_its_own_participant() {
    // Arrange: participant A; in another conversation of the same service, B whose
    // identity is A's sid. A is fetched first, so it sits in the fetch cache by that sid.
    let app = spawn_app().await;
    let a = app.create_v1(create_v1_request()).await.expect("create A");
    let b = app
        .create_v1(CreateServiceParticipantRequest {
            chat_service_sid: a.chat_service_sid.clone(),
            identity: a.sid.clone(),
            ..create_v1_request()
        })
        .await
        .expect("create B");
    let cached = app
        .fetch_v1(&a.chat_service_sid, &a.conversation_sid, &a.sid)
        .await
        .expect("fetch A");

    // Act
    let found = app
        .fetch_v1(&b.chat_service_sid, &b.conversation_sid, &a.sid)
        .await
        .expect("fetch B by its identity");

    // Assert
    assert_eq!(cached, a);
    assert_eq!(found, b);
}

#[tokio::test]
async fn an_identity_shaped_like_a_sid_is_still_found_by_identity() {
    // Arrange: Twilio lets the identity stand in for the sid, and an identity may be any
    // string, including one that looks like an MB sid.
    let app = spawn_app().await;
    let request = CreateServiceParticipantRequest {
        identity: sid("MB"),
        ..create_v1_request()
    };
    let created = app.create_v1(request.clone()).await.expect("create");

    // Act
    let by_identity = app
        .fetch_v1(
            &request.chat_service_sid,
            &request.conversation_sid,
            &request.identity,
        )
        .await
        .expect("fetch by a sid-shaped identity");
    let by_sid = app
        .fetch_v1(
            &request.chat_service_sid,
            &request.conversation_sid,
            &created.sid,
        )
        .await
        .expect("fetch by sid");

    // Assert
    assert_eq!(by_identity, created);
    assert_eq!(by_sid, created);
}
