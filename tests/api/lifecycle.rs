//! The binary as operators run it: configuration errors, graceful shutdown on SIGTERM,
//! and crash safety under `kill -9`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::sys::signal::Signal;
use participants_facade::proto::{
    Channel, CreateParticipantRequest, CreateServiceParticipantRequest, Participant,
    ServiceParticipant,
};
use tokio::task::JoinSet;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::fixtures::*;

// --- configuration -----------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_flag_value_exits_2_with_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--listen", "nope"], "--listen"),
        (&["--listen", "127.0.0.1"], "--listen"),
        (&["--backend", "redis"], "--backend"),
        (&["--upstream-url", "ftp://example.com"], "--upstream-url"),
        (&["--metrics-listen", "everywhere"], "--metrics-listen"),
        (&["--drain-delay", "forever"], "--drain-delay"),
        (&["--worker-threads", "0"], "--worker-threads"),
    ];
    for (args, flag) in cases {
        let mut all = args.to_vec();
        all.extend(["--data-dir", data]);

        let output = run_binary(&all, &[]).await;

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: exit status {:?}, stderr {stderr}",
            output.status
        );
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: stderr is one line: {stderr:?}"
        );
        assert!(
            stderr.contains(flag),
            "{args:?}: stderr names {flag}: {stderr:?}"
        );
    }
    assert!(
        !dir.path().join("data").exists(),
        "a configuration error touches nothing on disk"
    );
}

#[tokio::test]
async fn an_invalid_listen_address_from_the_environment_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let output = run_binary(
        &["--data-dir", data.to_str().unwrap()],
        &[("PARTICIPANTS_LISTEN", "nope")],
    )
    .await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("--listen"), "{stderr:?}");
}

#[tokio::test]
async fn help_exits_0_and_documents_every_contract_flag_and_its_environment_variable() {
    let output = run_binary(&["--help"], &[]).await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    for name in [
        "--listen",
        "--backend",
        "--data-dir",
        "--upstream-url",
        "--metrics-listen",
        "PARTICIPANTS_LISTEN",
        "PARTICIPANTS_BACKEND",
        "PARTICIPANTS_DATA_DIR",
        "PARTICIPANTS_UPSTREAM_URL",
        "PARTICIPANTS_METRICS_LISTEN",
    ] {
        assert!(
            stdout.contains(name),
            "--help does not mention {name}:\n{stdout}"
        );
    }
}

// --- graceful shutdown -------------------------------------------------------------------

/// Waits (bounded) until `addr` refuses new connections: the server has stopped
/// accepting.
async fn wait_until_refusing(addr: SocketAddr) {
    let refusing = eventually(WAIT, || async {
        matches!(
            tokio::net::TcpStream::connect(addr).await,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        )
    })
    .await;
    assert!(
        refusing,
        "{addr} still accepts connections 10 s after SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_worker_thread_the_binary_serves_and_stops_cleanly() {
    // Arrange: the sidecar setting.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ChildServer::start(&data, &["--worker-threads", "1"]).await;
    let client = server.client().await;

    // Act: concurrent creates, then a fetch of each.
    let mut creates = JoinSet::new();
    for _ in 0..20 {
        let mut client = client.clone();
        creates.spawn(async move { client.create_participant(create_request()).await });
    }
    let created: Vec<Participant> = creates
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("create").into_inner())
        .collect();
    for participant in &created {
        let fetched = client
            .clone()
            .fetch_participant(participants_facade::proto::FetchParticipantRequest {
                conversation_id: participant.conversation_id.clone(),
                participant_id: participant.id.clone(),
            })
            .await
            .expect("fetch")
            .into_inner();
        assert_eq!(&fetched, participant);
    }

    // Assert: a clean stop.
    server.signal(Signal::SIGTERM);
    let status = server.wait_for_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", server.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_when_sigterm_arrives_completes_and_the_process_exits_0() {
    // Arrange: the binary, and a CreateParticipant call whose request is half sent.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ChildServer::start(&data, &[]).await;
    let request = create_request();
    let frame = grpc_frame(&request);
    let mut call = open_raw_call(server.addr, CREATE_PARTICIPANT, &[]).await;
    call.body
        .send_data(Bytes::copy_from_slice(&frame[..3]), false)
        .expect("send the first bytes");
    // The server has read the call's head and first bytes once it answers a PING sent
    // after them.
    call.round_trip().await;

    // Act: SIGTERM while the call is in flight, then finish the request.
    server.signal(Signal::SIGTERM);
    wait_until_refusing(server.addr).await;
    // The shutdown has begun (the listener is closed); it has reached the call's
    // connection once the server says GOAWAY on it.
    let goaway = eventually(WAIT, || async { call.goaway_received() }).await;
    assert!(goaway, "no GOAWAY on the call's connection after SIGTERM");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the process waits for the call in flight"
    );
    call.body
        .send_data(Bytes::copy_from_slice(&frame[3..]), true)
        .expect("send the rest");

    // Assert: a complete, successful response...
    let response = read_raw_response(call.response).await;
    assert_eq!(response.http_status, 200);
    assert_eq!(response.grpc_status.as_deref(), Some("0"), "{response:?}");
    let participant: Participant = single_message(&response.body);
    assert!(is_participant_id(&participant.id));
    assert_eq!(participant.addresses, request.addresses);

    // ...and a clean exit.
    let status = server.wait_for_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", server.logs());

    // The participant was durably stored.
    let app = spawn_app_at(dir, data).await;
    assert_eq!(
        app.fetch(&request.conversation_id, &participant.id)
            .await
            .unwrap(),
        participant
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_never_finishes_holds_shutdown_no_longer_than_the_grace_period() {
    // Arrange: a call whose request body never completes.
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::start(
        &dir.path().join("data"),
        &["--shutdown-grace", "1s", "--request-timeout", "60s"],
    )
    .await;
    let frame = grpc_frame(&create_request());
    let mut call = open_raw_call(server.addr, CREATE_PARTICIPANT, &[]).await;
    call.body
        .send_data(Bytes::copy_from_slice(&frame[..3]), false)
        .unwrap();
    // In flight: the server has read the call's head once it answers a later PING.
    call.round_trip().await;

    // Act
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);

    // Assert: the process gives up on the call after the grace period and exits 0.
    let status = server.wait_for_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", server.logs());
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "exited after {:?}, before the grace period",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_id_and_public_url_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let account = "ACabcdef0123456789abcdef0123456789";
    let server = ChildServer::start_with_env(
        &dir.path().join("data"),
        &["--public-url", "https://facade.example.com/"],
        &[("TWILIO_ACCOUNT_SID", account)],
    )
    .await;
    let mut client = server.client().await;

    let v2 = client
        .create_participant(create_request())
        .await
        .unwrap()
        .into_inner();
    let request = create_v1_request();
    let v1 = client
        .create_service_participant(request.clone())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(v2.account_id, account);
    assert_eq!(v1.account_sid, account);
    assert_eq!(
        v1.url,
        format!(
            "https://facade.example.com/v1/Services/{}/Conversations/{}/Participants/{}",
            request.chat_service_sid, request.conversation_sid, v1.sid
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_drain_delay_health_is_not_serving_but_calls_still_succeed() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Generous, so that a loaded CI machine still observes the drain before it ends.
    let drain_delay = Duration::from_secs(5);
    let mut server = ChildServer::start(&data, &["--drain-delay", "5s"]).await;
    assert_eq!(
        health_status(server.addr, SERVICE_NAME).await,
        Some(ServingStatus::Serving)
    );

    // Act
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);

    // Assert: new connections see NOT_SERVING...
    let not_serving = eventually(drain_delay, || async {
        health_status(server.addr, SERVICE_NAME).await == Some(ServingStatus::NotServing)
    })
    .await;
    assert!(not_serving, "health still SERVING during the drain delay");
    assert_eq!(
        health_status(server.addr, "").await,
        Some(ServingStatus::NotServing)
    );
    // ...yet calls on new connections are still served.
    let mut client = server.client().await;
    let created = client
        .create_participant(create_request())
        .await
        .expect("calls are accepted during the drain delay")
        .into_inner();
    assert!(is_participant_id(&created.id));
    // The process exits 0, not before the drain delay is over.
    let status = server.wait_for_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", server.logs());
    assert!(
        signalled.elapsed() >= drain_delay,
        "exited after {:?}, before the drain delay",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_also_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ChildServer::start(&data, &[]).await;
    let created = server
        .client()
        .await
        .create_participant(create_request())
        .await
        .unwrap()
        .into_inner();

    server.signal(Signal::SIGINT);

    let status = server.wait_for_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", server.logs());
    let app = spawn_app_at(dir, data).await;
    assert_eq!(
        app.fetch(&created.conversation_id, &created.id)
            .await
            .unwrap(),
        created
    );
    app.stop().await;
}

// --- crash safety ------------------------------------------------------------------------

const STORM_TASKS: usize = 16;
const STORM_CAP: usize = 5000;
const STORM_TIME: Duration = Duration::from_secs(20);
const ACKS_BEFORE_KILL: usize = 300;

#[derive(Debug, Clone)]
enum Ack {
    V2(Participant),
    V1(ServiceParticipant),
}

/// Compares v1 participants across servers: the url's host:port is the listener's.
fn without_host(p: &ServiceParticipant) -> ServiceParticipant {
    let path = p
        .url
        .find("/v1/")
        .map(|i| p.url[i..].to_owned())
        .unwrap_or_default();
    ServiceParticipant {
        url: path,
        ..p.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_sigkill_during_a_create_storm() {
    // Arrange: the binary on a fresh directory, and 16 tasks creating as fast as they can.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ChildServer::start(&data, &[]).await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(server.client().await);
    }
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let ack_count = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let conversation = conversation_id();
    let chat_service = sid("IS");
    let chat_conversation = sid("CH");
    let storm_deadline = Instant::now() + STORM_TIME;

    let mut storm = JoinSet::new();
    for task in 0..STORM_TASKS {
        let mut client = clients[task % clients.len()].clone();
        let (acks, ack_count, attempts, finished, killed) = (
            acks.clone(),
            ack_count.clone(),
            attempts.clone(),
            finished.clone(),
            killed.clone(),
        );
        let (conversation, chat_service, chat_conversation) = (
            conversation.clone(),
            chat_service.clone(),
            chat_conversation.clone(),
        );
        storm.spawn(async move {
            let outcome = loop {
                let n = attempts.fetch_add(1, Ordering::SeqCst);
                if n >= STORM_CAP || Instant::now() >= storm_deadline {
                    break Ok(());
                }
                let result = if n % 4 == 3 {
                    client
                        .create_service_participant(CreateServiceParticipantRequest {
                            chat_service_sid: chat_service.clone(),
                            conversation_sid: chat_conversation.clone(),
                            identity: format!("storm-{task}-{n}"),
                            attributes: format!(r#"{{"n":{n}}}"#),
                            ..Default::default()
                        })
                        .await
                        .map(|r| Ack::V1(r.into_inner()))
                } else {
                    client
                        .create_participant(CreateParticipantRequest {
                            conversation_id: conversation.clone(),
                            name: format!("storm {task} {n}"),
                            addresses: vec![address(Channel::Sms, &format!("+1666{n:08}"))],
                            ..Default::default()
                        })
                        .await
                        .map(|r| Ack::V2(r.into_inner()))
                };
                match result {
                    Ok(ack) => {
                        acks.lock().unwrap().push(ack);
                        ack_count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(status) => break Err((killed.load(Ordering::SeqCst), status)),
                }
            };
            finished.fetch_add(1, Ordering::SeqCst);
            outcome
        });
    }

    // Act: kill -9 once enough creates are acknowledged, with the storm still running.
    let enough_acks = eventually(STORM_TIME, || async {
        assert_eq!(
            finished.load(Ordering::SeqCst),
            0,
            "a storm task stopped before the kill"
        );
        ack_count.load(Ordering::SeqCst) >= ACKS_BEFORE_KILL
    })
    .await;
    assert!(
        enough_acks,
        "only {} acks in {STORM_TIME:?}",
        ack_count.load(Ordering::SeqCst)
    );
    killed.store(true, Ordering::SeqCst);
    assert_eq!(finished.load(Ordering::SeqCst), 0, "the storm is running");
    server.signal(Signal::SIGKILL);
    let status = server.wait_for_exit(WAIT).await;
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");

    let outcomes = tokio::time::timeout(Duration::from_secs(30), storm.join_all())
        .await
        .expect("the storm ends once the server is gone");
    let mut failed_after_kill = 0;
    for outcome in outcomes {
        if let Err((after_kill, status)) = outcome {
            assert!(after_kill, "a create failed before the kill: {status:?}");
            failed_after_kill += 1;
        }
    }
    assert!(
        failed_after_kill > 0,
        "the kill happened while the storm was still running"
    );
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    assert!(acks.len() >= ACKS_BEFORE_KILL);

    // Assert: a new process on the same directory serves every acknowledged create.
    let mut restarted = ChildServer::start(&data, &[]).await;
    let mut client = restarted.client().await;
    let mut v2_acked = 0usize;
    let mut seen = BTreeMap::new();
    for ack in &acks {
        match ack {
            Ack::V2(p) => {
                v2_acked += 1;
                let fetched = client
                    .fetch_participant(participants_facade::proto::FetchParticipantRequest {
                        conversation_id: p.conversation_id.clone(),
                        participant_id: p.id.clone(),
                    })
                    .await
                    .unwrap_or_else(|e| panic!("acknowledged {} lost: {e:?}", p.id))
                    .into_inner();
                assert_eq!(&fetched, p);
                assert!(
                    seen.insert(p.id.clone(), ()).is_none(),
                    "duplicate id {}",
                    p.id
                );
            }
            Ack::V1(p) => {
                let fetched = client
                    .fetch_service_participant(
                        participants_facade::proto::FetchServiceParticipantRequest {
                            chat_service_sid: p.chat_service_sid.clone(),
                            conversation_sid: p.conversation_sid.clone(),
                            sid: p.sid.clone(),
                        },
                    )
                    .await
                    .unwrap_or_else(|e| panic!("acknowledged {} lost: {e:?}", p.sid))
                    .into_inner();
                assert_eq!(without_host(&fetched), without_host(p));
                assert!(
                    seen.insert(p.sid.clone(), ()).is_none(),
                    "duplicate sid {}",
                    p.sid
                );
            }
        }
    }
    drop(client);
    restarted.signal(Signal::SIGTERM);
    let status = restarted.wait_for_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", restarted.logs());

    // The database file is consistent and holds at least what was acknowledged.
    let db = rusqlite::Connection::open(data.join("participants.db")).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let stored: i64 = db
        .query_row("SELECT count(*) FROM participants", [], |r| r.get(0))
        .unwrap();
    assert!(stored >= v2_acked as i64, "{stored} rows < {v2_acked} acks");
}
