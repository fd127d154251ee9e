//! The probes over REST: `/healthz` and `/readyz` answer 200 SERVING; while the server
//! drains, `/readyz` turns 503 and `/healthz` stays 200.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::*;

#[tokio::test]
async fn healthz_and_readyz_answer_200_serving() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());

    // Act
    let healthz = send(client.get(format!("{base}/healthz"))).await;
    let readyz = send(client.get(format!("{base}/readyz"))).await;

    // Assert
    assert_eq!(
        healthz.expect_status(200).json(),
        json!({"status": "SERVING"})
    );
    assert_eq!(
        readyz.expect_status(200).json(),
        json!({"status": "SERVING"})
    );
}

#[tokio::test]
async fn readyz_turns_503_while_draining_and_healthz_stays_200() {
    // Arrange
    let app = spawn_app_configured(|c| c.server.drain_delay = Duration::from_millis(1500)).await;
    let (base, client) = (base_url(&app), http_client());
    send(client.get(format!("{base}/readyz")))
        .await
        .expect_status(200);

    // Act: shut down; the server keeps answering for the drain delay (1.5 s), so /readyz
    // is asked within it.
    let stopping = tokio::spawn(app.stop());
    let last = std::cell::RefCell::new(None);
    eventually(Duration::from_secs(1), || async {
        let answer = send(client.get(format!("{base}/readyz"))).await;
        let unavailable = answer.status == StatusCode::SERVICE_UNAVAILABLE;
        *last.borrow_mut() = Some(answer);
        unavailable
    })
    .await;
    let readyz = last
        .into_inner()
        .filter(|answer| answer.status == StatusCode::SERVICE_UNAVAILABLE);
    let healthz = send(client.get(format!("{base}/healthz"))).await;
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("the server stops")
        .expect("stop does not panic");

    // Assert
    let readyz = readyz.expect("/readyz answered 503 within 1 s of the shutdown request");
    assert_eq!(readyz.json(), json!({"status": "NOT_SERVING"}));
    assert_eq!(
        healthz.expect_status(200).json(),
        json!({"status": "SERVING"})
    );
}
