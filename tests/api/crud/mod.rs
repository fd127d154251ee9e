//! The whole participant lifecycle on the local store (issue 13): ListParticipants,
//! UpdateParticipant, ListServiceParticipants, UpdateServiceParticipant and
//! DeleteServiceParticipant, through real gRPC clients on the real server; a store of the
//! previous schema opened and listed; updates and deletes across a restart and a `kill -9`.

mod cache;
mod crash;
mod delete;
mod migration;
mod paging;
mod update_v1;
mod update_v2;

use participants_facade::proto::{
    ListParticipantsRequest, ListParticipantsResponse, ListServiceParticipantsRequest,
    ListServiceParticipantsResponse, Participant, ServiceParticipant,
    UpdateParticipantRequest, UpdateServiceParticipantRequest,
};
use tonic::{Response, Status};

use crate::fixtures::*;

/// Most pages any walk here takes: a bound on every paging loop.
const MAX_PAGES: usize = 2_000;

/// One v2 page.
async fn list_v2(
    app: &TestApp,
    conversation_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<ListParticipantsResponse, Status> {
    app.client
        .clone()
        .list_participants(ListParticipantsRequest {
            conversation_id: conversation_id.to_owned(),
            page_size,
            page_token: page_token.to_owned(),
        })
        .await
        .map(Response::into_inner)
}

/// One v1 page.
async fn list_v1(
    app: &TestApp,
    chat_service_sid: &str,
    conversation_sid: &str,
    page_size: i32,
    page_token: &str,
) -> Result<ListServiceParticipantsResponse, Status> {
    app.client
        .clone()
        .list_service_participants(ListServiceParticipantsRequest {
            chat_service_sid: chat_service_sid.to_owned(),
            conversation_sid: conversation_sid.to_owned(),
            page_size,
            page_token: page_token.to_owned(),
        })
        .await
        .map(Response::into_inner)
}

/// Every v2 participant of the conversation, walking pages of `page_size`; checks that
/// only the last page has no token and no page is larger than asked.
async fn walk_v2(app: &TestApp, conversation_id: &str, page_size: i32) -> Vec<Participant> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let page = list_v2(app, conversation_id, page_size, &token)
            .await
            .expect("list page");
        assert!(page.participants.len() <= page_size as usize);
        all.extend(page.participants);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
    panic!("more than {MAX_PAGES} pages");
}

/// Every v1 participant of the conversation, walking pages of `page_size`.
async fn walk_v1(
    app: &TestApp,
    chat_service_sid: &str,
    conversation_sid: &str,
    page_size: i32,
) -> Vec<ServiceParticipant> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let page = list_v1(app, chat_service_sid, conversation_sid, page_size, &token)
            .await
            .expect("list page");
        assert!(page.participants.len() <= page_size as usize);
        all.extend(page.participants);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
    panic!("more than {MAX_PAGES} pages");
}

async fn update_v2(
    app: &TestApp,
    participant: Participant,
    mask: Option<&[&str]>,
) -> Result<Participant, Status> {
    app.client
        .clone()
        .update_participant(UpdateParticipantRequest {
            participant: Some(participant),
            update_mask: mask.map(field_mask),
        })
        .await
        .map(Response::into_inner)
}

async fn update_v1(
    app: &TestApp,
    participant: ServiceParticipant,
    mask: Option<&[&str]>,
) -> Result<ServiceParticipant, Status> {
    app.client
        .clone()
        .update_service_participant(UpdateServiceParticipantRequest {
            service_participant: Some(participant),
            update_mask: mask.map(field_mask),
            ..Default::default()
        })
        .await
        .map(Response::into_inner)
}

async fn delete_v1(
    app: &TestApp,
    chat_service_sid: &str,
    conversation_sid: &str,
    sid: &str,
) -> Result<(), Status> {
    app.client
        .clone()
        .delete_service_participant(
            participants_facade::proto::DeleteServiceParticipantRequest {
                chat_service_sid: chat_service_sid.to_owned(),
                conversation_sid: conversation_sid.to_owned(),
                sid: sid.to_owned(),
                ..Default::default()
            },
        )
        .await
        .map(Response::into_inner)
}

fn field_mask(paths: &[&str]) -> prost_types::FieldMask {
    prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    }
}

/// A v2 update naming `existing` and changing nothing yet: the caller sets new values.
fn v2_key(existing: &Participant) -> Participant {
    Participant {
        id: existing.id.clone(),
        conversation_id: existing.conversation_id.clone(),
        ..Default::default()
    }
}

/// A v1 update naming `existing` by `sid` (its sid or identity): the caller sets values.
fn v1_key(existing: &ServiceParticipant, sid: &str) -> ServiceParticipant {
    ServiceParticipant {
        chat_service_sid: existing.chat_service_sid.clone(),
        conversation_sid: existing.conversation_sid.clone(),
        sid: sid.to_owned(),
        ..Default::default()
    }
}

/// A v1 participant as compared across answers: without its url (whose host:port is the
/// listener's).
fn v1_record(p: &ServiceParticipant) -> ServiceParticipant {
    ServiceParticipant {
        url: String::new(),
        ..p.clone()
    }
}

/// `n` v2 participants created one after the other in `conversation_id`, in creation
/// order.
async fn create_v2_many(app: &TestApp, conversation_id: &str, n: usize) -> Vec<Participant> {
    let mut created = Vec::with_capacity(n);
    for _ in 0..n {
        let request = participants_facade::proto::CreateParticipantRequest {
            conversation_id: conversation_id.to_owned(),
            ..create_request()
        };
        created.push(app.create(request).await.expect("create"));
    }
    created
}

/// `n` v1 chat participants created one after the other, in creation order.
async fn create_v1_many(
    app: &TestApp,
    chat_service_sid: &str,
    conversation_sid: &str,
    n: usize,
) -> Vec<ServiceParticipant> {
    let mut created = Vec::with_capacity(n);
    for _ in 0..n {
        let request = participants_facade::proto::CreateServiceParticipantRequest {
            chat_service_sid: chat_service_sid.to_owned(),
            conversation_sid: conversation_sid.to_owned(),
            ..create_v1_request()
        };
        created.push(app.create_v1(request).await.expect("create"));
    }
    created
}

fn ids(participants: &[Participant]) -> Vec<String> {
    participants.iter().map(|p| p.id.clone()).collect()
}

fn sids(participants: &[ServiceParticipant]) -> Vec<String> {
    participants.iter().map(|p| p.sid.clone()).collect()
}
