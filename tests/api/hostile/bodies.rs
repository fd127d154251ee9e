//! Clients that send too little, too slowly, or too much: slow bodies hold no in-flight
//! slot and are answered 408 after `--body-timeout`; one address holds at most its share
//! of calls; a unary gRPC call with two messages, or a malformed `grpc-timeout`, is
//! refused; requests hyper itself refuses carry Twilio's error body; the v1 `url` follows
//! an absolute-form request target, not the Host header.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use participants_facade::proto::FetchParticipantRequest;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tonic_types::StatusExt as _;

use crate::fixtures::*;

/// The head of a v2 create over HTTP/1.1 announcing `length` body bytes.
fn create_head(conversation: &str, length: usize) -> String {
    format!(
        "POST /v2/Conversations/{conversation}/Participants HTTP/1.1\r\nhost: facade\r\n\
         content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    )
}

/// A whole v2 create body for a fresh phone number.
fn create_body() -> String {
    format!(
        r#"{{"type":"CUSTOMER","addresses":[{{"channel":"SMS","address":"{}"}}]}}"#,
        phone()
    )
}

/// Calls in flight on the server now, by `/metrics` (every test of this binary counts).
async fn calls_in_flight(app: &TestApp) -> f64 {
    total(&scrape(app.addr).await, "server_calls_in_flight")
}

/// Reads one HTTP/1.1 answer (bounded).
async fn read_answer(stream: &mut TcpStream) -> Http1Response {
    read_http1_response(stream, WAIT)
        .await
        .expect("an HTTP answer within the bound")
}

#[tokio::test]
async fn slow_bodies_hold_no_in_flight_slot_and_are_answered_408() {
    // Arrange: four in-flight slots, bodies due within 1 s, and forty clients from forty
    // addresses that send a head and five body bytes, then go quiet.
    let app = spawn_app_configured(|c| {
        c.server.max_in_flight = 4;
        c.server.body_timeout = Duration::from_secs(1);
    })
    .await;
    let before = calls_in_flight(&app).await;
    let conversation = conversation_id();
    let mut slow = Vec::new();
    for i in 0..40u8 {
        let mut stream = connect_from(Ipv4Addr::new(127, 0, 1, i + 1), app.addr).await;
        let head = create_head(&conversation, 200);
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(b"{\"typ").await.expect("five bytes");
        slow.push(stream);
    }
    assert!(
        eventually(WAIT, || async {
            calls_in_flight(&app).await >= before + 40.0
        })
        .await,
        "the server never saw the forty slow calls"
    );

    // Act: others call while the slow bodies hang.
    let mut served = 0;
    for _ in 0..20 {
        app.create(create_request())
            .await
            .expect("a prompt caller is served while slow bodies hang");
        served += 1;
    }

    // Assert: every slow body is answered 408, Twilio's way, and its slot freed.
    assert_eq!(served, 20);
    for mut stream in slow {
        let error = assert_twilio_error(&read_answer(&mut stream).await.answer(), 408, 408);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("--body-timeout"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_calls() {
    // Arrange: four slots, two per address; one address holds two calls open.
    let app = spawn_app_configured(|c| {
        c.server.max_in_flight = 4;
        c.server.max_in_flight_per_peer = Some(2);
    })
    .await;
    let greedy = Ipv4Addr::new(127, 0, 2, 1);
    let conversation = conversation_id();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from(greedy, app.addr).await;
        let head = create_head(&conversation, 200);
        stream.write_all(head.as_bytes()).await.expect("head");
        held.push(stream);
    }

    // Act: a third call from the same address, whole and prompt.
    let mut refused = None;
    let third = async {
        loop {
            let mut stream = connect_from(greedy, app.addr).await;
            let body = create_body();
            let request = format!("{}{body}", create_head(&conversation, body.len()));
            stream.write_all(request.as_bytes()).await.expect("request");
            let answer = read_answer(&mut stream).await;
            if answer.status == 429 {
                refused = Some(answer);
                return;
            }
            // The held calls' heads were not read yet: they were served first.
            assert_eq!(answer.status, 201, "{}", answer.text());
        }
    };
    tokio::time::timeout(WAIT, third)
        .await
        .expect("a third call from the greedy address is refused within 10 s");

    // Assert: refused at once with Twilio's body; another address is served.
    let error = assert_twilio_error(&refused.expect("refused").answer(), 429, 20429);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("--max-in-flight-per-peer"),
        "{error}"
    );
    let mut other = connect_from(Ipv4Addr::new(127, 0, 2, 2), app.addr).await;
    let body = create_body();
    let request = format!("{}{body}", create_head(&conversation, body.len()));
    other.write_all(request.as_bytes()).await.expect("request");
    let answer = read_answer(&mut other).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    drop(held);
}

/// A raw gRPC call with a whole request `body`: the answer's status (from the headers of a
/// trailers-only answer, else from the trailers).
async fn raw_grpc(
    addr: SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> tonic::Status {
    let (response, mut send) = start_raw_call(addr, method, headers).await;
    send.send_data(Bytes::from(body), true).expect("send body");
    read_raw_response(response).await.status()
}

#[tokio::test]
async fn a_unary_call_carrying_two_messages_is_refused_not_first_one_wins() {
    // Arrange
    let app = spawn_app().await;
    let first = create_request();
    let second = create_request();
    let body = [grpc_frame(&first), grpc_frame(&second)].concat();

    // Act
    let status = raw_grpc(app.addr, CREATE_PARTICIPANT, &[], body).await;

    // Assert: gRPC's status-code table calls it a cardinality violation, UNIMPLEMENTED;
    // neither participant was created.
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert!(status.message().contains("exactly one"), "{status:?}");
    let mut client = app.new_client().await;
    let listed = client
        .create_participant(first.clone())
        .await
        .expect("the first request's address is still free");
    assert_eq!(listed.get_ref().addresses, first.addresses);
}

#[tokio::test]
async fn a_malformed_grpc_timeout_is_invalid_argument_naming_the_header() {
    let app = spawn_app().await;
    let request = FetchParticipantRequest {
        conversation_id: conversation_id(),
        participant_id: "conv_participant_01k1etk2y5f1y9fpe2epfdtvv2".into(),
    };
    for bad in ["abc", "5", "+5S", "123456789S", "1.5S", "-1S", "5s"] {
        // Act
        let status = raw_grpc(
            app.addr,
            FETCH_PARTICIPANT,
            &[("grpc-timeout", bad)],
            grpc_frame(&request),
        )
        .await;

        // Assert
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{bad}: {status:?}"
        );
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["grpc-timeout"], "{bad}");
    }
    // A well-formed one is honoured.
    let status = raw_grpc(
        app.addr,
        FETCH_PARTICIPANT,
        &[("grpc-timeout", "5S")],
        grpc_frame(&request),
    )
    .await;
    assert_eq!(status.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn requests_hyper_refuses_carry_twilios_error_body() {
    // Arrange
    let app = spawn_app().await;
    let big = "a".repeat(70_000);
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases = [
        (
            "GARBAGE\u{1} / HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
            400,
            70002,
        ),
        (
            "GET /healthz HTTP/1.1\r\nhost: x\r\nbad header: v\r\n\r\n".to_owned(),
            400,
            70002,
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n"),
            431,
            431,
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{many}\r\n"),
            431,
            431,
        ),
    ];
    for (request, status, code) in cases {
        // Act
        let mut stream = TcpStream::connect(app.addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("send");
        let answer = read_answer(&mut stream).await;

        // Assert
        assert_twilio_error(&answer.answer(), status, code);
    }
    // A good request on a fresh connection is untouched.
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("send");
    let answer = read_answer(&mut stream).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, r#"{"status":"SERVING"}"#)
    );
}

#[tokio::test]
async fn the_v1_url_follows_an_absolute_form_target_over_the_host_header() {
    // Arrange
    let app = spawn_app().await;
    let (service, conversation) = (sid("IS"), sid("CH"));
    let path = format!("/v1/Services/{service}/Conversations/{conversation}/Participants");
    let create = |target: String, host: &str, identity: &str| {
        let body = format!("Identity={identity}");
        format!(
            "POST {target} HTTP/1.1\r\nhost: {host}\r\n\
             content-type: application/x-www-form-urlencoded\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let cases = [
        // RFC 9112, 3.2.2: the target's authority wins over Host.
        (
            create(
                format!("http://facade.example:8443{path}"),
                "evil.example",
                "absolute",
            ),
            "http://facade.example:8443/v1/",
        ),
        (
            create(path.clone(), "facade.example:8080", "origin-form"),
            "http://facade.example:8080/v1/",
        ),
        // A Host that is not a plain host[:port] is not written into URLs.
        (
            create(path.clone(), "user@evil.example", "userinfo"),
            "http://localhost/v1/",
        ),
    ];
    for (request, expected) in cases {
        // Act
        let mut stream = TcpStream::connect(app.addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("send");
        let answer = read_answer(&mut stream).await;

        // Assert
        assert_eq!(answer.status, 201, "{}", answer.text());
        let created: Value = serde_json::from_slice(&answer.body).expect("JSON");
        let url = created["url"].as_str().expect("url");
        assert!(url.starts_with(expected), "{url} should start {expected}");
    }
}
