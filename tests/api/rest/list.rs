//! The list routes: v2 (`pageSize`, `pageToken`, `meta` with tokens) and v1 (`PageSize`,
//! `Page`, `PageToken`, `meta` with absolute URLs back to the facade). Pages hold every
//! participant once, oldest first; the last page's next is null; following v1's
//! `next_page_url` as it is gives the next page; bad parameters are 400 with Twilio's body
//! and never quote the value.

use serde_json::{Value, json};

use super::*;

/// Every key of a v2 list's `meta`.
const V2_META_KEYS: [&str; 4] = ["key", "pageSize", "previousToken", "nextToken"];

/// Every key of a v1 list's `meta`.
const V1_META_KEYS: [&str; 7] = [
    "page",
    "page_size",
    "first_page_url",
    "previous_page_url",
    "url",
    "next_page_url",
    "key",
];

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    send(client.get(url)).await.expect_status(200).json()
}

#[tokio::test]
async fn v2_list_pages_through_every_participant_oldest_first_with_twilios_meta() {
    // Arrange: 7 participants, pages of 3.
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();
    let ids = create_v2_participants(&app, &conversation, 7).await;
    let list = format!("{base}{}", v2_path(&conversation));

    // Act
    let first = get_json(&client, &format!("{list}?pageSize=3")).await;
    let token = first["meta"]["nextToken"].as_str().expect("a next token");
    let middle = get_json(&client, &format!("{list}?pageSize=3&pageToken={token}")).await;
    let token = middle["meta"]["nextToken"].as_str().expect("a next token");
    let last = get_json(&client, &format!("{list}?pageSize=3&pageToken={token}")).await;
    let whole = get_json(&client, &list).await;
    let empty = get_json(&client, &format!("{base}{}", v2_path(&conversation_id()))).await;

    // Assert: pages of 3, 3 and 1, in creation order.
    for (page, expected) in [
        (&first, &ids[0..3]),
        (&middle, &ids[3..6]),
        (&last, &ids[6..7]),
    ] {
        assert_eq!(
            keys(page),
            expected_keys(&["participants", "meta"]),
            "{page}"
        );
        assert_eq!(keys(&page["meta"]), expected_keys(&V2_META_KEYS), "{page}");
        assert_eq!(page["meta"]["key"], json!("participants"));
        assert_eq!(page["meta"]["pageSize"], json!(3));
        assert_eq!(page["meta"]["previousToken"], Value::Null);
        assert_eq!(listed(page, "id"), expected, "{page}");
        for participant in page["participants"].as_array().expect("list") {
            assert_eq!(keys(participant), expected_keys(&V2_KEYS), "{participant}");
            assert_eq!(participant["conversationId"], json!(conversation));
        }
    }
    assert_eq!(
        last["meta"]["nextToken"],
        Value::Null,
        "the last page: {last}"
    );
    assert_eq!(
        whole["meta"]["pageSize"],
        json!(50),
        "the default page size"
    );
    assert_eq!(listed(&whole, "id"), ids);
    assert_eq!(whole["meta"]["nextToken"], Value::Null);
    assert_eq!(
        empty,
        json!({"participants": [], "meta": {"key": "participants", "pageSize": 50,
            "previousToken": null, "nextToken": null}})
    );
}

#[tokio::test]
async fn v1_list_meta_has_absolute_urls_back_to_the_facade_and_next_page_url_is_followed_as_is() {
    // Arrange: 7 participants, pages of 3.
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, conversation) = (sid("IS"), sid("CH"));
    let sids = create_v1_participants(&app, &service, &conversation, 7).await;
    let list = format!("{base}{}", v1_path(&service, &conversation));

    // Act: the first page asked for, then each next_page_url exactly as given.
    let first = get_json(&client, &format!("{list}?PageSize=3")).await;
    let next = first["meta"]["next_page_url"]
        .as_str()
        .expect("a next page");
    let middle = get_json(&client, next).await;
    let next = middle["meta"]["next_page_url"]
        .as_str()
        .expect("a next page");
    let last = get_json(&client, next).await;
    let whole = get_json(&client, &list).await;

    // Assert
    for (index, (page, expected)) in [
        (&first, &sids[0..3]),
        (&middle, &sids[3..6]),
        (&last, &sids[6..7]),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            keys(page),
            expected_keys(&["participants", "meta"]),
            "{page}"
        );
        let meta = &page["meta"];
        assert_eq!(keys(meta), expected_keys(&V1_META_KEYS), "{page}");
        assert_eq!(meta["key"], json!("participants"));
        assert_eq!(meta["page"], json!(index));
        assert_eq!(meta["page_size"], json!(3));
        assert_eq!(
            meta["first_page_url"],
            json!(format!("{list}?PageSize=3&Page=0"))
        );
        assert_eq!(meta["previous_page_url"], Value::Null);
        assert_eq!(listed(page, "sid"), expected, "{page}");
        for participant in page["participants"].as_array().expect("list") {
            assert_eq!(keys(participant), expected_keys(&V1_KEYS), "{participant}");
        }
    }
    assert_eq!(
        first["meta"]["url"],
        json!(format!("{list}?PageSize=3&Page=0"))
    );
    for (page, following) in [(&first, &middle), (&middle, &last)] {
        let next = page["meta"]["next_page_url"].as_str().expect("next");
        let page_number = page["meta"]["page"].as_u64().expect("page") + 1;
        assert!(
            next.starts_with(&format!("{list}?PageSize=3&Page={page_number}&PageToken=")),
            "next_page_url carries PageSize, Page + 1 and PageToken: {next}"
        );
        assert_eq!(
            following["meta"]["url"],
            json!(next),
            "url is the page's own"
        );
    }
    assert_eq!(last["meta"]["next_page_url"], Value::Null, "{last}");
    assert_eq!(whole["meta"]["page_size"], json!(50));
    assert_eq!(listed(&whole, "sid"), sids);
    assert_eq!(whole["meta"]["next_page_url"], Value::Null);
}

#[tokio::test]
async fn v1_list_urls_use_the_public_url_when_one_is_set() {
    // Arrange
    let app =
        spawn_app_with(|s| s.config.public_url = Some("https://facade.example.com".into())).await;
    let (base, client) = (base_url(&app), http_client());
    let (service, conversation) = (sid("IS"), sid("CH"));
    create_v1_participants(&app, &service, &conversation, 2).await;
    let path = v1_path(&service, &conversation);

    // Act
    let page = get_json(&client, &format!("{base}{path}?PageSize=1")).await;

    // Assert
    let public = format!("https://facade.example.com{path}");
    assert_eq!(
        page["meta"]["first_page_url"],
        json!(format!("{public}?PageSize=1&Page=0"))
    );
    let next = page["meta"]["next_page_url"].as_str().expect("next");
    assert!(
        next.starts_with(&format!("{public}?PageSize=1&Page=1&PageToken=")),
        "{next}"
    );
    assert!(
        page["participants"][0]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&public)),
        "{page}"
    );
}

#[tokio::test]
async fn bad_page_sizes_pages_and_tokens_are_400_with_twilios_body_never_quoting_the_value() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let conversation = conversation_id();
    let (service, channel) = (sid("IS"), sid("CH"));
    create_v2_participants(&app, &conversation, 1).await;
    create_v1_participants(&app, &service, &channel, 1).await;
    let v2 = format!("{base}{}", v2_path(&conversation));
    let v1 = format!("{base}{}", v1_path(&service, &channel));
    // (query, the parameter the message names, a value that must not come back)
    let cases = [
        (format!("{v2}?pageSize=0"), "pageSize", None),
        (format!("{v2}?pageSize=1001"), "pageSize", None),
        (format!("{v2}?pageSize=-1"), "pageSize", None),
        (format!("{v2}?pageSize=ten"), "pageSize", Some("ten")),
        (format!("{v2}?pageSize="), "pageSize", None),
        (format!("{v2}?pageSize=1&pageSize=2"), "pageSize", None),
        (
            format!("{v2}?pageToken=ada.lovelace%40example.com"),
            "pageToken",
            Some("lovelace"),
        ),
        (format!("{v2}?pageToken=a%20b"), "pageToken", None),
        (format!("{v2}?pageToken=%FF"), "pageToken", None),
        (format!("{v1}?PageSize=0"), "PageSize", None),
        (format!("{v1}?PageSize=101"), "PageSize", None),
        (format!("{v1}?PageSize=x"), "PageSize", None),
        (format!("{v1}?Page=-1"), "Page", None),
        (format!("{v1}?Page=first"), "Page", Some("first")),
        (
            format!("{v1}?PageToken=ada.lovelace%40example.com"),
            "PageToken",
            Some("lovelace"),
        ),
    ];

    for (url, parameter, secret) in cases {
        // Act
        let answer = send(client.get(&url)).await;

        // Assert
        let body = assert_twilio_error(&answer, 400, 70002);
        let message = body["message"].as_str().expect("message");
        assert!(message.contains(parameter), "{url}: {message}");
        if let Some(secret) = secret {
            assert!(!message.contains(secret), "{url} quoted: {message}");
        }
    }
}

#[tokio::test]
async fn a_page_token_of_one_list_is_refused_by_another() {
    // Arrange: a token of the first conversation's list.
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (one, other) = (conversation_id(), conversation_id());
    create_v2_participants(&app, &one, 2).await;
    create_v2_participants(&app, &other, 2).await;
    let first = get_json(&client, &format!("{base}{}?pageSize=1", v2_path(&one))).await;
    let token = first["meta"]["nextToken"].as_str().expect("next token");

    // Act
    let answer = send(client.get(format!(
        "{base}{}?pageSize=1&pageToken={token}",
        v2_path(&other)
    )))
    .await;

    // Assert
    let body = assert_twilio_error(&answer, 400, 70002);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("pageToken")),
        "{body}"
    );
}
