//! `kill -9` of one replica during a storm of creates on both: every create either replica
//! acknowledged is in the database, read back by the surviving replica and by a restarted
//! one; the survivor keeps serving throughout. The creates carry idempotency keys, and the
//! ones in flight at the kill are retried on the survivor, as a client would: each key
//! ends as exactly one participant, whether its first try had committed or not.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest, Participant,
    ServiceParticipant,
};
use tokio::task::JoinSet;
use tonic::Status;

use super::*;

/// Workers per replica, each creating one participant at a time.
const WORKERS: usize = 4;
/// Most creates of one worker: bounds the storm if a wait below never ends it.
const WORKER_CAP: usize = 5_000;
/// Bound on the whole storm.
const STORM_TIME: Duration = Duration::from_secs(30);
/// Creates the doomed replica acknowledges before it is killed.
const ACKS_BEFORE_KILL: usize = 150;
/// Creates the survivor acknowledges after the kill before the storm stops.
const ACKS_AFTER_KILL: usize = 100;

/// An acknowledged create: the participant as answered.
#[derive(Debug, Clone)]
enum Acked {
    V2(Participant),
    V1(ServiceParticipant),
}

/// What the storm's workers share.
#[derive(Default)]
struct Storm {
    /// Acknowledged creates per replica.
    acks: [AtomicUsize; 2],
    /// Every acknowledged create, with the replica that answered it.
    acked: Mutex<Vec<(usize, Acked)>>,
    /// Set just before the kill.
    killed: AtomicBool,
    /// Set to end the storm.
    stop: AtomicBool,
}

/// A create with its idempotency key, sent once or again.
#[derive(Debug, Clone)]
enum Pending {
    V2(CreateParticipantRequest),
    V1(CreateServiceParticipantRequest),
}

impl Pending {
    async fn send(&self, client: &Client) -> Result<Acked, Status> {
        let mut client = client.clone();
        match self {
            Pending::V2(request) => client
                .create_participant(request.clone())
                .await
                .map(|p| Acked::V2(p.into_inner())),
            Pending::V1(request) => client
                .create_service_participant(request.clone())
                .await
                .map(|p| Acked::V1(p.into_inner())),
        }
    }
}

/// Creates (v2 and v1 in turn, all in one conversation of each kind, each with a key of
/// its own) until the storm stops, the cap or the bound is reached, or a create fails:
/// then the failure, whether the kill had been sent by then, and the create.
async fn worker(
    storm: Arc<Storm>,
    client: Client,
    replica: usize,
    worker: usize,
    (conversation, service, chat): (String, String, String),
    deadline: Instant,
) -> Option<(bool, Status, Pending)> {
    for n in 0..WORKER_CAP {
        if storm.stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return None;
        }
        let name = format!("storm-{replica}-{worker}-{n}");
        let create = if n % 2 == 0 {
            Pending::V2(CreateParticipantRequest {
                conversation_id: conversation.clone(),
                name: name.clone(),
                addresses: vec![address(Channel::Chat, &name)],
                idempotency_key: name,
                ..Default::default()
            })
        } else {
            Pending::V1(CreateServiceParticipantRequest {
                chat_service_sid: service.clone(),
                conversation_sid: chat.clone(),
                identity: name.clone(),
                idempotency_key: name,
                ..Default::default()
            })
        };
        match create.send(&client).await {
            Ok(acked) => {
                storm.acked.lock().unwrap().push((replica, acked));
                storm.acks[replica].fetch_add(1, Ordering::SeqCst);
            }
            Err(status) => return Some((storm.killed.load(Ordering::SeqCst), status, create)),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_one_replica_is_killed_during_a_create_storm() {
    // Arrange: two replicas (the real binary) on one database, WORKERS creating on each.
    let database = fresh_database().await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let args = ["--database-url", database.url.as_str()];
    let mut doomed = ChildServer::start(&dirs[0].path().join("data"), &args).await;
    let survivor = ChildServer::start(&dirs[1].path().join("data"), &args).await;
    let clients = [doomed.client().await, survivor.client().await];
    let names = (conversation_id(), sid("IS"), sid("CH"));
    let storm = Arc::new(Storm::default());
    let deadline = Instant::now() + STORM_TIME;
    let mut workers = JoinSet::new();
    for (replica, client) in clients.iter().enumerate() {
        for w in 0..WORKERS {
            let run = worker(
                storm.clone(),
                client.clone(),
                replica,
                w,
                names.clone(),
                deadline,
            );
            workers.spawn(async move { (replica, run.await) });
        }
    }

    // Act: kill -9 the first replica once it has acknowledged enough, both replicas busy.
    let busy = eventually(STORM_TIME, || async {
        storm.acks[0].load(Ordering::SeqCst) >= ACKS_BEFORE_KILL
            && storm.acks[1].load(Ordering::SeqCst) > 0
    })
    .await;
    assert!(busy, "acks before the kill: {:?}", storm.acks);
    storm.killed.store(true, Ordering::SeqCst);
    doomed.signal(Signal::SIGKILL);
    let status = doomed.wait_for_exit(WAIT).await;
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    // The survivor goes on acknowledging.
    let at_kill = storm.acks[1].load(Ordering::SeqCst);
    let survived = eventually(STORM_TIME, || async {
        storm.acks[1].load(Ordering::SeqCst) >= at_kill + ACKS_AFTER_KILL
    })
    .await;
    assert!(
        survived,
        "the survivor stalled after the kill: {} acks, {at_kill} at the kill; logs:\n{}",
        storm.acks[1].load(Ordering::SeqCst),
        survivor.logs()
    );
    storm.stop.store(true, Ordering::SeqCst);
    let outcomes = tokio::time::timeout(STORM_TIME, workers.join_all())
        .await
        .expect("the storm ends");

    // Assert: the killed replica's workers failed only once it was killed; the survivor's
    // never failed.
    let mut in_flight = Vec::new();
    for (replica, failure) in outcomes {
        match (replica, failure) {
            (0, Some((after_kill, status, create))) => {
                assert!(after_kill, "a create failed before the kill: {status:?}");
                in_flight.push(create);
            }
            (0, None) => panic!("a worker of the killed replica never saw it die"),
            (_, Some((_, status, _))) => panic!(
                "the survivor failed a create: {status:?}; logs:\n{}",
                survivor.logs()
            ),
            (_, None) => {}
        }
    }
    // The creates in flight at the kill, retried with their keys on the survivor, succeed
    // (replayed if their first try had committed).
    for create in in_flight {
        let acked = create
            .send(&clients[1])
            .await
            .unwrap_or_else(|e| panic!("{create:?} retried on the survivor: {e:?}"));
        storm.acked.lock().unwrap().push((1, acked));
    }
    // Every acknowledged create is read back, as answered, from the survivor and from a
    // replica restarted in the killed one's place.
    let restarted = ChildServer::start(&dirs[0].path().join("data"), &args).await;
    let readers = [survivor.client().await, restarted.client().await];
    let acked = std::mem::take(&mut *storm.acked.lock().unwrap());
    let (conversation, service, chat) = names;
    let mut acked_v2 = BTreeSet::new();
    let mut acked_v1 = BTreeSet::new();
    for (replica, created) in &acked {
        for (reader, client) in readers.iter().enumerate() {
            let mut client = client.clone();
            match created {
                Acked::V2(p) => {
                    let fetched = client
                        .fetch_participant(fetch_v2_request(&p.conversation_id, &p.id))
                        .await
                        .unwrap_or_else(|e| {
                            panic!(
                                "{} acknowledged by replica {replica}, reader {reader}: {e:?}",
                                p.id
                            )
                        })
                        .into_inner();
                    assert_eq!(&fetched, p);
                }
                Acked::V1(p) => {
                    let fetched = client
                        .fetch_service_participant(fetch_v1_request(&service, &chat, &p.sid))
                        .await
                        .unwrap_or_else(|e| {
                            panic!(
                                "{} acknowledged by replica {replica}, reader {reader}: {e:?}",
                                p.sid
                            )
                        })
                        .into_inner();
                    assert_eq!(v1_record(&fetched), v1_record(p));
                }
            }
        }
        match created {
            Acked::V2(p) => acked_v2.insert(p.id.clone()),
            Acked::V1(p) => acked_v1.insert(p.sid.clone()),
        };
    }
    assert!(
        acked.iter().filter(|(r, _)| *r == 0).count() >= ACKS_BEFORE_KILL,
        "the killed replica's acknowledgements are all checked"
    );
    // Each list holds exactly the acknowledged creates: one participant per key.
    let listed: Vec<String> = all_v2(&readers[0], &conversation)
        .await
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(listed.len(), acked_v2.len(), "one v2 participant per key");
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), acked_v2);
    let listed: Vec<String> = all_v1(&readers[1], &service, &chat)
        .await
        .into_iter()
        .map(|p| p.sid)
        .collect();
    assert_eq!(listed.len(), acked_v1.len(), "one v1 participant per key");
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), acked_v1);
}
