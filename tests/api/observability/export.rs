//! When spans are exported: not without OTEL variables (logs still carry the caller's
//! trace id) nor with `OTEL_TRACES_EXPORTER=none`; and not only at a verbose log level.

use participants_facade::proto::FetchParticipantRequest;

use super::*;

/// Without any OTEL_* variable nothing is exported (a receiver listens on OTLP's default
/// port, 4317, when it is free), the server works, and log lines still carry the
/// caller's trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_otel_variables_nothing_is_exported_and_logs_still_carry_trace_ids() {
    // Arrange
    let receiver = match tokio::net::TcpListener::bind("127.0.0.1:4317").await {
        Ok(listener) => Receiver::serve(listener),
        Err(_) => Receiver::start().await,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        ChildServer::start_with_env(&dir.path().join("data"), &[], &[("RUST_LOG", "debug")]).await;
    let mut client = server.client().await;

    // Act
    let trace = Trace::new();
    let request = crate::fixtures::create_request();
    let created = client
        .create_participant(traced(request.clone(), &trace, &[]))
        .await
        .expect("create")
        .into_inner();
    let fetched = client
        .fetch_participant(FetchParticipantRequest {
            conversation_id: request.conversation_id,
            participant_id: created.id.clone(),
        })
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(fetched, created);
    stop(&mut server).await;

    // Assert: nothing to wait for. The child exited cleanly, and a clean exit flushes
    // the exporter and waits for its export calls to be answered; the receiver records an
    // export before it answers. So whatever the child exported is recorded already.
    assert_eq!(receiver.request_count(), 0, "nothing exported");
    let lines = json_lines(&server.logs());
    let served = call_served_trace_ids(&lines);
    assert!(served.contains(&trace.trace_id), "{served:?}");
}

/// Span export does not depend on the log level: `RUST_LOG=warn` quiets the logs only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_log_level_does_not_stop_span_export() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = receiver.child_env();
    env.retain(|(k, _)| *k != "RUST_LOG");
    env.push(("RUST_LOG", "warn".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let mut client = server.client().await;

    // Act
    let trace = Trace::new();
    client
        .create_participant(traced(crate::fixtures::create_request(), &trace, &[]))
        .await
        .expect("create");
    stop(&mut server).await;
    let exported = receiver.wait_for_server_spans(&[&trace]).await;

    // Assert
    assert_continues(exported.server_span(&trace), &trace);
}

/// `OTEL_TRACES_EXPORTER=none` turns export off even with an endpoint set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_traces_exporter_none_turns_export_off() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = receiver.child_env();
    env.push(("OTEL_TRACES_EXPORTER", "none".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let mut client = server.client().await;

    // Act
    client
        .create_participant(traced(
            crate::fixtures::create_request(),
            &Trace::new(),
            &[],
        ))
        .await
        .expect("create");
    stop(&mut server).await;

    // Assert: nothing to wait for, as without OTEL variables: a clean exit has flushed
    // whatever was to be exported, and the receiver recorded it before answering.
    assert_eq!(receiver.request_count(), 0, "nothing exported");
}
