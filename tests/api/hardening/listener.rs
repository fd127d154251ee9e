//! What a connection may send before its request is read: request heads over the limits
//! (HTTP/1 header count and head size, the HTTP/2 header list) are refused and the server
//! stays up; a head sent slowly (slowloris), never, or only half an HTTP/2 preface is
//! disconnected after the header read timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;

use super::*;

// ---------------------------------------------------------------------------------------
// Oversized request heads
// ---------------------------------------------------------------------------------------

/// `GET /healthz` with `extra` header lines.
fn http1_get_healthz(extra: &[String]) -> Vec<u8> {
    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    request.into_bytes()
}

/// `count` headers named `x-pad-N` with `size`-byte values.
fn padding(count: usize, size: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("x-pad-{i}"), "a".repeat(size)))
        .collect()
}

/// A health check over HTTP/2 (the h2 crate, which sends whatever header list it is
/// given) with `extra` headers: the HTTP status, or the stream or connection error.
async fn h2_health_check_with(
    addr: SocketAddr,
    extra: &[(String, String)],
) -> Result<u16, h2::Error> {
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (response, mut body) = try_start_raw_call(addr, HEALTH_CHECK, &extra).await?;
    let _ = body.send_data(
        Bytes::from(grpc_frame(&HealthCheckRequest::default())),
        true,
    );
    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("answered within the bound")?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn oversized_request_heads_are_refused_and_the_server_stays_up() {
    let app = spawn_app().await;
    let lines = |headers: Vec<(String, String)>| -> Vec<String> {
        headers
            .into_iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect()
    };

    // HTTP/1.1, header count: 90 headers are served, 150 are refused with 431.
    let within = http1_exchange(app.addr, http1_get_healthz(&lines(padding(90, 8)))).await;
    assert_eq!(within.map(|r| r.status), Ok(200), "90 headers are fine");
    let over = http1_exchange(app.addr, http1_get_healthz(&lines(padding(150, 8)))).await;
    assert_eq!(
        over.as_ref().map(|r| r.status),
        Ok(431),
        "150 headers: 431 Request Header Fields Too Large: {over:?}"
    );

    // HTTP/1.1, head size: a 32 KiB header is served, a 96 KiB one is refused (431, or the
    // connection is dropped while the client still writes).
    let within = http1_exchange(app.addr, http1_get_healthz(&lines(padding(1, 32 * 1024)))).await;
    assert_eq!(within.map(|r| r.status), Ok(200), "a 32 KiB head is fine");
    let over = http1_exchange(app.addr, http1_get_healthz(&lines(padding(1, 96 * 1024)))).await;
    assert!(
        over.as_ref().map_or(true, |r| r.status == 431),
        "a 96 KiB head is refused: {over:?}"
    );

    // HTTP/2, header list (SETTINGS_MAX_HEADER_LIST_SIZE 16 KiB): 10 KiB is served, 24 KiB
    // is refused with 431 (h2 answers it, then resets the stream).
    let within = h2_health_check_with(app.addr, &padding(10, 1000)).await;
    assert_eq!(within.ok(), Some(200), "a 10 KiB header list is served");
    let over = h2_health_check_with(app.addr, &padding(24, 1000)).await;
    assert_eq!(
        over.as_ref().ok(),
        Some(&431),
        "a 24 KiB header list is refused with 431: {over:?}"
    );

    assert_still_serving(app.addr).await;
}

// ---------------------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------------------

/// Writes `bytes` on `stream`, then waits (at most `bound`) for the server to close it;
/// returns how long that took, or `None` if it stayed open.
async fn time_until_closed<S>(mut stream: S, bytes: &[u8], bound: Duration) -> Option<Duration>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = Instant::now();
    stream.write_all(bytes).await.expect("write");
    stream.flush().await.expect("flush");
    let mut sink = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            // A 408 or similar before closing is fine.
            Ok(Ok(_)) => continue,
        }
    }
}

async fn tcp(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("tcp connect")
}

#[tokio::test]
async fn http1_slowloris_is_disconnected_after_the_header_read_timeout() {
    // Arrange
    let app = spawn_app().await;

    // Act: a request line and part of a header, then nothing.
    let closed = time_until_closed(
        tcp(app.addr).await,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: a",
        Duration::from_secs(15),
    )
    .await;

    // Assert: closed after the 10 s header read timeout, not before, not never.
    let after = closed.expect("a slowloris connection is closed within 15 s");
    assert!(
        after >= Duration::from_secs(9),
        "closed after the header read timeout, not at once: {after:?}"
    );
    assert_still_serving(app.addr).await;
}

#[tokio::test]
async fn connections_that_never_send_a_request_head_are_disconnected() {
    // Arrange: a cleartext server and a TLS server.
    let pki = Pki::new();
    let app = spawn_app().await;
    let tls = serve_tls(&pki, false).await;
    let bound = Duration::from_secs(15);
    let handshaken = tls_connect(tls.addr, pki.client_config(None, &[b"http/1.1"]))
        .await
        .expect("TLS handshake");

    // Act, concurrently: connections that send nothing, or only the start of the HTTP/2
    // preface (which keeps the server guessing between HTTP/1 and HTTP/2).
    let (silent, partial_preface, silent_tls, handshaken) = tokio::join!(
        time_until_closed(tcp(app.addr).await, b"", bound),
        time_until_closed(tcp(app.addr).await, b"PRI * HTTP/2.0\r\n", bound),
        time_until_closed(tcp(tls.addr).await, b"", bound),
        time_until_closed(handshaken, b"", bound),
    );

    // Assert: each is closed (the TLS handshake timeout, the header read timeout: 10 s).
    let outcomes = [
        ("cleartext, nothing sent", silent),
        ("cleartext, half an HTTP/2 preface", partial_preface),
        ("TLS port, no ClientHello", silent_tls),
        ("TLS handshake done, nothing sent", handshaken),
    ];
    let open: Vec<&str> = outcomes
        .iter()
        .filter(|(_, closed)| closed.is_none())
        .map(|(case, _)| *case)
        .collect();
    assert!(
        open.is_empty(),
        "connections still open after {bound:?}: {open:?} (all: {outcomes:?})"
    );
    assert_still_serving(app.addr).await;
}
