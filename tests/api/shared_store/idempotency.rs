//! One idempotency key sent to both replicas at once is decided once, by the database: one
//! participant per key, the same answer on both replicas; the key with another request is
//! refused on either replica (IDEMPOTENCY_KEY_REUSED), also when both arrive together.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest, Participant,
    ServiceParticipant,
};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tonic::Status;

use super::*;

/// Keys raced per RPC: each sent to both replicas at the same moment.
const KEYS: usize = 20;
/// Bound on one round of racing calls.
const ROUND: Duration = Duration::from_secs(30);

type V2Outcome = (usize, usize, Result<Participant, Status>);
type V1Outcome = (usize, usize, Result<ServiceParticipant, Status>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_sent_to_both_replicas_at_once_creates_one_participant() {
    // Arrange: two replicas; KEYS v2 and KEYS v1 requests in one conversation each, each
    // with a key and an address (identity) of its own.
    let database = fresh_database().await;
    let replicas = [replica(&database.url).await, replica(&database.url).await];
    let conversation = conversation_id();
    let (service, chat) = (sid("IS"), sid("CH"));
    let run = unique();
    let v2_requests: Vec<CreateParticipantRequest> = (0..KEYS)
        .map(|k| CreateParticipantRequest {
            conversation_id: conversation.clone(),
            name: format!("key holder {k}"),
            addresses: vec![address(Channel::Sms, &phone())],
            idempotency_key: format!("both-v2-{run}-{k}"),
            ..create_request()
        })
        .collect();
    let v1_requests: Vec<CreateServiceParticipantRequest> = (0..KEYS)
        .map(|k| CreateServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: chat.clone(),
            identity: format!("key-holder-{run}-{k}"),
            idempotency_key: format!("both-v1-{run}-{k}"),
            ..Default::default()
        })
        .collect();

    // Act: every request to both replicas, all released together.
    let barrier = Arc::new(Barrier::new(KEYS * 2 * 2));
    let mut v2_calls = JoinSet::new();
    let mut v1_calls = JoinSet::new();
    for k in 0..KEYS {
        for (r, app) in replicas.iter().enumerate() {
            let (mut client, request, gate) =
                (app.client.clone(), v2_requests[k].clone(), barrier.clone());
            v2_calls.spawn(async move {
                gate.wait().await;
                let result = client.create_participant(request).await;
                (k, r, result.map(tonic::Response::into_inner))
            });
            let (mut client, request, gate) =
                (app.client.clone(), v1_requests[k].clone(), barrier.clone());
            v1_calls.spawn(async move {
                gate.wait().await;
                let result = client.create_service_participant(request).await;
                (k, r, result.map(tonic::Response::into_inner))
            });
        }
    }
    let v2: Vec<V2Outcome> = tokio::time::timeout(ROUND, v2_calls.join_all())
        .await
        .expect("the v2 creates answer");
    let v1: Vec<V1Outcome> = tokio::time::timeout(ROUND, v1_calls.join_all())
        .await
        .expect("the v1 creates answer");

    // Assert: per key, both replicas answer the same, new participant of that request...
    let mut v2_ids = vec![None::<Participant>; KEYS];
    for (k, r, result) in v2 {
        let participant = result.unwrap_or_else(|e| panic!("v2 key {k} on replica {r}: {e:?}"));
        assert_eq!(participant.name, v2_requests[k].name, "key {k}: another's");
        assert_eq!(participant.addresses, v2_requests[k].addresses);
        match &v2_ids[k] {
            None => v2_ids[k] = Some(participant),
            Some(first) => assert_eq!(&participant, first, "key {k}: two answers"),
        }
    }
    let mut v1_ids = vec![None::<ServiceParticipant>; KEYS];
    for (k, r, result) in v1 {
        let participant = result.unwrap_or_else(|e| panic!("v1 key {k} on replica {r}: {e:?}"));
        assert_eq!(participant.identity, v1_requests[k].identity, "key {k}");
        let participant = v1_record(&participant);
        match &v1_ids[k] {
            None => v1_ids[k] = Some(participant),
            Some(first) => assert_eq!(&participant, first, "key {k}: two answers"),
        }
    }
    // ... and each list holds exactly one participant per key.
    let v2_ids: BTreeSet<String> = v2_ids.into_iter().map(|p| p.unwrap().id).collect();
    let v1_ids: BTreeSet<String> = v1_ids.into_iter().map(|p| p.unwrap().sid).collect();
    assert_eq!(v2_ids.len(), KEYS, "one participant per key");
    assert_eq!(v1_ids.len(), KEYS, "one participant per key");
    for app in &replicas {
        let listed: Vec<String> = all_v2(&app.client, &conversation)
            .await
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(listed.len(), KEYS, "one listed per key: {listed:?}");
        assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), v2_ids);
        let listed: Vec<String> = all_v1(&app.client, &service, &chat)
            .await
            .into_iter()
            .map(|p| p.sid)
            .collect();
        assert_eq!(listed.len(), KEYS, "one listed per key: {listed:?}");
        assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), v1_ids);
    }

    // Act and assert: each key with another request, on either replica, is refused.
    for k in 0..KEYS {
        let app = &replicas[k % 2];
        assert_key_reused(
            app.create(CreateParticipantRequest {
                name: "Someone Else".into(),
                ..v2_requests[k].clone()
            })
            .await,
        );
        assert_key_reused(
            app.create_v1(CreateServiceParticipantRequest {
                identity: format!("someone-else-{run}-{k}"),
                ..v1_requests[k].clone()
            })
            .await,
        );
    }
    assert_eq!(all_v2(&replicas[0].client, &conversation).await.len(), KEYS);
    assert_eq!(
        all_v1(&replicas[1].client, &service, &chat).await.len(),
        KEYS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_with_two_requests_on_two_replicas_at_once_creates_one_of_them() {
    // Arrange: two replicas; per key, two different requests (other addresses, other
    // identities, so that only the key can make them collide).
    let database = fresh_database().await;
    let replicas = [replica(&database.url).await, replica(&database.url).await];
    let conversation = conversation_id();
    let (service, chat) = (sid("IS"), sid("CH"));
    let run = unique();
    let v2_request = |k: usize, r: usize| CreateParticipantRequest {
        conversation_id: conversation.clone(),
        name: format!("contender {k} of replica {r}"),
        addresses: vec![address(Channel::Sms, &phone())],
        idempotency_key: format!("split-v2-{run}-{k}"),
        ..create_request()
    };
    let v1_request = |k: usize, r: usize| CreateServiceParticipantRequest {
        chat_service_sid: service.clone(),
        conversation_sid: chat.clone(),
        identity: format!("contender-{run}-{k}-{r}"),
        idempotency_key: format!("split-v1-{run}-{k}"),
        ..Default::default()
    };

    // Act: replica r gets request r of each key, all released together.
    let barrier = Arc::new(Barrier::new(KEYS * 2 * 2));
    let mut v2_calls = JoinSet::new();
    let mut v1_calls = JoinSet::new();
    for k in 0..KEYS {
        for (r, app) in replicas.iter().enumerate() {
            let (mut client, request, gate) =
                (app.client.clone(), v2_request(k, r), barrier.clone());
            v2_calls.spawn(async move {
                gate.wait().await;
                let result = client.create_participant(request).await;
                (k, r, result.map(tonic::Response::into_inner))
            });
            let (mut client, request, gate) =
                (app.client.clone(), v1_request(k, r), barrier.clone());
            v1_calls.spawn(async move {
                gate.wait().await;
                let result = client.create_service_participant(request).await;
                (k, r, result.map(tonic::Response::into_inner))
            });
        }
    }
    let v2: Vec<V2Outcome> = tokio::time::timeout(ROUND, v2_calls.join_all())
        .await
        .expect("the v2 creates answer");
    let v1: Vec<V1Outcome> = tokio::time::timeout(ROUND, v1_calls.join_all())
        .await
        .expect("the v1 creates answer");

    // Assert: per key, exactly one request won and the other was refused as a reused key;
    // the lists hold the winners only.
    let mut v2_winners = BTreeSet::new();
    let mut v2_per_key = vec![Vec::new(); KEYS];
    for (k, r, result) in v2 {
        v2_per_key[k].push((r, result));
    }
    for (k, outcomes) in v2_per_key.into_iter().enumerate() {
        let (wins, losses): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(|(_, o)| o.is_ok());
        assert_eq!(wins.len(), 1, "key {k}: one winner: {wins:?} {losses:?}");
        let (r, winner) = &wins[0];
        let winner = winner.as_ref().unwrap();
        assert_eq!(winner.name, v2_request(k, *r).name, "key {k}");
        v2_winners.insert(winner.id.clone());
        for (_, loss) in losses {
            assert_key_reused(loss);
        }
    }
    let mut v1_winners = BTreeSet::new();
    let mut v1_per_key = vec![Vec::new(); KEYS];
    for (k, r, result) in v1 {
        v1_per_key[k].push((r, result));
    }
    for (k, outcomes) in v1_per_key.into_iter().enumerate() {
        let (wins, losses): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(|(_, o)| o.is_ok());
        assert_eq!(wins.len(), 1, "key {k}: one winner: {wins:?} {losses:?}");
        let (r, winner) = &wins[0];
        let winner = winner.as_ref().unwrap();
        assert_eq!(winner.identity, v1_request(k, *r).identity, "key {k}");
        v1_winners.insert(winner.sid.clone());
        for (_, loss) in losses {
            assert_key_reused(loss);
        }
    }
    let listed: BTreeSet<String> = all_v2(&replicas[0].client, &conversation)
        .await
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(listed, v2_winners, "the losers created nothing");
    let listed: BTreeSet<String> = all_v1(&replicas[1].client, &service, &chat)
        .await
        .into_iter()
        .map(|p| p.sid)
        .collect();
    assert_eq!(listed, v1_winners, "the losers created nothing");
}
