//! Protection around Twilio: the circuit breaker (fail fast, readiness, recovery), the
//! in-flight limit, cancellation reaching the upstream request, refusing to start without
//! credentials, and no credential in any log line or error.

use std::time::Duration;

use participants_facade::proto::FetchParticipantRequest;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use super::*;

#[tokio::test]
async fn the_breaker_fails_fast_turns_readiness_off_and_recovers_after_a_successful_probe() {
    // Arrange: 3 consecutive failures open it for 1 s; one attempt per call.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| {
        c.upstream.breaker_failures = 3;
        c.upstream.breaker_cooldown = Duration::from_secs(1);
        c.upstream.max_attempts = 1;
    })
    .await;
    let conversation = conversation_id();
    let id = participant_id();
    let route = v2_fetch_path(&conversation, &id);
    let failing = Mock::given(method("GET"))
        .and(path(route.as_str()))
        .respond_with(twilio_error(500, 20_500, "Internal Server Error"))
        .mount_as_scoped(&server)
        .await;
    assert_eq!(
        health_status(app.addr, SERVICE_NAME).await,
        Some(ServingStatus::Serving)
    );

    // Act 1: three failures reach Twilio; the third opens the breaker.
    for _ in 0..3 {
        expect_code(app.fetch(&conversation, &id).await, Code::Internal);
    }
    assert_eq!(received_on(&server, "GET", &route).await.len(), 3);

    // Assert 1: the next call fails fast without reaching Twilio, and says when to retry.
    let status = expect_code(app.fetch(&conversation, &id).await, Code::Unavailable);
    assert!(status.message().contains("circuit breaker"), "{status:?}");
    let wait = retry_delay(&status).expect("RetryInfo on a fast failure");
    assert!(wait <= Duration::from_secs(1), "{wait:?}");
    assert_eq!(
        received_on(&server, "GET", &route).await.len(),
        3,
        "an open breaker does not call Twilio"
    );

    // Assert 2: readiness turns NOT_SERVING (it is polled; it stays so until the cooldown
    // is over); liveness stays SERVING.
    let not_ready = eventually(WAIT, || async {
        health_status(app.addr, SERVICE_NAME).await == Some(ServingStatus::NotServing)
    })
    .await;
    assert!(
        not_ready,
        "{SERVICE_NAME} still SERVING {WAIT:?} after the breaker opened"
    );
    assert_eq!(
        health_status(app.addr, "").await,
        Some(ServingStatus::Serving),
        "liveness is not readiness"
    );

    // Act 2: Twilio recovers; after the cooldown a probe goes through and succeeds.
    drop(failing);
    let request = create_request();
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(v2_answer(
            &id,
            &participants_facade::proto::CreateParticipantRequest {
                conversation_id: conversation.clone(),
                ..request
            },
        )))
        .mount(&server)
        .await;
    let refused_while_open = std::cell::Cell::new(0);
    let recovered = eventually(WAIT, || async {
        match app.fetch(&conversation, &id).await {
            Ok(_) => true,
            Err(status) => {
                assert!(status.message().contains("circuit breaker"), "{status:?}");
                let wait = retry_delay(&status).expect("RetryInfo on every refusal");
                assert!(wait <= Duration::from_secs(1), "{wait:?}");
                refused_while_open.set(refused_while_open.get() + 1);
                false
            }
        }
    })
    .await;

    // Assert 3: it recovered only after the cooldown: the calls made during it were
    // refused without reaching Twilio, which saw exactly one probe; and readiness
    // follows. (How long the cooldown lasts is the breaker's unit tests' concern, on a
    // paused clock.)
    assert!(recovered, "no successful call within {WAIT:?}");
    assert!(
        refused_while_open.get() > 0,
        "calls during the cooldown were refused"
    );
    assert_eq!(
        received_on(&server, "GET", &route).await.len(),
        4,
        "three failures and one probe"
    );
    let ready = eventually(WAIT, || async {
        health_status(app.addr, SERVICE_NAME).await == Some(ServingStatus::Serving)
    })
    .await;
    assert!(ready, "readiness did not return after recovery");
    app.fetch(&conversation, &id).await.expect("closed again");
}

#[tokio::test]
async fn client_errors_do_not_open_the_breaker() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| {
        c.upstream.breaker_failures = 2;
        c.upstream.max_attempts = 1;
    })
    .await;
    let prepared = Rpc::FetchParticipant.fresh();
    prepared
        .mount(&server, twilio_error(404, 20_404, "Not Found"))
        .await;

    for _ in 0..6 {
        expect_code(prepared.call(&app, None).await, Code::NotFound);
    }

    assert_eq!(
        prepared.attempts(&server).await,
        6,
        "every call reached Twilio"
    );
}

#[tokio::test]
async fn calls_beyond_the_in_flight_limit_fail_fast_with_resource_exhausted() {
    // Arrange: two calls may wait on a slow upstream at once.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| c.upstream.max_in_flight = 2).await;
    Mock::given(method("GET"))
        .respond_with(|request: &wiremock::Request| {
            ResponseTemplate::new(200)
                .set_body_json(v2_fetched_answer(request))
                .set_delay(Duration::from_millis(1500))
        })
        .mount(&server)
        .await;
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut client = app.client.clone();
        slow.push(tokio::spawn(async move {
            client
                .fetch_participant(fetch_v2_request(&conversation_id(), &participant_id()))
                .await
        }));
    }
    let both_waiting = eventually(WAIT, || async { received_count(&server).await == 2 }).await;
    assert!(both_waiting, "the two slow calls did not reach upstream");

    // Act
    let third = app.fetch(&conversation_id(), &participant_id()).await;
    let v1_create = app.create_v1(create_v1_request()).await;

    // Assert: refused, not queued: answered while both slow calls still hold their slots
    // (a queued call would have waited for one of them to end), and never sent upstream.
    let slow_still_waiting = slow.iter().filter(|call| !call.is_finished()).count();
    let status = expect_code(third, Code::ResourceExhausted);
    expect_code(v1_create, Code::ResourceExhausted);
    assert_eq!(
        slow_still_waiting, 2,
        "the refusals came only after a slow call had ended"
    );
    assert!(retry_delay(&status).is_some(), "RetryInfo: {status:?}");
    assert_eq!(
        received_count(&server).await,
        2,
        "the refused calls never went upstream"
    );
    for done in slow {
        done.await
            .expect("task")
            .expect("the slow calls still succeed");
    }
    app.fetch(&conversation_id(), &participant_id())
        .await
        .expect("capacity is back");
}

#[tokio::test]
async fn a_cancelled_call_aborts_its_upstream_request() {
    // Arrange: an upstream that reads the request, never answers, and reports when the
    // facade closes the connection.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (got_request, request_seen) = oneshot::channel::<()>();
    let (closed_tx, mut closed) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        read_request_head(&mut stream).await.expect("a request");
        let _ = got_request.send(());
        let mut buf = [0u8; 1024];
        // Bounded: the test gives up long before.
        let end = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        if end.is_ok() {
            let _ = closed_tx.send(());
        }
    });
    let app = spawn_twilio_app(&url, |c| {
        c.upstream.attempt_timeout = Duration::from_secs(60);
        c.upstream.timeout = Duration::from_secs(60);
        c.server.request_timeout = Duration::from_secs(60);
    })
    .await;
    let mut client = app.client.clone();
    let call = tokio::spawn(async move {
        client
            .fetch_participant(FetchParticipantRequest {
                conversation_id: conversation_id(),
                participant_id: participant_id(),
            })
            .await
    });
    tokio::time::timeout(WAIT, request_seen)
        .await
        .expect("upstream got the request within the bound")
        .expect("request seen");

    // Act: the caller goes away (the client resets the HTTP/2 stream); until then, the
    // upstream connection stays open.
    assert_eq!(
        closed.try_recv(),
        Err(oneshot::error::TryRecvError::Empty),
        "the upstream connection closed before the cancellation"
    );
    call.abort();

    // Assert: the cancellation closes it (the upstream itself would hold it for 60 s).
    tokio::time::timeout(WAIT, closed)
        .await
        .expect("the upstream connection was not closed after the cancellation")
        .expect("closed");
}

#[tokio::test]
async fn twilio_mode_refuses_to_start_without_credentials() {
    let dir = tempfile::tempdir().expect("temp dir");
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Env, &[&str]); 4] = [
        (
            &[],
            &["TWILIO_API_KEY", "TWILIO_API_SECRET", "TWILIO_AUTH_TOKEN"],
        ),
        (
            &[("TWILIO_API_KEY", API_KEY)],
            &["TWILIO_API_KEY is set but TWILIO_API_SECRET is not"],
        ),
        (
            &[("TWILIO_AUTH_TOKEN", API_SECRET)],
            &["TWILIO_AUTH_TOKEN is set but TWILIO_ACCOUNT_SID is not"],
        ),
        (
            &[("TWILIO_API_KEY", ""), ("TWILIO_API_SECRET", "")],
            &["needs credentials"],
        ),
    ];

    for (env, says) in cases {
        let (status, stderr) = run_to_exit(dir.path(), &["--backend", "twilio"], env).await;

        assert!(
            !status.success(),
            "{env:?}: started without credentials: {stderr}"
        );
        for text in says {
            assert!(
                stderr.contains(text),
                "{env:?}: stderr should say {text:?}:\n{stderr}"
            );
        }
        assert!(
            !stderr.contains(API_SECRET),
            "{env:?}: the secret was printed"
        );
    }
}

#[tokio::test]
async fn no_credential_appears_in_any_log_line_or_error() {
    // Arrange: the binary at debug level with JSON logs, against an upstream that answers
    // every kind of way: success, Twilio errors, retries, timeouts, dropped connections,
    // bodies that are not the resource.
    let server = upstream().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let uri = server.uri();
    let mut child = ChildServer::start_with_env(
        &data,
        &[
            "--backend",
            "twilio",
            "--upstream-url",
            &uri,
            "--upstream-attempt-timeout",
            "200ms",
            "--upstream-initial-backoff",
            "5ms",
            "--upstream-max-backoff",
            "10ms",
            "--upstream-breaker-failures",
            "1000",
        ],
        &[
            ("TWILIO_API_KEY", API_KEY),
            ("TWILIO_API_SECRET", API_SECRET),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let client = child.client().await;
    let mut scripted = Vec::new();
    for rpc in RPCS {
        for answer in 0..6 {
            let prepared = rpc.fresh();
            let template = match answer {
                0 => prepared.success(),
                1 => twilio_error(401, 20_003, "Authenticate"),
                2 => twilio_error(500, 20_500, "Internal Server Error"),
                3 => prepared.success().set_delay(Duration::from_secs(2)),
                4 => ResponseTemplate::new(200).set_body_raw("not json", "text/plain"),
                _ => {
                    Mock::given(method(prepared.method))
                        .and(path(prepared.path.as_str()))
                        .respond_with_err(|_: &wiremock::Request| {
                            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset")
                        })
                        .mount(&server)
                        .await;
                    scripted.push(prepared);
                    continue;
                }
            };
            prepared.mount(&server, template).await;
            scripted.push(prepared);
        }
    }

    // Act: every case through the child, collecting every status.
    let mut seen = Vec::new();
    for prepared in &scripted {
        match prepared.call_with(client.clone(), None).await {
            Ok(_) => seen.push(format!("ok {:?}", prepared.rpc)),
            Err(status) => {
                seen.push(format!("{status:?}"));
                seen.push(String::from_utf8_lossy(status.details()).into_owned());
                seen.push(format!("{:?}", status.metadata()));
            }
        }
    }
    child.signal(nix::sys::signal::Signal::SIGTERM);
    let exit = child.wait_for_exit(WAIT).await;
    let logs = child.logs();

    // Assert: the secret was really in use, logs were at debug level, and neither the
    // secret nor the basic-auth token appears anywhere.
    assert!(exit.success(), "clean exit: {exit}; logs:\n{logs}");
    let requests = server.received_requests().await.expect("recording");
    assert!(
        requests
            .iter()
            .all(|r| header(r, "authorization") == Some(authorization().as_str())),
        "every request authenticated with the secret"
    );
    assert!(
        logs.contains("upstream answered") && logs.contains("\"level\":\"DEBUG\""),
        "debug logs were captured:\n{logs}"
    );
    assert!(seen.len() > scripted.len(), "some calls failed: {seen:?}");
    let token = basic_token();
    for (what, text) in [("logs", &logs), ("statuses", &seen.join("\n"))] {
        for secret in [API_SECRET, token.as_str()] {
            assert!(
                !text.contains(secret),
                "{what} contain a credential ({secret}):\n{}",
                text.lines()
                    .filter(|l| l.contains(secret))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

#[tokio::test]
async fn readiness_returns_after_the_cooldown_even_without_traffic() {
    // Arrange: a load balancer stops sending calls to a NOT_SERVING instance, so the
    // breaker must not need a call to make the instance ready again.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| {
        c.upstream.breaker_failures = 2;
        c.upstream.breaker_cooldown = Duration::from_secs(1);
        c.upstream.max_attempts = 1;
    })
    .await;
    let conversation = conversation_id();
    let id = participant_id();
    Mock::given(method("GET"))
        .and(path(v2_fetch_path(&conversation, &id).as_str()))
        .respond_with(twilio_error(503, 20_503, "Service Unavailable"))
        .mount(&server)
        .await;
    for _ in 0..2 {
        expect_code(app.fetch(&conversation, &id).await, Code::Unavailable);
    }
    let not_ready = eventually(WAIT, || async {
        health_status(app.addr, SERVICE_NAME).await == Some(ServingStatus::NotServing)
    })
    .await;
    assert!(not_ready, "the open breaker turns readiness off");

    // Act: no calls at all. Assert: ready again once the cooldown is over.
    let ready_again = eventually(WAIT, || async {
        health_status(app.addr, SERVICE_NAME).await == Some(ServingStatus::Serving)
    })
    .await;
    assert!(
        ready_again,
        "readiness stayed NOT_SERVING with no traffic to probe"
    );
}
