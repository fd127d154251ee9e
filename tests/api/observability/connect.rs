//! Connect calls in the spans and metrics: a server span per call in the caller's trace,
//! with the RPC attributes and `rpc.system.name` = `connectrpc`; the call counted in
//! `rpc_server_call_duration_seconds` under its method, status code and system, and in
//! `server_calls_in_flight{protocol="connect"}`.

use super::*;

/// A Connect JSON call with a caller's `traceparent`.
async fn connect_call(
    addr: std::net::SocketAddr,
    rpc: &str,
    body: &Value,
    trace: &Trace,
) -> reqwest::StatusCode {
    http_client()
        .post(format!("http://{addr}/{rpc}"))
        .header("content-type", "application/json")
        .header("traceparent", trace.traceparent())
        .body(body.to_string())
        .send()
        .await
        .expect("a Connect call is answered")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_calls_are_traced_and_counted_as_connectrpc() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = receiver.child_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let request = crate::fixtures::create_request();
    let create = json!({
        "conversationId": request.conversation_id,
        "name": "Ada Lovelace",
        "addresses": [{"channel": "CHANNEL_SMS", "address": request.addresses[0].address}],
    });
    let missing = json!({
        "conversationId": request.conversation_id,
        "participantId": participant_id(),
    });
    let (create_trace, missing_trace) = (Trace::new(), Trace::new());

    // Act
    let created = connect_call(server.addr, CREATE, &create, &create_trace).await;
    let not_found = connect_call(server.addr, FETCH, &missing, &missing_trace).await;
    let scrape = scrape(server.addr).await;
    stop(&mut server).await;
    let exported = receiver
        .wait_for_server_spans(&[&create_trace, &missing_trace])
        .await;

    // Assert: the answers, then the metrics ...
    assert_eq!((created.as_u16(), not_found.as_u16()), (200, 404));
    let rpc = "rpc_server_call_duration_seconds_count";
    for (method, code) in [(CREATE, "OK"), (FETCH, "NOT_FOUND")] {
        assert_eq!(
            sample(
                &scrape,
                rpc,
                &[
                    ("rpc_method", method),
                    ("rpc_status_code", code),
                    ("rpc_system_name", "connectrpc"),
                ]
            ),
            Some(1.0),
            "{method} {code}"
        );
        assert_eq!(
            sample(
                &scrape,
                rpc,
                &[("rpc_method", method), ("rpc_system_name", "grpc")]
            ),
            None,
            "a Connect call is not counted as gRPC"
        );
    }
    assert_eq!(
        sample(
            &scrape,
            "server_calls_in_flight",
            &[("protocol", "connect")]
        ),
        Some(0.0),
        "no Connect call left in flight"
    );

    // ... and the spans: named after the method, in the caller's trace, connectrpc.
    let span = exported.server_span(&create_trace);
    assert_eq!(span.name, CREATE);
    assert_continues(span, &create_trace);
    assert_eq!(str_attr(span, "rpc.system.name"), Some("connectrpc"));
    assert_eq!(str_attr(span, "rpc.method"), Some(CREATE));
    assert_eq!(str_attr(span, "rpc.response.status_code"), Some("OK"));
    let store = exported.children(span);
    assert_eq!(
        store.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["create_participant"],
        "the store span under the Connect call's"
    );
    let span = exported.server_span(&missing_trace);
    assert_eq!(str_attr(span, "rpc.system.name"), Some("connectrpc"));
    assert_eq!(
        str_attr(span, "rpc.response.status_code"),
        Some("NOT_FOUND")
    );
    assert_ne!(
        span_status(span),
        opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32,
        "a client error is not a server error: {span:#?}"
    );
    let dump = &exported.dump;
    assert!(
        !dump.contains(&request.addresses[0].address),
        "no phone number in any span"
    );
}
