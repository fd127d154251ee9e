//! The Prometheus metrics: calls by method, route and status on both ports, store
//! operations, upstream attempts and retries (twilio backend), calls in flight back to
//! zero after a cancellation, and fetch-cache hits and misses.

use std::net::SocketAddr;
use std::time::Duration;

use participants_facade::proto::FetchParticipantRequest;
use tonic::Code;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

/// Known gRPC and REST traffic, then /metrics on the main port and on
/// `--metrics-listen`: call counts by method/route and status, store operations, calls in
/// flight back to zero, build info; no id or path in any label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_method_route_and_status() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let server = ChildServer::start(
        &dir.path().join("data"),
        &["--metrics-listen", &metrics_addr.to_string()],
    )
    .await;
    let mut client = server.client().await;

    // Act: 3 gRPC creates, 1 gRPC fetch NOT_FOUND, 2 REST creates, 1 REST fetch 404,
    // 1 request to no route.
    let conversation = conversation_id();
    for _ in 0..3 {
        let mut request = crate::fixtures::create_request();
        request.conversation_id = conversation.clone();
        client.create_participant(request).await.expect("create");
    }
    let missing_id = participant_id();
    let missing = client
        .fetch_participant(FetchParticipantRequest {
            conversation_id: conversation.clone(),
            participant_id: missing_id.clone(),
        })
        .await;
    assert_eq!(missing.expect_err("unknown").code(), Code::NotFound);
    let base = format!("http://{}", server.addr);
    for _ in 0..2 {
        let response = http_client()
            .post(format!(
                "{base}/v2/Conversations/{conversation}/Participants"
            ))
            .json(&v2_rest_body(&Secrets::new()))
            .send()
            .await
            .expect("REST create");
        assert_eq!(response.status(), 201);
    }
    let response = http_client()
        .get(format!(
            "{base}/v2/Conversations/{conversation}/Participants/{missing_id}"
        ))
        .send()
        .await
        .expect("REST fetch");
    assert_eq!(response.status(), 404);
    let response = http_client()
        .get(format!("{base}/no/such/{conversation}"))
        .send()
        .await
        .expect("unrouted");
    assert_eq!(response.status(), 404);
    let main = scrape(server.addr).await;
    let second = scrape(metrics_addr).await;

    // Assert
    for (port, scrape) in [("main", &main), ("--metrics-listen", &second)] {
        let count = |metric: &str, labels: &[(&str, &str)]| sample(scrape, metric, labels);
        let rpc = "rpc_server_call_duration_seconds_count";
        assert_eq!(
            count(rpc, &[("rpc_method", CREATE), ("rpc_status_code", "OK")]),
            Some(3.0),
            "{port}"
        );
        assert_eq!(
            count(
                rpc,
                &[("rpc_method", FETCH), ("rpc_status_code", "NOT_FOUND")]
            ),
            Some(1.0),
            "{port}"
        );
        assert_eq!(
            count(rpc, &[("rpc_method", FETCH), ("rpc_status_code", "OK")]),
            None
        );
        // Every call here was answered: none may also be counted as cancelled.
        let cancelled: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| {
                s.labels.get("rpc_status_code") == Some("CANCELLED")
                    || s.labels.get("http_response_status_code") == Some("499")
            })
            .map(|s| &s.metric)
            .collect();
        assert!(
            cancelled.is_empty(),
            "{port}: answered calls counted as cancelled: {cancelled:?}"
        );
        assert_eq!(
            histogram_total(
                scrape,
                "rpc_server_call_duration_seconds",
                &[("rpc_method", CREATE), ("rpc_status_code", "OK")]
            ),
            Some(3.0),
            "{port}: the +Inf bucket matches the count"
        );
        let http = "http_server_request_duration_seconds_count";
        assert_eq!(
            count(
                http,
                &[
                    ("http_request_method", "POST"),
                    ("http_route", REST_CREATE_ROUTE),
                    ("http_response_status_code", "201"),
                ]
            ),
            Some(2.0),
            "{port}"
        );
        assert_eq!(
            count(
                http,
                &[
                    ("http_request_method", "GET"),
                    ("http_route", REST_FETCH_ROUTE),
                    ("http_response_status_code", "404"),
                ]
            ),
            Some(1.0),
            "{port}"
        );
        assert_eq!(
            count(
                http,
                &[
                    ("http_route", "unmatched"),
                    ("http_response_status_code", "404")
                ]
            ),
            Some(1.0),
            "{port}"
        );
        assert_eq!(
            count(
                "store_operation_duration_seconds_count",
                &[("operation", "create_participant")]
            ),
            Some(5.0),
            "{port}: 3 gRPC and 2 REST creates"
        );
        assert_eq!(
            count(
                "store_operation_duration_seconds_count",
                &[("operation", "fetch_participant")]
            ),
            Some(2.0),
            "{port}"
        );
        assert_eq!(
            count("server_calls_in_flight", &[("protocol", "grpc")]),
            Some(0.0),
            "{port}"
        );
        assert_eq!(
            count(
                "participants_facade_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            Some(1.0),
            "{port}"
        );
        assert_eq!(count("backend_ready", &[]), Some(1.0), "{port}");
        // Labels carry templates and codes, never ids or concrete paths.
        for s in &scrape.samples {
            for value in s.labels.values() {
                assert!(
                    !value.contains(&conversation) && !value.contains(&missing_id),
                    "{port}: an id in a label: {s:?}"
                );
            }
        }
    }
    // The second port is not behind the call accounting: nothing is in flight while it
    // is scraped (the main port's own scrape is a call in flight there).
    assert_eq!(
        sample(&second, "server_calls_in_flight", &[("protocol", "http")]),
        Some(0.0)
    );
    // The main port's scrape was itself counted, under its route.
    let after = scrape(metrics_addr).await;
    assert_eq!(
        sample(
            &after,
            "http_server_request_duration_seconds_count",
            &[
                ("http_route", "/metrics"),
                ("http_response_status_code", "200")
            ]
        ),
        Some(1.0)
    );
}

/// The lifecycle's REST routes are counted under their templates: v2 list and PUT, v1
/// list, update and DELETE, each by method, route and status; never a concrete path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_label_the_lifecycle_rest_routes_by_template() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(&dir.path().join("data"), &[]).await;
    let base = format!("http://{}", server.addr);
    let conversation = conversation_id();
    let (service, channel, mb) = (sid("IS"), sid("CH"), sid("MB"));
    let v1_list = format!("/v1/Services/{service}/Conversations/{channel}/Participants");
    let client = http_client();

    // Act: each route once, answering 200 or 404 (unknown participant).
    let calls = [
        (
            client.get(format!(
                "{base}/v2/Conversations/{conversation}/Participants"
            )),
            200,
        ),
        (
            client
                .put(format!(
                    "{base}/v2/Conversations/{conversation}/Participants/{}",
                    participant_id()
                ))
                .json(&serde_json::json!({"name": "x"})),
            404,
        ),
        (client.get(format!("{base}{v1_list}")), 200),
        (
            client
                .post(format!("{base}{v1_list}/{mb}"))
                .form(&[("Attributes", "{}")]),
            404,
        ),
        (client.delete(format!("{base}{v1_list}/{mb}")), 404),
    ];
    for (request, status) in calls {
        let response = request.send().await.expect("answered");
        assert_eq!(response.status(), status);
    }
    let scrape = scrape(server.addr).await;

    // Assert
    let v1_route = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants";
    let v1_item = format!("{v1_route}/{{Sid}}");
    for (method, route, status) in [
        ("GET", REST_CREATE_ROUTE, "200"),
        ("PUT", REST_FETCH_ROUTE, "404"),
        ("GET", v1_route, "200"),
        ("POST", v1_item.as_str(), "404"),
        ("DELETE", v1_item.as_str(), "404"),
    ] {
        assert_eq!(
            sample(
                &scrape,
                "http_server_request_duration_seconds_count",
                &[
                    ("http_request_method", method),
                    ("http_route", route),
                    ("http_response_status_code", status),
                ]
            ),
            Some(1.0),
            "{method} {route} {status}"
        );
    }
    for s in &scrape.samples {
        for value in s.labels.values() {
            assert!(
                !value.contains(&conversation) && !value.contains(&mb),
                "an id in a label: {s:?}"
            );
        }
    }
}

/// Twilio mode: upstream attempts by route template and status, and retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_upstream_attempts_and_retries() {
    // Arrange
    let mut secrets = Secrets::new();
    let upstream = fake_twilio(&secrets).await;
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = twilio_child(dir.path(), &upstream, &mut secrets, Vec::new(), &[]).await;
    let mut client = server.client().await;

    // Act: one create retried once (503, then 201), one create at once.
    for _ in 0..2 {
        client
            .create_participant(v2_request(&secrets))
            .await
            .expect("create");
    }
    let scrape = scrape(server.addr).await;

    // Assert
    let attempts = |status: &str| {
        sample(
            &scrape,
            "upstream_request_duration_seconds_count",
            &[
                ("http_request_method", "POST"),
                ("url_template", UPSTREAM_V2_CREATE),
                ("http_response_status_code", status),
            ],
        )
    };
    assert_eq!(attempts("503"), Some(1.0));
    assert_eq!(attempts("201"), Some(2.0));
    assert_eq!(
        sample(
            &scrape,
            "upstream_retries_total",
            &[("url_template", UPSTREAM_V2_CREATE)]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "rpc_server_call_duration_seconds_count",
            &[("rpc_method", CREATE), ("rpc_status_code", "OK")]
        ),
        Some(2.0)
    );
    assert!(
        !scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("store_operation_duration_seconds")
                && s.labels.get("operation").is_some()),
        "no local store in twilio mode"
    );
}

/// A call the client cancels while the server waits on the upstream is no longer in
/// flight: `server_calls_in_flight` goes back to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_client_cancels_is_no_longer_counted_in_flight() {
    // Arrange: an upstream that takes 10 s to answer.
    const UPSTREAM_DELAY: Duration = Duration::from_secs(10);
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_delay(UPSTREAM_DELAY))
        .mount(&upstream)
        .await;
    let mut secrets = Secrets::new();
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let metrics_flag = metrics_addr.to_string();
    let (server, _) = twilio_child(
        dir.path(),
        &upstream,
        &mut secrets,
        Vec::new(),
        &["--metrics-listen", &metrics_flag],
    )
    .await;
    let mut client = server.client().await;
    let in_flight = || async {
        sample(
            &scrape(metrics_addr).await,
            "server_calls_in_flight",
            &[("protocol", "grpc")],
        )
    };

    // Act: start a call, see it in flight, then cancel it (the client drops it, which
    // resets the HTTP/2 stream).
    let request = v2_request(&secrets);
    let call = tokio::spawn(async move { client.create_participant(request).await });
    let seen = eventually(WAIT, || async { in_flight().await == Some(1.0) }).await;
    assert!(seen, "the call never showed in flight");
    call.abort();
    let _ = call.await;

    // Assert: back to zero well before the upstream would have answered (so the call's
    // end, not the upstream's answer, took it out).
    let now = std::cell::Cell::new(None);
    eventually(UPSTREAM_DELAY / 2, || async {
        now.set(in_flight().await);
        now.get() == Some(0.0)
    })
    .await;
    assert_eq!(
        now.get(),
        Some(0.0),
        "server_calls_in_flight{{protocol=\"grpc\"}} after the client cancelled its only call"
    );
}

/// The fetch cache is visible in the metrics: a first fetch misses and reads the store,
/// the next ones hit; a fetch of an unknown id misses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_fetch_cache_hits_and_misses() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(&dir.path().join("data"), &[]).await;
    let mut client = server.client().await;
    let created = client
        .create_participant(crate::fixtures::create_request())
        .await
        .expect("create")
        .into_inner();
    let fetch = |participant_id: String| participants_facade::proto::FetchParticipantRequest {
        conversation_id: created.conversation_id.clone(),
        participant_id,
    };

    // Act: three fetches of the participant, one of an unknown id.
    for _ in 0..3 {
        let fetched = client
            .fetch_participant(fetch(created.id.clone()))
            .await
            .expect("fetch")
            .into_inner();
        assert_eq!(fetched, created);
    }
    let missing = client.fetch_participant(fetch(participant_id())).await;
    assert_eq!(
        missing.expect_err("unknown id").code(),
        tonic::Code::NotFound
    );
    let scrape = scrape(server.addr).await;

    // Assert
    let lookups = |result: &str| {
        sample(
            &scrape,
            "store_cache_lookups_total",
            &[("table", "participants"), ("result", result)],
        )
    };
    assert_eq!(lookups("miss"), Some(2.0));
    assert_eq!(lookups("hit"), Some(2.0));
    assert_eq!(
        sample(
            &scrape,
            "store_operation_duration_seconds_count",
            &[("operation", "fetch_participant")]
        ),
        Some(2.0),
        "only the misses read the store"
    );
}
