//! The PostgreSQL fixtures the shared-store tests stand on: a fresh database per test, and
//! a private cluster that stops, crashes and comes back with its data.

use crate::fixtures::*;

#[tokio::test]
async fn each_fresh_database_is_a_new_empty_database_of_its_own() {
    // Arrange
    let first = fresh_database().await;
    let second = fresh_database().await;

    // Act
    let one = pg_connect(&first.url).await;
    let other = pg_connect(&second.url).await;
    one.batch_execute("CREATE TABLE mark (n int); INSERT INTO mark VALUES (1)")
        .await
        .unwrap();

    // Assert
    assert_ne!(first.name, second.name);
    assert!(!first.password.is_empty(), "the URL carries a password");
    assert!(first.url.contains(&first.password));
    for (client, database) in [(&one, &first), (&other, &second)] {
        let row = client
            .query_one("SELECT 1::int4, current_database()", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
        assert_eq!(row.get::<_, String>(1), database.name);
    }
    let tables: i64 = other
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'mark'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        tables, 0,
        "the second database does not see the first one's table"
    );
}

#[tokio::test]
async fn a_private_cluster_stops_crashes_and_comes_back_with_its_data() {
    // Arrange
    let cluster = PrivateCluster::start().await;
    let client = pg_connect(cluster.url()).await;
    client
        .batch_execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")
        .await
        .unwrap();

    // Act: a clean stop, then a start
    cluster.stop().await;
    let while_stopped = try_pg_connect(cluster.url()).await;
    cluster.start_again().await;

    // Assert
    assert!(
        while_stopped.is_err(),
        "a stopped cluster accepts no connection"
    );
    assert!(
        client.simple_query("SELECT 1").await.is_err(),
        "the stop closed the open connection"
    );
    let client = pg_connect(cluster.url()).await;
    client
        .batch_execute("INSERT INTO kept VALUES (2)")
        .await
        .unwrap();

    // Act: a crash (no checkpoint), then a start that replays the write-ahead log
    cluster.crash().await;
    let while_crashed = try_pg_connect(cluster.url()).await;
    cluster.start_again().await;

    // Assert
    assert!(
        while_crashed.is_err(),
        "a crashed cluster accepts no connection"
    );
    let rows: i64 = pg_connect(cluster.url())
        .await
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        rows, 2,
        "every committed row survives the stop and the crash"
    );
}
