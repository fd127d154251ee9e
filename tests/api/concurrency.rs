//! Many callers at once: group commit must answer each one with its own participant.

use std::collections::BTreeSet;
use std::time::Duration;

use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
};
use tokio::task::JoinSet;

use crate::fixtures::*;

const CREATES: usize = 160;
const CHANNELS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_creates_all_succeed_with_distinct_ids_and_are_fetchable() {
    // Arrange: a few connections, all creates in one conversation so that they contend on
    // the same conflict table.
    let app = spawn_app().await;
    let mut clients = Vec::new();
    for _ in 0..CHANNELS {
        clients.push(app.new_client().await);
    }
    let conversation = conversation_id();

    // Act
    let mut tasks = JoinSet::new();
    for i in 0..CREATES {
        let mut client = clients[i % CHANNELS].clone();
        let request = CreateParticipantRequest {
            conversation_id: conversation.clone(),
            name: format!("caller {i}"),
            addresses: vec![address(Channel::Sms, &format!("+1444{i:07}"))],
            ..Default::default()
        };
        tasks.spawn(async move {
            let created = client.create_participant(request.clone()).await;
            (request, created)
        });
    }
    let mut created = Vec::new();
    let results = tokio::time::timeout(Duration::from_secs(30), tasks.join_all())
        .await
        .expect("all creates answer within 30 s");
    for (request, result) in results {
        let participant = result
            .unwrap_or_else(|e| panic!("create for {} failed: {e:?}", request.name))
            .into_inner();
        assert_eq!(
            participant.name, request.name,
            "answered with someone else's participant"
        );
        assert_eq!(participant.addresses, request.addresses);
        created.push(participant);
    }

    // Assert
    let ids: BTreeSet<_> = created.iter().map(|p| p.id.clone()).collect();
    assert_eq!(ids.len(), CREATES, "ids are distinct");
    for participant in &created {
        let fetched = app
            .fetch(&conversation, &participant.id)
            .await
            .expect("every acknowledged participant is fetchable");
        assert_eq!(&fetched, participant);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_with_the_same_address_produce_one_winner_and_conflicts() {
    let app = spawn_app().await;
    let request = create_request();
    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let mut client = app.client.clone();
        let request = request.clone();
        tasks.spawn(async move { client.create_participant(request).await });
    }
    let results = tokio::time::timeout(Duration::from_secs(30), tasks.join_all())
        .await
        .expect("answers within 30 s");

    let winners: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.get_ref().clone())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one create wins: {results:?}");
    for result in results.into_iter().filter(|r| r.is_err()) {
        assert_conflict_with(result, &winners[0].id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_with_one_idempotency_key_create_one_participant() {
    let app = spawn_app().await;
    let request = CreateParticipantRequest {
        idempotency_key: format!("retry-{}", unique()),
        ..create_request()
    };
    let v1_request = CreateServiceParticipantRequest {
        idempotency_key: format!("retry-v1-{}", unique()),
        ..create_v1_request()
    };
    let mut v2 = JoinSet::new();
    let mut v1 = JoinSet::new();
    for _ in 0..20 {
        let mut client = app.client.clone();
        let request = request.clone();
        v2.spawn(async move { client.create_participant(request).await });
        let mut client = app.client.clone();
        let request = v1_request.clone();
        v1.spawn(async move { client.create_service_participant(request).await });
    }
    let v2 = tokio::time::timeout(Duration::from_secs(30), v2.join_all())
        .await
        .expect("answers within 30 s");
    let v1 = tokio::time::timeout(Duration::from_secs(30), v1.join_all())
        .await
        .expect("answers within 30 s");

    let v2: Vec<_> = v2
        .into_iter()
        .map(|r| r.expect("every retry succeeds").into_inner())
        .collect();
    assert!(
        v2.iter().all(|p| *p == v2[0]),
        "all retries answer the same participant"
    );
    let v1: Vec<_> = v1
        .into_iter()
        .map(|r| r.expect("every retry succeeds").into_inner())
        .collect();
    assert!(
        v1.iter().all(|p| *p == v1[0]),
        "all retries answer the same participant"
    );
}
