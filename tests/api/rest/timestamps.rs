//! Dates on every REST route as Twilio writes them: RFC 3339, UTC, whole seconds, `Z`
//! (`2009-07-06T20:30:00Z`), on v2 and v1, create, fetch, list and update alike, while the
//! gRPC front keeps the store's precision.

use serde_json::{Value, json};

use super::*;

/// Asserts every named date of `participant` is Twilio's shape; `what` names the route.
fn assert_twilio_dates(participant: &Value, fields: &[&str], what: &str) {
    for field in fields {
        let date = participant[*field]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {field} is a date: {participant}"));
        assert!(
            is_v1_date(date),
            "{what}: {field} {date:?} is not like 2009-07-06T20:30:00Z"
        );
    }
}

#[tokio::test]
async fn every_rest_route_writes_whole_seconds_utc_with_z() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();
    let (service, channel) = (sid("IS"), sid("CH"));
    let v2_dates = ["createdAt", "updatedAt"];
    let v1_dates = ["date_created", "date_updated"];

    // Act: every route that answers a participant.
    let v2_created = post_v2(&client, &base, &conversation, &v2_body(&phone()))
        .await
        .expect_status(201)
        .json();
    let id = v2_created["id"].as_str().expect("id").to_owned();
    let v2_fetched = send(client.get(format!("{base}{}", v2_fetch_path(&conversation, &id))))
        .await
        .expect_status(200)
        .json();
    let v2_updated = put_v2(&client, &base, &conversation, &id, &json!({"name": "Dana"}))
        .await
        .expect_status(200)
        .json();
    let v2_listed = send(client.get(format!("{base}{}", v2_path(&conversation))))
        .await
        .expect_status(200)
        .json();
    let v1_created = post_v1(
        &client,
        &base,
        &service,
        &channel,
        // A date given with a fraction of a second is answered in whole seconds.
        &[
            ("Identity", "dana"),
            ("DateCreated", "2015-12-16T22:18:37.987Z"),
        ],
    )
    .await
    .expect_status(201)
    .json();
    let mb = v1_created["sid"].as_str().expect("sid").to_owned();
    let v1_fetched = send(client.get(format!("{base}{}", v1_fetch_path(&service, &channel, &mb))))
        .await
        .expect_status(200)
        .json();
    let v1_updated = post_v1_update(
        &client,
        &base,
        &service,
        &channel,
        &mb,
        &[("DateUpdated", "2016-01-01T00:00:00.5+01:00")],
    )
    .await
    .expect_status(200)
    .json();
    let v1_listed = send(client.get(format!("{base}{}", v1_path(&service, &channel))))
        .await
        .expect_status(200)
        .json();
    let grpc = app.fetch(&conversation, &id).await.expect("gRPC fetch");

    // Assert
    for (participant, what) in [
        (&v2_created, "v2 create"),
        (&v2_fetched, "v2 fetch"),
        (&v2_updated, "v2 update"),
        (&v2_listed["participants"][0], "v2 list"),
    ] {
        assert_twilio_dates(participant, &v2_dates, what);
    }
    for (participant, what) in [
        (&v1_created, "v1 create"),
        (&v1_fetched, "v1 fetch"),
        (&v1_updated, "v1 update"),
        (&v1_listed["participants"][0], "v1 list"),
    ] {
        assert_twilio_dates(participant, &v1_dates, what);
    }
    assert_eq!(v1_created["date_created"], json!("2015-12-16T22:18:37Z"));
    assert_eq!(v1_updated["date_updated"], json!("2015-12-31T23:00:00Z"));
    // The REST date is the gRPC one, truncated to the second.
    let created = grpc.created_at.expect("created_at");
    assert_eq!(
        rfc3339(&v2_created["createdAt"]).timestamp(),
        created.seconds
    );
}
