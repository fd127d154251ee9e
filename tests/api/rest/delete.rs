//! v1 `DELETE .../Participants/{Sid}`: 204 with an empty body, by sid or identity; then
//! the participant is gone (fetch and a second delete are 404 with Twilio's body), and
//! gone from lists.

use serde_json::json;

use super::*;

#[tokio::test]
async fn delete_is_204_empty_then_fetch_and_delete_are_404() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, conversation) = (sid("IS"), sid("CH"));
    let sids = create_v1_participants(&app, &service, &conversation, 3).await;
    let identity = format!("user-{}", unique());
    let by_identity = post_v1(
        &client,
        &base,
        &service,
        &conversation,
        &[("Identity", &identity)],
    )
    .await
    .expect_status(201)
    .json();
    let item = |s: &str| format!("{base}{}", v1_fetch_path(&service, &conversation, s));

    // Act
    let deleted = send(client.delete(item(&sids[1]))).await;
    let deleted_by_identity = send(
        client
            .delete(item(&identity))
            .header("x-twilio-webhook-enabled", "false"),
    )
    .await;
    let fetched = send(client.get(item(&sids[1]))).await;
    let again = send(client.delete(item(&sids[1]))).await;
    let by_sid_after_identity =
        send(client.get(item(by_identity["sid"].as_str().expect("sid")))).await;
    let list = send(client.get(format!("{base}{}", v1_path(&service, &conversation)))).await;

    // Assert
    for answer in [&deleted, &deleted_by_identity] {
        answer.expect_status(204);
        assert!(answer.text.is_empty(), "no body: {answer:?}");
    }
    assert_twilio_error(&fetched, 404, 20404);
    assert_twilio_error(&again, 404, 20404);
    assert_twilio_error(&by_sid_after_identity, 404, 20404);
    assert_eq!(
        listed(&list.expect_status(200).json(), "sid"),
        vec![sids[0].clone(), sids[2].clone()],
        "the others stay, in order"
    );
}

#[tokio::test]
async fn delete_refusals_are_twilios_error_body() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, conversation) = (sid("IS"), sid("CH"));
    let sids = create_v1_participants(&app, &service, &conversation, 1).await;

    // Act
    let unknown = send(client.delete(format!(
        "{base}{}",
        v1_fetch_path(&service, &conversation, &sid("MB"))
    )))
    .await;
    let bad_service = send(client.delete(format!(
        "{base}{}",
        v1_fetch_path("ISnope", &conversation, &sids[0])
    )))
    .await;
    let bad_header = send(
        client
            .delete(format!(
                "{base}{}",
                v1_fetch_path(&service, &conversation, &sids[0])
            ))
            .header("x-twilio-webhook-enabled", "yes"),
    )
    .await;
    let still_there = send(client.get(format!(
        "{base}{}",
        v1_fetch_path(&service, &conversation, &sids[0])
    )))
    .await;

    // Assert
    assert_twilio_error(&unknown, 404, 20404);
    let body = assert_twilio_error(&bad_service, 400, 70002);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("chat_service_sid")),
        "{body}"
    );
    assert_twilio_error(&bad_header, 400, 70002);
    assert_eq!(still_there.expect_status(200).json()["sid"], json!(sids[0]));
}
