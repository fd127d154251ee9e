//! The v1 routes (forms, snake_case): a create is 201 and its fetch by sid or identity 200
//! over HTTP/1.1 and HTTP/2; binding participants; the `url` from `--public-url`, the Host
//! header or the HTTP/2 authority; charsets and percent-encoded identities; and a
//! participant created over REST is the one gRPC fetches, and back.

use participants_facade::proto::CreateServiceParticipantRequest;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn v1_form_create_is_201_and_fetch_by_sid_or_identity_200_over_http1_and_http2() {
    // Arrange
    let app = spawn_app().await;
    let base = base_url(&app);
    for (client, version) in [
        (http_client(), reqwest::Version::HTTP_11),
        (h2c_client(), reqwest::Version::HTTP_2),
    ] {
        let (service, conversation) = (sid("IS"), sid("CH"));
        let identity = format!("user-{}", unique());
        let role = sid("RL");

        // Act
        let created = post_v1(
            &client,
            &base,
            &service,
            &conversation,
            &[("Identity", &identity), ("RoleSid", &role)],
        )
        .await;
        let created_json = created.expect_status(201).json();
        let sid = created_json["sid"].as_str().expect("sid").to_owned();
        let by_sid =
            send(client.get(format!("{base}{}/{sid}", v1_path(&service, &conversation)))).await;
        let by_identity = send(client.get(format!(
            "{base}{}/{identity}",
            v1_path(&service, &conversation)
        )))
        .await;

        // Assert
        assert_eq!(created.version, version);
        assert!(is_lower_hex_sid(&sid, "MB"), "sid {sid}");
        assert_eq!(
            keys(&created_json),
            expected_keys(&V1_KEYS),
            "snake_case: {created_json}"
        );
        assert_eq!(created_json["account_sid"], json!(DEFAULT_ACCOUNT));
        assert_eq!(created_json["chat_service_sid"], json!(service));
        assert_eq!(created_json["conversation_sid"], json!(conversation));
        assert_eq!(created_json["identity"], json!(identity));
        assert_eq!(
            created_json["attributes"],
            json!("{}"),
            "unset attributes are {{}}"
        );
        assert_eq!(created_json["messaging_binding"], Value::Null);
        assert_eq!(created_json["role_sid"], json!(role));
        assert_eq!(created_json["last_read_message_index"], Value::Null);
        assert_eq!(created_json["last_read_timestamp"], Value::Null);
        for field in ["date_created", "date_updated"] {
            let date = created_json[field].as_str().expect("a date");
            assert!(
                is_v1_date(date),
                "{field} {date:?} is not like 2015-12-16T22:18:37Z"
            );
        }
        let url = created_json["url"].as_str().expect("url");
        assert!(
            url.starts_with("http://")
                && url.ends_with(&format!(
                    "/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}"
                )),
            "url is absolute: {url}"
        );
        if version == reqwest::Version::HTTP_11 {
            // (Over HTTP/2: see v1_url_over_http2_comes_from_the_request_authority.)
            assert_eq!(
                url,
                format!(
                    "http://{}/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}",
                    app.addr
                ),
                "url is from the Host header"
            );
        }
        assert_eq!(by_sid.expect_status(200).json(), created_json);
        assert_eq!(by_identity.expect_status(200).json(), created_json);
    }
}

#[tokio::test]
async fn v1_binding_participants_show_messaging_binding_with_type_and_keep_given_fields() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, conversation) = (sid("IS"), sid("CH"));
    let (sms, proxy) = (phone(), phone());
    let whatsapp = format!("whatsapp:{}", phone());
    let whatsapp_proxy = format!("whatsapp:{}", phone());

    // Act
    let sms_participant = post_v1(
        &client,
        &base,
        &service,
        &conversation,
        &[
            ("MessagingBinding.Address", &sms),
            ("MessagingBinding.ProxyAddress", &proxy),
            ("Attributes", r#"{"tier":"gold","n":1}"#),
            ("DateCreated", "2015-12-16T22:18:37Z"),
            ("DateUpdated", "2015-12-17T08:00:00Z"),
        ],
    )
    .await;
    let whatsapp_participant = post_v1(
        &client,
        &base,
        &service,
        &conversation,
        &[
            ("MessagingBinding.Address", &whatsapp),
            ("MessagingBinding.ProxyAddress", &whatsapp_proxy),
        ],
    )
    .await;

    // Assert
    let sms_json = sms_participant.expect_status(201).json();
    assert_eq!(
        sms_json["messaging_binding"],
        json!({"type": "sms", "address": sms, "proxy_address": proxy}),
        "{sms_json}"
    );
    assert_eq!(sms_json["identity"], Value::Null);
    assert_eq!(sms_json["attributes"], json!(r#"{"tier":"gold","n":1}"#));
    assert_eq!(sms_json["date_created"], json!("2015-12-16T22:18:37Z"));
    assert_eq!(sms_json["date_updated"], json!("2015-12-17T08:00:00Z"));
    let whatsapp_json = whatsapp_participant.expect_status(201).json();
    assert_eq!(
        whatsapp_json["messaging_binding"],
        json!({"type": "whatsapp", "address": whatsapp, "proxy_address": whatsapp_proxy}),
        "{whatsapp_json}"
    );
}

#[tokio::test]
async fn v1_url_comes_from_public_url_when_set_else_from_the_host_header() {
    // Arrange
    let public = spawn_app_configured(|c| {
        c.public_url = Some("https://facade.example.com".into());
    })
    .await;
    let plain = spawn_app().await;
    let client = http_client();
    let (service, conversation) = (sid("IS"), sid("CH"));

    // Act
    let with_public = post_v1(
        &client,
        &base_url(&public),
        &service,
        &conversation,
        &[("Identity", "ada")],
    )
    .await;
    let with_host = send(
        client
            .post(format!(
                "{}{}",
                base_url(&plain),
                v1_path(&service, &conversation)
            ))
            .header("host", "facade.internal:8443")
            .form(&[("Identity", "ada")]),
    )
    .await;

    // Assert
    let json = with_public.expect_status(201).json();
    let sid = json["sid"].as_str().expect("sid");
    assert_eq!(
        json["url"],
        json!(format!(
            "https://facade.example.com/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}"
        ))
    );
    let json = with_host.expect_status(201).json();
    let sid = json["sid"].as_str().expect("sid");
    assert_eq!(
        json["url"],
        json!(format!(
            "http://facade.internal:8443/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}"
        ))
    );
}

#[tokio::test]
async fn v1_url_over_http2_comes_from_the_request_authority() {
    // Arrange: HTTP/2 has no Host header; the authority travels as `:authority` (in the
    // request URI), RFC 9113 8.3.1.
    let app = spawn_app().await;
    let (service, conversation) = (sid("IS"), sid("CH"));

    // Act
    let created = post_v1(
        &h2c_client(),
        &base_url(&app),
        &service,
        &conversation,
        &[("Identity", "ada")],
    )
    .await;

    // Assert
    let created = created.expect_status(201).json();
    let sid = created["sid"].as_str().expect("sid");
    let grpc = app
        .fetch_v1(&service, &conversation, sid)
        .await
        .expect("gRPC fetch");
    let expected = format!(
        "http://{}/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}",
        app.addr
    );
    assert_eq!(created["url"], json!(expected), "REST over HTTP/2");
    assert_eq!(grpc.url, expected, "gRPC");
}

#[tokio::test]
async fn content_types_with_a_charset_and_percent_encoded_identities_are_accepted() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, channel) = (sid("IS"), sid("CH"));

    // Act
    let v2 = send(
        client
            .post(format!("{base}{}", v2_path(&conversation_id())))
            .header("content-type", "application/json; charset=utf-8")
            .body(v2_body(&phone()).to_string()),
    )
    .await;
    let v1 = send(
        client
            .post(format!("{base}{}", v1_path(&service, &channel)))
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body("Identity=ada%20lovelace%2Bco%40example.com"),
    )
    .await;
    let by_identity = send(client.get(format!(
        "{base}{}/ada%20lovelace+co%40example.com",
        v1_path(&service, &channel)
    )))
    .await;

    // Assert
    v2.expect_status(201);
    let created = v1.expect_status(201).json();
    assert_eq!(created["identity"], json!("ada lovelace+co@example.com"));
    assert_eq!(by_identity.expect_status(200).json(), created);
}

#[tokio::test]
async fn a_v1_participant_created_over_rest_is_fetched_over_grpc_and_back() {
    // Arrange
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let (service, channel) = (sid("IS"), sid("CH"));
    let grpc_request = CreateServiceParticipantRequest {
        attributes: r#"{"vip":true}"#.into(),
        ..create_v1_request()
    };

    // Act
    let over_rest = post_v1(
        &client,
        &base,
        &service,
        &channel,
        &[("Identity", "ada"), ("Attributes", r#"{"a":1}"#)],
    )
    .await;
    let over_rest = over_rest.expect_status(201).json();
    let mb = over_rest["sid"].as_str().expect("sid");
    let via_grpc = app
        .fetch_v1(&service, &channel, mb)
        .await
        .expect("gRPC fetch");
    let over_grpc = app
        .create_v1(grpc_request.clone())
        .await
        .expect("gRPC create");
    let via_rest = send(client.get(format!(
        "{base}{}/{}",
        v1_path(
            &grpc_request.chat_service_sid,
            &grpc_request.conversation_sid
        ),
        over_grpc.sid
    )))
    .await;

    // Assert
    assert_eq!(via_grpc.sid, mb);
    assert_eq!(via_grpc.identity, "ada");
    assert_eq!(via_grpc.attributes, r#"{"a":1}"#);
    assert_eq!(
        json!(via_grpc.url),
        over_rest["url"],
        "both fronts give the same url"
    );
    assert_eq!(
        via_grpc.date_created.expect("date_created").seconds,
        rfc3339(&over_rest["date_created"]).timestamp()
    );
    let via_rest = via_rest.expect_status(200).json();
    assert_eq!(via_rest["sid"], json!(over_grpc.sid));
    assert_eq!(via_rest["identity"], json!(grpc_request.identity));
    assert_eq!(via_rest["attributes"], json!(r#"{"vip":true}"#));
    assert_eq!(via_rest["url"], json!(over_grpc.url));
    assert_eq!(
        rfc3339(&via_rest["date_created"]).timestamp(),
        over_grpc.date_created.expect("date_created").seconds
    );
}
