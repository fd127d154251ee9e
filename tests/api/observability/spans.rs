//! Spans of the local backend: gRPC and REST server spans named, typed and attributed per
//! the semantic conventions in the caller's trace, a store span (sqlite) under each, one
//! per store operation with its duration series, the older RPC attributes on opt-in, and
//! no personal data or credential in any span or log line.

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use participants_facade::proto::{
    CreateServiceParticipantRequest, FetchParticipantRequest, FetchServiceParticipantRequest,
};
use tonic::Code;

use super::*;

/// gRPC and REST calls with a known `traceparent`: server spans named, typed and
/// attributed per the conventions, in the caller's trace; store spans as their children;
/// `call served` log lines carrying the trace id; and no personal data or credential in
/// any span or log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_calls_export_server_and_store_spans_in_the_callers_trace() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut secrets = Secrets::new();
    let inbound_secret = format!("inbound-secret-{}-kx", unique());
    let authorization = secrets.basic("facade-client", &inbound_secret);
    let mut env = receiver.child_env();
    env.push((
        "PARTICIPANTS_AUTH_BASIC",
        format!("facade-client:{inbound_secret}"),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let mut client = server.client().await;
    let auth = [("authorization", authorization.as_str())];

    // Act
    let create_trace = Trace::new();
    let create = v2_request(&secrets);
    let created = client
        .create_participant(traced(create.clone(), &create_trace, &auth))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.name, secrets.name, "the sentinel name was stored");

    let missing_trace = Trace::new();
    let missing = client
        .fetch_participant(traced(
            FetchParticipantRequest {
                conversation_id: create.conversation_id.clone(),
                participant_id: participant_id(),
            },
            &missing_trace,
            &auth,
        ))
        .await;
    assert_eq!(missing.expect_err("unknown").code(), Code::NotFound);

    let v1_trace = Trace::new();
    let v1 = CreateServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        identity: secrets.identity.clone(),
        attributes: secrets.attributes.clone(),
        ..Default::default()
    };
    client
        .create_service_participant(traced(v1.clone(), &Trace::new(), &auth))
        .await
        .expect("v1 create");
    let fetched_v1 = client
        .fetch_service_participant(traced(
            FetchServiceParticipantRequest {
                chat_service_sid: v1.chat_service_sid.clone(),
                conversation_sid: v1.conversation_sid.clone(),
                sid: secrets.identity.clone(),
            },
            &v1_trace,
            &auth,
        ))
        .await
        .expect("v1 fetch by identity")
        .into_inner();
    assert_eq!(fetched_v1.attributes, secrets.attributes);

    let binding = CreateServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        messaging_binding: crate::fixtures::binding(&secrets.binding_phone, &secrets.proxy_phone),
        ..Default::default()
    };
    client
        .create_service_participant(traced(binding, &Trace::new(), &auth))
        .await
        .expect("v1 create with a binding");

    let rest_trace = Trace::new();
    let rest_conversation = conversation_id();
    let response = http_client()
        .post(format!(
            "http://{}/v2/Conversations/{rest_conversation}/Participants",
            server.addr
        ))
        .header("traceparent", rest_trace.traceparent())
        .header("authorization", &authorization)
        .json(&v2_rest_body(&secrets))
        .send()
        .await
        .expect("REST create");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);

    stop(&mut server).await;
    let exported = receiver
        .wait_for_server_spans(&[&create_trace, &missing_trace, &v1_trace, &rest_trace])
        .await;
    let logs = server.logs();

    // Assert: the gRPC create's server span continues the caller's trace.
    let conv = Conventions::default();
    let span = exported.server_span(&create_trace);
    assert_eq!(span.name, CREATE);
    assert_continues(span, &create_trace);
    assert_eq!(str_attr(span, "rpc.system.name"), Some("grpc"));
    assert_eq!(str_attr(span, "rpc.method"), Some(CREATE));
    assert_eq!(str_attr(span, "rpc.response.status_code"), Some("OK"));
    assert_ne!(span_status(span), SpanStatus::Error as i32, "{span:#?}");
    for old in ["rpc.system", "rpc.service", "rpc.grpc.status_code"] {
        assert!(
            attr(span, old).is_none(),
            "{old} only with OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup: {span:#?}"
        );
    }
    // ... and its store span is its child.
    let children = exported.children(span);
    assert_eq!(children.len(), 1, "one store span: {children:#?}");
    let store = children[0];
    assert_eq!(store.name, "create_participant");
    assert_eq!(store.kind, SpanKind::Internal as i32);
    assert_eq!(str_attr(store, "db.system.name"), Some("sqlite"));
    assert_eq!(str_attr(store, "db.operation.name"), Some("INSERT"));

    // network.protocol.version is the bare version ("2", "1.1"), per the conventions.
    conv.string(span, "network.protocol.version", "2");

    // A client error (NOT_FOUND) is recorded, but is not a server error.
    let span = exported.server_span(&missing_trace);
    assert_eq!(span.name, FETCH);
    assert_continues(span, &missing_trace);
    assert_eq!(
        str_attr(span, "rpc.response.status_code"),
        Some("NOT_FOUND")
    );
    assert_ne!(span_status(span), SpanStatus::Error as i32, "{span:#?}");
    let store = exported.children(span);
    assert_eq!(
        store.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["fetch_participant"]
    );
    assert_eq!(str_attr(store[0], "db.system.name"), Some("sqlite"));
    assert_eq!(str_attr(store[0], "db.operation.name"), Some("SELECT"));

    // The v1 fetch by identity.
    let span = exported.server_span(&v1_trace);
    assert_eq!(span.name, FETCH_V1);
    assert_continues(span, &v1_trace);
    assert_eq!(str_attr(span, "rpc.response.status_code"), Some("OK"));
    let store = exported.children(span);
    assert_eq!(
        store.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["fetch_service_participant"]
    );

    // The REST create: named after its route template, with the HTTP attributes.
    let span = exported.server_span(&rest_trace);
    conv.name(span, &format!("POST {REST_CREATE_ROUTE}"));
    assert_continues(span, &rest_trace);
    assert_eq!(str_attr(span, "http.request.method"), Some("POST"));
    assert_eq!(str_attr(span, "http.route"), Some(REST_CREATE_ROUTE));
    assert_eq!(conv.int(span, "http.response.status_code"), Some(201));
    assert!(attr(span, "rpc.system.name").is_none(), "{span:#?}");
    conv.string(span, "network.protocol.version", "1.1");
    let store = exported.children(span);
    assert_eq!(
        store.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["create_participant"]
    );

    // The resource names the service.
    assert!(!exported.resources.is_empty());
    for resource in &exported.resources {
        let get = |key: &str| {
            resource
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.clone())
        };
        assert_eq!(
            get("service.name"),
            Some(AnyValue::StringValue("participants-facade".into()))
        );
        assert_eq!(
            get("service.version"),
            Some(AnyValue::StringValue(env!("CARGO_PKG_VERSION").into()))
        );
    }

    // Logs: JSON, and the lines inside a call carry its trace id.
    let lines = json_lines(&logs);
    let served = call_served_trace_ids(&lines);
    for trace in [&create_trace, &missing_trace, &v1_trace, &rest_trace] {
        assert!(
            served.contains(&trace.trace_id),
            "a `call served` line with trace_id {}; got {served:?}",
            trace.trace_id
        );
    }
    // No personal data or credentials anywhere.
    secrets.assert_not_in(&exported, &logs);
    conv.assert_none();
}

/// Every operation of the local store has its span (child of the server span, sqlite)
/// and its `store_operation_duration_seconds` series, v1 creates included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_local_store_operation_has_a_span_and_a_duration_series() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = receiver.child_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let mut client = server.client().await;

    // Act
    let mut calls = Vec::new();
    let v2 = crate::fixtures::create_request();
    let trace = Trace::new();
    let created = client
        .create_participant(traced(v2.clone(), &trace, &[]))
        .await
        .expect("create")
        .into_inner();
    calls.push((trace, CREATE, "create_participant"));
    let trace = Trace::new();
    client
        .fetch_participant(traced(
            FetchParticipantRequest {
                conversation_id: v2.conversation_id.clone(),
                participant_id: created.id.clone(),
            },
            &trace,
            &[],
        ))
        .await
        .expect("fetch");
    calls.push((trace, FETCH, "fetch_participant"));
    let v1 = crate::fixtures::create_v1_request();
    let trace = Trace::new();
    let created = client
        .create_service_participant(traced(v1.clone(), &trace, &[]))
        .await
        .expect("v1 create")
        .into_inner();
    calls.push((trace, CREATE_V1, "create_service_participant"));
    let trace = Trace::new();
    client
        .fetch_service_participant(traced(
            FetchServiceParticipantRequest {
                chat_service_sid: v1.chat_service_sid.clone(),
                conversation_sid: v1.conversation_sid.clone(),
                sid: created.sid.clone(),
            },
            &trace,
            &[],
        ))
        .await
        .expect("v1 fetch");
    calls.push((trace, FETCH_V1, "fetch_service_participant"));
    let scrape = scrape(server.addr).await;
    stop(&mut server).await;
    let traces: Vec<&Trace> = calls.iter().map(|(t, _, _)| t).collect();
    let exported = receiver.wait_for_server_spans(&traces).await;

    // Assert
    let mut failures = Vec::new();
    for (trace, rpc, operation) in &calls {
        let span = exported.server_span(trace);
        assert_eq!(span.name, *rpc);
        let children = exported.children(span);
        let store: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
        if store != [*operation] {
            failures.push(format!(
                "{rpc}: expected one store span {operation:?}, got {store:?}"
            ));
        }
        for child in children {
            assert_eq!(str_attr(child, "db.system.name"), Some("sqlite"));
        }
        let count = sample(
            &scrape,
            "store_operation_duration_seconds_count",
            &[("operation", operation)],
        );
        if count != Some(1.0) {
            failures.push(format!(
                "store_operation_duration_seconds_count{{operation={operation:?}}}: expected 1, got {count:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup` (here in a list) adds the older RPC attributes
/// next to the current ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_dup_opt_in_adds_the_older_rpc_attributes() {
    // Arrange
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = receiver.child_env();
    env.push((
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        "http/dup, rpc/dup".to_owned(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = ChildServer::start_with_env(&dir.path().join("data"), &[], &env).await;
    let mut client = server.client().await;

    // Act
    let ok = Trace::new();
    let request = crate::fixtures::create_request();
    client
        .create_participant(traced(request.clone(), &ok, &[]))
        .await
        .expect("create");
    let not_found = Trace::new();
    let missing = client
        .fetch_participant(traced(
            FetchParticipantRequest {
                conversation_id: request.conversation_id,
                participant_id: participant_id(),
            },
            &not_found,
            &[],
        ))
        .await;
    assert_eq!(missing.expect_err("unknown").code(), Code::NotFound);
    stop(&mut server).await;
    let exported = receiver.wait_for_server_spans(&[&ok, &not_found]).await;

    // Assert
    let conv = Conventions::default();
    for (trace, rpc, code, number) in [(&ok, CREATE, "OK", 0), (&not_found, FETCH, "NOT_FOUND", 5)]
    {
        let span = exported.server_span(trace);
        assert_eq!(span.name, rpc);
        assert_continues(span, trace);
        // The current conventions...
        assert_eq!(str_attr(span, "rpc.system.name"), Some("grpc"));
        assert_eq!(str_attr(span, "rpc.method"), Some(rpc));
        assert_eq!(str_attr(span, "rpc.response.status_code"), Some(code));
        // ... and the older ones.
        assert_eq!(str_attr(span, "rpc.system"), Some("grpc"));
        assert_eq!(
            str_attr(span, "rpc.service"),
            Some("participants.v1.ParticipantService")
        );
        assert_eq!(conv.int(span, "rpc.grpc.status_code"), Some(number));
    }
    conv.assert_none();
}
