//! UpdateServiceParticipant on the local store: masks, identity and binding rules and
//! conflicts, dates and last-read fields, by sid or identity.

use participants_facade::proto::{
    CreateServiceParticipantRequest, MessagingBinding, ServiceParticipant,
};
use prost_types::Timestamp;
use tonic::Code;

use super::*;

async fn chat_participant(app: &TestApp) -> ServiceParticipant {
    app.create_v1(CreateServiceParticipantRequest {
        attributes: r#"{"before":true}"#.into(),
        ..create_v1_request()
    })
    .await
    .expect("create")
}

/// A binding (SMS) participant of `service`/`chat` with a fresh address.
async fn sms_participant(app: &TestApp, service: &str, chat: &str, proxy: &str) -> ServiceParticipant {
    app.create_v1(CreateServiceParticipantRequest {
        chat_service_sid: service.to_owned(),
        conversation_sid: chat.to_owned(),
        identity: String::new(),
        messaging_binding: binding(&phone(), proxy),
        ..Default::default()
    })
    .await
    .expect("create")
}

fn proxy(address: &str) -> Option<MessagingBinding> {
    Some(MessagingBinding {
        proxy_address: address.to_owned(),
        ..Default::default()
    })
}

#[tokio::test]
async fn an_update_changes_the_named_fields_by_sid_or_identity() {
    let app = spawn_app().await;
    let role = sid("RL");
    let when = Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    };
    type Expect = fn(&ServiceParticipant) -> ServiceParticipant;
    // (case, address by identity, new values, mask, the expected record from the one before)
    let cases: Vec<(&str, bool, ServiceParticipant, Option<&[&str]>, Expect)> = vec![
        (
            "attributes, no mask",
            false,
            ServiceParticipant {
                attributes: r#"{"after":1}"#.into(),
                ..Default::default()
            },
            None,
            |b| ServiceParticipant {
                attributes: r#"{"after":1}"#.into(),
                ..b.clone()
            },
        ),
        (
            "role and last read, by identity",
            true,
            ServiceParticipant {
                role_sid: role.clone(),
                last_read_message_index: Some(5),
                last_read_timestamp: "2026-11-30T10:00:00Z".into(),
                ..Default::default()
            },
            None,
            |b| ServiceParticipant {
                last_read_message_index: Some(5),
                last_read_timestamp: "2026-11-30T10:00:00Z".into(),
                ..b.clone()
            },
        ),
        (
            "clear attributes and last read through the mask",
            false,
            ServiceParticipant::default(),
            Some(&["attributes", "last_read_message_index", "last_read_timestamp"]),
            |b| ServiceParticipant {
                attributes: "{}".into(),
                last_read_message_index: None,
                last_read_timestamp: String::new(),
                ..b.clone()
            },
        ),
        (
            "date_created set",
            false,
            ServiceParticipant {
                date_created: Some(when),
                ..Default::default()
            },
            None,
            |b| ServiceParticipant {
                date_created: Some(Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
                ..b.clone()
            },
        ),
        (
            "projected address for a chat participant",
            true,
            ServiceParticipant {
                messaging_binding: Some(MessagingBinding {
                    projected_address: "+18005550199".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
            |b| b.clone(),
        ),
    ];
    for (case, by_identity, mut values, mask, expect) in cases {
        let before = chat_participant(&app).await;
        // Seeded state the clearing case removes.
        let before = if case.starts_with("clear") {
            update_v1(
                &app,
                ServiceParticipant {
                    last_read_message_index: Some(3),
                    last_read_timestamp: "t".into(),
                    ..v1_key(&before, &before.sid)
                },
                None,
            )
            .await
            .unwrap()
        } else {
            before
        };
        let name = if by_identity { &before.identity } else { &before.sid };
        let key = v1_key(&before, name);
        values.chat_service_sid = key.chat_service_sid;
        values.conversation_sid = key.conversation_sid;
        values.sid = key.sid;
        let started = now_seconds();

        let updated = update_v1(&app, values, mask).await;

        let updated = updated.unwrap_or_else(|e| panic!("{case}: {e:?}"));
        let mut expected = expect(&before);
        if case == "role and last read, by identity" {
            expected.role_sid = role.clone();
        }
        if case.starts_with("projected") {
            expected.messaging_binding = updated.messaging_binding.clone();
            assert_eq!(
                updated.messaging_binding.as_ref().map(|b| b.projected_address.as_str()),
                Some("+18005550199"),
                "{case}"
            );
        }
        let date_updated = updated.date_updated.unwrap();
        assert!(date_updated.seconds >= started - 1, "{case}: date_updated is the update's");
        assert_eq!(
            v1_record(&updated),
            v1_record(&ServiceParticipant {
                date_updated: updated.date_updated,
                ..expected
            }),
            "{case}"
        );
        let fetched = app
            .fetch_v1(&before.chat_service_sid, &before.conversation_sid, &before.sid)
            .await
            .unwrap();
        assert_eq!(v1_record(&fetched), v1_record(&updated), "{case}: fetch shows it");
    }
    app.stop().await;
}

#[tokio::test]
async fn date_updated_is_the_requests_when_given_and_date_created_stays_otherwise() {
    let app = spawn_app().await;
    let created = chat_participant(&app).await;
    let given = Timestamp {
        seconds: 1_800_000_000,
        nanos: 0,
    };
    let updated = update_v1(
        &app,
        ServiceParticipant {
            date_updated: Some(given),
            attributes: r#"{"x":1}"#.into(),
            ..v1_key(&created, &created.sid)
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(updated.date_updated, Some(given));
    assert_eq!(updated.date_created, created.date_created);
    app.stop().await;
}

#[tokio::test]
async fn a_new_identity_moves_the_participant_and_frees_the_old_one() {
    // Arrange
    let app = spawn_app().await;
    let a = chat_participant(&app).await;
    let (service, chat) = (a.chat_service_sid.clone(), a.conversation_sid.clone());
    let b = app
        .create_v1(CreateServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: chat.clone(),
            identity: format!("user-{}", unique()),
            ..Default::default()
        })
        .await
        .unwrap();
    let new_identity = format!("renamed-{}", unique());

    // Act: B takes A's identity (refused), then a fresh one, by its current identity.
    let clash = update_v1(
        &app,
        ServiceParticipant {
            identity: a.identity.clone(),
            ..v1_key(&b, &b.identity)
        },
        None,
    )
    .await;
    let renamed = update_v1(
        &app,
        ServiceParticipant {
            identity: new_identity.clone(),
            ..v1_key(&b, &b.identity)
        },
        None,
    )
    .await
    .unwrap();

    // Assert
    assert_conflict_with(clash, &a.sid);
    assert_eq!(renamed.identity, new_identity);
    assert_eq!(renamed.sid, b.sid);
    let by_new = app.fetch_v1(&service, &chat, &new_identity).await.unwrap();
    assert_eq!(by_new.sid, b.sid);
    expect_code(app.fetch_v1(&service, &chat, &b.identity).await, Code::NotFound);
    let reuse = CreateServiceParticipantRequest {
        chat_service_sid: service.clone(),
        conversation_sid: chat.clone(),
        identity: b.identity.clone(),
        ..Default::default()
    };
    let reused = app.create_v1(reuse).await.expect("the old identity is free");
    assert_ne!(reused.sid, b.sid);
    let taken = CreateServiceParticipantRequest {
        chat_service_sid: service,
        conversation_sid: chat,
        identity: new_identity,
        ..Default::default()
    };
    assert_conflict_with(app.create_v1(taken).await, &b.sid);
    app.stop().await;
}

#[tokio::test]
async fn binding_updates_keep_the_binding_rules_and_conflicts() {
    // Arrange: two SMS participants with one address each, under different proxies.
    let app = spawn_app().await;
    let (service, chat) = (sid("IS"), sid("CH"));
    let a = sms_participant(&app, &service, &chat, "+18005550100").await;
    let shared_address = a.messaging_binding.as_ref().unwrap().address.clone();
    let b = app
        .create_v1(CreateServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: chat.clone(),
            messaging_binding: binding(&shared_address, "+18005550101"),
            ..Default::default()
        })
        .await
        .unwrap();

    // Act and assert: B moving to A's proxy is A's binding.
    assert_conflict_with(
        update_v1(
            &app,
            ServiceParticipant {
                messaging_binding: proxy("+18005550100"),
                ..v1_key(&b, &b.sid)
            },
            None,
        )
        .await,
        &a.sid,
    );
    // Another proxy is fine.
    let moved = update_v1(
        &app,
        ServiceParticipant {
            messaging_binding: proxy("+18005550102"),
            ..v1_key(&b, &b.sid)
        },
        None,
    )
    .await
    .unwrap();
    let binding_after = moved.messaging_binding.clone().unwrap();
    assert_eq!(binding_after.proxy_address, "+18005550102");
    assert_eq!(binding_after.address, shared_address);
    // A takes B's old proxy, now free.
    update_v1(
        &app,
        ServiceParticipant {
            messaging_binding: proxy("+18005550101"),
            ..v1_key(&a, &a.sid)
        },
        None,
    )
    .await
    .expect("B's old binding is free");

    // Clearing the proxy address leaves an invalid binding; a projected address needs an
    // identity; an identity beside a binding address is either/or.
    let cases: &[(&str, ServiceParticipant, Option<&[&str]>, &[&str])] = &[
        (
            "proxy cleared",
            v1_key(&b, &b.sid),
            Some(&["messaging_binding.proxy_address"]),
            &["service_participant.messaging_binding.proxy_address"],
        ),
        (
            "projected address without identity",
            ServiceParticipant {
                messaging_binding: Some(MessagingBinding {
                    projected_address: "+18005550199".into(),
                    ..Default::default()
                }),
                ..v1_key(&b, &b.sid)
            },
            None,
            &["service_participant.messaging_binding.projected_address"],
        ),
        (
            "identity beside a binding",
            ServiceParticipant {
                identity: format!("user-{}", unique()),
                ..v1_key(&b, &b.sid)
            },
            None,
            &["service_participant.identity"],
        ),
        (
            "a proxy that is no address",
            ServiceParticipant {
                messaging_binding: proxy("nope"),
                ..v1_key(&b, &b.sid)
            },
            None,
            &["service_participant.messaging_binding.proxy_address"],
        ),
    ];
    for (case, values, mask, fields) in cases {
        assert_bad_request(update_v1(&app, values.clone(), *mask).await, fields, case);
    }
    let fetched = app.fetch_v1(&service, &chat, &b.sid).await.unwrap();
    assert_eq!(v1_record(&fetched), v1_record(&moved), "refused updates change nothing");
    app.stop().await;
}

#[tokio::test]
async fn invalid_or_unknown_updates_are_refused() {
    let app = spawn_app().await;
    let existing = chat_participant(&app).await;
    let key = v1_key(&existing, &existing.sid);
    let cases: &[(&str, ServiceParticipant, Option<&[&str]>, &[&str])] = &[
        ("unknown path", key.clone(), Some(&["url"]), &["update_mask.paths[0]"]),
        ("nothing to change", key.clone(), None, &["update_mask"]),
        (
            "attributes not JSON",
            ServiceParticipant {
                attributes: "{not json".into(),
                ..key.clone()
            },
            None,
            &["service_participant.attributes"],
        ),
        (
            "role not an RL sid",
            ServiceParticipant {
                role_sid: "XX123".into(),
                ..key.clone()
            },
            None,
            &["service_participant.role_sid"],
        ),
        (
            "negative last read index",
            ServiceParticipant {
                last_read_message_index: Some(-1),
                ..key.clone()
            },
            None,
            &["service_participant.last_read_message_index"],
        ),
        (
            "date_created cleared",
            key.clone(),
            Some(&["date_created"]),
            &["service_participant.date_created"],
        ),
        (
            "identity cleared on a chat participant",
            key.clone(),
            Some(&["identity"]),
            &["service_participant.identity"],
        ),
    ];
    for (case, values, mask, fields) in cases {
        assert_bad_request(update_v1(&app, values.clone(), *mask).await, fields, case);
    }
    let attributes = |p: ServiceParticipant| ServiceParticipant {
        attributes: "{}".into(),
        ..p
    };
    for (case, target) in [
        ("unknown sid", v1_key(&existing, &sid("MB"))),
        ("unknown identity", v1_key(&existing, "nobody")),
        (
            "another conversation",
            ServiceParticipant {
                conversation_sid: sid("CH"),
                ..key.clone()
            },
        ),
    ] {
        let status = expect_code(update_v1(&app, attributes(target), None).await, Code::NotFound);
        assert!(!status.message().is_empty(), "{case}");
    }
    let fetched = app
        .fetch_v1(&existing.chat_service_sid, &existing.conversation_sid, &existing.sid)
        .await
        .unwrap();
    assert_eq!(v1_record(&fetched), v1_record(&existing));
    app.stop().await;
}

#[tokio::test]
async fn a_v1_create_replayed_by_its_key_after_an_update_answers_as_the_first_time() {
    let app = spawn_app().await;
    let request = CreateServiceParticipantRequest {
        idempotency_key: format!("v1-update-replay-{}", unique()),
        ..create_v1_request()
    };
    let first = app.create_v1(request.clone()).await.unwrap();
    update_v1(
        &app,
        ServiceParticipant {
            attributes: r#"{"changed":true}"#.into(),
            ..v1_key(&first, &first.sid)
        },
        None,
    )
    .await
    .unwrap();

    let replay = app.create_v1(request).await.expect("not an error");

    assert_eq!(v1_record(&replay), v1_record(&first));
    app.stop().await;
}
