//! The database password never reaches a replica's logs (at debug level) or its exported
//! spans, whatever happens: successful calls, refused ones, and an outage in which the
//! database turns the replica's connections away (what the driver and the pool then log
//! included). Where the URL is shown, it is redacted (`***`).

use participants_facade::proto::{
    CreateParticipantRequest, DeleteServiceParticipantRequest, ListParticipantsRequest,
    Participant, UpdateParticipantRequest,
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use super::*;

/// A login role of the test's own, owning `database`, with a password of its own; the URL
/// that logs in as it.
async fn owner_role(database: &TestDatabase) -> (String, String, String) {
    let role = format!("r_{:016x}", rand::random::<u64>());
    let password = format!("pw-{:032x}", rand::random::<u128>());
    let admin = pg_connect(&test_database_url()).await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{password}';
             ALTER DATABASE {} OWNER TO {role}",
            database.name
        ))
        .await
        .expect("create the owner role");
    let admin_user_info = format!("postgres:{}@", database.password);
    assert!(
        database.url.contains(&admin_user_info),
        "the test URL's user"
    );
    let url = database
        .url
        .replace(&admin_user_info, &format!("{role}:{password}@"));
    (role, password, url)
}

/// Turns `role` away (no new connection, its open ones ended) or lets it in again.
async fn turn_away(role: &str, away: bool) {
    let admin = pg_connect(&test_database_url()).await;
    let limit = if away { 0 } else { -1 };
    admin
        .batch_execute(&format!("ALTER ROLE {role} CONNECTION LIMIT {limit}"))
        .await
        .expect("set the role's connection limit");
    if away {
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                &[&role],
            )
            .await
            .expect("end the role's connections");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_password_never_reaches_the_logs_even_through_an_outage() {
    // Arrange: a replica logging at debug (JSON) and exporting its spans, logged in as a
    // role with a password.
    let database = fresh_database().await;
    let (role, password, url) = owner_role(&database).await;
    let receiver = Receiver::start().await;
    let env = receiver.child_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        ChildServer::start_with_env(&dir.path().join("data"), &["--database-url", &url], &env)
            .await;
    let mut client = server.client().await;

    // Act: calls that succeed and calls that are refused, v2 and v1.
    let request = CreateParticipantRequest {
        idempotency_key: format!("logged-{}", unique()),
        ..create_request()
    };
    let created = client
        .create_participant(request.clone())
        .await
        .expect("create")
        .into_inner();
    client
        .create_participant(request.clone())
        .await
        .expect("replay");
    let reused = client
        .create_participant(CreateParticipantRequest {
            name: "Someone Else".into(),
            ..request.clone()
        })
        .await;
    assert_key_reused(reused);
    let taken = client
        .create_participant(CreateParticipantRequest {
            idempotency_key: String::new(),
            ..request.clone()
        })
        .await;
    assert_conflict_with(taken, &created.id);
    client
        .list_participants(ListParticipantsRequest {
            conversation_id: created.conversation_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list");
    client
        .update_participant(UpdateParticipantRequest {
            participant: Some(Participant {
                id: created.id.clone(),
                conversation_id: created.conversation_id.clone(),
                name: "Renamed".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .expect("update");
    let missing = client
        .fetch_participant(fetch_v2_request(
            &created.conversation_id,
            &participant_id(),
        ))
        .await;
    expect_code(missing, Code::NotFound);
    let v1 = client
        .create_service_participant(create_v1_request())
        .await
        .expect("create v1")
        .into_inner();
    let (service, chat) = (v1.chat_service_sid.clone(), v1.conversation_sid.clone());
    client
        .delete_service_participant(DeleteServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: chat.clone(),
            sid: v1.sid.clone(),
            ..Default::default()
        })
        .await
        .expect("delete v1");
    let gone = client
        .fetch_service_participant(fetch_v1_request(&service, &chat, &v1.identity))
        .await;
    expect_code(gone, Code::NotFound);

    // Act: an outage: the database ends the replica's connections and turns new ones
    // away, until it lets the role in again.
    turn_away(&role, true).await;
    let not_serving = eventually(WAIT, || async {
        health_status(server.addr, SERVICE_NAME).await == Some(ServingStatus::NotServing)
    })
    .await;
    assert!(
        not_serving,
        "readiness did not see the outage; logs:\n{}",
        server.logs()
    );
    let refused = client.create_service_participant(create_v1_request()).await;
    expect_code(refused, Code::Unavailable);
    turn_away(&role, false).await;
    let serving = eventually(WAIT, || async {
        health_status(server.addr, SERVICE_NAME).await == Some(ServingStatus::Serving)
    })
    .await;
    assert!(
        serving,
        "readiness did not come back; logs:\n{}",
        server.logs()
    );
    client
        .create_participant(create_request())
        .await
        .expect("a create after the outage");

    // A clean stop flushes the last spans (the receiver records an export before it
    // answers it, so all are in once the child exited).
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let status = server.wait_for_exit(WAIT).await;
    assert!(status.success(), "{status}; logs:\n{}", server.logs());

    // Assert: debug logging was on and the outage was logged, the store's spans were
    // exported, and neither password nor the URL as given is in either; every URL shown
    // is redacted.
    let logs = server.logs();
    let spans = receiver.exported().dump;
    assert!(
        spans.contains("postgresql"),
        "the store's spans were exported: {spans}"
    );
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "debug logs are on:\n{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("\"level\":\"WARN\"") && l.contains("database")),
        "the outage is logged:\n{logs}"
    );
    for (what, secret) in [
        ("the role's password", password.as_str()),
        ("the URL", url.as_str()),
        ("the admin password", database.password.as_str()),
    ] {
        assert!(!logs.contains(secret), "{what} reached the logs:\n{logs}");
        assert!(
            !spans.contains(secret),
            "{what} reached the spans:\n{spans}"
        );
    }
    for text in [&logs, &spans] {
        for (at, _) in text.match_indices(&format!("{role}:")) {
            assert!(
                text[at..].starts_with(&format!("{role}:***@")),
                "a URL shown unredacted: {}",
                &text[at..(at + 80).min(text.len())]
            );
        }
    }
}
