//! UpdateParticipant on the local store: update masks, validation as create, address
//! conflicts, timestamps.

use participants_facade::proto::{
    Address, Channel, CreateParticipantRequest, Participant, ParticipantType,
};
use tonic::Code;

use super::*;

/// A participant with every field set, in a fresh conversation.
async fn full_participant(app: &TestApp) -> Participant {
    app.create(CreateParticipantRequest {
        conversation_id: conversation_id(),
        name: "Before".into(),
        r#type: ParticipantType::Customer.into(),
        profile_id: "mem_profile_before".into(),
        addresses: vec![address(Channel::Sms, &phone())],
        idempotency_key: String::new(),
    })
    .await
    .expect("create")
}

#[tokio::test]
async fn an_update_changes_what_its_mask_names_and_keeps_the_rest() {
    let app = spawn_app().await;
    let new_address = || vec![address(Channel::Email, &format!("u{}@example.com", unique()))];
    // (case, the new values, the mask, what the participant must look like after, from
    // the participant before).
    type Expect = fn(&Participant, &Participant) -> Participant;
    let cases: Vec<(&str, Participant, Option<&[&str]>, Expect)> = vec![
        (
            "no mask: the set fields",
            Participant {
                name: "After".into(),
                ..Default::default()
            },
            None,
            |before, _| Participant {
                name: "After".into(),
                ..before.clone()
            },
        ),
        (
            "no mask: several set fields",
            Participant {
                profile_id: "mem_profile_after".into(),
                r#type: ParticipantType::HumanAgent.into(),
                ..Default::default()
            },
            None,
            |before, _| Participant {
                profile_id: "mem_profile_after".into(),
                r#type: ParticipantType::HumanAgent.into(),
                ..before.clone()
            },
        ),
        (
            "mask names name only: other set fields are ignored",
            Participant {
                name: "Masked".into(),
                profile_id: "ignored".into(),
                ..Default::default()
            },
            Some(&["name"]),
            |before, _| Participant {
                name: "Masked".into(),
                ..before.clone()
            },
        ),
        (
            "mask names an empty name: cleared",
            Participant::default(),
            Some(&["name"]),
            |before, _| Participant {
                name: String::new(),
                ..before.clone()
            },
        ),
        (
            "mask names an unspecified type and empty profile: cleared",
            Participant::default(),
            Some(&["type", "profile_id"]),
            |before, _| Participant {
                r#type: ParticipantType::Unspecified.into(),
                profile_id: String::new(),
                ..before.clone()
            },
        ),
        (
            "addresses replaced",
            Participant {
                addresses: vec![],
                ..Default::default()
            },
            Some(&["addresses"]),
            |before, sent| Participant {
                addresses: sent.addresses.clone(),
                ..before.clone()
            },
        ),
    ];
    for (case, mut values, mask, expect) in cases {
        let before = full_participant(&app).await;
        if case == "addresses replaced" {
            values.addresses = new_address();
        }
        let sent = values.clone();
        values.id = before.id.clone();
        values.conversation_id = before.conversation_id.clone();

        let updated = update_v2(&app, values, mask).await;

        let updated = updated.unwrap_or_else(|e| panic!("{case}: {e:?}"));
        let fetched = app.fetch(&before.conversation_id, &before.id).await.unwrap();
        assert_eq!(fetched, updated, "{case}: fetch shows the update");
        let expected = Participant {
            updated_at: updated.updated_at,
            ..expect(&before, &sent)
        };
        assert_eq!(updated, expected, "{case}");
        assert_eq!(updated.created_at, before.created_at, "{case}: created_at stays");
        let (b, a) = (before.updated_at.unwrap(), updated.updated_at.unwrap());
        assert!((a.seconds, a.nanos) > (b.seconds, b.nanos), "{case}: updated_at moves");
    }
    app.stop().await;
}

#[tokio::test]
async fn invalid_updates_are_invalid_argument_naming_each_field() {
    let app = spawn_app().await;
    let existing = full_participant(&app).await;
    let key = v2_key(&existing);
    let cases: Vec<(&str, Participant, Option<&[&str]>, &[&str])> = vec![
        ("an unknown mask path", key.clone(), Some(&["nickname"]), &["update_mask.paths[0]"]),
        (
            "an unknown second path",
            Participant {
                name: "x".into(),
                ..key.clone()
            },
            Some(&["name", "account_id"]),
            &["update_mask.paths[1]"],
        ),
        ("nothing set, no mask", key.clone(), None, &["update_mask"]),
        ("nothing set, empty mask", key.clone(), Some(&[]), &["update_mask"]),
        (
            "addresses named but empty",
            key.clone(),
            Some(&["addresses"]),
            &["participant.addresses"],
        ),
        (
            "a bad phone number",
            Participant {
                addresses: vec![address(Channel::Sms, "not-a-phone")],
                ..key.clone()
            },
            None,
            &["participant.addresses[0].address"],
        ),
        (
            "the same address twice",
            Participant {
                addresses: vec![
                    address(Channel::Email, "twice@example.com"),
                    address(Channel::Email, "TWICE@example.com"),
                ],
                ..key.clone()
            },
            None,
            &["participant.addresses[1].address"],
        ),
        (
            "a name too long",
            Participant {
                name: "n".repeat(10_000),
                ..key.clone()
            },
            None,
            &["participant.name"],
        ),
        (
            "an unknown type",
            Participant {
                r#type: 99,
                ..key.clone()
            },
            None,
            &["participant.type"],
        ),
        (
            "no participant id",
            Participant {
                id: String::new(),
                name: "x".into(),
                ..key.clone()
            },
            None,
            &["participant.id"],
        ),
    ];
    for (case, values, mask, fields) in cases {
        assert_bad_request(update_v2(&app, values, mask).await, fields, case);
    }
    // Nothing changed.
    let fetched = app.fetch(&existing.conversation_id, &existing.id).await.unwrap();
    assert_eq!(fetched, existing);
    app.stop().await;
}

#[tokio::test]
async fn updating_an_unknown_participant_is_not_found() {
    let app = spawn_app().await;
    let existing = full_participant(&app).await;
    let name = |p: Participant| Participant {
        name: "x".into(),
        ..p
    };
    for (case, target) in [
        (
            "unknown id",
            Participant {
                id: participant_id(),
                ..v2_key(&existing)
            },
        ),
        (
            "another conversation",
            Participant {
                conversation_id: conversation_id(),
                ..v2_key(&existing)
            },
        ),
    ] {
        let status = expect_code(update_v2(&app, name(target), None).await, Code::NotFound);
        assert!(!status.message().is_empty(), "{case}");
    }
    assert_eq!(
        app.fetch(&existing.conversation_id, &existing.id).await.unwrap(),
        existing
    );
    app.stop().await;
}

#[tokio::test]
async fn a_new_address_of_another_participant_is_already_exists_and_own_addresses_may_stay() {
    // Arrange: two participants of one conversation.
    let app = spawn_app().await;
    let conversation = conversation_id();
    let taken = address(Channel::Sms, &phone());
    let mine = address(Channel::Sms, &phone());
    let a = app
        .create(CreateParticipantRequest {
            conversation_id: conversation.clone(),
            addresses: vec![taken.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let b = app
        .create(CreateParticipantRequest {
            conversation_id: conversation.clone(),
            addresses: vec![mine.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let with = |addresses: Vec<Address>| Participant {
        addresses,
        ..v2_key(&b)
    };

    // Act and assert: A's address is refused, naming A; nothing of B changed.
    assert_conflict_with(
        update_v2(&app, with(vec![mine.clone(), taken.clone()]), None).await,
        &a.id,
    );
    assert_eq!(app.fetch(&conversation, &b.id).await.unwrap(), b);
    // B keeps its own address and adds a new one.
    let email = address(Channel::Email, &format!("b{}@example.com", unique()));
    let updated = update_v2(&app, with(vec![mine.clone(), email.clone()]), None)
        .await
        .expect("own address may stay");
    assert_eq!(updated.addresses, vec![mine.clone(), email.clone()]);
    // The new address is B's now (case-insensitively for e-mail)...
    let upper = address(Channel::Email, &email.address.to_uppercase());
    let clash = CreateParticipantRequest {
        conversation_id: conversation.clone(),
        addresses: vec![upper],
        ..Default::default()
    };
    assert_conflict_with(app.create(clash).await, &b.id);
    // ...and an address B gave up is free again.
    update_v2(&app, with(vec![email.clone()]), None).await.unwrap();
    let freed = CreateParticipantRequest {
        conversation_id: conversation.clone(),
        addresses: vec![mine],
        ..Default::default()
    };
    app.create(freed).await.expect("the address B gave up is free");
    // The same address in another conversation was never a conflict.
    let elsewhere = full_participant(&app).await;
    update_v2(
        &app,
        Participant {
            addresses: vec![taken],
            ..v2_key(&elsewhere)
        },
        None,
    )
    .await
    .expect("another conversation");
    app.stop().await;
}

#[tokio::test]
async fn updated_at_moves_on_every_update_and_created_at_never_does() {
    let app = spawn_app().await;
    let created = full_participant(&app).await;
    let mut last = created.updated_at.unwrap();
    for n in 0..5 {
        let updated = update_v2(
            &app,
            Participant {
                name: format!("name {n}"),
                ..v2_key(&created)
            },
            None,
        )
        .await
        .unwrap();
        assert_eq!(updated.created_at, created.created_at);
        let now = updated.updated_at.unwrap();
        assert!((now.seconds, now.nanos) > (last.seconds, last.nanos), "update {n}");
        assert!((now.seconds - last.seconds).abs() < 60, "about now");
        last = now;
    }
    app.stop().await;
}

#[tokio::test]
async fn updates_are_still_there_after_a_restart() {
    let app = spawn_app().await;
    let created = full_participant(&app).await;
    let updated = update_v2(
        &app,
        Participant {
            name: "Durable".into(),
            addresses: vec![address(Channel::Whatsapp, &format!("whatsapp:{}", phone()))],
            ..v2_key(&created)
        },
        None,
    )
    .await
    .unwrap();

    let app = app.restart().await;

    assert_eq!(
        app.fetch(&created.conversation_id, &created.id).await.unwrap(),
        updated
    );
    let listed = list_v2(&app, &created.conversation_id, 0, "").await.unwrap();
    assert_eq!(listed.participants, vec![updated.clone()]);
    // The old address was freed durably, the new one is held.
    let reuse = CreateParticipantRequest {
        conversation_id: created.conversation_id.clone(),
        addresses: created.addresses.clone(),
        ..Default::default()
    };
    app.create(reuse).await.expect("old address free");
    let clash = CreateParticipantRequest {
        conversation_id: created.conversation_id.clone(),
        addresses: updated.addresses.clone(),
        ..Default::default()
    };
    assert_conflict_with(app.create(clash).await, &created.id);
    app.stop().await;
}

#[tokio::test]
async fn a_create_replayed_by_its_key_after_an_update_answers_as_the_first_time() {
    let app = spawn_app().await;
    let request = CreateParticipantRequest {
        idempotency_key: format!("update-replay-{}", unique()),
        ..create_request()
    };
    let first = app.create(request.clone()).await.unwrap();
    let updated = update_v2(
        &app,
        Participant {
            name: "Renamed".into(),
            ..v2_key(&first)
        },
        None,
    )
    .await
    .unwrap();

    let replay = app.create(request).await.expect("a replay is not an error");

    assert_eq!(replay, first, "the original response");
    assert_eq!(
        app.fetch(&first.conversation_id, &first.id).await.unwrap(),
        updated,
        "the participant itself keeps its update"
    );
    app.stop().await;
}
