//! Limits on what a call may be: `--max-message-bytes` on both fronts (413 with Twilio's
//! body, RESOURCE_EXHAUSTED; a create within the limit gets its participant back), and
//! load shedding past `--max-in-flight` (refused at once, probes still answered).

use std::time::Duration;

use bytes::Bytes;
use participants_facade::proto::Channel as AddressChannel;
use serde_json::Value;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use super::*;

// ---------------------------------------------------------------------------------------
// Message size
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn messages_over_max_message_bytes_are_refused_on_both_fronts() {
    // Arrange
    let app = spawn_app_configured(|c| c.server.max_message_bytes = 2048).await;
    let base = format!("http://{}", app.addr);

    // REST: a body over the limit is 413 with Twilio's body, over HTTP/1.1 and HTTP/2.
    let mut big = v2_body(&phone());
    big["name"] = Value::from("n".repeat(4000));
    for client in [http_client(), h2c_client()] {
        let answer = send(
            client
                .post(format!("{base}{}", v2_path(&conversation_id())))
                .json(&big),
        )
        .await;
        assert_twilio_error(&answer, 413, 413);
        let small = send(
            client
                .post(format!("{base}{}", v2_path(&conversation_id())))
                .json(&v2_body(&phone())),
        )
        .await;
        small.expect_status(201);
    }

    // gRPC: a message over the limit is RESOURCE_EXHAUSTED, as gRPC's status-code table
    // says (and grpc-go, -java and C-core answer), not tonic's own OUT_OF_RANGE; with no
    // RetryInfo, since the same message would be refused again.
    let mut request = create_request();
    request.name = "n".repeat(4000);
    let status = expect_code(app.create(request).await, Code::ResourceExhausted);
    assert!(
        status.message().contains("2048"),
        "the message names the limit: {status:?}"
    );
    assert!(
        tonic_types::StatusExt::get_details_retry_info(&status).is_none(),
        "no RetryInfo: {status:?}"
    );
    // Under the limit, on the same connection: served.
    app.create(create_request())
        .await
        .expect("a small create succeeds");
}

#[tokio::test]
async fn a_create_within_max_message_bytes_gets_its_participant_back() {
    // Arrange: a valid request just under the 2048-byte limit (long name and profile, 20
    // e-mail addresses with channel ids).
    let app = spawn_app_configured(|c| c.server.max_message_bytes = 2048).await;
    let mut request = create_request();
    request.name = "n".repeat(256);
    request.profile_id = "p".repeat(128);
    request.addresses = (0..20)
        .map(|i| {
            let email = format!("someone-{i}-{:06}@example.com", unique() % 1_000_000);
            let mut address = address(AddressChannel::Email, &email);
            address.channel_id = "c".repeat(44);
            address
        })
        .collect();
    let size = prost::Message::encoded_len(&request);
    assert!(
        (1900..=2048).contains(&size),
        "the request is just within the limit: {size} bytes"
    );

    // Act
    let result = app.create(request.clone()).await;

    // Assert: the server accepted the request, so the caller must learn the outcome. The
    // answer (the request plus id, account and timestamps) is bigger than the request.
    if let Err(status) = result {
        let retry = app.create(request).await;
        panic!(
            "a {size}-byte create (within --max-message-bytes 2048) was answered {:?} {:?}; \
             yet it was committed: a retry answers {:?}",
            status.code(),
            status.message(),
            retry.map_err(|s| (s.code(), s.message().to_owned()))
        );
    }
}

// ---------------------------------------------------------------------------------------
// Load shedding
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn calls_past_max_in_flight_are_refused_at_once_and_probes_still_answer() {
    // Arrange: at most 2 calls in flight (and a per-peer share above that, so the global
    // limit is the one met), and two calls held open: server-reflection streams, which
    // are served while their requests still arrive (unary calls take a slot only once
    // their body is in).
    let app = spawn_app_configured(|c| {
        c.server.max_in_flight = 2;
        c.server.max_in_flight_per_peer = Some(3);
    })
    .await;
    let base = format!("http://{}", app.addr);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(start_raw_call(app.addr, REFLECTION, &[]).await);
    }
    // The held calls are dispatched once the server has read their headers; wait until a
    // third call is refused (bounded), which also proves the permits are taken.
    let refused = until_shedding(&app).await;

    // Assert: gRPC refused at once with RESOURCE_EXHAUSTED.
    let (status, took) = refused;
    assert!(
        took < Duration::from_secs(2),
        "refused at once, not queued: {took:?}"
    );
    assert!(
        status.message().contains("in flight"),
        "the message says why: {status:?}"
    );

    // REST: 429 with Twilio's body and Retry-After.
    let client = http_client();
    let answer = send(
        client
            .post(format!("{base}{}", v2_path(&conversation_id())))
            .json(&v2_body(&phone())),
    )
    .await;
    assert_twilio_error(&answer, 429, 20429);
    assert_eq!(answer.header("retry-after"), Some("1"), "{answer:?}");

    // Probes are not counted: gRPC health and /healthz answer.
    let health = app
        .health
        .clone()
        .check(HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        })
        .await
        .expect("health answers while shedding")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    send(client.get(format!("{base}/healthz")))
        .await
        .expect_status(200);

    // The held calls finish normally; then calls are served again.
    for (response, mut body) in held {
        body.send_data(Bytes::from_static(LIST_SERVICES), true)
            .expect("finish the stream");
        let response = read_raw_response(response).await;
        assert_eq!(response.grpc_status.as_deref(), Some("0"), "{response:?}");
    }
    app.create(create_request())
        .await
        .expect("a call after the held ones finished succeeds");
    send(
        client
            .post(format!("{base}{}", v2_path(&conversation_id())))
            .json(&v2_body(&phone())),
    )
    .await
    .expect_status(201);
}
