//! The server's own deadline, `--request-timeout`: a call whose body never completes is
//! answered DEADLINE_EXCEEDED (gRPC) or 504 (REST) at the timeout; and gRPC-Web callers
//! get refusals and timeouts in gRPC-Web framing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use super::*;

#[tokio::test]
async fn calls_past_the_request_timeout_are_answered_deadline_exceeded_and_504() {
    // Arrange
    let app = spawn_app_configured(|c| c.server.request_timeout = Duration::from_millis(500)).await;

    // gRPC: a call whose body never completes.
    let frame = grpc_frame(&create_request());
    let (response, mut body) = start_raw_call(app.addr, CREATE_PARTICIPANT, &[]).await;
    let started = Instant::now();
    body.send_data(Bytes::copy_from_slice(&frame[..3]), false)
        .expect("send the first bytes");
    let response = read_raw_response(response).await;
    let took = started.elapsed();
    assert_eq!(
        response.grpc_status.as_deref(),
        Some("4"),
        "DEADLINE_EXCEEDED: {response:?}"
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "answered at the 500 ms request timeout: {took:?}"
    );

    // REST (HTTP/1.1): a body shorter than its Content-Length.
    let mut stream = TcpStream::connect(app.addr).await.expect("tcp connect");
    let path = v2_path(&conversation_id());
    let started = Instant::now();
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{\"name\""
            )
            .as_bytes(),
        )
        .await
        .expect("write a partial request");
    let response = read_http1_response(&mut stream, WAIT)
        .await
        .expect("a response");
    let took = started.elapsed();
    assert_twilio_error(&response.answer(), 504, 504);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "answered at the 500 ms request timeout: {took:?}"
    );
    assert!(response.header("content-type").is_some());

    // A call within the timeout is served.
    app.create(create_request())
        .await
        .expect("a prompt call succeeds");
}

/// Holds one call open on `app` (a server-reflection stream that has sent nothing) and
/// waits (bounded) until a further call is refused RESOURCE_EXHAUSTED; returns the held
/// call.
async fn hold_until_shedding(app: &TestApp) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let held = start_raw_call(app.addr, REFLECTION, &[]).await;
    until_shedding(app).await;
    held
}

#[tokio::test]
async fn refusals_and_timeouts_answer_grpc_web_callers_in_grpc_web_framing() {
    // Load shedding: one call in flight at most, and one held.
    let shedding = spawn_app_configured(|c| c.server.max_in_flight = 1).await;
    let _held = hold_until_shedding(&shedding).await;
    let refused = grpc_web_call(&shedding, CREATE_PARTICIPANT, &create_request(), false, &[]).await;
    let refused_ok = refused.http_status == 200
        && refused.content_type.starts_with("application/grpc-web")
        && refused.grpc_status.as_deref() == Some("8");

    // The request timeout: a gRPC-Web call (HTTP/1.1) whose body never completes.
    let slow =
        spawn_app_configured(|c| c.server.request_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(slow.addr).await.expect("tcp connect");
    stream
        .write_all(
            format!(
                "POST {CREATE_PARTICIPANT} HTTP/1.1\r\nHost: localhost\r\n\
                 Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
                 Content-Length: 100\r\n\r\n\0\0\0"
            )
            .as_bytes(),
        )
        .await
        .expect("write a partial call");
    let timed_out = read_http1_response(&mut stream, WAIT)
        .await
        .expect("an answer");
    let trailer_status = String::from_utf8_lossy(&timed_out.body).contains("grpc-status:4");
    let timed_out_ok = timed_out.status == 200
        && timed_out
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/grpc-web"))
        && (timed_out.header("grpc-status") == Some("4") || trailer_status);

    // Assert: both are gRPC-Web answers (a browser's gRPC-Web client cannot read an
    // `application/grpc` answer), with RESOURCE_EXHAUSTED (8) and DEADLINE_EXCEEDED (4).
    assert!(
        refused_ok && timed_out_ok,
        "gRPC-Web answers expected; load shedding answered {:?} grpc-status {:?}, the \
         request timeout answered {:?} grpc-status {:?}",
        refused.content_type,
        refused.grpc_status,
        timed_out.header("content-type"),
        timed_out.header("grpc-status"),
    );
}

#[tokio::test]
async fn load_shedding_answers_connect_callers_in_connects_error_json() {
    // Arrange: one call in flight at most, and one held.
    let shedding = spawn_app_configured(|c| c.server.max_in_flight = 1).await;
    let _held = hold_until_shedding(&shedding).await;

    // Act: a Connect JSON create.
    let refused = send(
        http_client()
            .post(format!("http://{}{CREATE_PARTICIPANT}", shedding.addr))
            .header("content-type", "application/json")
            .body(r#"{"conversationId":"conv_x"}"#),
    )
    .await;

    // Assert: Connect's error JSON with the HTTP status of resource_exhausted, not a gRPC
    // trailers-only answer nor Twilio's body.
    refused.expect_status(429);
    assert_eq!(
        refused.header("content-type"),
        Some("application/json"),
        "{refused:?}"
    );
    assert_eq!(refused.json()["code"], "resource_exhausted", "{refused:?}");
    assert!(refused.header("grpc-status").is_none(), "{refused:?}");
}
