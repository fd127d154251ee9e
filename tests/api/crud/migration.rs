//! Stores written by earlier versions (schema version 1, `schema_v1.sql`, and version 2,
//! `schema_v2.sql`: each schema as it was, and rows as that version wrote them) open, list
//! in creation order, replay their idempotency keys, and take updates and creates.

use participants_facade::domain::{AddressDraft, CreateRequest, ParticipantDraft, Raw};
use participants_facade::proto::{CreateParticipantRequest, Participant};
use rusqlite::params;

use super::*;

const OLD_SCHEMA: &str = include_str!("schema_v1.sql");
const V2_SCHEMA: &str = include_str!("schema_v2.sql");

/// A v2 body as version 1 stored it.
fn v2_body(id: &str, conversation: &str, name: &str, address: &str, created_at: &str) -> String {
    format!(
        r#"{{"id":"{id}","conversation_id":"{conversation}","account_id":"{DEFAULT_ACCOUNT}","name":"{name}","type":"CUSTOMER","profile_id":null,"addresses":[{{"channel":"SMS","address":"{address}"}}],"created_at":"{created_at}","updated_at":"{created_at}"}}"#
    )
}

/// A v1 body as version 1 stored it.
fn v1_body(sid: &str, service: &str, chat: &str, identity: &str, date: &str) -> String {
    format!(
        r#"{{"sid":"{sid}","account_sid":"{DEFAULT_ACCOUNT}","chat_service_sid":"{service}","conversation_sid":"{chat}","identity":"{identity}","attributes":"{{}}","messaging_binding":null,"role_sid":null,"date_created":"{date}","date_updated":"{date}","last_read_message_index":null,"last_read_timestamp":null}}"#
    )
}

#[tokio::test]
async fn a_store_of_the_previous_schema_opens_and_lists_in_creation_order() {
    // Arrange: a version-1 database with three v2 participants (ids not in time order,
    // times with and without fractional seconds), two v1 participants and a key.
    let dir = tempfile::tempdir().unwrap();
    let conversation = conversation_id();
    let (service, chat) = (sid("IS"), sid("CH"));
    // (id, created_at, address): listed oldest first, so c, a, b.
    let v2 = [
        (
            "conv_participant_00000000000000000000000001",
            "2026-01-01T00:00:00.500Z",
            "+15550000001",
        ),
        (
            "conv_participant_00000000000000000000000002",
            "2026-01-01T00:00:01Z",
            "+15550000002",
        ),
        (
            "conv_participant_00000000000000000000000003",
            "2026-01-01T00:00:00Z",
            "+15550000003",
        ),
    ];
    let v1 = [
        (sid("MB"), "user-late", "2025-06-02T00:00:00Z"),
        (sid("MB"), "user-early", "2025-06-01T00:00:00Z"),
    ];
    let keyed = NewKeyed::new(&conversation);
    {
        let db = rusqlite::Connection::open(dir.path().join("participants.db")).unwrap();
        db.pragma_update(None, "journal_mode", "WAL").unwrap();
        db.execute_batch(OLD_SCHEMA).unwrap();
        for (id, created_at, address) in v2 {
            let body = v2_body(id, &conversation, "Old", address, created_at);
            db.execute(
                "INSERT INTO participants (id, conversation_id, body) VALUES (?1, ?2, ?3)",
                params![id, conversation, body],
            )
            .unwrap();
            db.execute(
                "INSERT INTO participant_addresses (conversation_id, channel, address, participant_id)
                 VALUES (?1, 'SMS', ?2, ?3)",
                params![conversation, address, id],
            )
            .unwrap();
        }
        for (sid, identity, date) in &v1 {
            db.execute(
                "INSERT INTO service_participants
                 (sid, chat_service_sid, conversation_sid, identity, binding_address, binding_proxy, body)
                 VALUES (?1, ?2, ?3, ?4, NULL, NULL, ?5)",
                params![sid, service, chat, identity, v1_body(sid, &service, &chat, identity, date)],
            )
            .unwrap();
        }
        // The first participant was created with an idempotency key.
        db.execute(
            "INSERT INTO idempotency_keys (key, fingerprint, resource_id, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![keyed.key, keyed.fingerprint, v2[0].0, now_seconds()],
        )
        .unwrap();
        let version: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1, "the old schema");
    }

    // Act
    let app = spawn_app_in(dir).await;

    // Assert: oldest first by the creation times the bodies hold.
    let listed = walk_v2(&app, &conversation, 2).await;
    assert_eq!(
        ids(&listed),
        [v2[2].0, v2[0].0, v2[1].0].map(str::to_owned).to_vec()
    );
    assert_eq!(listed[1].name, "Old");
    assert_eq!(listed[1].created_at.unwrap().nanos, 500_000_000);
    let listed = walk_v1(&app, &service, &chat, 1).await;
    assert_eq!(sids(&listed), vec![v1[1].0.clone(), v1[0].0.clone()]);
    // Conflicts still come from the old rows.
    assert_conflict_with(
        app.create(CreateParticipantRequest {
            conversation_id: conversation.clone(),
            addresses: vec![address(participants_facade::proto::Channel::Sms, v2[1].2)],
            ..Default::default()
        })
        .await,
        v2[1].0,
    );
    // An old participant updates; the key replays the first answer.
    let updated = update_v2(
        &app,
        Participant {
            id: v2[0].0.to_owned(),
            conversation_id: conversation.clone(),
            name: "Renamed".into(),
            ..Default::default()
        },
        None,
    )
    .await
    .expect("update an old participant");
    let replay = app.create(keyed.request.clone()).await.expect("replay");
    assert_eq!(replay.id, v2[0].0);
    assert_eq!(replay.name, "Old", "the original answer");
    // New participants come after the old ones, and old ones can be deleted.
    let new = create_v2_many(&app, &conversation, 2).await;
    let mut expected = [v2[2].0, updated.id.as_str(), v2[1].0]
        .map(str::to_owned)
        .to_vec();
    expected.extend(ids(&new));
    assert_eq!(ids(&walk_v2(&app, &conversation, 3).await), expected);
    delete_v1(&app, &service, &chat, "user-early")
        .await
        .unwrap();
    let newer = create_v1_many(&app, &service, &chat, 1).await;
    assert_eq!(
        sids(&walk_v1(&app, &service, &chat, 50).await),
        vec![v1[0].0.clone(), newer[0].sid.clone()]
    );

    // And the migrated store reopens as version 3, unchanged.
    let app = app.restart().await;
    assert_eq!(ids(&walk_v2(&app, &conversation, 50).await), expected);
    let data_dir = app.data_dir().to_path_buf();
    let _holder = app.stop().await;
    let db = rusqlite::Connection::open(data_dir.join("participants.db")).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

#[tokio::test]
async fn a_store_of_schema_version_2_is_rewritten_in_the_compact_form_and_reads_the_same() {
    // Arrange: a version-2 database (JSON bodies, text keys) holding a v2 participant with
    // a canonical id, one with an id of another shape, one under another account, a v1
    // participant with a canonical sid and a binding, one whose sid has upper-case hex,
    // and a key with its stored answer.
    let dir = tempfile::tempdir().unwrap();
    let conversation = conversation_id();
    let (service, chat) = (sid("IS"), sid("CH"));
    let canonical = "conv_participant_01kb5j3hbm9gq0s7w9x2e4c6t8";
    let legacy = format!("conv_participant_legacy-{}", unique());
    let foreign = "conv_participant_01kb5j3hbm9gq0s7w9x2e4c6t9";
    let v2 = [
        (canonical.to_owned(), DEFAULT_ACCOUNT, "+15550000011"),
        (legacy.clone(), DEFAULT_ACCOUNT, "+15550000012"),
        (
            foreign.to_owned(),
            "AC99999999999999999999999999999999",
            "+15550000013",
        ),
    ];
    let bound_sid = format!("MB{:032x}", 0x1234_u128 + u128::from(unique()));
    let upper_sid = format!("MB{:032X}", 0xabcd_u128 + u128::from(unique()));
    let keyed = NewKeyed::new(&conversation);
    {
        let db = rusqlite::Connection::open(dir.path().join("participants.db")).unwrap();
        db.pragma_update(None, "journal_mode", "WAL").unwrap();
        db.execute_batch(V2_SCHEMA).unwrap();
        for (seq, (id, account, address)) in v2.iter().enumerate() {
            let body = v2_body(
                id,
                &conversation,
                "Two",
                address,
                "2026-02-01T00:00:00.250Z",
            )
            .replace(DEFAULT_ACCOUNT, account);
            db.execute(
                "INSERT INTO participants (id, conversation_id, body, seq) VALUES (?1, ?2, ?3, ?4)",
                params![id, conversation, body, seq as i64 + 1],
            )
            .unwrap();
            db.execute(
                "INSERT INTO participant_addresses (conversation_id, channel, address, participant_id)
                 VALUES (?1, 'SMS', ?2, ?3)",
                params![conversation, address, id],
            )
            .unwrap();
        }
        let bound = v1_body(&bound_sid, &service, &chat, "x", "2025-07-01T00:00:00Z")
            .replace(r#""identity":"x""#, "\"identity\":null")
            .replace(
                r#""messaging_binding":null"#,
                r#""messaging_binding":{"address":"+15550000021","proxy_address":"+15550000022","type":"sms"}"#,
            );
        for (seq, sid, identity, address, body) in [
            (4_i64, &bound_sid, None, Some("+15550000021"), bound),
            (
                5,
                &upper_sid,
                Some("user-upper"),
                None,
                v1_body(
                    &upper_sid,
                    &service,
                    &chat,
                    "user-upper",
                    "2025-07-02T00:00:00Z",
                ),
            ),
        ] {
            db.execute(
                "INSERT INTO service_participants
                 (sid, chat_service_sid, conversation_sid, identity, binding_address, binding_proxy, body, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    sid,
                    service,
                    chat,
                    identity,
                    address,
                    address.map(|_| "+15550000022"),
                    body,
                    seq
                ],
            )
            .unwrap();
        }
        db.execute("UPDATE sequence SET next = 6 WHERE id = 1", [])
            .unwrap();
        let answer = v2_body(
            canonical,
            &conversation,
            "Two",
            "+15550000011",
            "2026-02-01T00:00:00.250Z",
        );
        db.execute(
            "INSERT INTO idempotency_keys (key, fingerprint, resource_id, created_at, response)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                keyed.key,
                keyed.fingerprint,
                canonical,
                now_seconds(),
                answer
            ],
        )
        .unwrap();
    }

    // Act
    let app = spawn_app_in(dir).await;

    // Assert: every record reads as it was written, in its order.
    let listed = walk_v2(&app, &conversation, 2).await;
    assert_eq!(
        ids(&listed),
        v2.iter().map(|(id, _, _)| id.clone()).collect::<Vec<_>>()
    );
    for (participant, (_, account, address)) in listed.iter().zip(&v2) {
        assert_eq!(participant.account_id, *account);
        assert_eq!(participant.name, "Two");
        assert_eq!(participant.addresses[0].address, *address);
        assert_eq!(participant.created_at.unwrap().nanos, 250_000_000);
    }
    assert_eq!(app.fetch(&conversation, &legacy).await.unwrap().id, legacy);
    let listed = walk_v1(&app, &service, &chat, 50).await;
    assert_eq!(sids(&listed), vec![bound_sid.clone(), upper_sid.clone()]);
    let binding = listed[0].messaging_binding.clone().expect("the binding");
    assert_eq!(binding.address, "+15550000021");
    assert_eq!(binding.proxy_address, "+15550000022");
    assert_eq!(
        app.fetch_v1(&service, &chat, "user-upper")
            .await
            .unwrap()
            .sid,
        upper_sid
    );
    // Conflicts come from the rewritten rows: an address, an identity.
    assert_conflict_with(
        app.create(CreateParticipantRequest {
            conversation_id: conversation.clone(),
            addresses: vec![address(
                participants_facade::proto::Channel::Sms,
                "+15550000012",
            )],
            ..Default::default()
        })
        .await,
        &legacy,
    );
    // The key replays its stored answer; new rows come after the old ones.
    let replay = app.create(keyed.request.clone()).await.expect("replay");
    assert_eq!(replay.id, canonical);
    let new = create_v2_many(&app, &conversation, 1).await;
    let mut expected: Vec<String> = v2.iter().map(|(id, _, _)| id.clone()).collect();
    expected.extend(ids(&new));
    assert_eq!(ids(&walk_v2(&app, &conversation, 50).await), expected);
    delete_v1(&app, &service, &chat, &upper_sid).await.unwrap();
    assert_eq!(
        sids(&walk_v1(&app, &service, &chat, 50).await),
        vec![bound_sid]
    );

    let app = app.restart().await;
    assert_eq!(ids(&walk_v2(&app, &conversation, 50).await), expected);
    let data_dir = app.data_dir().to_path_buf();
    let _holder = app.stop().await;
    let db = rusqlite::Connection::open(data_dir.join("participants.db")).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let blobs: i64 = db
        .query_row(
            "SELECT count(*) FROM participants WHERE typeof(id) = 'blob'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(blobs, 3, "the canonical ids, old and new, as 16 bytes");
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

#[tokio::test]
async fn a_store_of_a_newer_schema_is_refused_rather_than_written() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = rusqlite::Connection::open(dir.path().join("participants.db")).unwrap();
        db.execute_batch("PRAGMA user_version = 99;").unwrap();
    }
    let options =
        participants_facade::backend::local::StoreOptions::new(dir.path(), DEFAULT_ACCOUNT);
    let err = participants_facade::backend::local::LocalBackend::open(&options)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("newer"), "{err}");
}

/// A keyed v2 create as version 1 would have stored its key.
struct NewKeyed {
    key: String,
    fingerprint: Vec<u8>,
    request: CreateParticipantRequest,
}

impl NewKeyed {
    fn new(conversation: &str) -> NewKeyed {
        let key = format!("old-key-{}", unique());
        let request = CreateParticipantRequest {
            conversation_id: conversation.to_owned(),
            name: "Old".into(),
            r#type: participants_facade::proto::ParticipantType::Customer.into(),
            addresses: vec![address(
                participants_facade::proto::Channel::Sms,
                "+15550000001",
            )],
            idempotency_key: key.clone(),
            ..Default::default()
        };
        let draft = ParticipantDraft {
            conversation_id: conversation.to_owned(),
            name: "Old".into(),
            kind: Some(Raw::Known(
                participants_facade::domain::ParticipantType::Customer,
            )),
            profile_id: String::new(),
            addresses: vec![AddressDraft {
                channel: Raw::Known(participants_facade::domain::Channel::Sms),
                address: "+15550000001".into(),
                channel_id: String::new(),
            }],
            idempotency_key: key.clone(),
        };
        let fingerprint = draft.validate().expect("valid").fingerprint();
        NewKeyed {
            key,
            fingerprint,
            request,
        }
    }
}
