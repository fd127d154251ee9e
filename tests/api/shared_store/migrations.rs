//! Schema migrations between replicas: replicas starting together on a fresh database all
//! come up and apply each migration exactly once; a replica refuses (exit 2, one line
//! naming the version) a database whose schema is newer than it knows.

use std::collections::BTreeMap;
use std::path::PathBuf;

use participants_facade::proto::{CreateParticipantRequest, ListParticipantsRequest};
use tonic_health::pb::health_check_response::ServingStatus;

use super::*;

/// Replicas started at once.
const RACERS: usize = 3;

/// The table the applied migrations are recorded in (docs/operations.md).
const HISTORY: &str = "participants_schema_history";

/// The versions this build's migrations carry (`V<version>__<name>.sql`).
fn known_versions() -> Vec<i32> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/backend/postgres/migrations");
    let mut versions: Vec<i32> = std::fs::read_dir(&dir)
        .expect("the migrations directory")
        .map(|entry| entry.expect("a directory entry").file_name())
        .filter_map(|name| {
            let name = name.to_str()?.to_owned();
            let (version, _) = name.strip_prefix('V')?.split_once("__")?;
            version.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    assert!(!versions.is_empty(), "no migration in {}", dir.display());
    versions
}

/// How often each version is recorded in the history table.
async fn history(url: &str) -> BTreeMap<i32, i64> {
    pg_connect(url)
        .await
        .query(
            &format!("SELECT version, count(*) FROM {HISTORY} GROUP BY version"),
            &[],
        )
        .await
        .expect("read the migration history")
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_on_a_fresh_database_migrate_it_once() {
    // Arrange: a database never migrated.
    let database = fresh_database().await;
    let dirs: Vec<_> = (0..RACERS).map(|_| tempfile::tempdir().unwrap()).collect();
    let args = ["--database-url", database.url.as_str()];

    // Act: start every replica at the same moment.
    let data: Vec<_> = dirs.iter().map(|dir| dir.path().join("data")).collect();
    let servers = futures_util::future::join_all(
        data.iter()
            .map(|data| ChildServer::start(data, &args))
            .collect::<Vec<_>>(),
    )
    .await;

    // Assert: all serve (ready included), the history has each version exactly once, and
    // the schema they share works across them.
    for (n, server) in servers.iter().enumerate() {
        assert_eq!(
            health_status(server.addr, SERVICE_NAME).await,
            Some(ServingStatus::Serving),
            "replica {n} is not ready; logs:\n{}",
            server.logs()
        );
    }
    let expected: BTreeMap<i32, i64> = known_versions().into_iter().map(|v| (v, 1)).collect();
    assert_eq!(history(&database.url).await, expected);
    // (Each replica also made or read the store's page token key at start-up: a token one
    // issued is good on the next.)
    let conversation = conversation_id();
    let mut created = Vec::new();
    for server in &servers {
        created.push(
            server
                .client()
                .await
                .create_participant(CreateParticipantRequest {
                    conversation_id: conversation.clone(),
                    ..create_request()
                })
                .await
                .expect("create")
                .into_inner(),
        );
    }
    let mut walked = Vec::new();
    let mut token = String::new();
    for page in 0..=RACERS {
        let answer = servers[page % RACERS]
            .client()
            .await
            .list_participants(ListParticipantsRequest {
                conversation_id: conversation.clone(),
                page_size: 1,
                page_token: token,
            })
            .await
            .unwrap_or_else(|e| panic!("page {page} on replica {}: {e:?}", page % RACERS))
            .into_inner();
        walked.extend(answer.participants);
        token = answer.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert!(token.is_empty(), "the walk ended");
    assert_eq!(walked, created, "each replica reads what the others wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_build_knows_is_refused_in_one_line() {
    // Arrange: a database migrated by this build, then by a "future" one (version 999).
    let database = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--database-url", database.url.as_str()];
    let first = ChildServer::start(&dir.path().join("data"), &args).await;
    drop(first);
    pg_connect(&database.url)
        .await
        .execute(
            &format!(
                "INSERT INTO {HISTORY} (version, name, applied_on, checksum)
                 VALUES (999, 'from_the_future', '2099-01-01T00:00:00Z', '0')"
            ),
            &[],
        )
        .await
        .expect("record a newer migration");
    let before = history(&database.url).await;

    // Act
    let (status, stderr) = run_to_exit(dir.path(), &args, &[]).await;

    // Assert: exit code 2 and one line naming the version, without the password; the
    // database is left as it was.
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    let lines = lines(&stderr);
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("participants-facade: "), "{stderr}");
    assert!(lines[0].contains("999"), "the version is named: {stderr}");
    assert!(
        !stderr.contains(&database.password),
        "the password leaked: {stderr}"
    );
    assert_eq!(history(&database.url).await, before, "nothing migrated");
}
