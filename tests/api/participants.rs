//! Conversation Orchestrator (v2) participants: CreateParticipant and FetchParticipant.

use participants_facade::proto::{
    Channel, CreateParticipantRequest, FetchParticipantRequest, ParticipantType,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::fixtures::*;

#[tokio::test]
async fn create_participant_then_fetch_returns_the_identical_participant() {
    // Arrange
    let app = spawn_app().await;
    let request = CreateParticipantRequest {
        conversation_id: conversation_id(),
        name: "Grace Hopper".into(),
        r#type: ParticipantType::HumanAgent.into(),
        profile_id: "mem_profile_01h2xcejqtf2nbrexx3vqjhp41".into(),
        addresses: vec![
            address(Channel::Sms, &phone()),
            participants_facade::proto::Address {
                channel: Channel::Email.into(),
                address: "grace@example.com".into(),
                channel_id: "email_sender_1".into(),
                ..Default::default()
            },
        ],
        idempotency_key: String::new(),
    };
    let before = now_seconds();

    // Act
    let created = app.create(request.clone()).await.expect("create succeeds");
    let fetched = app
        .fetch(&request.conversation_id, &created.id)
        .await
        .expect("fetch succeeds");

    // Assert
    assert_eq!(fetched, created);
    assert!(is_participant_id(&created.id), "id {}", created.id);
    assert_eq!(created.conversation_id, request.conversation_id);
    assert_eq!(created.account_id, DEFAULT_ACCOUNT);
    assert_eq!(created.name, request.name);
    assert_eq!(created.r#type, request.r#type);
    assert_eq!(created.profile_id, request.profile_id);
    assert_eq!(created.addresses, request.addresses);
    let created_at = created.created_at.expect("created_at set");
    let updated_at = created.updated_at.expect("updated_at set");
    assert!(
        (before - 5..=now_seconds() + 5).contains(&created_at.seconds),
        "created_at {created_at:?} is not about now"
    );
    assert!((0..1_000_000_000).contains(&created_at.nanos));
    assert_eq!(
        updated_at, created_at,
        "a new participant was never updated"
    );
}

#[tokio::test]
async fn a_participant_with_only_the_required_fields_has_empty_optional_fields() {
    // Arrange
    let app = spawn_app().await;
    let request = CreateParticipantRequest {
        conversation_id: conversation_id(),
        addresses: vec![address(Channel::Chat, "minimal-user")],
        ..Default::default()
    };

    // Act
    let created = app.create(request.clone()).await.expect("create succeeds");

    // Assert
    assert_eq!(created.name, "");
    assert_eq!(created.r#type, i32::from(ParticipantType::Unspecified));
    assert_eq!(created.profile_id, "");
    assert_eq!(created.account_id, DEFAULT_ACCOUNT);
    assert_eq!(created.addresses, request.addresses);
    assert_eq!(
        app.fetch(&request.conversation_id, &created.id)
            .await
            .unwrap(),
        created
    );
}

#[tokio::test]
async fn every_participant_type_round_trips() {
    let app = spawn_app().await;
    for kind in [
        ParticipantType::Unspecified,
        ParticipantType::HumanAgent,
        ParticipantType::Customer,
        ParticipantType::AiAgent,
        ParticipantType::Agent,
        ParticipantType::Unknown,
    ] {
        let request = CreateParticipantRequest {
            r#type: kind.into(),
            ..create_request()
        };
        let created = app.create(request.clone()).await.expect("create succeeds");
        let fetched = app
            .fetch(&request.conversation_id, &created.id)
            .await
            .unwrap();
        assert_eq!(created.r#type, i32::from(kind), "{kind:?}");
        assert_eq!(fetched, created, "{kind:?}");
    }
}

#[tokio::test]
async fn each_create_gets_a_new_id() {
    let app = spawn_app().await;
    let conversation = conversation_id();
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let created = app
            .create(CreateParticipantRequest {
                conversation_id: conversation.clone(),
                ..create_request()
            })
            .await
            .unwrap();
        assert!(is_participant_id(&created.id));
        ids.insert(created.id);
    }
    assert_eq!(ids.len(), 5);
}

// --- conflicts ---------------------------------------------------------------------------

#[tokio::test]
async fn same_channel_and_address_in_the_same_conversation_is_already_exists_naming_the_first() {
    // Arrange
    let app = spawn_app().await;
    let first = app.create(create_request()).await.unwrap();
    let second = CreateParticipantRequest {
        conversation_id: first.conversation_id.clone(),
        name: "Someone else".into(),
        addresses: first.addresses.clone(),
        ..Default::default()
    };

    // Act
    let result = app.create(second).await;

    // Assert
    let status = expect_code(result, Code::AlreadyExists);
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.metadata["conflicting_resource_id"], first.id);
    assert_eq!(info.reason, "ALREADY_EXISTS");
}

#[tokio::test]
async fn the_same_address_in_another_conversation_is_not_a_conflict() {
    let app = spawn_app().await;
    let first = app.create(create_request()).await.unwrap();

    let other = app
        .create(CreateParticipantRequest {
            conversation_id: conversation_id(),
            addresses: first.addresses.clone(),
            ..Default::default()
        })
        .await
        .expect("another conversation may hold the same address");

    assert_ne!(other.id, first.id);
}

#[tokio::test]
async fn the_same_number_on_another_channel_is_not_a_conflict() {
    let app = spawn_app().await;
    let number = phone();
    let first = app
        .create(CreateParticipantRequest {
            addresses: vec![address(Channel::Sms, &number)],
            ..create_request()
        })
        .await
        .unwrap();

    let voice = app
        .create(CreateParticipantRequest {
            conversation_id: first.conversation_id.clone(),
            addresses: vec![address(Channel::Voice, &number)],
            ..Default::default()
        })
        .await
        .expect("SMS and VOICE are different channels");

    assert_ne!(voice.id, first.id);
}

#[tokio::test]
async fn email_conflicts_are_case_insensitive() {
    let app = spawn_app().await;
    let conversation = conversation_id();
    let first = app
        .create(CreateParticipantRequest {
            conversation_id: conversation.clone(),
            addresses: vec![address(Channel::Email, "Jane.Doe@Example.COM")],
            ..Default::default()
        })
        .await
        .unwrap();

    let result = app
        .create(CreateParticipantRequest {
            conversation_id: conversation,
            addresses: vec![address(Channel::Email, "jane.doe@example.com")],
            ..Default::default()
        })
        .await;

    assert_conflict_with(result, &first.id);
    // The address is stored as the caller wrote it.
    assert_eq!(first.addresses[0].address, "Jane.Doe@Example.COM");
}

#[tokio::test]
async fn a_conflict_on_any_address_rejects_the_whole_participant() {
    // Arrange: a participant holding one address.
    let app = spawn_app().await;
    let first = app.create(create_request()).await.unwrap();
    let free_email = format!("free{}@example.com", unique());

    // Act: a second participant whose *second* address is taken.
    let result = app
        .create(CreateParticipantRequest {
            conversation_id: first.conversation_id.clone(),
            addresses: vec![
                address(Channel::Email, &free_email),
                first.addresses[0].clone(),
            ],
            ..Default::default()
        })
        .await;

    // Assert: refused, and nothing of it was kept: its free address is still free.
    assert_conflict_with(result, &first.id);
    app.create(CreateParticipantRequest {
        conversation_id: first.conversation_id.clone(),
        addresses: vec![address(Channel::Email, &free_email)],
        ..Default::default()
    })
    .await
    .expect("the rejected participant's other address was not reserved");
}

// --- idempotency -------------------------------------------------------------------------

#[tokio::test]
async fn same_idempotency_key_and_request_returns_the_same_participant_created_once() {
    // Arrange
    let app = spawn_app().await;
    let request = CreateParticipantRequest {
        idempotency_key: format!("key-{}", unique()),
        ..create_request()
    };

    // Act
    let first = app.create(request.clone()).await.expect("first create");
    let replay = app.create(request.clone()).await.expect("replay");

    // Assert: the same participant...
    assert_eq!(replay, first);
    // ...and exactly one: the same addresses without the key collide with it.
    let without_key = CreateParticipantRequest {
        idempotency_key: String::new(),
        ..request
    };
    assert_conflict_with(app.create(without_key).await, &first.id);
}

#[tokio::test]
async fn same_idempotency_key_with_a_different_request_is_invalid_argument_key_reused() {
    let app = spawn_app().await;
    let key = format!("key-{}", unique());
    let request = CreateParticipantRequest {
        idempotency_key: key.clone(),
        ..create_request()
    };
    app.create(request.clone()).await.expect("first create");

    let different = CreateParticipantRequest {
        name: "A different name".into(),
        ..request
    };
    let result = app.create(different).await;

    let status = expect_code(result, Code::InvalidArgument);
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "IDEMPOTENCY_KEY_REUSED");
    assert!(bad_request_fields(&status).contains("idempotency_key"));
}

#[tokio::test]
async fn an_idempotency_key_used_for_a_v1_create_cannot_be_reused_for_a_v2_create() {
    let app = spawn_app().await;
    let key = format!("key-{}", unique());
    app.create_v1(
        participants_facade::proto::CreateServiceParticipantRequest {
            idempotency_key: key.clone(),
            ..create_v1_request()
        },
    )
    .await
    .expect("v1 create");

    let result = app
        .create(CreateParticipantRequest {
            idempotency_key: key,
            ..create_request()
        })
        .await;

    assert_key_reused(result);
}

#[tokio::test]
async fn different_idempotency_keys_create_different_participants() {
    let app = spawn_app().await;
    let conversation = conversation_id();
    let a = app
        .create(CreateParticipantRequest {
            conversation_id: conversation.clone(),
            idempotency_key: format!("a-{}", unique()),
            ..create_request()
        })
        .await
        .unwrap();
    let b = app
        .create(CreateParticipantRequest {
            conversation_id: conversation,
            idempotency_key: format!("b-{}", unique()),
            ..create_request()
        })
        .await
        .unwrap();
    assert_ne!(a.id, b.id);
}

// --- not found ---------------------------------------------------------------------------

#[tokio::test]
async fn fetching_an_unknown_well_formed_id_is_not_found() {
    let app = spawn_app().await;
    app.create(create_request()).await.unwrap();

    let result = app
        .fetch(
            &conversation_id(),
            "conv_participant_01h2xcejqtf2nbrexx3vqjhp41",
        )
        .await;

    expect_code(result, Code::NotFound);
}

#[tokio::test]
async fn fetching_an_existing_participant_under_another_conversation_is_not_found() {
    // With the fetch cache on (default) and off, and with the record cold and cached.
    for cache_entries in [participants_facade::config::DEFAULT_CACHE_ENTRIES, 0] {
        let app = spawn_app_configured(|c| c.store.cache_entries = cache_entries).await;
        let created = app.create(create_request()).await.unwrap();
        for round in ["cold", "after a fetch"] {
            let result = app.fetch(&conversation_id(), &created.id).await;

            expect_code(result, Code::NotFound);
            // Still there under its own conversation.
            assert_eq!(
                app.fetch(&created.conversation_id, &created.id)
                    .await
                    .unwrap(),
                created,
                "cache_entries={cache_entries}, {round}"
            );
        }
    }
}

#[tokio::test]
async fn fetch_with_a_v1_sid_as_participant_id_is_not_found() {
    // A v1 sid is a well-formed opaque id, but names no v2 participant.
    let app = spawn_app().await;
    let v1 = app.create_v1(create_v1_request()).await.unwrap();

    let result = app
        .client
        .clone()
        .fetch_participant(FetchParticipantRequest {
            conversation_id: v1.conversation_sid.clone(),
            participant_id: v1.sid.clone(),
        })
        .await;

    expect_code(result, Code::NotFound);
}
