//! twilio mode with `--database-url`: the replicas share their idempotency keys, so a
//! create retried on another replica is answered from the first one's result without a
//! second create upstream, also while the first is still in flight; the key with another
//! request is refused on any replica.

use std::sync::Arc;
use std::time::Duration;

use participants_facade::proto::{CreateParticipantRequest, CreateServiceParticipantRequest};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

/// Two twilio-mode replicas against `upstream`, sharing the database at `url`.
async fn twilio_replicas(upstream: &MockServer, url: &str) -> [TestApp; 2] {
    [
        twilio_replica(upstream, url).await,
        twilio_replica(upstream, url).await,
    ]
}

/// A twilio-mode replica against `upstream`, keeping its idempotency keys at `url`.
async fn twilio_replica(upstream: &MockServer, url: &str) -> TestApp {
    let url = url.to_owned();
    spawn_twilio_app_with(&upstream.uri(), move |settings| {
        settings.config.database.url = Some(url.parse().expect("never fails"));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_retried_on_another_replica_is_answered_without_a_second_upstream_create() {
    // Arrange: two replicas on one database and one upstream that answers each create
    // route once.
    let server = upstream().await;
    let database = fresh_database().await;
    let [a, b] = twilio_replicas(&server, &database.url).await;
    let run = unique();
    let v2 = CreateParticipantRequest {
        idempotency_key: format!("retried-v2-{run}"),
        ..create_request()
    };
    let v1 = CreateServiceParticipantRequest {
        idempotency_key: format!("retried-v1-{run}"),
        ..create_v1_request()
    };
    let v2_route = v2_path(&v2.conversation_id);
    let v1_route = v1_path(&v1.chat_service_sid, &v1.conversation_sid);
    Mock::given(method("POST"))
        .and(path(v2_route.as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(v2_answer(&participant_id(), &v2)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(v1_route.as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(v1_answer(&sid("MB"), &v1)))
        .expect(1)
        .mount(&server)
        .await;

    // Act: each create on A, then the same create (key and request) on B.
    let first = a.create(v2.clone()).await.expect("v2 on A");
    let retried = b.create(v2.clone()).await.expect("v2 retried on B");
    let first_v1 = a.create_v1(v1.clone()).await.expect("v1 on A");
    let retried_v1 = b.create_v1(v1.clone()).await.expect("v1 retried on B");

    // Assert: B answers A's participants, and Twilio received one create of each.
    assert_eq!(retried, first);
    assert_eq!(v1_record(&retried_v1), v1_record(&first_v1));
    assert_eq!(received_on(&server, "POST", &v2_route).await.len(), 1);
    assert_eq!(received_on(&server, "POST", &v1_route).await.len(), 1);

    // Act and assert: the keys with other requests, on B (and on A), are refused without
    // a call upstream.
    for app in [&b, &a] {
        assert_key_reused(
            app.create(CreateParticipantRequest {
                name: "Someone Else".into(),
                ..v2.clone()
            })
            .await,
        );
        assert_key_reused(
            app.create_v1(CreateServiceParticipantRequest {
                identity: format!("someone-else-{run}"),
                ..v1.clone()
            })
            .await,
        );
    }
    assert_eq!(
        received_count(&server).await,
        2,
        "no upstream call for a reused key"
    );
    server.verify().await;
}

/// Keys raced at once on both replicas, per kind of race.
const RACED_KEYS: usize = 5;
/// How long upstream takes over each create: every racing call arrives while the first
/// create is still in flight.
const UPSTREAM_DELAY: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_sent_to_both_replicas_at_once_makes_one_upstream_create() {
    // Arrange: two replicas; per key, a conversation of its own whose create upstream
    // answers slowly. Keys 0..RACED_KEYS carry one request to both replicas; the next
    // RACED_KEYS carry another request to each replica.
    let server = upstream().await;
    let database = fresh_database().await;
    let replicas = twilio_replicas(&server, &database.url).await;
    let run = unique();
    let mut requests = Vec::new();
    for k in 0..2 * RACED_KEYS {
        let first = CreateParticipantRequest {
            idempotency_key: format!("raced-{run}-{k}"),
            ..create_request()
        };
        Mock::given(method("POST"))
            .and(path(v2_path(&first.conversation_id)))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(v2_answer(&participant_id(), &first))
                    .set_delay(UPSTREAM_DELAY),
            )
            .mount(&server)
            .await;
        let second = if k < RACED_KEYS {
            first.clone()
        } else {
            CreateParticipantRequest {
                name: "Someone Else".into(),
                ..first.clone()
            }
        };
        requests.push([first, second]);
    }

    // Act: replica r sends request r of every key, all released together.
    let barrier = Arc::new(Barrier::new(2 * 2 * RACED_KEYS));
    let mut calls = JoinSet::new();
    for (k, pair) in requests.iter().enumerate() {
        for (r, app) in replicas.iter().enumerate() {
            let (mut client, request, gate) =
                (app.client.clone(), pair[r].clone(), barrier.clone());
            calls.spawn(async move {
                gate.wait().await;
                let result = client.create_participant(request).await;
                (k, r, result.map(tonic::Response::into_inner))
            });
        }
    }
    let mut outcomes = tokio::time::timeout(Duration::from_secs(30), calls.join_all())
        .await
        .expect("the creates answer");
    outcomes.sort_by_key(|(k, r, _)| (*k, *r));

    // Assert: one create upstream per key; the same request on both replicas answers one
    // participant on both; two requests under one key: one created, the other refused.
    for (k, pair) in requests.iter().enumerate() {
        let route = v2_path(&pair[0].conversation_id);
        assert_eq!(
            received_on(&server, "POST", &route).await.len(),
            1,
            "key {k}: one create upstream"
        );
    }
    let mut outcomes = outcomes.into_iter();
    while let (Some((k, _, a)), Some((_, _, b))) = (outcomes.next(), outcomes.next()) {
        if k < RACED_KEYS {
            let a = a.unwrap_or_else(|e| panic!("key {k} on A: {e:?}"));
            let b = b.unwrap_or_else(|e| panic!("key {k} on B: {e:?}"));
            assert_eq!(a, b, "key {k}: one participant on both replicas");
        } else {
            let (winner, lost) = match (a, b) {
                (Ok(_), lost @ Err(_)) => (0, lost),
                (lost @ Err(_), Ok(_)) => (1, lost),
                (a, b) => panic!("key {k}: one request wins, the other is refused: {a:?} {b:?}"),
            };
            // (Upstream answers any create with the first request's participant: what
            // it received tells which request went.)
            let sent =
                received_on(&server, "POST", &v2_path(&requests[k][0].conversation_id)).await;
            let body: serde_json::Value = sent[0].body_json().expect("a JSON body");
            assert_eq!(
                body["name"], requests[k][winner].name,
                "key {k}: the winner's request went upstream"
            );
            assert_key_reused(lost);
        }
    }
}
