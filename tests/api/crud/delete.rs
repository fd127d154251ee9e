//! DeleteServiceParticipant on the local store: by sid or identity, what it frees, what
//! is not found, and that it lasts.

use participants_facade::proto::CreateServiceParticipantRequest;
use tonic::Code;

use super::*;

#[tokio::test]
async fn a_participant_deleted_by_sid_or_identity_is_gone_and_its_identity_is_free() {
    let app = spawn_app().await;
    for by_identity in [false, true] {
        // Arrange
        let created = app.create_v1(create_v1_request()).await.unwrap();
        let (service, chat) = (&created.chat_service_sid, &created.conversation_sid);
        let name = if by_identity {
            &created.identity
        } else {
            &created.sid
        };

        // Act
        delete_v1(&app, service, chat, name).await.expect("delete");

        // Assert
        for key in [&created.sid, &created.identity] {
            expect_code(app.fetch_v1(service, chat, key).await, Code::NotFound);
        }
        expect_code(delete_v1(&app, service, chat, name).await, Code::NotFound);
        let listed = list_v1(&app, service, chat, 0, "").await.unwrap();
        assert!(listed.participants.is_empty(), "by identity: {by_identity}");
        let again = app
            .create_v1(CreateServiceParticipantRequest {
                chat_service_sid: service.clone(),
                conversation_sid: chat.clone(),
                identity: created.identity.clone(),
                ..Default::default()
            })
            .await
            .expect("the identity is free again");
        assert_ne!(again.sid, created.sid);
    }
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_binding_participant_frees_its_binding() {
    let app = spawn_app().await;
    let request = CreateServiceParticipantRequest {
        identity: String::new(),
        messaging_binding: binding(&phone(), "+18005550100"),
        ..create_v1_request()
    };
    let created = app.create_v1(request.clone()).await.unwrap();
    assert_conflict_with(app.create_v1(request.clone()).await, &created.sid);

    delete_v1(
        &app,
        &created.chat_service_sid,
        &created.conversation_sid,
        &created.sid,
    )
    .await
    .unwrap();

    let again = app.create_v1(request).await.expect("the binding is free");
    assert_ne!(again.sid, created.sid);
    app.stop().await;
}

#[tokio::test]
async fn deleting_what_is_not_there_is_not_found_and_touches_nothing() {
    let app = spawn_app().await;
    let existing = app.create_v1(create_v1_request()).await.unwrap();
    let (service, chat) = (&existing.chat_service_sid, &existing.conversation_sid);
    let cases: &[(&str, &str, &str, &str)] = &[
        ("unknown sid", service, chat, &sid("MB")),
        ("unknown identity", service, chat, "nobody-here"),
        ("another conversation", service, &sid("CH"), &existing.sid),
        ("another service", &sid("IS"), chat, &existing.sid),
    ];
    for (case, service, chat, key) in cases {
        let status = expect_code(delete_v1(&app, service, chat, key).await, Code::NotFound);
        assert!(!status.message().is_empty(), "{case}");
    }
    assert_bad_request(
        delete_v1(&app, service, chat, "").await,
        &["sid"],
        "empty sid",
    );
    assert_bad_request(
        delete_v1(&app, "IS1", chat, &existing.sid).await,
        &["chat_service_sid"],
        "bad service",
    );
    let still = app.fetch_v1(service, chat, &existing.sid).await.unwrap();
    assert_eq!(v1_record(&still), v1_record(&existing));
    app.stop().await;
}

#[tokio::test]
async fn v1_deletes_and_updates_are_still_there_after_a_restart() {
    let app = spawn_app().await;
    let (service, chat) = (sid("IS"), sid("CH"));
    let created = create_v1_many(&app, &service, &chat, 3).await;
    delete_v1(&app, &service, &chat, &created[1].sid)
        .await
        .unwrap();
    let renamed = format!("renamed-{}", unique());
    let updated = update_v1(
        &app,
        participants_facade::proto::ServiceParticipant {
            identity: renamed.clone(),
            attributes: r#"{"durable":true}"#.into(),
            ..v1_key(&created[0], &created[0].identity)
        },
        None,
    )
    .await
    .unwrap();

    let app = app.restart().await;

    expect_code(
        app.fetch_v1(&service, &chat, &created[1].sid).await,
        Code::NotFound,
    );
    let fetched = app.fetch_v1(&service, &chat, &renamed).await.unwrap();
    assert_eq!(v1_record(&fetched), v1_record(&updated));
    expect_code(
        app.fetch_v1(&service, &chat, &created[0].identity).await,
        Code::NotFound,
    );
    let listed = walk_v1(&app, &service, &chat, 1).await;
    assert_eq!(
        sids(&listed),
        vec![created[0].sid.clone(), created[2].sid.clone()]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_create_replayed_by_its_key_after_a_delete_answers_as_the_first_time() {
    let app = spawn_app().await;
    let request = CreateServiceParticipantRequest {
        idempotency_key: format!("delete-replay-{}", unique()),
        ..create_v1_request()
    };
    let first = app.create_v1(request.clone()).await.unwrap();
    delete_v1(
        &app,
        &first.chat_service_sid,
        &first.conversation_sid,
        &first.sid,
    )
    .await
    .unwrap();

    let replay = app
        .create_v1(request)
        .await
        .expect("a replay is not an error");

    assert_eq!(
        v1_record(&replay),
        v1_record(&first),
        "the original response"
    );
    expect_code(
        app.fetch_v1(&first.chat_service_sid, &first.conversation_sid, &first.sid)
            .await,
        Code::NotFound,
    );
    app.stop().await;
}

/// Twilio resolves a v1 conversation's unique name; the local store has no conversations
/// to resolve one against, so every v1 call naming one is INVALID_ARGUMENT on
/// `conversation_sid`, as before unique names were accepted in twilio mode.
#[tokio::test]
async fn the_local_store_refuses_v1_conversations_named_by_unique_name() {
    let app = spawn_app().await;
    let service = create_v1_request().chat_service_sid;
    let name = "support-room";
    let create = app
        .create_v1(CreateServiceParticipantRequest {
            conversation_sid: name.to_owned(),
            ..create_v1_request()
        })
        .await;
    assert_bad_request(create, &["conversation_sid"], "create");
    assert_bad_request(
        app.fetch_v1(&service, name, "alice").await,
        &["conversation_sid"],
        "fetch",
    );
    assert_bad_request(
        list_v1(&app, &service, name, 0, "").await,
        &["conversation_sid"],
        "list",
    );
    assert_bad_request(
        delete_v1(&app, &service, name, "alice").await,
        &["conversation_sid"],
        "delete",
    );
    app.stop().await;
}
