//! A damaged or full disk under the local store: a corrupt database refuses to start (or,
//! with `--skip-integrity-check`, turns readiness NOT_SERVING at the first damaged read);
//! an empty database file is said in the log; a file-size limit fails writes without
//! killing the process, keeps reads served and readiness NOT_SERVING until writes
//! succeed again.

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;

use participants_facade::proto::Participant;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::fixtures::*;

const PAGE: u64 = 4096;

/// A data directory whose store held `count` participants, cleanly closed (everything
/// checkpointed into the database file), and the participants.
async fn store_with(count: usize) -> (tempfile::TempDir, Vec<Participant>) {
    let app = spawn_app().await;
    let mut created = Vec::with_capacity(count);
    for _ in 0..count {
        created.push(app.create(create_request()).await.expect("create"));
    }
    (app.stop().await, created)
}

/// Writes pseudo-random bytes over the body of every page but the first (the header and
/// schema), as an attacker or a failing disk would.
fn scribble_over_pages(db: &Path) {
    let len = std::fs::metadata(db).expect("database file").len();
    assert!(
        len > 4 * PAGE,
        "the store is too small to damage: {len} bytes"
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .expect("open the database file");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut page = 1;
    while (page + 1) * PAGE <= len {
        let noise: Vec<u8> = (0..PAGE / 2)
            .map(|_| {
                // xorshift64: deterministic noise, so a failure can be replayed.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        file.seek(SeekFrom::Start(page * PAGE + 16)).expect("seek");
        file.write_all(&noise).expect("scribble");
        page += 1;
    }
    file.sync_all().expect("sync");
}

/// Whether the API service's health (the readiness signal) reaches `status` within
/// [`WAIT`].
async fn readiness_becomes(addr: std::net::SocketAddr, status: ServingStatus) -> bool {
    eventually(WAIT, || async {
        health_status(addr, SERVICE_NAME).await == Some(status)
    })
    .await
}

#[tokio::test]
async fn a_corrupt_store_refuses_to_start_with_a_clear_message() {
    // Arrange
    let (dir, _) = store_with(300).await;
    let data = dir.path().to_path_buf();
    scribble_over_pages(&data.join("participants.db"));

    // Act
    let output = run_binary(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    )
    .await;

    // Assert
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("is corrupt") && stderr.contains("--skip-integrity-check"),
        "the refusal says what is wrong and what to do: {stderr}"
    );
}

#[tokio::test]
async fn corruption_met_at_run_time_turns_readiness_not_serving_and_reads_go_on() {
    // Arrange: a damaged store opened on purpose, without the start-up check, and no
    // fetch cache, so every fetch reads the file.
    let (dir, created) = store_with(300).await;
    let data = dir.path().to_path_buf();
    scribble_over_pages(&data.join("participants.db"));
    let server =
        ChildServer::start(&data, &["--skip-integrity-check", "--cache-entries", "0"]).await;
    assert_eq!(
        health_status(server.addr, SERVICE_NAME).await,
        Some(ServingStatus::Serving)
    );
    let mut client = server.client().await;

    // Act: read every participant; some pages are damaged.
    let mut corrupt = Vec::new();
    for participant in &created {
        let fetched = client
            .fetch_participant(participants_facade::proto::FetchParticipantRequest {
                conversation_id: participant.conversation_id.clone(),
                participant_id: participant.id.clone(),
            })
            .await;
        if let Err(status) = fetched {
            corrupt.push(status);
        }
    }

    // Assert: the damage is named, never served as something else, and readiness follows.
    assert!(!corrupt.is_empty(), "no read met the damage");
    for status in &corrupt {
        assert!(
            matches!(status.code(), Code::Internal | Code::NotFound),
            "{status:?}"
        );
    }
    assert!(
        corrupt
            .iter()
            .any(|s| s.code() == Code::Internal && s.message().contains("corrupt")),
        "{corrupt:?}"
    );
    assert!(
        readiness_becomes(server.addr, ServingStatus::NotServing).await,
        "readiness did not turn NOT_SERVING"
    );
    assert_eq!(
        health_status(server.addr, "").await,
        Some(ServingStatus::Serving),
        "liveness stays SERVING: restarting does not mend a corrupt file"
    );
    assert!(server.logs().contains("corrupt"), "{}", server.logs());
}

#[tokio::test]
async fn an_empty_database_file_is_said_in_the_log() {
    // Arrange
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::File::create(data.join("participants.db")).expect("empty database file");

    // Act
    let server = ChildServer::start(&data, &[]).await;

    // Assert
    assert!(
        server
            .logs()
            .contains("the database file is empty (0 bytes)"),
        "{}",
        server.logs()
    );
    let mut client = server.client().await;
    client
        .create_participant(create_request())
        .await
        .expect("an empty file is a new store");
}

#[tokio::test]
async fn a_file_size_limit_fails_writes_keeps_reads_and_readiness_follows() {
    // Arrange: files of at most 192 KiB, so the store soon cannot grow.
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut server =
        ChildServer::start_with_file_size_limit(&data, &["--cache-entries", "0"], 192 * 1024).await;
    let mut client = server.client().await;

    // Act: create until a write fails (bounded).
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for _ in 0..5_000 {
        match client.create_participant(create_request()).await {
            Ok(p) => acknowledged.push(p.into_inner()),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }

    // Assert: the process lives and says why; the write failed plainly.
    let refused = refused.expect("no write failed under a 192 KiB file-size limit");
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "the process died; logs:\n{}",
        server.logs()
    );
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("file-size limit"), "{refused:?}");
    assert!(!acknowledged.is_empty());
    assert!(
        eventually(WAIT, || async { server.logs().contains("SIGXFSZ") }).await,
        "{}",
        server.logs()
    );
    // Readiness NOT_SERVING, liveness SERVING, reads served.
    assert!(
        readiness_becomes(server.addr, ServingStatus::NotServing).await,
        "readiness did not turn NOT_SERVING"
    );
    assert_eq!(
        health_status(server.addr, "").await,
        Some(ServingStatus::Serving)
    );
    for participant in &acknowledged {
        let fetched = client
            .fetch_participant(participants_facade::proto::FetchParticipantRequest {
                conversation_id: participant.conversation_id.clone(),
                participant_id: participant.id.clone(),
            })
            .await
            .expect("every acknowledged participant is still served")
            .into_inner();
        assert_eq!(&fetched, participant);
    }

    // Act: the limit is lifted while the process runs.
    let lifted = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", server.child.id()))
        .arg("--fsize=unlimited:unlimited")
        .status()
        .expect("run prlimit");
    assert!(lifted.success());

    // Assert: readiness comes back by itself (the store's probe write), and so do writes.
    assert!(
        readiness_becomes(server.addr, ServingStatus::Serving).await,
        "readiness did not come back once the store could write; logs:\n{}",
        server.logs()
    );
    client
        .create_participant(create_request())
        .await
        .expect("writes succeed again");

    // Nothing acknowledged was lost: a clean stop and a new process find all of it.
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server.wait_for_exit(WAIT).await.success());
    let server = ChildServer::start(&data, &["--cache-entries", "0"]).await;
    let mut client = server.client().await;
    for participant in &acknowledged {
        client
            .fetch_participant(participants_facade::proto::FetchParticipantRequest {
                conversation_id: participant.conversation_id.clone(),
                participant_id: participant.id.clone(),
            })
            .await
            .expect("acknowledged before the limit, still there after a restart");
    }
}
