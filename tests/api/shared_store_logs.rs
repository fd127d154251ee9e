//! Personal data and the database password never reach the logs of a replica on the
//! shared store, even at `RUST_LOG=debug`: the database driver logs every statement's
//! parameters at debug, and the facade holds it at info.

use participants_facade::proto::{
    Address, Channel as AddressChannel, FetchParticipantRequest, ListParticipantsRequest,
    UpdateParticipantRequest,
};

use crate::fixtures::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_hold_no_phone_number_name_or_password() {
    // Arrange: a replica on the shared store, logging everything at debug (as JSON, as
    // every child server does).
    let database = fresh_database().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ChildServer::start_with_env(
        &dir.path().join("data"),
        &["--database-url", &database.url],
        &[("RUST_LOG", "debug")],
    )
    .await;
    let mut client = server.client().await;
    let phone = phone();
    let name = format!("Grace Hopper {}", unique());

    // Act: create, fetch, list and update one participant.
    let mut request = create_request();
    request.name = name.clone();
    request.addresses = vec![Address {
        channel: AddressChannel::Sms as i32,
        address: phone.clone(),
        ..Default::default()
    }];
    let created = client
        .create_participant(request)
        .await
        .expect("create")
        .into_inner();
    client
        .fetch_participant(FetchParticipantRequest {
            conversation_id: created.conversation_id.clone(),
            participant_id: created.id.clone(),
        })
        .await
        .expect("fetch");
    client
        .list_participants(ListParticipantsRequest {
            conversation_id: created.conversation_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list");
    let renamed = format!("{name} Jr");
    client
        .update_participant(UpdateParticipantRequest {
            participant: Some(participants_facade::proto::Participant {
                name: renamed.clone(),
                ..created.clone()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".to_owned()],
            }),
        })
        .await
        .expect("update");

    // Assert: debug logging was on (the facade's own debug lines are there), and none of
    // the personal data or the password is.
    let logs = server.logs();
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "debug logs are on:\n{logs}"
    );
    for (what, secret) in [
        ("phone number", phone.as_str()),
        ("name", name.as_str()),
        ("new name", renamed.as_str()),
        ("database password", database.password.as_str()),
    ] {
        assert!(
            !logs.contains(secret),
            "the {what} reached the logs:\n{logs}"
        );
    }
}
