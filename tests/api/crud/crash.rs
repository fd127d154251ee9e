//! `kill -9` during a storm of creates, updates and deletes: a new process on the same
//! directory reflects every acknowledged write (acknowledged updates visible, acknowledged
//! deletes gone), and lists each remaining participant once.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{
    CreateParticipantRequest, CreateServiceParticipantRequest, DeleteServiceParticipantRequest,
    ListServiceParticipantsRequest, Participant, ServiceParticipant, UpdateParticipantRequest,
    UpdateServiceParticipantRequest,
};
use tokio::task::JoinSet;
use tonic::Code;
use tonic::transport::Channel as GrpcChannel;

use super::*;

const TASKS: usize = 8;
/// Most operations of one task: bounds the storm if the kill never comes.
const TASK_CAP: usize = 2_000;
const STORM_TIME: Duration = Duration::from_secs(20);
const ACKS_BEFORE_KILL: usize = 300;

/// What one task knows of its own participants: the state its acknowledged writes left,
/// and the write that was in flight when the server died (it may or may not have landed).
#[derive(Debug, Default)]
struct Ledger {
    /// v1 sid -> attributes after the last acknowledged write; `None`: deleted.
    v1: BTreeMap<String, Option<String>>,
    /// The task's v2 participant and its acknowledged name.
    v2: Option<(Participant, String)>,
    in_flight: Option<InFlight>,
}

#[derive(Debug, Clone)]
enum InFlight {
    Create,
    UpdateV1(String, String),
    DeleteV1(String),
    UpdateV2(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_updates_and_deletes_survive_sigkill_during_a_mixed_storm() {
    // Arrange: the binary on a fresh directory; each task owns one v2 participant and the
    // v1 participants it creates, so the order of its own acknowledgements is the order
    // of its writes.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ChildServer::start(&data, &[]).await;
    let client = server.client().await;
    let (service, chat) = (sid("IS"), sid("CH"));
    let conversation = conversation_id();
    let acks = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + STORM_TIME;
    let mut storm = JoinSet::new();
    for task in 0..TASKS {
        let mut client = client.clone();
        let v2 = client
            .create_participant(CreateParticipantRequest {
                conversation_id: conversation.clone(),
                name: "start".into(),
                addresses: vec![address(
                    participants_facade::proto::Channel::Chat,
                    &format!("storm-{task}"),
                )],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let ledger = Arc::new(Mutex::new(Ledger {
            v2: Some((v2, "start".into())),
            ..Ledger::default()
        }));
        let (service, chat) = (service.clone(), chat.clone());
        let (acks, finished, killed) = (acks.clone(), finished.clone(), killed.clone());
        storm.spawn(async move {
            let mut failure = None;
            for n in 0..TASK_CAP {
                if Instant::now() >= deadline {
                    break;
                }
                let result = step(&mut client, &ledger, task, n, &service, &chat).await;
                if let Err(status) = result {
                    failure = Some((killed.load(Ordering::SeqCst), status));
                    break;
                }
                acks.fetch_add(1, Ordering::SeqCst);
            }
            finished.fetch_add(1, Ordering::SeqCst);
            (ledger, failure)
        });
    }

    // Act: kill -9 once enough writes are acknowledged, with the storm running.
    let enough = eventually(STORM_TIME, || async {
        assert_eq!(finished.load(Ordering::SeqCst), 0, "a task stopped before the kill");
        acks.load(Ordering::SeqCst) >= ACKS_BEFORE_KILL
    })
    .await;
    assert!(enough, "only {} acks", acks.load(Ordering::SeqCst));
    killed.store(true, Ordering::SeqCst);
    assert_eq!(finished.load(Ordering::SeqCst), 0, "the storm is running");
    server.signal(Signal::SIGKILL);
    let status = server.wait_for_exit(WAIT).await;
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    let outcomes = tokio::time::timeout(Duration::from_secs(30), storm.join_all())
        .await
        .expect("the storm ends once the server is gone");

    // Assert: every task's acknowledged state, from a new process.
    let restarted = ChildServer::start(&data, &[]).await;
    let mut client = restarted.client().await;
    let mut live = BTreeSet::new();
    let mut checked = (0, 0);
    for (ledger, failure) in outcomes {
        let (after_kill, status) = failure.expect("every task ran into the kill");
        assert!(after_kill, "a write failed before the kill: {status:?}");
        let ledger = ledger.lock().unwrap();
        let in_flight = ledger.in_flight.clone();
        for (sid, expected) in &ledger.v1 {
            let fetched = client
                .fetch_service_participant(fetch_v1_request(&service, &chat, sid))
                .await;
            let maybe = match &in_flight {
                Some(InFlight::UpdateV1(s, attrs)) if s == sid => Some(Some(attrs.clone())),
                Some(InFlight::DeleteV1(s)) if s == sid => Some(None),
                _ => None,
            };
            let found = match fetched {
                Ok(p) => Some(p.into_inner().attributes),
                Err(status) if status.code() == Code::NotFound => None,
                Err(status) => panic!("fetch {sid}: {status:?}"),
            };
            assert!(
                found == *expected || maybe.is_some_and(|m| m == found),
                "{sid}: acknowledged {expected:?}, in flight {in_flight:?}, found {found:?}"
            );
            if found.is_some() {
                live.insert(sid.clone());
            }
            checked.0 += 1;
        }
        let (v2, name) = ledger.v2.clone().unwrap();
        let fetched = client
            .fetch_participant(fetch_v2_request(&v2.conversation_id, &v2.id))
            .await
            .unwrap()
            .into_inner();
        let maybe = match &in_flight {
            Some(InFlight::UpdateV2(n)) => Some(n.clone()),
            _ => None,
        };
        assert!(
            fetched.name == name || Some(&fetched.name) == maybe.as_ref(),
            "v2 {}: acknowledged {name}, in flight {in_flight:?}, found {}",
            v2.id,
            fetched.name
        );
        checked.1 += 1;
    }
    assert!(checked.0 > 0 && checked.1 == TASKS);
    // The list holds every surviving acknowledged participant exactly once (and possibly
    // a create that was in flight).
    let listed = list_all(&mut client, &service, &chat).await;
    let unique: BTreeSet<&String> = listed.iter().map(|p| &p.sid).collect();
    assert_eq!(unique.len(), listed.len(), "listed twice");
    for sid in &live {
        assert!(unique.contains(sid), "{sid} is not listed");
    }
    assert!(listed.len() <= live.len() + TASKS, "deleted participants listed");
    drop(restarted);
}

/// One write of the storm: create, update, or delete a v1 participant of this task, or
/// rename its v2 participant; the ledger records it once acknowledged.
async fn step(
    client: &mut ParticipantServiceClient<GrpcChannel>,
    ledger: &Mutex<Ledger>,
    task: usize,
    n: usize,
    service: &str,
    chat: &str,
) -> Result<(), tonic::Status> {
    let (live, v2) = {
        let l = ledger.lock().unwrap();
        let live: Vec<String> =
            l.v1.iter().filter(|(_, a)| a.is_some()).map(|(s, _)| s.clone()).collect();
        (live, l.v2.clone())
    };
    let op = if live.len() < 2 { 0 } else { n % 4 };
    let set = |in_flight| ledger.lock().unwrap().in_flight = Some(in_flight);
    match op {
        0 => {
            set(InFlight::Create);
            let created = client
                .create_service_participant(CreateServiceParticipantRequest {
                    chat_service_sid: service.to_owned(),
                    conversation_sid: chat.to_owned(),
                    identity: format!("storm-{task}-{n}"),
                    ..Default::default()
                })
                .await?
                .into_inner();
            ledger.lock().unwrap().v1.insert(created.sid, Some(created.attributes));
        }
        1 => {
            let sid = live[n % live.len()].clone();
            let attributes = format!(r#"{{"n":{n}}}"#);
            set(InFlight::UpdateV1(sid.clone(), attributes.clone()));
            let updated = client
                .update_service_participant(UpdateServiceParticipantRequest {
                    service_participant: Some(ServiceParticipant {
                        chat_service_sid: service.to_owned(),
                        conversation_sid: chat.to_owned(),
                        sid: sid.clone(),
                        attributes: attributes.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await?
                .into_inner();
            assert_eq!(updated.attributes, attributes);
            ledger.lock().unwrap().v1.insert(sid, Some(attributes));
        }
        2 => {
            let (participant, _) = v2.expect("the task's v2 participant");
            let name = format!("storm {task} {n}");
            set(InFlight::UpdateV2(name.clone()));
            client
                .update_participant(UpdateParticipantRequest {
                    participant: Some(Participant {
                        name: name.clone(),
                        ..v2_key(&participant)
                    }),
                    update_mask: None,
                })
                .await?;
            ledger.lock().unwrap().v2 = Some((participant, name));
        }
        _ => {
            let sid = live[0].clone();
            set(InFlight::DeleteV1(sid.clone()));
            client
                .delete_service_participant(DeleteServiceParticipantRequest {
                    chat_service_sid: service.to_owned(),
                    conversation_sid: chat.to_owned(),
                    sid: sid.clone(),
                    ..Default::default()
                })
                .await?;
            ledger.lock().unwrap().v1.insert(sid, None);
        }
    }
    ledger.lock().unwrap().in_flight = None;
    Ok(())
}

async fn list_all(
    client: &mut ParticipantServiceClient<GrpcChannel>,
    service: &str,
    chat: &str,
) -> Vec<ServiceParticipant> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let page = client
            .list_service_participants(ListServiceParticipantsRequest {
                chat_service_sid: service.to_owned(),
                conversation_sid: chat.to_owned(),
                page_size: 100,
                page_token: token,
            })
            .await
            .expect("list")
            .into_inner();
        all.extend(page.participants);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
    panic!("more than {MAX_PAGES} pages");
}
