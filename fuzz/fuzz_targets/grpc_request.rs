//! Arbitrary bytes as a gRPC request message: the first byte picks the method, the rest
//! is decoded with prost as that method's request and handed to the gRPC front's own
//! method (`ParticipantApi`: proto to draft, validation, backend call, domain to proto)
//! over a backend stub.
//!
//! Checks: a create is answered OK exactly when the front handed the backend a request,
//! which revalidates to itself; a refusal is INVALID_ARGUMENT (NOT_FOUND for a fetch,
//! update or delete of a well-formed key, which the stub does not hold) whose message
//! echoes nothing; a list reaches the backend only with a page size inside the API's
//! bounds, an update only with at least one change; every answer encodes, with valid
//! `Timestamp`s.

#![no_main]

use libfuzzer_sys::fuzz_target;
use participants_facade::proto::participant_service_server::ParticipantService;
use participants_facade::domain::{ParticipantChanges, ServiceParticipantChanges, page};
use participants_facade::proto::{
    CreateParticipantRequest, CreateServiceParticipantRequest, DeleteServiceParticipantRequest,
    FetchParticipantRequest, FetchServiceParticipantRequest, ListParticipantsRequest,
    ListServiceParticipantsRequest, Participant, ServiceParticipant, UpdateParticipantRequest,
    UpdateServiceParticipantRequest,
};
use participants_facade_fuzz::*;
use prost::Message;
use tonic::{Code, Request, Response, Status};

fn check_participant(p: &Participant) {
    for t in [&p.created_at, &p.updated_at].into_iter().flatten() {
        assert_valid_timestamp("Participant", t);
    }
    let _ = p.encode_to_vec();
}

fn check_service_participant(p: &ServiceParticipant) {
    for t in [&p.date_created, &p.date_updated].into_iter().flatten() {
        assert_valid_timestamp("ServiceParticipant", t);
    }
    let _ = p.encode_to_vec();
}

/// A refusal: `allowed` code, a message that echoes nothing, and a status that encodes
/// into gRPC headers.
fn check_refusal(status: &Status, allowed: &[Code]) {
    assert!(
        allowed.contains(&status.code()),
        "unexpected refusal: {status:?}"
    );
    assert_no_echo("gRPC status message", status.message());
    assert_status_encodes(&status);
}

fn answered<T>(result: Result<Response<T>, Status>) -> Result<T, Status> {
    result.map(Response::into_inner)
}

fuzz_target!(|data: &[u8]| {
    let Some((&method, message)) = data.split_first() else {
        return;
    };
    let fronts = stub_fronts();
    let api = &fronts.grpc;
    let backend = &fronts.backend;
    match method % 9 {
        0 => {
            let Ok(request) = CreateParticipantRequest::decode(message) else {
                return;
            };
            let answer = answered(block_on(api.create_participant(Request::new(request))));
            let created = backend.take_v2_created();
            match answer {
                Ok(p) => {
                    let created = created.expect("OK without a create reaching the backend");
                    assert_v2_revalidates(&created);
                    assert_eq!(p.conversation_id, created.conversation_id);
                    assert_eq!(p.addresses.len(), created.addresses.len());
                    check_participant(&p);
                }
                Err(status) => {
                    assert!(created.is_none());
                    check_refusal(&status, &[Code::InvalidArgument]);
                }
            }
        }
        1 => {
            let Ok(request) = FetchParticipantRequest::decode(message) else {
                return;
            };
            let answer = answered(block_on(api.fetch_participant(Request::new(request))));
            let fetched = backend.take_v2_fetched();
            match answer {
                Ok(_) => panic!("the stub has no v2 participant to find"),
                Err(status) if fetched.is_some() => check_refusal(&status, &[Code::NotFound]),
                Err(status) => check_refusal(&status, &[Code::InvalidArgument]),
            }
        }
        2 => {
            let Ok(request) = CreateServiceParticipantRequest::decode(message) else {
                return;
            };
            let answer = answered(block_on(
                api.create_service_participant(Request::new(request)),
            ));
            let created = backend.take_v1_created();
            match answer {
                Ok(p) => {
                    let created = created.expect("OK without a create reaching the backend");
                    assert_v1_revalidates(&created);
                    assert_eq!(
                        Some(p.identity.as_str()).filter(|s| !s.is_empty()),
                        created.identity.as_deref()
                    );
                    assert!(p.url.ends_with(&p.sid), "{p:?}");
                    check_service_participant(&p);
                }
                Err(status) => {
                    assert!(created.is_none());
                    check_refusal(&status, &[Code::InvalidArgument]);
                }
            }
        }
        4 => {
            let Ok(request) = ListParticipantsRequest::decode(message) else {
                return;
            };
            let answer = answered(block_on(api.list_participants(Request::new(request))));
            let listed = backend.take_v2_listed();
            match answer {
                Ok(_) => {
                    let q = listed.expect("OK without a list reaching the backend");
                    assert!((1..=page::MAX_V2_PAGE_SIZE).contains(&q.page.page_size));
                }
                Err(status) => {
                    assert!(listed.is_none());
                    check_refusal(&status, &[Code::InvalidArgument]);
                }
            }
        }
        5 => {
            let Ok(request) = ListServiceParticipantsRequest::decode(message) else {
                return;
            };
            let answer = answered(block_on(
                api.list_service_participants(Request::new(request)),
            ));
            let listed = backend.take_v1_listed();
            match answer {
                Ok(_) => {
                    let q = listed.expect("OK without a list reaching the backend");
                    assert!((1..=page::MAX_V1_PAGE_SIZE).contains(&q.page.page_size));
                }
                Err(status) => {
                    assert!(listed.is_none());
                    check_refusal(&status, &[Code::InvalidArgument]);
                }
            }
        }
        6 => {
            let Ok(request) = UpdateParticipantRequest::decode(message) else {
                return;
            };
            let answer = answered(block_on(api.update_participant(Request::new(request))));
            match (answer, backend.take_v2_updated()) {
                (Ok(_), _) => panic!("the stub has no v2 participant to update"),
                (Err(status), Some(update)) => {
                    assert_ne!(update.changes, ParticipantChanges::default());
                    check_refusal(&status, &[Code::NotFound]);
                }
                (Err(status), None) => check_refusal(&status, &[Code::InvalidArgument]),
            }
        }
        7 => {
            let Ok(request) = UpdateServiceParticipantRequest::decode(message) else {
                return;
            };
            let answer = answered(block_on(
                api.update_service_participant(Request::new(request)),
            ));
            match (answer, backend.take_v1_updated()) {
                (Ok(_), _) => panic!("the stub has no v1 participant to update"),
                (Err(status), Some(update)) => {
                    assert_ne!(update.changes, ServiceParticipantChanges::default());
                    check_refusal(&status, &[Code::NotFound]);
                }
                (Err(status), None) => check_refusal(&status, &[Code::InvalidArgument]),
            }
        }
        8 => {
            let Ok(request) = DeleteServiceParticipantRequest::decode(message) else {
                return;
            };
            let answer = answered(block_on(
                api.delete_service_participant(Request::new(request)),
            ));
            match (answer, backend.take_v1_deleted()) {
                (Ok(()), _) => panic!("the stub deletes nothing"),
                (Err(status), Some(_)) => check_refusal(&status, &[Code::NotFound]),
                (Err(status), None) => check_refusal(&status, &[Code::InvalidArgument]),
            }
        }
        _ => {
            let Ok(request) = FetchServiceParticipantRequest::decode(message) else {
                return;
            };
            let answer = answered(block_on(
                api.fetch_service_participant(Request::new(request)),
            ));
            let fetched = backend.take_v1_fetched();
            match answer {
                Ok(_) => panic!("the stub has no v1 participant to find"),
                Err(status) if fetched.is_some() => check_refusal(&status, &[Code::NotFound]),
                Err(status) => check_refusal(&status, &[Code::InvalidArgument]),
            }
        }
    }
});
