//! The trace across the upstream call (twilio backend): each attempt a client span under
//! the server span, `url.full` without credentials or identity, the retry marked, and the
//! `traceparent` the upstream receives naming that attempt; without an exporter the
//! caller's own `traceparent` still reaches the upstream.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use participants_facade::proto::FetchServiceParticipantRequest;

use super::*;

/// Calls through the twilio backend: a client span per upstream attempt, child of the
/// server span, with the HTTP client attributes (`url.full` without credentials or
/// identity); the retry marked with `http.request.resend_count`; and the `traceparent`
/// the upstream received naming the same trace and that attempt's span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_attempts_are_client_spans_whose_context_reaches_the_upstream() {
    // Arrange
    let receiver = Receiver::start().await;
    let mut secrets = Secrets::new();
    let upstream = fake_twilio(&secrets).await;
    let upstream_port = upstream.address().port();
    let dir = tempfile::tempdir().unwrap();
    let (mut server, upstream_authorization) = twilio_child(
        dir.path(),
        &upstream,
        &mut secrets,
        receiver.child_env(),
        &[],
    )
    .await;
    let mut client = server.client().await;

    // Act: a create that is retried once (503, then 201).
    let create_trace = Trace::new();
    let create = v2_request(&secrets);
    let created = client
        .create_participant(traced(create.clone(), &create_trace, &[]))
        .await
        .expect("create through the upstream")
        .into_inner();
    assert_eq!(created.name, secrets.name);
    // A v1 fetch by identity.
    let v1_trace = Trace::new();
    let v1_key = FetchServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        sid: secrets.identity.clone(),
    };
    let fetched = client
        .fetch_service_participant(traced(v1_key.clone(), &v1_trace, &[]))
        .await
        .expect("v1 fetch by identity")
        .into_inner();
    assert_eq!(fetched.identity, secrets.identity);
    // A REST create.
    let rest_trace = Trace::new();
    let rest_conversation = conversation_id();
    let response = http_client()
        .post(format!(
            "http://{}/v2/Conversations/{rest_conversation}/Participants",
            server.addr
        ))
        .header("traceparent", rest_trace.traceparent())
        .json(&v2_rest_body(&secrets))
        .send()
        .await
        .expect("REST create");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    stop(&mut server).await;
    let exported = receiver
        .wait_for_server_spans(&[&create_trace, &v1_trace, &rest_trace])
        .await;
    let logs = server.logs();

    let conv = Conventions::default();
    // Assert: the upstream got the configured credentials and the personal data (so the
    // searches below look for values that really went through the process).
    let received = upstream.received_requests().await.expect("recording is on");
    assert_eq!(
        received.len(),
        4,
        "two create attempts, a fetch, a REST create"
    );
    for request in &received {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some(upstream_authorization.as_str())
        );
    }
    assert!(
        received
            .iter()
            .any(|r| r.url.path().ends_with(&format!("/{}", secrets.identity)))
    );

    // The gRPC create: server span, then two client spans, one per attempt.
    let server_span = exported.server_span(&create_trace);
    assert_eq!(server_span.name, CREATE);
    assert_continues(server_span, &create_trace);
    assert_eq!(
        str_attr(server_span, "rpc.response.status_code"),
        Some("OK")
    );
    let attempts = exported.children(server_span);
    assert_eq!(
        attempts.len(),
        2,
        "one client span per attempt: {attempts:#?}"
    );
    let expected_url = format!(
        "http://127.0.0.1:{upstream_port}/v2/Conversations/{}/Participants",
        create.conversation_id
    );
    for (i, span) in attempts.iter().enumerate() {
        assert_eq!(span.kind, SpanKind::Client as i32, "{span:#?}");
        assert!(span.name.starts_with("POST"), "{span:#?}");
        assert_eq!(str_attr(span, "http.request.method"), Some("POST"));
        assert_eq!(str_attr(span, "server.address"), Some("127.0.0.1"));
        assert_eq!(
            conv.int(span, "server.port"),
            Some(i64::from(upstream_port))
        );
        assert_eq!(str_attr(span, "url.full"), Some(expected_url.as_str()));
        assert_eq!(str_attr(span, "url.template"), Some(UPSTREAM_V2_CREATE));
        let resend = conv.int(span, "http.request.resend_count");
        assert_eq!(
            resend,
            (i > 0).then_some(i as i64),
            "attempt {i}: {span:#?}"
        );
    }
    assert_eq!(
        conv.int(attempts[0], "http.response.status_code"),
        Some(503)
    );
    assert_eq!(span_status(attempts[0]), SpanStatus::Error as i32);
    assert_eq!(str_attr(attempts[0], "error.type"), Some("503"));
    assert_eq!(
        conv.int(attempts[1], "http.response.status_code"),
        Some(201)
    );
    assert_ne!(span_status(attempts[1]), SpanStatus::Error as i32);
    // The upstream saw each attempt's own span as the parent, in the caller's trace.
    let expected: Vec<String> = attempts
        .iter()
        .map(|s| format!("00-{}-{}-01", create_trace.trace_id, hex(&s.span_id)))
        .collect();
    assert_eq!(
        upstream_traceparents(&upstream, &create_trace).await,
        expected
    );

    // The v1 fetch by identity: the identity is not in url.full.
    let server_span = exported.server_span(&v1_trace);
    assert_eq!(server_span.name, FETCH_V1);
    let attempts = exported.children(server_span);
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let span = attempts[0];
    assert_eq!(span.kind, SpanKind::Client as i32);
    assert_eq!(str_attr(span, "http.request.method"), Some("GET"));
    assert_eq!(
        str_attr(span, "url.full"),
        Some(
            format!(
                "http://127.0.0.1:{upstream_port}/v1/Services/{}/Conversations/{}/Participants/REDACTED",
                v1_key.chat_service_sid, v1_key.conversation_sid
            )
            .as_str()
        )
    );
    assert_eq!(conv.int(span, "http.response.status_code"), Some(200));
    assert!(attr(span, "http.request.resend_count").is_none());
    assert_eq!(
        upstream_traceparents(&upstream, &v1_trace).await,
        [format!(
            "00-{}-{}-01",
            v1_trace.trace_id,
            hex(&span.span_id)
        )]
    );

    // The REST create: the same, under the REST server span.
    let server_span = exported.server_span(&rest_trace);
    conv.name(server_span, &format!("POST {REST_CREATE_ROUTE}"));
    assert_continues(server_span, &rest_trace);
    assert_eq!(
        conv.int(server_span, "http.response.status_code"),
        Some(201)
    );
    let attempts = exported.children(server_span);
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].kind, SpanKind::Client as i32);
    assert_eq!(
        upstream_traceparents(&upstream, &rest_trace).await,
        [format!(
            "00-{}-{}-01",
            rest_trace.trace_id,
            hex(&attempts[0].span_id)
        )]
    );

    // Logs inside the calls carry their trace ids; nothing personal or secret anywhere
    // (the search covers attribute values: the conversation id of url.full is found).
    assert!(exported.dump.contains(&create.conversation_id));
    let lines = json_lines(&logs);
    let served = call_served_trace_ids(&lines);
    for trace in [&create_trace, &v1_trace, &rest_trace] {
        assert!(served.contains(&trace.trace_id), "{served:?}");
    }
    secrets.assert_not_in(&exported, &logs);
    conv.assert_none();
}

/// `url.full` must not show an identity, whatever it looks like: one shaped like a
/// conversation id (`conv_...`) is still an identity in a v1 fetch's last segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_that_looks_like_an_id_is_still_redacted_from_url_full() {
    // Arrange
    let receiver = Receiver::start().await;
    let mut secrets = Secrets::new();
    secrets.identity = format!("conv_ada_lovelace_{}", unique());
    let upstream = fake_twilio(&secrets).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _) = twilio_child(
        dir.path(),
        &upstream,
        &mut secrets,
        receiver.child_env(),
        &[],
    )
    .await;
    let mut client = server.client().await;

    // Act
    let trace = Trace::new();
    client
        .fetch_service_participant(traced(
            FetchServiceParticipantRequest {
                chat_service_sid: sid("IS"),
                conversation_sid: sid("CH"),
                sid: secrets.identity.clone(),
            },
            &trace,
            &[],
        ))
        .await
        .expect("v1 fetch by identity");
    stop(&mut server).await;
    let exported = receiver.wait_for_server_spans(&[&trace]).await;

    // Assert
    let attempts = exported.children(exported.server_span(&trace));
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let url = str_attr(attempts[0], "url.full").expect("url.full");
    assert!(url.ends_with("/Participants/REDACTED"), "url.full = {url}");
    secrets.assert_not_in(&exported, &server.logs());
}

/// Without an exporter no OpenTelemetry span is built, yet the caller's trace still
/// reaches Twilio: the upstream receives the caller's own `traceparent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_exporter_the_callers_traceparent_still_reaches_the_upstream() {
    // Arrange
    let mut secrets = Secrets::new();
    let upstream = fake_twilio(&secrets).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _) = twilio_child(
        dir.path(),
        &upstream,
        &mut secrets,
        vec![("RUST_LOG", "warn".to_owned())],
        &[],
    )
    .await;
    let mut client = server.client().await;

    // Act
    let trace = Trace::new();
    client
        .create_participant(traced(v2_request(&secrets), &trace, &[]))
        .await
        .expect("create through the upstream");
    stop(&mut server).await;

    // Assert: every attempt (a 503, then the 201) carried the caller's trace.
    let sent = upstream_traceparents(&upstream, &trace).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|t| *t == trace.traceparent()), "{sent:?}");
}
