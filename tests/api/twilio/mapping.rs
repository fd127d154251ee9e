//! Upstream answers as gRPC statuses: the contract's table, Twilio's ErrorInfo,
//! Retry-After as RetryInfo, and bodies that are empty, malformed or not the resource.

use participants_facade::proto::{self, Channel};
use tonic::Code;
use wiremock::ResponseTemplate;

use super::*;

/// The contract's table, with examples of "other 4xx" and "other 5xx".
const TABLE: &[(u16, Code)] = &[
    (400, Code::InvalidArgument),
    (401, Code::Unauthenticated),
    (403, Code::PermissionDenied),
    (404, Code::NotFound),
    (405, Code::FailedPrecondition),
    (409, Code::AlreadyExists),
    (410, Code::FailedPrecondition),
    (412, Code::FailedPrecondition),
    (418, Code::FailedPrecondition),
    (422, Code::InvalidArgument),
    (429, Code::ResourceExhausted),
    (499, Code::Cancelled),
    (500, Code::Internal),
    (501, Code::Unimplemented),
    (502, Code::Unavailable),
    (503, Code::Unavailable),
    (504, Code::DeadlineExceeded),
    (505, Code::Unknown),
    (507, Code::Unknown),
    (599, Code::Unknown),
];

#[tokio::test]
async fn each_status_of_the_contracts_table_maps_to_its_code_with_twilios_error_info() {
    // Arrange: one attempt per call, so each status is seen once as it is.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| c.upstream.max_attempts = 1).await;

    for rpc in RPCS {
        for (i, &(http_status, code)) in TABLE.iter().enumerate() {
            let case = format!("{rpc:?} answered HTTP {http_status}");
            let twilio_code = 20_000 + i64::from(http_status) * 10 + i as i64;
            let message = format!("Twilio says no ({http_status}/{twilio_code})");
            let prepared = rpc.fresh();
            prepared
                .mount(&server, twilio_error(http_status, twilio_code, &message))
                .await;

            // Act
            let status = match prepared.call(&app, None).await {
                Ok(id) => panic!("{case}: expected {code:?}, got Ok({id})"),
                Err(status) => status,
            };

            // Assert
            assert_eq!(status.code(), code, "{case}: {status:?}");
            assert_eq!(status.message(), message, "{case}");
            let info = twilio_error_info(&status);
            assert_eq!(info.reason, twilio_code.to_string(), "{case}: {info:?}");
            assert_eq!(
                info.metadata.get("http_status").map(String::as_str),
                Some(http_status.to_string().as_str()),
                "{case}: {info:?}"
            );
            assert_eq!(
                info.metadata.get("more_info"),
                Some(&more_info(twilio_code)),
                "{case}: {info:?}"
            );
            assert!(
                !info.metadata.contains_key("conflicting_resource_id"),
                "{case}: no X-Conflicting-Resource-Id was sent: {info:?}"
            );
            assert_eq!(prepared.attempts(&server).await, 1, "{case}: attempts");
        }
    }
}

#[tokio::test]
async fn a_409_names_the_conflicting_resource_from_its_header() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;

    for rpc in [Rpc::CreateParticipant, Rpc::CreateServiceParticipant] {
        let existing = match rpc {
            Rpc::CreateParticipant => participant_id(),
            _ => sid("MB"),
        };
        let prepared = rpc.fresh();
        prepared
            .mount(
                &server,
                twilio_error(409, 50_433, "Participant already exists")
                    .insert_header("X-Conflicting-Resource-Id", existing.as_str()),
            )
            .await;

        let status = expect_code(prepared.call(&app, None).await, Code::AlreadyExists);

        let info = twilio_error_info(&status);
        assert_eq!(info.reason, "50433", "{rpc:?}: {info:?}");
        assert_eq!(
            info.metadata.get("conflicting_resource_id"),
            Some(&existing),
            "{rpc:?}: {info:?}"
        );
        assert_eq!(
            info.metadata.get("http_status").map(String::as_str),
            Some("409")
        );
        assert_eq!(
            prepared.attempts(&server).await,
            1,
            "{rpc:?}: a first-attempt 409 is final"
        );
    }
}

#[tokio::test]
async fn retry_after_in_seconds_or_as_a_date_becomes_retry_info() {
    // Arrange: one attempt, so the answer is returned rather than waited out.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| c.upstream.max_attempts = 1).await;
    // An HTTP-date (IMF-fixdate), as servers send it.
    let in_40s = (chrono::Utc::now() + chrono::Duration::seconds(40))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let cases = [
        (429, "7", Code::ResourceExhausted, 7..=7),
        (503, "12", Code::Unavailable, 12..=12),
        (429, in_40s.as_str(), Code::ResourceExhausted, 37..=40),
    ];

    for (http_status, retry_after, code, seconds) in cases {
        let prepared = Rpc::FetchParticipant.fresh();
        prepared
            .mount(
                &server,
                twilio_error(http_status, 20_429, "Too Many Requests")
                    .insert_header("Retry-After", retry_after),
            )
            .await;

        let status = expect_code(prepared.call(&app, None).await, code);

        let delay = retry_delay(&status)
            .unwrap_or_else(|| panic!("Retry-After {retry_after:?}: no RetryInfo in {status:?}"));
        assert!(
            seconds.contains(&delay.as_secs()),
            "Retry-After {retry_after:?} gave RetryInfo {delay:?}"
        );
        assert_eq!(twilio_error_info(&status).reason, "20429");
    }
}

#[tokio::test]
async fn error_answers_without_twilios_body_still_map_and_say_what_came() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| c.upstream.max_attempts = 1).await;
    let cases = [
        (
            ResponseTemplate::new(404),
            Code::NotFound,
            "HTTP_404",
            "empty body",
        ),
        (
            ResponseTemplate::new(500).set_body_raw("<html>Internal oops</html>", "text/html"),
            Code::Internal,
            "HTTP_500",
            "not Twilio's JSON error",
        ),
        (
            ResponseTemplate::new(400).set_body_raw("{\"code\": 21", "application/json"),
            Code::InvalidArgument,
            "HTTP_400",
            "not Twilio's JSON error",
        ),
        (
            ResponseTemplate::new(403).set_body_json(serde_json::json!({"status": 403})),
            Code::PermissionDenied,
            "HTTP_403",
            "no message",
        ),
        (
            ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"code": 20003, "message": "Authenticate"})),
            Code::Unauthenticated,
            "20003",
            "Authenticate",
        ),
    ];

    for (template, code, reason, says) in cases {
        let prepared = Rpc::FetchServiceParticipant.fresh();
        prepared.mount(&server, template).await;

        let status = expect_code(prepared.call(&app, None).await, code);

        assert!(
            status.message().contains(says),
            "{reason}: message should say {says:?}: {status:?}"
        );
        let info = twilio_error_info(&status);
        assert_eq!(info.reason, reason, "{info:?}");
        assert!(info.metadata.contains_key("http_status"), "{info:?}");
        if reason.starts_with("HTTP_") {
            assert!(
                !info.metadata.contains_key("more_info"),
                "no more_info was sent: {info:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_success_whose_body_is_not_the_resource_is_internal_and_not_retried() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let cases = [
        ("", "application/json", "empty or truncated"),
        ("<html>hello</html>", "text/html", "not JSON"),
        (
            "{\"id\": \"conv_participant_1\"",
            "application/json",
            "empty or truncated",
        ),
        (
            "{\"hello\": \"world\"}",
            "application/json",
            "missing or mistyped fields",
        ),
    ];

    for rpc in RPCS {
        for (body, mime, says) in cases {
            let prepared = rpc.fresh();
            let success = match rpc {
                Rpc::CreateParticipant | Rpc::CreateServiceParticipant => 201,
                _ => 200,
            };
            prepared
                .mount(
                    &server,
                    ResponseTemplate::new(success).set_body_raw(body, mime),
                )
                .await;

            let status = expect_code(prepared.call(&app, None).await, Code::Internal);

            assert!(
                status.message().contains(says),
                "{rpc:?} answered {body:?}: message should say {says:?}: {status:?}"
            );
            assert_eq!(
                prepared.attempts(&server).await,
                1,
                "{rpc:?} answered {body:?}"
            );
        }
    }
}

#[tokio::test]
async fn twilios_v2_participant_parses_into_our_message_tolerating_what_it_does_not_know() {
    // Arrange: every field, plus fields, channels and types this build does not know.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let conversation = conversation_id();
    let id = participant_id();
    let body = serde_json::json!({
        "id": id,
        "conversationId": conversation,
        "accountId": ACCOUNT,
        "name": "Dana",
        "type": "SOMETHING_NEW",
        "profileId": "mem_profile_0001",
        "addresses": [
            {"channel": "SMS", "address": "+18005550100"},
            {"channel": "CARRIER_PIGEON", "address": "loft 7"},
            {"channel": "WHATSAPP", "address": "whatsapp:+18005550100", "channelId": "wa-1"},
            {"channel": "EMAIL", "address": "dana@example.com", "channelId": ""}
        ],
        "createdAt": "2023-07-01T12:00:00Z",
        "updatedAt": "2023-07-01T12:30:00.250Z",
        "somethingAdded": {"later": true}
    });
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path(v2_fetch_path(&conversation, &id)))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;

    // Act
    let p = app.fetch(&conversation, &id).await.expect("fetch");

    // Assert
    assert_eq!(p.id, id);
    assert_eq!(p.conversation_id, conversation);
    assert_eq!(p.account_id, ACCOUNT);
    assert_eq!(p.name, "Dana");
    assert_eq!(p.r#type, i32::from(proto::ParticipantType::Unknown));
    assert_eq!(p.profile_id, "mem_profile_0001");
    assert_eq!(
        p.addresses,
        vec![
            address(Channel::Sms, "+18005550100"),
            proto::Address {
                channel: Channel::Unspecified.into(),
                address: "loft 7".into(),
                channel_name: "CARRIER_PIGEON".into(),
                ..Default::default()
            },
            proto::Address {
                channel: Channel::Whatsapp.into(),
                address: "whatsapp:+18005550100".into(),
                channel_id: "wa-1".into(),
                ..Default::default()
            },
            address(Channel::Email, "dana@example.com"),
        ],
        "the unknown channel is kept, with Twilio's name"
    );
    let created = p.created_at.expect("created_at");
    assert_eq!((created.seconds, created.nanos), (1_688_212_800, 0));
    let updated = p.updated_at.expect("updated_at");
    assert_eq!(
        (updated.seconds, updated.nanos),
        (1_688_214_600, 250_000_000)
    );
}

#[tokio::test]
async fn twilios_v1_participant_parses_into_our_message_with_parents_from_the_path() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (service, conversation) = (sid("IS"), sid("CH"));
    let (full, minimal) = (sid("MB"), sid("MB"));
    let full_body = serde_json::json!({
        "account_sid": ACCOUNT,
        "chat_service_sid": service,
        "conversation_sid": conversation,
        "sid": full,
        "identity": null,
        "attributes": "{ \"role\": \"driver\" }",
        "messaging_binding": {"type": "sms", "address": "+15558675310", "proxy_address": "+15017122661"},
        "role_sid": "RLaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "date_created": "2015-12-16T22:18:37Z",
        "date_updated": "2015-12-16T22:18:38Z",
        "url": "https://conversations.twilio.com/v1/whatever",
        "last_read_message_index": 7,
        "last_read_timestamp": "2015-12-16T22:19:00Z"
    });
    for (sid, body) in [
        (&full, full_body),
        (
            &minimal,
            // Twilio's older APIs write dates as RFC 2822.
            serde_json::json!({"sid": minimal, "date_created": "Wed, 16 Dec 2015 22:18:37 +0000"}),
        ),
    ] {
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .and(wiremock::matchers::path(v1_fetch_path(
                &service,
                &conversation,
                sid,
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }

    let p = app
        .fetch_v1(&service, &conversation, &full)
        .await
        .expect("full");
    assert_eq!(p.sid, full);
    assert_eq!(p.account_sid, ACCOUNT);
    assert_eq!(
        (p.chat_service_sid.as_str(), p.conversation_sid.as_str()),
        (service.as_str(), conversation.as_str())
    );
    assert_eq!(p.identity, "");
    assert_eq!(p.attributes, "{ \"role\": \"driver\" }");
    assert_eq!(
        p.messaging_binding,
        binding("+15558675310", "+15017122661").map(|b| proto::MessagingBinding {
            r#type: "sms".into(),
            ..b
        }),
        "Twilio's binding type passes through"
    );
    assert_eq!(p.role_sid, "RLaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_eq!(p.date_created.map(|t| t.seconds), Some(1_450_304_317));
    assert_eq!(p.date_updated.map(|t| t.seconds), Some(1_450_304_318));
    assert_eq!(p.last_read_message_index, Some(7));
    assert_eq!(p.last_read_timestamp, "2015-12-16T22:19:00Z");
    assert!(
        p.url
            .ends_with(&v1_fetch_path(&service, &conversation, &full)),
        "{}",
        p.url
    );

    let p = app
        .fetch_v1(&service, &conversation, &minimal)
        .await
        .expect("minimal");
    assert_eq!(p.sid, minimal);
    assert_eq!(p.chat_service_sid, service, "parent from the path");
    assert_eq!(p.conversation_sid, conversation, "parent from the path");
    assert_eq!(p.attributes, "{}");
    assert_eq!(p.messaging_binding, None);
    assert_eq!(p.last_read_message_index, None);
    assert_eq!(p.date_created.map(|t| t.seconds), Some(1_450_304_317));
    assert_eq!(p.date_updated, None);
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_credentials_never_go_elsewhere() {
    // Arrange: upstream redirects to another server, which must see nothing.
    let server = upstream().await;
    let elsewhere = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    for rpc in RPCS {
        let prepared = rpc.fresh();
        let target = format!("{}{}", elsewhere.uri(), prepared.path);
        prepared
            .mount(
                &server,
                ResponseTemplate::new(307).insert_header("Location", target.as_str()),
            )
            .await;

        let result = prepared.call(&app, None).await;

        assert!(
            result.is_err(),
            "{rpc:?}: a redirect is not a participant: {result:?}"
        );
    }
    assert_eq!(
        received_count(&elsewhere).await,
        0,
        "credentials went elsewhere"
    );
}
