//! One address (v2) or one identity (v1) wanted on both replicas at once, by several
//! callers' creates, or by an update on one and a create on the other: the database lets
//! exactly one call win, and every other, on either replica, is ALREADY_EXISTS naming the
//! winner. A participant deleted on both replicas at once is deleted once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
    DeleteServiceParticipantRequest, Participant, ServiceParticipant, UpdateParticipantRequest,
    UpdateServiceParticipantRequest,
};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::*;

/// Addresses (identities) raced.
const CONTESTED: usize = 20;
/// Callers per replica for each address.
const CALLERS: usize = 2;
/// Bound on the round of racing calls.
const ROUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_or_identity_sent_to_both_replicas_at_once_has_one_holder() {
    // Arrange: two replicas; per contested address (identity), CALLERS requests on each
    // replica, each with a name (attributes) of its own, so the winner is known by it.
    let database = fresh_database().await;
    let replicas = [replica(&database.url).await, replica(&database.url).await];
    let conversation = conversation_id();
    let (service, chat) = (sid("IS"), sid("CH"));
    let run = unique();
    let phones: Vec<String> = (0..CONTESTED).map(|_| phone()).collect();
    let contenders = CONTESTED * replicas.len() * CALLERS;

    // Act: every contender at once, v2 and v1 together.
    let barrier = Arc::new(Barrier::new(contenders * 2));
    let mut v2_calls = JoinSet::new();
    let mut v1_calls = JoinSet::new();
    for (c, phone) in phones.iter().enumerate() {
        for (r, app) in replicas.iter().enumerate() {
            for n in 0..CALLERS {
                let caller = format!("{c}/{r}/{n}");
                let request = CreateParticipantRequest {
                    conversation_id: conversation.clone(),
                    name: format!("contender {caller}"),
                    addresses: vec![address(Channel::Sms, phone)],
                    ..create_request()
                };
                let (mut client, gate) = (app.client.clone(), barrier.clone());
                v2_calls.spawn(async move {
                    gate.wait().await;
                    let result = client.create_participant(request.clone()).await;
                    (c, request.name, result.map(tonic::Response::into_inner))
                });
                let request = CreateServiceParticipantRequest {
                    chat_service_sid: service.clone(),
                    conversation_sid: chat.clone(),
                    identity: format!("contested-{run}-{c}"),
                    attributes: format!(r#"{{"caller":"{caller}"}}"#),
                    ..Default::default()
                };
                let (mut client, gate) = (app.client.clone(), barrier.clone());
                v1_calls.spawn(async move {
                    gate.wait().await;
                    let result = client.create_service_participant(request.clone()).await;
                    (
                        c,
                        request.attributes,
                        result.map(tonic::Response::into_inner),
                    )
                });
            }
        }
    }
    let v2 = tokio::time::timeout(ROUND, v2_calls.join_all())
        .await
        .expect("the v2 creates answer");
    let v1 = tokio::time::timeout(ROUND, v1_calls.join_all())
        .await
        .expect("the v1 creates answer");

    // Assert: per address, one winner (created from its own request); every other
    // contender is ALREADY_EXISTS naming it.
    let mut v2_by_address = vec![Vec::new(); CONTESTED];
    for (c, name, result) in v2 {
        v2_by_address[c].push((name, result));
    }
    let mut v2_winners = BTreeSet::new();
    for (c, outcomes) in v2_by_address.into_iter().enumerate() {
        let (wins, losses): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(|(_, r)| r.is_ok());
        assert_eq!(wins.len(), 1, "address {c}: one winner: {wins:?}");
        let (name, winner) = &wins[0];
        let winner = winner.as_ref().unwrap();
        assert_eq!(
            &winner.name, name,
            "address {c}: answered another's participant"
        );
        assert_eq!(losses.len(), replicas.len() * CALLERS - 1);
        for (_, loss) in losses {
            assert_conflict_with(loss, &winner.id);
        }
        v2_winners.insert(winner.id.clone());
    }
    let mut v1_by_identity = vec![Vec::new(); CONTESTED];
    for (c, attributes, result) in v1 {
        v1_by_identity[c].push((attributes, result));
    }
    let mut v1_winners = BTreeSet::new();
    for (c, outcomes) in v1_by_identity.into_iter().enumerate() {
        let (wins, losses): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(|(_, r)| r.is_ok());
        assert_eq!(wins.len(), 1, "identity {c}: one winner: {wins:?}");
        let (attributes, winner) = &wins[0];
        let winner = winner.as_ref().unwrap();
        assert_eq!(&winner.attributes, attributes, "identity {c}: another's");
        for (_, loss) in losses {
            assert_conflict_with(loss, &winner.sid);
        }
        v1_winners.insert(winner.sid.clone());
    }

    // And both replicas list exactly the winners, once each.
    for app in &replicas {
        let listed: Vec<String> = all_v2(&app.client, &conversation)
            .await
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(listed.len(), CONTESTED, "one per address: {listed:?}");
        assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), v2_winners);
        let listed: Vec<String> = all_v1(&app.client, &service, &chat)
            .await
            .into_iter()
            .map(|p| p.sid)
            .collect();
        assert_eq!(listed.len(), CONTESTED, "one per identity: {listed:?}");
        assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), v1_winners);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_taken_by_an_update_on_one_replica_and_a_create_on_the_other_has_one_holder() {
    // Arrange: two replicas; per contested address (identity), a participant on A that an
    // update will move to it, and a create on B that wants it.
    let database = fresh_database().await;
    let [a, b] = [replica(&database.url).await, replica(&database.url).await];
    let conversation = conversation_id();
    let (service, chat) = (sid("IS"), sid("CH"));
    let run = unique();
    let mut movers = Vec::new();
    let mut movers_v1 = Vec::new();
    for c in 0..CONTESTED {
        movers.push(
            a.create(CreateParticipantRequest {
                conversation_id: conversation.clone(),
                ..create_request()
            })
            .await
            .expect("create a mover"),
        );
        movers_v1.push(
            a.create_v1(CreateServiceParticipantRequest {
                chat_service_sid: service.clone(),
                conversation_sid: chat.clone(),
                identity: format!("mover-{run}-{c}"),
                ..Default::default()
            })
            .await
            .expect("create a v1 mover"),
        );
    }
    let wanted: Vec<String> = (0..CONTESTED).map(|_| phone()).collect();

    // Act: per value, the update on A and the create on B at once.
    let barrier = Arc::new(Barrier::new(CONTESTED * 4));
    let mut calls = JoinSet::new();
    for c in 0..CONTESTED {
        let (mut on_a, mut on_b) = (a.client.clone(), b.client.clone());
        let update = UpdateParticipantRequest {
            participant: Some(Participant {
                id: movers[c].id.clone(),
                conversation_id: conversation.clone(),
                addresses: vec![address(Channel::Sms, &wanted[c])],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["addresses".into()],
            }),
        };
        let create = CreateParticipantRequest {
            conversation_id: conversation.clone(),
            addresses: vec![address(Channel::Sms, &wanted[c])],
            ..create_request()
        };
        let gate = barrier.clone();
        calls.spawn(async move {
            gate.wait().await;
            let updated = on_a.update_participant(update).await;
            (c, Side::Update, updated.map(|p| p.into_inner().id))
        });
        let gate = barrier.clone();
        calls.spawn(async move {
            gate.wait().await;
            let created = on_b.create_participant(create).await;
            (c, Side::Create, created.map(|p| p.into_inner().id))
        });
        let (mut on_a, mut on_b) = (a.client.clone(), b.client.clone());
        let identity = format!("wanted-{run}-{c}");
        let update = UpdateServiceParticipantRequest {
            service_participant: Some(ServiceParticipant {
                chat_service_sid: service.clone(),
                conversation_sid: chat.clone(),
                sid: movers_v1[c].sid.clone(),
                identity: identity.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let create = CreateServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: chat.clone(),
            identity,
            ..Default::default()
        };
        let gate = barrier.clone();
        calls.spawn(async move {
            gate.wait().await;
            let updated = on_a.update_service_participant(update).await;
            (c, Side::UpdateV1, updated.map(|p| p.into_inner().sid))
        });
        let gate = barrier.clone();
        calls.spawn(async move {
            gate.wait().await;
            let created = on_b.create_service_participant(create).await;
            (c, Side::CreateV1, created.map(|p| p.into_inner().sid))
        });
    }
    let outcomes = tokio::time::timeout(ROUND, calls.join_all())
        .await
        .expect("the calls answer");

    // Assert: per value and API, exactly one of the update and the create won, and the
    // other is ALREADY_EXISTS naming the winner.
    for c in 0..CONTESTED {
        for (update_side, create_side) in [
            (Side::Update, Side::Create),
            (Side::UpdateV1, Side::CreateV1),
        ] {
            let outcome = |side: Side| {
                outcomes
                    .iter()
                    .find(|(k, s, _)| *k == c && *s == side)
                    .map(|(_, _, result)| result.clone())
                    .expect("an outcome per call")
            };
            let (updated, created) = (outcome(update_side), outcome(create_side));
            match (updated, created) {
                (Ok(winner), lost @ Err(_)) | (lost @ Err(_), Ok(winner)) => {
                    assert_conflict_with(lost, &winner);
                }
                (updated, created) => panic!(
                    "{c} ({update_side:?}): one of the update and the create wins: \
                     {updated:?} {created:?}"
                ),
            }
        }
    }
}

/// Which call of a race an outcome is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Update,
    Create,
    UpdateV1,
    CreateV1,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_deleted_on_both_replicas_at_once_is_deleted_once() {
    // Arrange: two replicas; CONTESTED v1 participants.
    let database = fresh_database().await;
    let replicas = [replica(&database.url).await, replica(&database.url).await];
    let (service, chat) = (sid("IS"), sid("CH"));
    let mut doomed = Vec::new();
    for _ in 0..CONTESTED {
        let created = replicas[0]
            .create_v1(CreateServiceParticipantRequest {
                chat_service_sid: service.clone(),
                conversation_sid: chat.clone(),
                ..create_v1_request()
            })
            .await
            .expect("create");
        doomed.push(created.sid);
    }

    // Act: each deleted by CALLERS callers on each replica at once.
    let barrier = Arc::new(Barrier::new(CONTESTED * replicas.len() * CALLERS));
    let mut calls = JoinSet::new();
    for (d, sid) in doomed.iter().enumerate() {
        for app in &replicas {
            for _ in 0..CALLERS {
                let (mut client, gate) = (app.client.clone(), barrier.clone());
                let request = DeleteServiceParticipantRequest {
                    chat_service_sid: service.clone(),
                    conversation_sid: chat.clone(),
                    sid: sid.clone(),
                    ..Default::default()
                };
                calls.spawn(async move {
                    gate.wait().await;
                    (d, client.delete_service_participant(request).await)
                });
            }
        }
    }
    let outcomes = tokio::time::timeout(ROUND, calls.join_all())
        .await
        .expect("the deletes answer");

    // Assert: one delete succeeded per participant, every other is NOT_FOUND; none is
    // left.
    for d in 0..CONTESTED {
        let (done, not_found): (Vec<_>, Vec<_>) = outcomes
            .iter()
            .filter(|(k, _)| *k == d)
            .map(|(_, result)| result.as_ref().map(|_| ()).map_err(tonic::Status::code))
            .partition(Result::is_ok);
        assert_eq!(done.len(), 1, "{d}: deleted once: {not_found:?}");
        assert!(
            not_found.iter().all(|r| *r == Err(tonic::Code::NotFound)),
            "{d}: the others find nothing: {not_found:?}"
        );
    }
    for app in &replicas {
        assert_eq!(all_v1(&app.client, &service, &chat).await, vec![]);
    }
}
