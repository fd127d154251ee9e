//! The facade's idempotency key over Twilio: the same key and request make one upstream
//! POST however often and however concurrently they are sent; the same key with another
//! request is INVALID_ARGUMENT; a failed create is not remembered.

use std::time::{Duration, Instant};

use participants_facade::proto::{CreateParticipantRequest, CreateServiceParticipantRequest};
use tonic::Code;
use wiremock::matchers::{header as header_is, method, path};
use wiremock::{Mock, ResponseTemplate};

use super::*;

#[tokio::test]
async fn a_repeated_key_with_the_same_request_makes_one_upstream_post() {
    // Arrange
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    // UUID-shaped keys, which Twilio's spec asks for and the facade sends as they are.
    let key = format!("00000000-0000-4000-8000-{:012x}", unique());
    let v2 = CreateParticipantRequest {
        idempotency_key: key.clone(),
        ..create_request()
    };
    // One key space serves both creates, so the v1 create takes a key of its own.
    let v1_key = format!("00000000-0000-4000-8001-{:012x}", unique());
    let v1 = CreateServiceParticipantRequest {
        idempotency_key: v1_key.clone(),
        ..create_v1_request()
    };
    Mock::given(method("POST"))
        .and(path(v2_path(&v2.conversation_id)))
        .and(header_is("Idempotency-Key", key.as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(v2_answer(&participant_id(), &v2)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(v1_path(&v1.chat_service_sid, &v1.conversation_sid)))
        .and(header_is("Idempotency-Key", v1_key.as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(v1_answer(&sid("MB"), &v1)))
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let first = app.create(v2.clone()).await.expect("first v2");
    let again = app.create(v2.clone()).await.expect("repeated v2");
    let first_v1 = app.create_v1(v1.clone()).await.expect("first v1");
    let again_v1 = app.create_v1(v1.clone()).await.expect("repeated v1");

    // Assert
    assert_eq!(first, again);
    assert_eq!(first_v1, again_v1);
    server.verify().await;
}

#[tokio::test]
async fn concurrent_calls_with_one_key_make_one_upstream_post() {
    // Arrange: upstream takes 500 ms, so all five calls are in flight together.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let request = CreateParticipantRequest {
        idempotency_key: format!("key-{}", unique()),
        ..create_request()
    };
    Mock::given(method("POST"))
        .and(path(v2_path(&request.conversation_id)))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(v2_answer(&participant_id(), &request))
                .set_delay(Duration::from_millis(500)),
        )
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let mut client = app.client.clone();
        let request = request.clone();
        calls.spawn(async move {
            client
                .create_participant(request)
                .await
                .map(|r| r.into_inner())
        });
    }
    let mut ids = Vec::new();
    while let Some(result) = calls.join_next().await {
        ids.push(result.expect("task").expect("create").id);
    }

    // Assert
    ids.dedup();
    assert_eq!(ids.len(), 1, "one participant for all: {ids:?}");
    server.verify().await;
}

#[tokio::test]
async fn the_same_key_with_another_request_is_invalid_argument_without_an_upstream_call() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let key = format!("key-{}", unique());
    let v2 = CreateParticipantRequest {
        idempotency_key: key.clone(),
        ..create_request()
    };
    // One key space serves both creates, so the v1 create takes a key of its own.
    let v1_key = format!("{key}-v1");
    let v1 = CreateServiceParticipantRequest {
        idempotency_key: v1_key.clone(),
        ..create_v1_request()
    };
    Mock::given(method("POST"))
        .and(path(v2_path(&v2.conversation_id)))
        .respond_with(ResponseTemplate::new(201).set_body_json(v2_answer(&participant_id(), &v2)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(v1_path(&v1.chat_service_sid, &v1.conversation_sid)))
        .respond_with(ResponseTemplate::new(201).set_body_json(v1_answer(&sid("MB"), &v1)))
        .expect(1)
        .mount(&server)
        .await;
    app.create(v2.clone()).await.expect("first v2");
    app.create_v1(v1.clone()).await.expect("first v1");

    let other_name = app
        .create(CreateParticipantRequest {
            name: "Someone Else".into(),
            ..v2.clone()
        })
        .await;
    let other_identity = app
        .create_v1(CreateServiceParticipantRequest {
            identity: "someone-else".into(),
            ..v1.clone()
        })
        .await;

    assert_key_reused(other_name);
    assert_key_reused(other_identity);
    assert_eq!(
        received_count(&server).await,
        2,
        "no upstream call for a reused key"
    );
    server.verify().await;
}

#[tokio::test]
async fn a_failed_create_is_not_remembered_so_its_key_may_be_retried() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let request = CreateParticipantRequest {
        idempotency_key: format!("key-{}", unique()),
        ..create_request()
    };
    let create = v2_path(&request.conversation_id);
    Mock::given(method("POST"))
        .and(path(create.as_str()))
        .respond_with(twilio_error(
            400,
            21_610,
            "Attempt to send to unsubscribed recipient",
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(create.as_str()))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(v2_answer(&participant_id(), &request)),
        )
        .mount(&server)
        .await;

    let first = app.create(request.clone()).await;
    let second = app.create(request.clone()).await;
    let third = app.create(request.clone()).await;

    expect_code(first, Code::InvalidArgument);
    let second = second.expect("the retry with the same key goes upstream");
    assert_eq!(third.expect("replayed"), second);
    assert_eq!(received_on(&server, "POST", &create).await.len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_used_for_a_v1_create_cannot_be_reused_for_a_v2_create() {
    // As with the local backend (participants::an_idempotency_key_used_for_a_v1_create_
    // cannot_be_reused_for_a_v2_create): a key names one request, whatever the RPC.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let key = format!("key-{}", unique());
    let v1 = CreateServiceParticipantRequest {
        idempotency_key: key.clone(),
        ..create_v1_request()
    };
    let v2 = CreateParticipantRequest {
        idempotency_key: key,
        ..create_request()
    };
    Mock::given(method("POST"))
        .and(path(v1_path(&v1.chat_service_sid, &v1.conversation_sid)))
        .respond_with(ResponseTemplate::new(201).set_body_json(v1_answer(&sid("MB"), &v1)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(v2_path(&v2.conversation_id)))
        .respond_with(ResponseTemplate::new(201).set_body_json(v2_answer(&participant_id(), &v2)))
        .mount(&server)
        .await;
    app.create_v1(v1).await.expect("v1 create");

    let result = app.create(v2.clone()).await;

    assert_key_reused(result);
    assert_eq!(
        received_on(&server, "POST", &v2_path(&v2.conversation_id))
            .await
            .len(),
        0,
        "the reused key's v2 create went upstream"
    );
}

#[tokio::test]
async fn a_key_whose_create_failed_may_carry_a_corrected_request() {
    // Nothing was created under the key, so nothing binds it to the failed request: the
    // local backend accepts a corrected request under it, and so must this one.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let key = format!("key-{}", unique());
    let rejected = CreateServiceParticipantRequest {
        idempotency_key: key.clone(),
        ..create_v1_request()
    };
    let corrected = CreateServiceParticipantRequest {
        identity: format!("{}-corrected", rejected.identity),
        ..rejected.clone()
    };
    let create = v1_path(&rejected.chat_service_sid, &rejected.conversation_sid);
    Mock::given(method("POST"))
        .and(path(create.as_str()))
        .respond_with(twilio_error(409, 50_433, "Participant already exists"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(create.as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(v1_answer(&sid("MB"), &corrected)))
        .mount(&server)
        .await;

    let first = app.create_v1(rejected).await;
    let second = app.create_v1(corrected.clone()).await;

    expect_code(first, Code::AlreadyExists);
    let second = second.unwrap_or_else(|s| {
        panic!("the corrected request under the failed request's key was refused: {s:?}")
    });
    assert_eq!(second.identity, corrected.identity);
    assert_eq!(received_on(&server, "POST", &create).await.len(), 2);
}

#[tokio::test]
async fn a_key_is_remembered_for_the_idempotency_ttl_only() {
    // Arrange: keys are remembered for 300 ms; the upstream notes when each create arrives.
    let ttl = Duration::from_millis(300);
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| {
        c.idempotency_ttl = ttl;
    })
    .await;
    let request = CreateParticipantRequest {
        idempotency_key: format!("key-{}", unique()),
        ..create_request()
    };
    let create = v2_path(&request.conversation_id);
    let arrivals = Arrivals::default();
    Mock::given(method("POST"))
        .and(path(create.as_str()))
        .respond_with(arrivals.answering(
            ResponseTemplate::new(201).set_body_json(v2_answer(&participant_id(), &request)),
        ))
        .mount(&server)
        .await;

    // Act: a create and its replay, then the same create again until it reaches the
    // upstream once more (the TTL's passing is the behaviour under test).
    let started = Instant::now();
    app.create(request.clone()).await.expect("first");
    app.create(request.clone()).await.expect("replayed");
    let forgotten = eventually(WAIT, || async {
        app.create(request.clone())
            .await
            .expect("a repeated create");
        received_on(&server, "POST", &create).await.len() > 1
    })
    .await;

    // Assert: forgotten, and not before the TTL: the key is remembered from when the first
    // create arrived at the facade (after `started`), so the second create to reach the
    // upstream did so at least the TTL after `started`. That holds however slow the
    // machine, and covers the replay: had it reached the upstream, it would be that second
    // create, sent at once instead of after the TTL. (Whether the replay came within the
    // TTL is the machine's speed, so its own count of upstream creates is not asserted.)
    assert!(forgotten, "the key was still remembered after {WAIT:?}");
    assert_eq!(
        received_on(&server, "POST", &create).await.len(),
        2,
        "an expired key is forgotten"
    );
    let again = arrivals.times()[1] - started;
    assert!(
        again >= ttl,
        "the key was forgotten {again:?} after its first create, before the {ttl:?} TTL"
    );
}
