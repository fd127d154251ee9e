//! What a server stores is there for the next server on the same data directory.

use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
};

use crate::fixtures::*;

#[tokio::test]
async fn participants_are_still_there_after_a_restart_on_the_same_directory() {
    // Arrange
    let app = spawn_app().await;
    let mut v2 = Vec::new();
    for _ in 0..10 {
        v2.push(app.create(create_request()).await.unwrap());
    }
    let identity = app.create_v1(create_v1_request()).await.unwrap();
    let sms = app
        .create_v1(CreateServiceParticipantRequest {
            identity: String::new(),
            messaging_binding: binding(&phone(), "+18005550100"),
            ..create_v1_request()
        })
        .await
        .unwrap();

    // Act
    let app = app.restart().await;

    // Assert
    for participant in &v2 {
        let fetched = app
            .fetch(&participant.conversation_id, &participant.id)
            .await
            .expect("v2 participant survives the restart");
        assert_eq!(&fetched, participant);
    }
    for participant in [&identity, &sms] {
        let fetched = app
            .fetch_v1(
                &participant.chat_service_sid,
                &participant.conversation_sid,
                &participant.sid,
            )
            .await
            .expect("v1 participant survives the restart");
        // Same resource; only the url's host:port reflects the new listener.
        assert_eq!(
            fetched.url.rsplit_once("/v1/").map(|(_, p)| p.to_owned()),
            participant
                .url
                .rsplit_once("/v1/")
                .map(|(_, p)| p.to_owned())
        );
        assert_eq!(
            participants_facade::proto::ServiceParticipant {
                url: String::new(),
                ..fetched
            },
            participants_facade::proto::ServiceParticipant {
                url: String::new(),
                ..participant.clone()
            }
        );
    }
    let by_identity = app
        .fetch_v1(
            &identity.chat_service_sid,
            &identity.conversation_sid,
            &identity.identity,
        )
        .await
        .expect("fetch by identity after restart");
    assert_eq!(by_identity.sid, identity.sid);
    app.stop().await;
}

#[tokio::test]
async fn conflicts_are_still_detected_after_a_restart() {
    let app = spawn_app().await;
    let first = app.create(create_request()).await.unwrap();
    let v1 = app.create_v1(create_v1_request()).await.unwrap();

    let app = app.restart().await;

    let again = CreateParticipantRequest {
        conversation_id: first.conversation_id.clone(),
        addresses: first.addresses.clone(),
        ..Default::default()
    };
    assert_conflict_with(app.create(again).await, &first.id);
    let again_v1 = CreateServiceParticipantRequest {
        chat_service_sid: v1.chat_service_sid.clone(),
        conversation_sid: v1.conversation_sid.clone(),
        identity: v1.identity.clone(),
        ..Default::default()
    };
    assert_conflict_with(app.create_v1(again_v1).await, &v1.sid);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_are_honoured_across_a_restart() {
    // Arrange
    let app = spawn_app().await;
    let request = CreateParticipantRequest {
        idempotency_key: format!("restart-{}", unique()),
        addresses: vec![address(
            Channel::Email,
            &format!("r{}@example.com", unique()),
        )],
        ..create_request()
    };
    let v1_request = CreateServiceParticipantRequest {
        idempotency_key: format!("restart-v1-{}", unique()),
        ..create_v1_request()
    };
    let first = app.create(request.clone()).await.unwrap();
    let first_v1 = app.create_v1(v1_request.clone()).await.unwrap();

    // Act
    let app = app.restart().await;
    let replay = app.create(request.clone()).await;
    let replay_v1 = app.create_v1(v1_request.clone()).await;
    let changed = app
        .create(CreateParticipantRequest {
            name: "changed".into(),
            ..request.clone()
        })
        .await;
    let changed_v1 = app
        .create_v1(CreateServiceParticipantRequest {
            attributes: r#"{"changed":true}"#.into(),
            ..v1_request
        })
        .await;

    // Assert
    assert_eq!(replay.expect("replay after restart"), first);
    assert_eq!(
        replay_v1.expect("v1 replay after restart").sid,
        first_v1.sid
    );
    assert_key_reused(changed);
    assert_key_reused(changed_v1);
    let without_key = CreateParticipantRequest {
        idempotency_key: String::new(),
        ..request
    };
    assert_conflict_with(app.create(without_key).await, &first.id);
    app.stop().await;
}

#[tokio::test]
async fn a_second_server_cannot_open_a_data_directory_in_use() {
    // Arrange
    let app = spawn_app().await;
    let created = app.create(create_request()).await.unwrap();
    let dir = app.data_dir().to_path_buf();
    assert!(dir.join("participants.db").exists());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = participants_facade::config::Config::local(&dir);

    // Act
    let result = tokio::time::timeout(
        WAIT,
        participants_facade::app::run(listener, config, std::future::pending()),
    )
    .await
    .expect("refuses at once rather than serving");

    // Assert
    let err = result.expect_err("the directory is locked by the first server");
    assert!(
        format!("{err:#}").contains("in use"),
        "error names the cause: {err:#}"
    );
    // The first server is unaffected.
    assert_eq!(
        app.fetch(&created.conversation_id, &created.id)
            .await
            .unwrap(),
        created
    );
    app.stop().await;
}

#[tokio::test]
async fn once_run_returns_after_the_grace_period_the_data_directory_can_be_reopened() {
    // Arrange: a server with a short grace period, and a call that never completes.
    let app = spawn_app_configured(|config| {
        config.server.shutdown_grace = std::time::Duration::from_millis(300);
    })
    .await;
    let created = app.create(create_request()).await.unwrap();
    let data_dir = app.data_dir().to_path_buf();
    let frame = grpc_frame(&create_request());
    let mut stuck = open_raw_call(app.addr, CREATE_PARTICIPANT, &[]).await;
    stuck
        .body
        .send_data(bytes::Bytes::copy_from_slice(&frame[..3]), false)
        .unwrap();
    // In flight: the server has read the call's head once it answers a later PING.
    stuck.round_trip().await;

    // Act: stop; `run` gives up on the stuck call after the grace period and returns.
    let holder = app.stop().await;
    let reopened = tokio::time::timeout(WAIT, async {
        participants_facade::backend::local::LocalBackend::open(
            &participants_facade::backend::local::StoreOptions::new(&data_dir, DEFAULT_ACCOUNT),
        )
    })
    .await
    .expect("open does not hang");

    // Assert: `run` has returned, so the store is closed and its lock released.
    let backend = reopened.unwrap_or_else(|e| {
        panic!("the data directory is still locked after server::run returned: {e}")
    });
    drop(backend);
    let app = spawn_app_at(holder, data_dir).await;
    assert_eq!(
        app.fetch(&created.conversation_id, &created.id)
            .await
            .unwrap(),
        created
    );
    drop(stuck);
    app.stop().await;
}

/// Checkpoints run in the background: what was committed reaches the database file itself
/// (not only the write-ahead log) while the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_pages_reach_the_database_file_while_serving() {
    // Arrange
    let app = spawn_app().await;
    let db = app.data_dir().join("participants.db");
    let scratch = tempfile::tempdir().unwrap();
    // The database file alone, without its log: what checkpoints have copied so far.
    let checkpointed = || -> Option<i64> {
        let copy = scratch.path().join(format!("copy-{}.db", unique()));
        std::fs::copy(&db, &copy).ok()?;
        let conn = rusqlite::Connection::open(&copy).ok()?;
        // A copy taken mid-checkpoint may be torn; the caller tries again.
        conn.query_row("SELECT count(*) FROM participants", [], |r| r.get(0))
            .ok()
    };

    // Act: 200 creates in a few rounds of group commits.
    for _ in 0..4 {
        let mut creates = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let client = app.new_client().await;
            creates.spawn(async move { client.clone().create_participant(create_request()).await });
        }
        for created in creates.join_all().await {
            created.expect("create");
        }
    }

    // Assert: within a bounded wait, and with the server still running, the database
    // file holds all 200.
    let seen = std::cell::Cell::new(None);
    let all_there = eventually(WAIT, || async {
        seen.set(checkpointed());
        seen.get() == Some(200)
    })
    .await;
    assert!(
        all_there,
        "participants in the database file without its log: {:?}, not 200",
        seen.get()
    );
    app.stop().await;
}
