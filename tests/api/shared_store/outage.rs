//! The database stopped and started again while a replica takes creates, once with a fast
//! shutdown and once crashed (no checkpoint: the restart replays the write-ahead log):
//! meanwhile every call fails UNAVAILABLE with a RetryInfo and readiness is NOT_SERVING
//! (liveness stays SERVING); once the database is back the replica turns SERVING and
//! creates succeed by themselves. Every create is retried with its idempotency key until
//! answered, as a client would: each key ends as exactly one participant, also when a
//! commit landed but its answer was lost, and every acknowledged create reads back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest, ListParticipantsRequest,
    Participant, ServiceParticipant,
};
use tokio::task::JoinSet;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use super::*;

/// Workers creating against the replica.
const WORKERS: usize = 4;
/// Creates acknowledged before each outage, and again after each restart.
const ACKS_PER_PHASE: usize = 40;
/// A worker's pause after a failed create, as a client backing off would (not a wait on
/// anything: the assertions wait on conditions).
const BACKOFF: Duration = Duration::from_millis(50);
/// Bound on each phase of the test.
const PHASE: Duration = Duration::from_secs(20);

/// An acknowledged create: the participant as answered.
#[derive(Debug, Clone)]
enum Acked {
    V2(Participant),
    V1(ServiceParticipant),
}

#[derive(Default)]
struct Load {
    acks: AtomicUsize,
    acked: Mutex<Vec<Acked>>,
    unavailable: AtomicUsize,
    /// Failures other than UNAVAILABLE with a RetryInfo.
    wrong: Mutex<Vec<tonic::Status>>,
    stop: AtomicBool,
}

/// Creates, v2 (in `conversation`, the worker's own) and v1 in turn, each with a key of
/// its own and retried with it until answered, until the load stops.
async fn worker(
    load: Arc<Load>,
    mut client: Client,
    w: usize,
    conversation: String,
    (service, chat): (String, String),
) {
    let run = unique();
    let mut n = 0;
    while !load.stop.load(Ordering::SeqCst) {
        n += 1;
        let name = format!("load-{run}-{w}-{n}");
        loop {
            let result = if n % 2 == 0 {
                client
                    .create_participant(CreateParticipantRequest {
                        conversation_id: conversation.clone(),
                        name: name.clone(),
                        addresses: vec![address(Channel::Chat, &name)],
                        idempotency_key: name.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(|p| Acked::V2(p.into_inner()))
            } else {
                client
                    .create_service_participant(CreateServiceParticipantRequest {
                        chat_service_sid: service.clone(),
                        conversation_sid: chat.clone(),
                        identity: name.clone(),
                        idempotency_key: name.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(|p| Acked::V1(p.into_inner()))
            };
            match result {
                Ok(acked) => {
                    load.acked.lock().unwrap().push(acked);
                    load.acks.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Err(status)
                    if status.code() == Code::Unavailable && retry_delay(&status).is_some() =>
                {
                    load.unavailable.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(BACKOFF).await;
                }
                Err(status) => {
                    // Not retryable: recorded (the test fails on it), and the key given up.
                    load.wrong.lock().unwrap().push(status);
                    break;
                }
            }
        }
    }
}

/// Asserts `result` is UNAVAILABLE with a RetryInfo delay.
fn assert_retryable<T: std::fmt::Debug>(case: &str, result: Result<T, tonic::Status>) {
    let status = expect_code(result, Code::Unavailable);
    assert!(
        retry_delay(&status).is_some_and(|d| !d.is_zero()),
        "{case}: no RetryInfo delay in {status:?}"
    );
}

/// How the database goes away.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// `pg_ctl stop -m fast`: connections closed, a checkpoint.
    FastStop,
    /// `pg_ctl stop -m immediate`: what a crash looks like.
    Crash,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restarts_under_load_fail_calls_retryably_and_lose_nothing_acknowledged() {
    // Arrange: a database server of the test's own, a replica on it, creates running.
    let cluster = PrivateCluster::start().await;
    let app = replica_with(cluster.url(), |settings| {
        settings.config.database.connect_timeout = Duration::from_secs(2);
    })
    .await;
    let chat = (sid("IS"), sid("CH"));
    let conversations: Vec<String> = (0..WORKERS).map(|_| conversation_id()).collect();
    let load = Arc::new(Load::default());
    let mut workers = JoinSet::new();
    for (w, conversation) in conversations.iter().enumerate() {
        workers.spawn(worker(
            load.clone(),
            app.client.clone(),
            w,
            conversation.clone(),
            chat.clone(),
        ));
    }

    for outage in [Outage::FastStop, Outage::Crash] {
        let phase_start = load.acks.load(Ordering::SeqCst);
        let running = eventually(PHASE, || async {
            load.acks.load(Ordering::SeqCst) >= phase_start + ACKS_PER_PHASE
        })
        .await;
        assert!(running, "{outage:?}: creates before it: {:?}", load.acks);
        let unavailable_before = load.unavailable.load(Ordering::SeqCst);
        let known = load
            .acked
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|a| match a {
                Acked::V2(p) => Some(p.clone()),
                Acked::V1(_) => None,
            });
        let known = known.expect("a v2 create acknowledged before the outage");

        // Act: the database goes away.
        match outage {
            Outage::FastStop => cluster.stop().await,
            Outage::Crash => cluster.crash().await,
        }

        // Assert: readiness turns NOT_SERVING by itself, liveness stays SERVING, the load
        // meets UNAVAILABLE, and every kind of call fails UNAVAILABLE with a RetryInfo.
        let not_serving = eventually(PHASE, || async {
            health_status(app.addr, SERVICE_NAME).await == Some(ServingStatus::NotServing)
        })
        .await;
        assert!(
            not_serving,
            "{outage:?}: readiness did not follow the database down"
        );
        assert_eq!(
            health_status(app.addr, "").await,
            Some(ServingStatus::Serving),
            "{outage:?}: liveness stays SERVING"
        );
        let failing = eventually(PHASE, || async {
            load.unavailable.load(Ordering::SeqCst) > unavailable_before
        })
        .await;
        assert!(failing, "{outage:?}: no create failed UNAVAILABLE");
        assert_retryable("create v2", app.create(create_request()).await);
        assert_retryable("create v1", app.create_v1(create_v1_request()).await);
        assert_retryable(
            "fetch v2",
            app.fetch(&known.conversation_id, &known.id).await,
        );
        assert_retryable(
            "list v2",
            app.client
                .clone()
                .list_participants(ListParticipantsRequest {
                    conversation_id: known.conversation_id.clone(),
                    ..Default::default()
                })
                .await,
        );

        // Act: the database comes back.
        let at_restart = load.acks.load(Ordering::SeqCst);
        cluster.start_again().await;

        // Assert: readiness comes back by itself, and so do the creates.
        let serving = eventually(PHASE, || async {
            health_status(app.addr, SERVICE_NAME).await == Some(ServingStatus::Serving)
        })
        .await;
        assert!(
            serving,
            "{outage:?}: readiness did not come back with the database"
        );
        let recovered = eventually(PHASE, || async {
            load.acks.load(Ordering::SeqCst) >= at_restart + ACKS_PER_PHASE
        })
        .await;
        assert!(
            recovered,
            "{outage:?}: creates did not recover: {} acks, {at_restart} at the restart; \
             failures that are not retryable: {:?}",
            load.acks.load(Ordering::SeqCst),
            load.wrong.lock().unwrap()
        );
    }
    load.stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(PHASE, workers.join_all())
        .await
        .expect("the workers stop");

    // Assert: every failure was UNAVAILABLE with a RetryInfo (a retried key is replayed,
    // never ALREADY_EXISTS), every acknowledged create reads back as answered, and each
    // list holds exactly the acknowledged participants: one per key.
    let wrong = load.wrong.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "failures that are not retryable: {wrong:?}"
    );
    let acked = load.acked.lock().unwrap().clone();
    let (service, chat) = chat;
    let mut acked_v1 = BTreeSet::new();
    let mut acked_v2 = BTreeSet::new();
    for created in &acked {
        match created {
            Acked::V2(p) => {
                let fetched = app
                    .fetch(&p.conversation_id, &p.id)
                    .await
                    .unwrap_or_else(|e| panic!("acknowledged {} is lost: {e:?}", p.id));
                assert_eq!(&fetched, p);
                acked_v2.insert(p.id.clone());
            }
            Acked::V1(p) => {
                let fetched = app
                    .fetch_v1(&service, &chat, &p.sid)
                    .await
                    .unwrap_or_else(|e| panic!("acknowledged {} is lost: {e:?}", p.sid));
                assert_eq!(v1_record(&fetched), v1_record(p));
                acked_v1.insert(p.sid.clone());
            }
        }
    }
    assert!(acked.len() >= 4 * ACKS_PER_PHASE);
    let mut listed_v2 = Vec::new();
    for conversation in &conversations {
        listed_v2.extend(
            all_v2(&app.client, conversation)
                .await
                .into_iter()
                .map(|p| p.id),
        );
    }
    assert_eq!(
        listed_v2.len(),
        acked_v2.len(),
        "one v2 participant per key"
    );
    assert_eq!(listed_v2.into_iter().collect::<BTreeSet<_>>(), acked_v2);
    let listed_v1: Vec<String> = all_v1(&app.client, &service, &chat)
        .await
        .into_iter()
        .map(|p| p.sid)
        .collect();
    assert_eq!(
        listed_v1.len(),
        acked_v1.len(),
        "one v1 participant per key"
    );
    assert_eq!(listed_v1.into_iter().collect::<BTreeSet<_>>(), acked_v1);
}
