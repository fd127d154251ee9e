//! Two replicas on one database serve one data set: what one writes, the other reads at
//! once (every read goes to the database, so no replica answers from a stale copy), and a
//! page token one replica issued continues the listing on the other.

use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
    DeleteServiceParticipantRequest, ListParticipantsRequest, ListServiceParticipantsRequest,
    Participant, ServiceParticipant, UpdateParticipantRequest, UpdateServiceParticipantRequest,
};
use tonic::Code;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_participant_written_on_one_replica_is_read_at_once_on_the_other() {
    // Arrange: two replicas on one database.
    let database = fresh_database().await;
    let (a, b) = (replica(&database.url).await, replica(&database.url).await);

    // Act: created on A.
    let created = a.create(create_request()).await.expect("create on A");

    // Assert: B fetches and lists it.
    let conversation = created.conversation_id.clone();
    assert_eq!(
        b.fetch(&conversation, &created.id)
            .await
            .expect("fetch on B"),
        created
    );
    assert_eq!(
        all_v2(&b.client, &conversation).await,
        vec![created.clone()]
    );

    // Act: A reads it (a cache would now hold it), then B renames it and moves it to
    // another address.
    a.fetch(&conversation, &created.id)
        .await
        .expect("fetch on A");
    let new_address = address(Channel::Sms, &phone());
    let updated = b
        .client
        .clone()
        .update_participant(UpdateParticipantRequest {
            participant: Some(Participant {
                id: created.id.clone(),
                conversation_id: conversation.clone(),
                name: "Renamed on B".into(),
                addresses: vec![new_address.clone()],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into(), "addresses".into()],
            }),
        })
        .await
        .expect("update on B")
        .into_inner();

    // Assert: A's very next fetch and list show the update, and A's conflict checks
    // follow the move: the old address is free, the new one is taken.
    assert_eq!(updated.name, "Renamed on B");
    assert_eq!(
        a.fetch(&conversation, &created.id)
            .await
            .expect("fetch on A"),
        updated
    );
    assert_eq!(
        all_v2(&a.client, &conversation).await,
        vec![updated.clone()]
    );
    let taken = a
        .create(CreateParticipantRequest {
            conversation_id: conversation.clone(),
            addresses: vec![new_address],
            ..create_request()
        })
        .await;
    assert_conflict_with(taken, &updated.id);
    let freed = a
        .create(CreateParticipantRequest {
            conversation_id: conversation.clone(),
            addresses: created.addresses.clone(),
            ..create_request()
        })
        .await
        .expect("the address B released is free on A");
    assert_eq!(
        all_v2(&b.client, &conversation).await,
        vec![updated, freed],
        "B lists both, in creation order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_participant_written_on_one_replica_is_read_at_once_on_the_other() {
    // Arrange: two replicas on one database.
    let database = fresh_database().await;
    let (a, b) = (replica(&database.url).await, replica(&database.url).await);

    // Act: created on A.
    let created = a.create_v1(create_v1_request()).await.expect("create on A");
    let (service, chat) = (
        created.chat_service_sid.clone(),
        created.conversation_sid.clone(),
    );

    // Assert: B fetches it by sid and by identity, and lists it.
    for key in [&created.sid, &created.identity] {
        let fetched = b.fetch_v1(&service, &chat, key).await.expect("fetch on B");
        assert_eq!(v1_record(&fetched), v1_record(&created), "by {key}");
    }
    let listed: Vec<_> = all_v1(&b.client, &service, &chat)
        .await
        .iter()
        .map(v1_record)
        .collect();
    assert_eq!(listed, vec![v1_record(&created)]);

    // Act: A reads it both ways (a cache would now hold it), then B changes its identity
    // and attributes.
    for key in [&created.sid, &created.identity] {
        a.fetch_v1(&service, &chat, key).await.expect("fetch on A");
    }
    let new_identity = format!("moved-{}", unique());
    let updated = b
        .client
        .clone()
        .update_service_participant(UpdateServiceParticipantRequest {
            service_participant: Some(ServiceParticipant {
                chat_service_sid: service.clone(),
                conversation_sid: chat.clone(),
                sid: created.sid.clone(),
                identity: new_identity.clone(),
                attributes: r#"{"updated_on":"B"}"#.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("update on B")
        .into_inner();

    // Assert: A sees the update at once, by sid and by the new identity; the old identity
    // names no one any more, and is free to take on A.
    assert_eq!(updated.identity, new_identity);
    for key in [&created.sid, &new_identity] {
        let fetched = a.fetch_v1(&service, &chat, key).await.expect("fetch on A");
        assert_eq!(v1_record(&fetched), v1_record(&updated), "by {key}");
    }
    expect_code(
        a.fetch_v1(&service, &chat, &created.identity).await,
        Code::NotFound,
    );
    let taken = a
        .create_v1(CreateServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: chat.clone(),
            identity: new_identity.clone(),
            ..Default::default()
        })
        .await;
    assert_conflict_with(taken, &updated.sid);

    // Act: B reads it (a cache would now hold it), then A deletes it.
    b.fetch_v1(&service, &chat, &updated.sid)
        .await
        .expect("fetch on B");
    a.client
        .clone()
        .delete_service_participant(DeleteServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: chat.clone(),
            sid: updated.sid.clone(),
            ..Default::default()
        })
        .await
        .expect("delete on A");

    // Assert: B no longer finds it, by sid or identity, nor lists it, nor can delete it.
    for key in [&updated.sid, &new_identity] {
        expect_code(b.fetch_v1(&service, &chat, key).await, Code::NotFound);
    }
    assert_eq!(all_v1(&b.client, &service, &chat).await, vec![]);
    let again = b
        .client
        .clone()
        .delete_service_participant(DeleteServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: chat.clone(),
            sid: updated.sid.clone(),
            ..Default::default()
        })
        .await;
    expect_code(again, Code::NotFound);
}

/// Participants created per list, and the page size: four pages, the last one short.
const LISTED: usize = 7;
const PAGE: i32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_token_from_one_replica_continues_the_listing_on_the_other() {
    // Arrange: two replicas; LISTED v2 and v1 participants, created on both in turn.
    let database = fresh_database().await;
    let replicas = [replica(&database.url).await, replica(&database.url).await];
    let conversation = conversation_id();
    let (service, chat) = (sid("IS"), sid("CH"));
    let mut v2 = Vec::new();
    let mut v1 = Vec::new();
    for n in 0..LISTED {
        let app = &replicas[n % 2];
        v2.push(
            app.create(CreateParticipantRequest {
                conversation_id: conversation.clone(),
                ..create_request()
            })
            .await
            .expect("create v2"),
        );
        let created = app
            .create_v1(CreateServiceParticipantRequest {
                chat_service_sid: service.clone(),
                conversation_sid: chat.clone(),
                ..create_v1_request()
            })
            .await
            .expect("create v1");
        v1.push(v1_record(&created));
    }

    // Act: walk each list page by page, each page from the other replica than the last,
    // starting once on each.
    for first in 0..2 {
        let (mut walked_v2, mut walked_v1) = (Vec::new(), Vec::new());
        let (mut token_v2, mut token_v1) = (String::new(), String::new());
        let mut pages = 0;
        for page in 0.. {
            assert!(page < MAX_PAGES, "more than {MAX_PAGES} pages");
            let app = &replicas[(first + page) % 2];
            let answer = app
                .client
                .clone()
                .list_participants(ListParticipantsRequest {
                    conversation_id: conversation.clone(),
                    page_size: PAGE,
                    page_token: token_v2.clone(),
                })
                .await
                .unwrap_or_else(|e| {
                    panic!("v2 page {page} on replica {}: {e:?}", (first + page) % 2)
                })
                .into_inner();
            walked_v2.extend(answer.participants);
            let answer_v1 = app
                .client
                .clone()
                .list_service_participants(ListServiceParticipantsRequest {
                    chat_service_sid: service.clone(),
                    conversation_sid: chat.clone(),
                    page_size: PAGE,
                    page_token: token_v1.clone(),
                })
                .await
                .unwrap_or_else(|e| {
                    panic!("v1 page {page} on replica {}: {e:?}", (first + page) % 2)
                })
                .into_inner();
            walked_v1.extend(answer_v1.participants.iter().map(v1_record));
            pages += 1;
            token_v2 = answer.next_page_token;
            token_v1 = answer_v1.next_page_token;
            assert_eq!(
                token_v2.is_empty(),
                token_v1.is_empty(),
                "both lists hold as many"
            );
            if token_v2.is_empty() {
                break;
            }
        }

        // Assert: every participant once, in creation order, over the expected pages.
        assert_eq!(walked_v2, v2, "v2, starting on replica {first}");
        assert_eq!(walked_v1, v1, "v1, starting on replica {first}");
        assert_eq!(pages, LISTED.div_ceil(PAGE as usize));
    }
}
