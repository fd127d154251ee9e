//! Lists, updates and deletes are timed like creates and fetches: one store operation
//! each, under the RPC's name, in `store_operation_duration_seconds`.

use participants_facade::proto::{Participant, ServiceParticipant};

use super::*;

#[tokio::test]
async fn each_lifecycle_call_is_one_timed_store_operation() {
    // Arrange: the metrics are the process's, shared with tests running alongside, so
    // each count must have grown at least by this test's own calls.
    let app = spawn_app().await;
    let v2 = app.create(create_request()).await.unwrap();
    let v1 = app.create_v1(create_v1_request()).await.unwrap();
    let operations = [
        "list_participants",
        "update_participant",
        "list_service_participants",
        "update_service_participant",
        "delete_service_participant",
    ];
    let counts = |scrape: &prometheus_parse::Scrape| -> Vec<f64> {
        operations
            .iter()
            .map(|op| {
                sample(
                    scrape,
                    "store_operation_duration_seconds_count",
                    &[("operation", op)],
                )
                .unwrap_or(0.0)
            })
            .collect()
    };
    let before = counts(&scrape(app.addr).await);

    // Act: two of each.
    for n in 0..2 {
        list_v2(&app, &v2.conversation_id, 0, "").await.unwrap();
        update_v2(
            &app,
            Participant {
                name: format!("n{n}"),
                ..v2_key(&v2)
            },
            None,
        )
        .await
        .unwrap();
        list_v1(&app, &v1.chat_service_sid, &v1.conversation_sid, 0, "")
            .await
            .unwrap();
        update_v1(
            &app,
            ServiceParticipant {
                attributes: format!(r#"{{"n":{n}}}"#),
                ..v1_key(&v1, &v1.sid)
            },
            None,
        )
        .await
        .unwrap();
    }
    delete_v1(&app, &v1.chat_service_sid, &v1.conversation_sid, &v1.sid)
        .await
        .unwrap();
    // A refused delete is timed too.
    delete_v1(&app, &v1.chat_service_sid, &v1.conversation_sid, &v1.sid)
        .await
        .unwrap_err();

    // Assert
    let after = counts(&scrape(app.addr).await);
    for (i, op) in operations.iter().enumerate() {
        assert!(
            after[i] >= before[i] + 2.0,
            "{op}: {} before, {} after",
            before[i],
            after[i]
        );
    }
    app.stop().await;
}
