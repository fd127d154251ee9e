//! HTTP/2 limits, spoken frame by frame: SETTINGS_MAX_CONCURRENT_STREAMS advertised and
//! enforced (the stream over the limit refused, a freed slot served again), and the
//! "rapid reset" flood (CVE-2023-44487) answered with GOAWAY(ENHANCE_YOUR_CALM).

use std::net::SocketAddr;
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use super::*;

/// The server's first SETTINGS frame on a new connection, as (identifier, value) pairs.
async fn server_settings(addr: SocketAddr) -> Vec<(u16, u32)> {
    let mut conn = raw_h2::Conn::connect(addr).await;
    conn.until(WAIT, |f| f.kind == raw_h2::SETTINGS && f.flags == 0)
        .await
        .expect("the server's SETTINGS")
        .settings()
}

fn setting(settings: &[(u16, u32)], id: u16) -> Option<u32> {
    settings
        .iter()
        .rev()
        .find(|(i, _)| *i == id)
        .map(|(_, v)| *v)
}

#[tokio::test]
async fn http2_max_concurrent_streams_is_advertised_and_enforced() {
    // The default: 100 streams, and a 16 KiB header list.
    let default = spawn_app().await;
    let settings = server_settings(default.addr).await;
    assert_eq!(
        setting(&settings, raw_h2::SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(100),
        "{settings:?}"
    );
    assert_eq!(
        setting(&settings, raw_h2::SETTINGS_MAX_HEADER_LIST_SIZE),
        Some(16 * 1024),
        "{settings:?}"
    );

    // Configured: 5.
    let app = spawn_app_configured(|c| c.server.max_concurrent_streams = 5).await;
    let settings = server_settings(app.addr).await;
    assert_eq!(
        setting(&settings, raw_h2::SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(5),
        "{settings:?}"
    );

    // A client that ignores the setting: six calls whose bodies stay open. The sixth
    // (stream 11) is refused at once; the first five are not answered (they wait for
    // their bodies).
    let authority = app.addr.to_string();
    let mut conn = raw_h2::Conn::connect(app.addr).await;
    let mut burst = Vec::new();
    for stream in [1, 3, 5, 7, 9, 11] {
        burst.extend(raw_h2::headers(
            stream,
            &raw_h2::grpc_request(CREATE_PARTICIPANT, &authority),
            false,
        ));
    }
    conn.send(&burst).await.expect("send six HEADERS");
    let refused = conn
        .until(Duration::from_secs(5), |f| {
            assert!(
                !(f.stream != 0
                    && f.stream < 11
                    && matches!(f.kind, raw_h2::HEADERS | raw_h2::RST_STREAM)),
                "a stream within the limit was answered or reset: {f:?}"
            );
            f.stream == 11
        })
        .await
        .expect("the sixth stream is answered at once");
    assert_eq!(
        (refused.kind, refused.error_code()),
        (raw_h2::RST_STREAM, Some(raw_h2::REFUSED_STREAM)),
        "the stream over the limit is refused (RST_STREAM REFUSED_STREAM): {refused:?}"
    );

    // One call finishes; its slot is free again and a new stream is served.
    let request = grpc_frame(&create_request());
    conn.send(&raw_h2::data(1, &request, true))
        .await
        .expect("finish stream 1");
    conn.until(WAIT, |f| f.stream == 1 && f.flags & raw_h2::END_STREAM != 0)
        .await
        .expect("stream 1 is answered in full");
    let mut health = raw_h2::headers(13, &raw_h2::grpc_request(HEALTH_CHECK, &authority), false);
    health.extend(raw_h2::data(
        13,
        &grpc_frame(&HealthCheckRequest::default()),
        true,
    ));
    conn.send(&health).await.expect("send stream 13");
    let answer = conn
        .until(WAIT, |f| f.stream == 13)
        .await
        .expect("stream 13 is answered");
    assert_eq!(
        answer.kind,
        raw_h2::HEADERS,
        "a stream opened after one finished is served: {answer:?}"
    );
}

#[tokio::test]
async fn http2_rapid_reset_flood_is_answered_with_goaway_enhance_your_calm() {
    // Arrange
    let app = spawn_app().await;
    let authority = app.addr.to_string();
    let mut conn = raw_h2::Conn::connect(app.addr).await;
    let fields = raw_h2::grpc_request(HEALTH_CHECK, &authority);

    // Act: 500 streams, each opened and reset at once (CVE-2023-44487), in batches of 50.
    let mut written = 0;
    for batch in 0..10u32 {
        let mut bytes = Vec::new();
        for i in 0..50u32 {
            let stream = 2 * (batch * 50 + i) + 1;
            bytes.extend(raw_h2::headers(stream, &fields, false));
            bytes.extend(raw_h2::rst_stream(stream, raw_h2::CANCEL));
        }
        if conn.send(&bytes).await.is_err() {
            break; // The server already hung up.
        }
        written += 50;
    }

    // Assert: GOAWAY with ENHANCE_YOUR_CALM, then the connection closes.
    let goaway = conn
        .until(WAIT, |f| f.kind == raw_h2::GOAWAY)
        .await
        .unwrap_or_else(|e| panic!("expected GOAWAY after {written} resets: {e}"));
    assert_eq!(
        goaway.error_code(),
        Some(raw_h2::ENHANCE_YOUR_CALM),
        "{goaway:?}"
    );
    let closed = loop {
        match conn.next(WAIT).await {
            raw_h2::Read::Frame(_) => continue,
            other => break other,
        }
    };
    match closed {
        raw_h2::Read::Closed(how) => eprintln!("closed after GOAWAY: {how}"),
        other => panic!("the connection closes after GOAWAY: {other:?}"),
    }

    // The server serves new connections.
    assert_still_serving(app.addr).await;
    assert_eq!(
        app.health
            .clone()
            .check(HealthCheckRequest::default())
            .await
            .expect("the app's own connection still works")
            .into_inner()
            .status,
        ServingStatus::Serving as i32
    );
}
