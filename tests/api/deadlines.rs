//! Deadlines: a call that outlives its deadline is answered DEADLINE_EXCEEDED, per the
//! contract's table ("504 / deadline passed -> DEADLINE_EXCEEDED").

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::fixtures::*;

#[tokio::test]
async fn a_call_past_the_clients_grpc_timeout_is_answered_deadline_exceeded() {
    // Arrange: a call with a 300 ms deadline whose request body never completes.
    let app = spawn_app().await;
    let frame = grpc_frame(&create_request());
    let (response, mut body) =
        start_raw_call(app.addr, CREATE_PARTICIPANT, &[("grpc-timeout", "300m")]).await;
    let started = Instant::now();

    // Act
    body.send_data(Bytes::copy_from_slice(&frame[..3]), false)
        .expect("send the first bytes");
    let response = read_raw_response(response).await;

    // Assert
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered before the deadline: {response:?}"
    );
    assert_eq!(response.http_status, 200);
    assert_eq!(
        response.grpc_status.as_deref(),
        Some("4"),
        "expected DEADLINE_EXCEEDED (4): {response:?}"
    );
}

#[tokio::test]
async fn a_call_past_the_servers_request_timeout_is_answered_deadline_exceeded() {
    // Arrange: a server that bounds every call to 300 ms, and a call that never completes.
    let app = spawn_app_configured(|config| {
        config.server.request_timeout = Duration::from_millis(300);
    })
    .await;
    let frame = grpc_frame(&create_request());
    let (response, mut body) = start_raw_call(app.addr, CREATE_PARTICIPANT, &[]).await;

    // Act
    body.send_data(Bytes::copy_from_slice(&frame[..3]), false)
        .expect("send the first bytes");
    let response = read_raw_response(response).await;

    // Assert
    assert_eq!(
        response.grpc_status.as_deref(),
        Some("4"),
        "expected DEADLINE_EXCEEDED (4): {response:?}"
    );
}

#[tokio::test]
async fn a_call_within_its_grpc_timeout_succeeds() {
    let app = spawn_app().await;
    let request = create_request();
    let (response, mut body) =
        start_raw_call(app.addr, CREATE_PARTICIPANT, &[("grpc-timeout", "5S")]).await;

    body.send_data(Bytes::from(grpc_frame(&request)), true)
        .expect("send the request");
    let response = read_raw_response(response).await;

    assert_eq!(response.grpc_status.as_deref(), Some("0"), "{response:?}");
    let created: participants_facade::proto::Participant = single_message(&response.body);
    assert_eq!(created.addresses, request.addresses);
}
