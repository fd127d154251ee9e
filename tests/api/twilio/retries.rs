//! Retries and deadlines: which failures each kind of call repeats, how many attempts it
//! makes (`--upstream-max-attempts`), `Retry-After`, per-attempt and overall timeouts, the
//! caller's deadline, connection resets and refusals, and the v2 create that meets its
//! own first attempt behind a 409.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use super::*;

/// Statuses a fetch and a v2 create retry.
const RETRIED: &[u16] = &[429, 500, 502, 503, 504];
/// Statuses nobody retries.
const FINAL: &[u16] = &[400, 401, 403, 404, 409, 412, 418, 422, 499, 501, 505];

#[tokio::test]
async fn each_retry_rule_makes_the_documented_number_of_attempts() {
    // Arrange: the default of 3 attempts.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    assert_eq!(
        participants_facade::config::Config::local(".")
            .upstream
            .max_attempts,
        3,
        "the documented default"
    );

    for rpc in RPCS {
        for &status in RETRIED.iter().chain(FINAL) {
            let expected = match (rpc, status) {
                (Rpc::CreateServiceParticipant, 429) => 3,
                (Rpc::CreateServiceParticipant, _) => 1,
                (_, s) if RETRIED.contains(&s) => 3,
                _ => 1,
            };
            let prepared = rpc.fresh();
            prepared
                .mount(&server, twilio_error(status, 20_000, "failing"))
                .await;

            // Act
            let result = prepared.call(&app, None).await;

            // Assert
            assert!(result.is_err(), "{rpc:?} {status}: {result:?}");
            assert_eq!(
                prepared.attempts(&server).await,
                expected,
                "{rpc:?} answered {status} every time"
            );
        }
    }
}

#[tokio::test]
async fn max_attempts_follows_the_flag() {
    for max in [1, 5] {
        let server = upstream().await;
        let app = spawn_twilio_app(&server.uri(), |c| c.upstream.max_attempts = max).await;
        for rpc in [
            Rpc::FetchParticipant,
            Rpc::CreateParticipant,
            Rpc::CreateServiceParticipant,
        ] {
            let prepared = rpc.fresh();
            prepared
                .mount(&server, twilio_error(429, 20_429, "Too Many Requests"))
                .await;

            let status = expect_code(prepared.call(&app, None).await, Code::ResourceExhausted);

            assert_eq!(
                prepared.attempts(&server).await,
                max as usize,
                "{rpc:?} with --upstream-max-attempts {max}: {status:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_call_that_fails_transiently_succeeds_on_a_later_attempt() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;

    for (rpc, first, failures) in [
        (Rpc::FetchParticipant, 503, 2),
        (Rpc::FetchServiceParticipant, 500, 2),
        (Rpc::CreateParticipant, 502, 2),
        (Rpc::CreateServiceParticipant, 429, 1),
    ] {
        let prepared = rpc.fresh();
        Mock::given(method(prepared.method))
            .and(path(prepared.path.as_str()))
            .respond_with(twilio_error(first, 20_000, "transient"))
            .up_to_n_times(failures)
            .mount(&server)
            .await;
        prepared.mount(&server, prepared.success()).await;

        let result = prepared.call(&app, None).await;

        assert!(result.is_ok(), "{rpc:?}: {result:?}");
        assert_eq!(
            prepared.attempts(&server).await as u64,
            failures + 1,
            "{rpc:?}"
        );
    }
}

#[tokio::test]
async fn retry_after_is_waited_before_the_next_attempt() {
    // Arrange: backoff is at most 20 ms, so only Retry-After can explain a 1 s pause. The
    // upstream notes when each attempt arrives.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let prepared = Rpc::FetchParticipant.fresh();
    let arrivals = Arrivals::default();
    Mock::given(method("GET"))
        .and(path(prepared.path.as_str()))
        .respond_with(
            arrivals.answering(
                twilio_error(429, 20_429, "slow down").insert_header("Retry-After", "1"),
            ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    prepared
        .mount_responder(&server, arrivals.answering(prepared.success()))
        .await;

    // Act
    let result = prepared.call(&app, None).await;

    // Assert: the second attempt reached the upstream no sooner than the 1 s it asked for
    // after the first.
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(prepared.attempts(&server).await, 2);
    let gaps = arrivals.gaps();
    assert_eq!(gaps.len(), 1, "two attempts: {gaps:?}");
    assert!(
        gaps[0] >= Duration::from_millis(950),
        "Retry-After: 1 not honoured: the retry came {:?} after the 429",
        gaps[0]
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_fails_at_once_with_retry_info() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let prepared = Rpc::FetchParticipant.fresh();
    prepared
        .mount(
            &server,
            twilio_error(429, 20_429, "slow down").insert_header("Retry-After", "30"),
        )
        .await;

    let result = prepared.call(&app, Some(Duration::from_secs(3))).await;

    // At once, not after waiting: a backend that slept towards the 30 s would have met the
    // caller's 3 s deadline first and answered DEADLINE_EXCEEDED (or the client would have
    // given up), not Twilio's 429 with when to retry.
    let status = expect_code(result, Code::ResourceExhausted);
    assert_eq!(prepared.attempts(&server).await, 1);
    assert_eq!(
        retry_delay(&status),
        Some(Duration::from_secs(30)),
        "{status:?}"
    );
}

#[tokio::test]
async fn an_attempt_that_times_out_is_retried_except_by_a_v1_create() {
    // Arrange: attempts time out after 250 ms; upstream takes 3 s on the first attempt of
    // each route, then answers at once.
    let attempt_timeout = Duration::from_millis(250);
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| {
        c.upstream.attempt_timeout = attempt_timeout;
    })
    .await;

    for rpc in RPCS {
        let prepared = rpc.fresh();
        Mock::given(method(prepared.method))
            .and(path(prepared.path.as_str()))
            .respond_with(prepared.success().set_delay(Duration::from_secs(3)))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        prepared.mount(&server, prepared.success()).await;

        // Act
        let result = prepared.call(&app, None).await;

        // Assert: the slow first attempt was abandoned (had it been waited for, its 201
        // would have been the answer, after one attempt); a v1 create ends there, and the
        // error names the attempt timeout as what ended it (not the call's deadline, and
        // not the upstream's answer); the others retry into the prompt answer.
        if rpc == Rpc::CreateServiceParticipant {
            let status = expect_code(result, Code::DeadlineExceeded);
            assert!(
                status
                    .message()
                    .contains(&format!("Twilio did not answer within {attempt_timeout:?}")),
                "{status:?}"
            );
            assert_eq!(
                prepared.attempts(&server).await,
                1,
                "a v1 create that may have landed is not repeated: {status:?}"
            );
        } else {
            assert!(result.is_ok(), "{rpc:?}: {result:?}");
            assert_eq!(prepared.attempts(&server).await, 2, "{rpc:?}");
        }
    }
}

#[tokio::test]
async fn the_callers_deadline_bounds_every_attempt_and_pause() {
    // Arrange: each attempt may take 300 ms, upstream never answers in time, and the
    // caller waits 1.5 s; ten attempts would take longer than that.
    let attempt_timeout = Duration::from_millis(300);
    let max_attempts = 10;
    let deadline = Duration::from_millis(1500);
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| {
        c.upstream.attempt_timeout = attempt_timeout;
        c.upstream.max_attempts = max_attempts;
    })
    .await;

    for rpc in RPCS {
        let prepared = rpc.fresh();
        prepared
            .mount(
                &server,
                prepared.success().set_delay(Duration::from_secs(5)),
            )
            .await;

        // Act
        let response = prepared.raw_call(&app, "1500m").await;

        // Assert
        assert_eq!(
            response.grpc_status.as_deref(),
            Some("4"),
            "{rpc:?}: expected DEADLINE_EXCEEDED: {response:?}"
        );
        let attempts = prepared.attempts(&server).await;
        if rpc == Rpc::CreateServiceParticipant {
            // Its one attempt timed out; it is not repeated, so the answer names the attempt
            // timeout, not the caller's deadline.
            assert_eq!(attempts, 1, "{rpc:?}");
            let status = response.status();
            assert!(
                status
                    .message()
                    .contains(&format!("Twilio did not answer within {attempt_timeout:?}")),
                "{rpc:?}: {status:?}"
            );
        } else {
            // Attempts were cut at their timeout and retried (more than one), and the
            // caller's deadline, not the attempt cap, ended the call: no attempt ends
            // before its timeout and none starts after the deadline, so at most
            // deadline / attempt timeout of them fit.
            let fit = (deadline.as_millis() / attempt_timeout.as_millis()) as usize;
            assert!(fit < max_attempts as usize);
            assert!(
                (2..=fit).contains(&attempts),
                "{rpc:?}: {attempts} attempts"
            );
        }
    }
}

#[tokio::test]
async fn without_a_caller_deadline_the_upstream_timeout_bounds_the_call() {
    let upstream_timeout = Duration::from_millis(600);
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| {
        c.upstream.timeout = upstream_timeout;
        c.upstream.attempt_timeout = Duration::from_secs(5);
    })
    .await;

    for rpc in RPCS {
        let prepared = rpc.fresh();
        prepared
            .mount(
                &server,
                prepared.success().set_delay(Duration::from_secs(5)),
            )
            .await;

        let result = prepared.call(&app, None).await;

        // The upstream timeout is the deadline: the error says the call's deadline ended
        // its one attempt (the upstream's 5 s answer would have been a success, and the
        // 5 s attempt timeout would have named itself).
        let status = expect_code(result, Code::DeadlineExceeded);
        assert!(
            status
                .message()
                .contains("the call's deadline passed before Twilio answered (1 attempt(s))"),
            "{rpc:?}: {status:?}"
        );
        assert_eq!(prepared.attempts(&server).await, 1, "{rpc:?}");
    }
}

#[tokio::test]
async fn a_slow_answer_within_the_deadline_is_returned() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;

    for rpc in RPCS {
        let prepared = rpc.fresh();
        prepared
            .mount(
                &server,
                prepared.success().set_delay(Duration::from_millis(400)),
            )
            .await;

        let result = prepared.call(&app, Some(Duration::from_secs(3))).await;

        assert!(result.is_ok(), "{rpc:?}: {result:?}");
        assert_eq!(prepared.attempts(&server).await, 1, "{rpc:?}");
    }
}

/// An upstream that reads each request and resets the connection (RST) instead of
/// answering; counts the requests it read.
async fn resetting_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                if read_request_head(&mut stream).await.is_some() {
                    counter.fetch_add(1, Ordering::SeqCst);
                    stream.set_zero_linger().expect("SO_LINGER 0");
                    drop(stream);
                }
            });
        }
    });
    (url, requests)
}

#[tokio::test]
async fn a_connection_reset_is_retried_except_by_a_v1_create() {
    for rpc in RPCS {
        // Arrange: a fresh upstream per RPC, so its count is this RPC's attempts.
        let (url, requests) = resetting_upstream().await;
        let app = spawn_twilio_app(&url, |_| {}).await;

        // Act
        let result = rpc.fresh().call(&app, None).await;

        // Assert
        let status = expect_code(result, Code::Unavailable);
        let expected = if rpc == Rpc::CreateServiceParticipant {
            1
        } else {
            3
        };
        assert_eq!(
            requests.load(Ordering::SeqCst),
            expected,
            "{rpc:?}: {status:?}"
        );
        assert!(status.message().contains("Twilio"), "{status:?}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried_by_every_call_including_a_v1_create() {
    // Nothing listens, so every attempt fails to connect. The attempts of one call are
    // counted by the breaker: at a threshold of 3 that one call opens it, at 4 it does not.
    // The breaker's state is read at once from /readyz (the backend's readiness when
    // asked; gRPC health follows it on a poll, so an open breaker is also awaited there).
    let mut cases = tokio::task::JoinSet::new();
    for rpc in RPCS {
        for threshold in [3, 4] {
            cases.spawn(async move {
                let (closed, _held) = closed_port_url();
                let app = spawn_twilio_app(&closed, |c| {
                    c.upstream.breaker_failures = threshold;
                    c.upstream.breaker_cooldown = Duration::from_secs(60);
                })
                .await;
                let status = expect_code(rpc.fresh().call(&app, None).await, Code::Unavailable);
                assert!(
                    status.message().contains("cannot connect"),
                    "{rpc:?}: {status:?}"
                );
                let readyz = send(http_client().get(format!("{}/readyz", base_url(&app)))).await;
                let opened = readyz.status == reqwest::StatusCode::SERVICE_UNAVAILABLE;
                let health_follows = !opened
                    || eventually(WAIT, || async {
                        health_status(app.addr, SERVICE_NAME).await
                            == Some(ServingStatus::NotServing)
                    })
                    .await;
                (rpc, threshold, opened, health_follows)
            });
        }
    }

    while let Some(case) = cases.join_next().await {
        let (rpc, threshold, opened, health_follows) = case.expect("case task");
        assert_eq!(
            opened,
            threshold == 3,
            "{rpc:?}: one call against a refused port with breaker threshold {threshold} \
             left the breaker open = {opened}; it should have made exactly 3 attempts"
        );
        assert!(
            health_follows,
            "{rpc:?}: the open breaker did not turn gRPC readiness NOT_SERVING"
        );
    }
}

#[tokio::test]
async fn a_v2_create_whose_first_attempt_landed_returns_the_one_participant_behind_the_409() {
    // Arrange: Twilio stores the first attempt but answers too late (timeout) or with a
    // 503; the retry then meets it: 409 naming it.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| {
        c.upstream.attempt_timeout = Duration::from_millis(300);
    })
    .await;

    for first_answer in ["timeout", "503"] {
        let request = create_request();
        let stored = participant_id();
        let create = v2_path(&request.conversation_id);
        let first = match first_answer {
            "timeout" => ResponseTemplate::new(201)
                .set_body_json(v2_answer(&stored, &request))
                .set_delay(Duration::from_secs(3)),
            _ => twilio_error(503, 20_503, "Service Unavailable"),
        };
        Mock::given(method("POST"))
            .and(path(create.as_str()))
            .respond_with(first)
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(create.as_str()))
            .respond_with(
                twilio_error(409, 50_433, "Participant already exists")
                    .insert_header("X-Conflicting-Resource-Id", stored.as_str()),
            )
            .mount(&server)
            .await;
        let fetch = v2_fetch_path(&request.conversation_id, &stored);
        Mock::given(method("GET"))
            .and(path(fetch.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(v2_answer(&stored, &request)))
            .mount(&server)
            .await;

        // Act
        let created = app.create(request.clone()).await;

        // Assert
        let created = created.unwrap_or_else(|s| panic!("{first_answer}: {s:?}"));
        assert_eq!(created.id, stored, "{first_answer}");
        assert_eq!(created.addresses, request.addresses, "{first_answer}");
        assert_eq!(
            received_on(&server, "POST", &create).await.len(),
            2,
            "{first_answer}"
        );
        assert_eq!(
            received_on(&server, "GET", &fetch).await.len(),
            1,
            "{first_answer}"
        );
    }
}

#[tokio::test]
async fn a_409_behind_which_is_another_participant_stays_a_conflict() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let request = create_request();
    let other = participant_id();
    let create = v2_path(&request.conversation_id);
    Mock::given(method("POST"))
        .and(path(create.as_str()))
        .respond_with(twilio_error(500, 20_500, "Internal"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(create.as_str()))
        .respond_with(
            twilio_error(409, 50_433, "Participant already exists")
                .insert_header("X-Conflicting-Resource-Id", other.as_str()),
        )
        .mount(&server)
        .await;
    let someone_else = participants_facade::proto::CreateParticipantRequest {
        name: "Somebody Else".into(),
        ..request.clone()
    };
    let fetch = v2_fetch_path(&request.conversation_id, &other);
    Mock::given(method("GET"))
        .and(path(fetch.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(v2_answer(&other, &someone_else)))
        .mount(&server)
        .await;

    let result = app.create(request).await;

    assert_conflict_with(result, &other);
    assert_eq!(received_on(&server, "POST", &create).await.len(), 2);
    assert_eq!(received_on(&server, "GET", &fetch).await.len(), 1);
}

#[tokio::test]
async fn a_409_behind_which_the_participant_cannot_be_fetched_is_unavailable_not_a_conflict() {
    // Arrange: the first attempt fails ambiguously (503), the retry meets a 409, and the
    // participant it names cannot be fetched (503 on every attempt, or an answer that is
    // not a participant) or holds none of the addresses it would conflict on. Most likely
    // it is the caller's own: not ALREADY_EXISTS.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;

    for fetch_answer in ["503", "wrong shape", "no address"] {
        let request = create_request();
        let stored = participant_id();
        let create = v2_path(&request.conversation_id);
        Mock::given(method("POST"))
            .and(path(create.as_str()))
            .respond_with(twilio_error(503, 20_503, "Service Unavailable"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(create.as_str()))
            .respond_with(
                twilio_error(409, 50_433, "Participant already exists")
                    .insert_header("X-Conflicting-Resource-Id", stored.as_str()),
            )
            .mount(&server)
            .await;
        let fetch = v2_fetch_path(&request.conversation_id, &stored);
        let answer = match fetch_answer {
            "503" => twilio_error(503, 20_503, "Service Unavailable"),
            "wrong shape" => {
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"hello": "world"}))
            }
            _ => {
                let mut bare = v2_answer(&stored, &request);
                bare["addresses"] = serde_json::json!([]);
                ResponseTemplate::new(200).set_body_json(bare)
            }
        };
        Mock::given(method("GET"))
            .and(path(fetch.as_str()))
            .respond_with(answer)
            .mount(&server)
            .await;

        // Act
        let result = app.create(request.clone()).await;

        // Assert
        let status = expect_code(result, Code::Unavailable);
        assert!(
            status.message().contains("retry the create"),
            "{fetch_answer}: {status:?}"
        );
        assert!(retry_delay(&status).is_some(), "{fetch_answer}: {status:?}");
        assert!(
            !status.message().contains(&request.addresses[0].address),
            "{fetch_answer}: {status:?}"
        );
        assert_eq!(
            received_on(&server, "POST", &create).await.len(),
            2,
            "{fetch_answer}: no third create"
        );
        let fetches = received_on(&server, "GET", &fetch).await.len();
        let expected = if fetch_answer == "503" { 3 } else { 1 };
        assert_eq!(fetches, expected, "{fetch_answer}: fetches");
    }
}

#[tokio::test]
async fn a_409_on_the_first_attempt_is_a_conflict_without_a_lookup() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let request = create_request();
    let other = participant_id();
    let create = v2_path(&request.conversation_id);
    Mock::given(method("POST"))
        .and(path(create.as_str()))
        .respond_with(
            twilio_error(409, 50_433, "Participant already exists")
                .insert_header("X-Conflicting-Resource-Id", other.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(v2_answer(&other, &request)))
        .expect(0)
        .mount(&server)
        .await;

    let result = app.create(request).await;

    assert_conflict_with(result, &other);
    server.verify().await;
}

#[tokio::test]
async fn the_servers_request_timeout_bounds_upstream_retries_too() {
    // Arrange: no caller deadline, but a 1 s --request-timeout; Twilio asks for a 3 s pause.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| {
        c.server.request_timeout = Duration::from_secs(1);
    })
    .await;
    let prepared = Rpc::FetchParticipant.fresh();
    prepared
        .mount(
            &server,
            twilio_error(429, 20_429, "slow down").insert_header("Retry-After", "3"),
        )
        .await;

    // Act
    let result = prepared.call(&app, None).await;

    // Assert: the backend knows it cannot wait 3 s, so it answers at once with Twilio's
    // status and when to retry, instead of sleeping into a DEADLINE_EXCEEDED (which the
    // 1 s request timeout would have answered, had it waited).
    let status = expect_code(result, Code::ResourceExhausted);
    assert_eq!(
        retry_delay(&status),
        Some(Duration::from_secs(3)),
        "{status:?}"
    );
    assert_eq!(prepared.attempts(&server).await, 1);
}
