//! What the facade puts on the wire: basic auth and user agent on every request, the v2
//! JSON body (unset fields omitted), the v1 form in Twilio's field names, the webhook and
//! idempotency headers, and paths that no input can bend.

use participants_facade::proto::{
    Address, Channel, CreateParticipantRequest, CreateServiceParticipantRequest, ParticipantType,
};
use serde_json::json;
use tonic::Code;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

/// Answers every v2 create with the participant it asks for, and every v1 create with a
/// chat participant, so tests can look at what was sent.
async fn mount_echoing_creates(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path_regex(r"^/v2/Conversations/[^/]+/Participants$"))
        .respond_with(|request: &wiremock::Request| {
            let body: serde_json::Value = request.body_json().unwrap_or_default();
            let conversation = request
                .url
                .path_segments()
                .and_then(|mut s| s.nth(2))
                .unwrap_or("");
            ResponseTemplate::new(201).set_body_json(json!({
                "id": participant_id(),
                "conversationId": conversation,
                "accountId": ACCOUNT,
                "name": body.get("name"),
                "type": body.get("type"),
                "profileId": body.get("profileId"),
                "addresses": body.get("addresses"),
                "createdAt": "2026-01-02T03:04:05Z",
                "updatedAt": "2026-01-02T03:04:05Z",
            }))
        })
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/v1/Services/[^/]+/Conversations/[^/]+/Participants$",
        ))
        .respond_with(|_: &wiremock::Request| {
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": sid("MB"), "account_sid": ACCOUNT}))
        })
        .mount(server)
        .await;
}

#[tokio::test]
async fn every_request_carries_basic_auth_and_the_user_agent() {
    // Arrange
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;

    for rpc in RPCS {
        let prepared = rpc.fresh();
        prepared.mount(&server, prepared.success()).await;

        // Act
        let result = prepared.call(&app, None).await;

        // Assert
        assert!(result.is_ok(), "{rpc:?}: {result:?}");
        let requests = received_on(&server, prepared.method, &prepared.path).await;
        assert_eq!(requests.len(), 1, "{rpc:?}");
        let request = &requests[0];
        assert_eq!(
            header(request, "authorization"),
            Some(authorization().as_str()),
            "{rpc:?}: basic auth with the API key and secret"
        );
        assert_eq!(
            header(request, "user-agent"),
            Some(user_agent().as_str()),
            "{rpc:?}"
        );
        assert!(
            request.url.query().is_none(),
            "{rpc:?}: nothing in the query: {}",
            request.url
        );
    }
}

#[tokio::test]
async fn a_v2_create_sends_json_with_unset_fields_left_out() {
    let server = upstream().await;
    mount_echoing_creates(&server).await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let phone = phone();
    let minimal = CreateParticipantRequest {
        conversation_id: conversation_id(),
        name: String::new(),
        r#type: ParticipantType::Unspecified.into(),
        profile_id: String::new(),
        addresses: vec![address(Channel::Sms, &phone)],
        idempotency_key: String::new(),
    };
    let full = CreateParticipantRequest {
        conversation_id: conversation_id(),
        name: "Dana Scully".into(),
        r#type: ParticipantType::HumanAgent.into(),
        profile_id: "mem_profile_0042".into(),
        addresses: vec![Address {
            channel: Channel::Whatsapp.into(),
            address: format!("whatsapp:{phone}"),
            channel_id: "XE0123".into(),
            ..Default::default()
        }],
        idempotency_key: String::new(),
    };
    let cases = [
        (
            &minimal,
            json!({"addresses": [{"channel": "SMS", "address": phone}]}),
        ),
        (
            &full,
            json!({
                "name": "Dana Scully",
                "type": "HUMAN_AGENT",
                "profileId": "mem_profile_0042",
                "addresses": [{"channel": "WHATSAPP", "address": format!("whatsapp:{phone}"), "channelId": "XE0123"}],
            }),
        ),
    ];

    for (request, expected) in cases {
        let created = app.create(request.clone()).await.expect("create");

        let sent = received_on(&server, "POST", &v2_path(&request.conversation_id)).await;
        assert_eq!(sent.len(), 1);
        assert_eq!(
            header(&sent[0], "content-type"),
            Some("application/json"),
            "{sent:?}"
        );
        let body: serde_json::Value = sent[0].body_json().expect("a JSON body");
        assert_eq!(body, expected, "exact body, unset fields absent");
        assert_eq!(created.addresses, request.addresses);
    }
}

#[tokio::test]
async fn a_v2_create_names_every_type_and_channel_as_twilio_does() {
    let server = upstream().await;
    mount_echoing_creates(&server).await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let number = phone();
    let addresses = vec![
        address(Channel::Voice, &number),
        address(Channel::Sms, &number),
        address(Channel::Rcs, "rcs:brand_acme_agent"),
        address(Channel::Email, "dana@example.com"),
        address(Channel::Whatsapp, &format!("whatsapp:{number}")),
        address(Channel::Chat, "dana-chat"),
        address(Channel::Video, "dana-video"),
    ];
    let types = [
        (ParticipantType::HumanAgent, "HUMAN_AGENT"),
        (ParticipantType::Customer, "CUSTOMER"),
        (ParticipantType::AiAgent, "AI_AGENT"),
        (ParticipantType::Agent, "AGENT"),
        (ParticipantType::Unknown, "UNKNOWN"),
    ];

    for (kind, name) in types {
        let request = CreateParticipantRequest {
            r#type: kind.into(),
            addresses: addresses.clone(),
            ..create_request()
        };
        let created = app.create(request.clone()).await.expect("create");

        let sent = received_on(&server, "POST", &v2_path(&request.conversation_id)).await;
        let body: serde_json::Value = sent[0].body_json().expect("JSON");
        assert_eq!(body["type"], name);
        let channels: Vec<&str> = body["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .map(|a| a["channel"].as_str().expect("channel"))
            .collect();
        assert_eq!(
            channels,
            ["VOICE", "SMS", "RCS", "EMAIL", "WHATSAPP", "CHAT", "VIDEO"]
        );
        assert_eq!(created.r#type, i32::from(kind), "the answer parses back");
        assert_eq!(created.addresses, addresses, "the answer parses back");
    }
}

#[tokio::test]
async fn a_v1_create_sends_a_form_in_twilios_field_names() {
    let server = upstream().await;
    mount_echoing_creates(&server).await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let role = sid("RL");
    let chat = CreateServiceParticipantRequest {
        identity: "dana@example.com".into(),
        attributes: r#"{"role":"agent","note":"a&b=c ü"}"#.into(),
        messaging_binding: Some(participants_facade::proto::MessagingBinding {
            address: String::new(),
            proxy_address: String::new(),
            projected_address: "+15017122661".into(),
            ..Default::default()
        }),
        role_sid: role.clone(),
        date_created: Some(prost_types::Timestamp {
            seconds: 1_704_164_645,
            nanos: 0,
        }),
        date_updated: Some(prost_types::Timestamp {
            seconds: 1_704_164_646,
            nanos: 500_000_000,
        }),
        ..create_v1_request()
    };
    let sms = CreateServiceParticipantRequest {
        identity: String::new(),
        messaging_binding: binding("+15558675310", "+15017122661"),
        ..create_v1_request()
    };
    let cases = [
        (
            &chat,
            vec![
                ("Identity", "dana@example.com".to_owned()),
                (
                    "Attributes",
                    r#"{"role":"agent","note":"a&b=c ü"}"#.to_owned(),
                ),
                (
                    "MessagingBinding.ProjectedAddress",
                    "+15017122661".to_owned(),
                ),
                ("RoleSid", role.clone()),
                ("DateCreated", "2024-01-02T03:04:05Z".to_owned()),
                ("DateUpdated", "2024-01-02T03:04:06.500Z".to_owned()),
            ],
        ),
        (
            &sms,
            vec![
                ("MessagingBinding.Address", "+15558675310".to_owned()),
                ("MessagingBinding.ProxyAddress", "+15017122661".to_owned()),
            ],
        ),
    ];

    for (request, expected) in cases {
        app.create_v1(request.clone()).await.expect("create");

        let sent = received_on(
            &server,
            "POST",
            &v1_path(&request.chat_service_sid, &request.conversation_sid),
        )
        .await;
        assert_eq!(sent.len(), 1);
        assert_eq!(
            header(&sent[0], "content-type"),
            Some("application/x-www-form-urlencoded"),
        );
        let mut form = form_pairs(&sent[0].body);
        form.sort();
        let mut expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        expected.sort();
        assert_eq!(form, expected, "exactly these fields, nothing empty");
    }
}

#[tokio::test]
async fn a_v1_create_asks_for_webhooks_only_when_enabled() {
    let server = upstream().await;
    mount_echoing_creates(&server).await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;

    for enabled in [true, false] {
        let request = CreateServiceParticipantRequest {
            webhook_enabled: enabled,
            ..create_v1_request()
        };
        app.create_v1(request.clone()).await.expect("create");

        let sent = received_on(
            &server,
            "POST",
            &v1_path(&request.chat_service_sid, &request.conversation_sid),
        )
        .await;
        let expected = if enabled { Some("true") } else { None };
        assert_eq!(
            header(&sent[0], "x-twilio-webhook-enabled"),
            expected,
            "webhook_enabled = {enabled}"
        );
    }
}

/// Twilio's spec declares the `Idempotency-Key` header a UUID (8-4-4-4-12 hex digits).
fn is_uuid(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Sends a v2 and a v1 create with `key` (v1: `{key}-v1`, as one key space serves both)
/// and returns the `Idempotency-Key` headers the upstream received for each.
async fn idempotency_headers(
    app: &TestApp,
    server: &MockServer,
    key: &str,
) -> (Option<String>, Option<String>) {
    let v2 = CreateParticipantRequest {
        idempotency_key: key.into(),
        ..create_request()
    };
    let v1 = CreateServiceParticipantRequest {
        idempotency_key: if key.is_empty() {
            String::new()
        } else {
            format!("{key}-v1")
        },
        ..create_v1_request()
    };
    app.create(v2.clone()).await.expect("v2 create");
    app.create_v1(v1.clone()).await.expect("v1 create");
    let sent = received_on(server, "POST", &v2_path(&v2.conversation_id)).await;
    let v2_header = header(&sent[0], "idempotency-key").map(str::to_owned);
    let sent = received_on(
        server,
        "POST",
        &v1_path(&v1.chat_service_sid, &v1.conversation_sid),
    )
    .await;
    let v1_header = header(&sent[0], "idempotency-key").map(str::to_owned);
    (v2_header, v1_header)
}

#[tokio::test]
async fn creates_send_the_idempotency_key_as_a_uuid_header() {
    let server = upstream().await;
    mount_echoing_creates(&server).await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;

    // No key: no header.
    assert_eq!(idempotency_headers(&app, &server, "").await, (None, None));

    // A UUID key goes as it is.
    let uuid = format!("01890a5d-aa0f-7c80-b8e6-{:012x}", unique());
    let (v2, _) = idempotency_headers(&app, &server, &uuid).await;
    assert_eq!(v2.as_deref(), Some(uuid.as_str()));

    // Any other key becomes a UUID: well-formed, different for different keys...
    let key = format!("order-42:attempt-key_ABC.def-{}", unique());
    let (v2, v1) = idempotency_headers(&app, &server, &key).await;
    let (v2, v1) = (v2.expect("v2 header"), v1.expect("v1 header"));
    assert!(is_uuid(&v2) && is_uuid(&v1), "{v2} / {v1}");
    assert_ne!(v2, v1);
    let (other_key, _) = idempotency_headers(&app, &server, &format!("{key}-other")).await;
    assert_ne!(other_key.as_deref(), Some(v2.as_str()));

    // ...and the same for the same key, also from another facade (replica).
    let replica = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (again, _) = idempotency_headers(&replica, &server, &key).await;
    assert_eq!(again.as_deref(), Some(v2.as_str()));
}

/// The sid of the participant the hostile-path test's upstream answers with.
const MB_SID: &str = "MB0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn hostile_path_input_stays_inside_its_own_path_segment() {
    // Arrange: the v1 fetch's `sid` may be an identity (free text), so it reaches the URL
    // path; nothing in it may add segments, a query or a fragment.
    let server = upstream().await;
    Mock::given(method("GET"))
        .respond_with(|request: &wiremock::Request| {
            let sid = request
                .url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or("");
            // A fetch by identity: the participant with that identity.
            ResponseTemplate::new(200)
                .set_body_json(json!({"sid": MB_SID, "identity": path_decode(sid)}))
        })
        .mount(&server)
        .await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (service, conversation) = (sid("IS"), sid("CH"));
    let hostile = [
        "../../../v2/Conversations/x",
        "..%2F..%2Fadmin",
        "a/b",
        "a?b=c&PageSize=1000",
        "a#fragment",
        "%2F",
        "%2e%2e",
        ".%2e",
        "a\\..\\b",
        "ünïcødé 名前 🎉",
        "with space+plus",
        "...",
        "@evil.example.com",
        "http://evil.example.com/",
    ];

    for (i, identity) in hostile.iter().enumerate() {
        // Act
        let result = app.fetch_v1(&service, &conversation, identity).await;

        // Assert
        let got = result.unwrap_or_else(|s| panic!("{identity:?}: {s:?}"));
        let requests = server.received_requests().await.expect("recording");
        assert_eq!(requests.len(), i + 1, "{identity:?}: exactly one request");
        let url = &requests[i].url;
        assert_eq!(url.query(), None, "{identity:?}: {url}");
        assert_eq!(url.fragment(), None, "{identity:?}: {url}");
        let segments: Vec<&str> = url.path_segments().expect("segments").collect();
        assert_eq!(
            segments[..6],
            [
                "v1",
                "Services",
                service.as_str(),
                "Conversations",
                conversation.as_str(),
                "Participants"
            ],
            "{identity:?}: {url}"
        );
        assert_eq!(segments.len(), 7, "{identity:?}: one segment: {url}");
        assert_eq!(
            path_decode(segments[6]),
            *identity,
            "{identity:?}: sent as itself: {url}"
        );
        assert_eq!(got.identity, *identity, "the answer parses back");
    }
}

#[tokio::test]
async fn hostile_identifiers_are_refused_before_any_upstream_request() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let hostile = [
        "../x", "..", ".", "a/b", "a?b", "a#b", "a%2Fb", "ü", "a b", "",
    ];

    for bad in hostile {
        let v2_fetch = app.fetch(bad, "conv_participant_1").await;
        let v2_fetch_id = app.fetch("conv_conversation_1", bad).await;
        let v2_create = app
            .create(CreateParticipantRequest {
                conversation_id: bad.into(),
                ..create_request()
            })
            .await;
        let v1_fetch = app.fetch_v1(bad, &sid("CH"), "MB1").await;
        expect_code(v2_fetch, Code::InvalidArgument);
        expect_code(v2_fetch_id, Code::InvalidArgument);
        expect_code(v2_create, Code::InvalidArgument);
        expect_code(v1_fetch, Code::InvalidArgument);
        // A v1 conversation may be a unique name, which may hold `?`, `#`, spaces and
        // any letter (they stay inside their path segment, percent-encoded); never `/`,
        // `%`, `.` or `..`.
        if ["a?b", "a#b", "ü", "a b"].contains(&bad) {
            continue;
        }
        let v1_fetch_ch = app.fetch_v1(&sid("IS"), bad, "MB1").await;
        let v1_create = app
            .create_v1(CreateServiceParticipantRequest {
                conversation_sid: bad.into(),
                ..create_v1_request()
            })
            .await;
        expect_code(v1_fetch_ch, Code::InvalidArgument);
        expect_code(v1_create, Code::InvalidArgument);
    }
    // `.` and `..` as a v1 identity would be dropped by URL normalisation.
    for dots in [".", ".."] {
        expect_code(
            app.fetch_v1(&sid("IS"), &sid("CH"), dots).await,
            Code::InvalidArgument,
        );
    }

    assert_eq!(received_count(&server).await, 0, "nothing reached upstream");
}

#[tokio::test]
async fn an_upstream_url_with_a_path_prefix_keeps_it() {
    // Behind a proxy: `--upstream-url http://host/prefix` (with or without a final slash).
    let server = upstream().await;
    for prefix in ["/twilio-proxy", "/twilio-proxy/"] {
        let app = spawn_twilio_app(&format!("{}{prefix}", server.uri()), |_| {}).await;
        let prepared = Rpc::FetchServiceParticipant.fresh();
        let prefixed = format!("/twilio-proxy{}", prepared.path);
        Mock::given(method("GET"))
            .and(wiremock::matchers::path(prefixed.as_str()))
            .respond_with(prepared.success())
            .mount(&server)
            .await;

        let result = prepared.call(&app, None).await;

        assert!(result.is_ok(), "{prefix}: {result:?}");
        assert_eq!(
            received_on(&server, "GET", &prefixed).await.len(),
            1,
            "{prefix}"
        );
    }
}

#[tokio::test]
async fn the_binary_reads_either_kind_of_twilio_credentials_from_the_environment() {
    // The contract: TWILIO_ACCOUNT_SID with either TWILIO_API_KEY + TWILIO_API_SECRET
    // (preferred) or TWILIO_AUTH_TOKEN.
    let account = "AC0123456789abcdef0123456789abcdef";
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Env, (&str, &str)); 2] = [
        (
            &[
                ("TWILIO_ACCOUNT_SID", account),
                ("TWILIO_API_KEY", API_KEY),
                ("TWILIO_API_SECRET", API_SECRET),
            ],
            (API_KEY, API_SECRET),
        ),
        (
            &[
                ("TWILIO_ACCOUNT_SID", account),
                ("TWILIO_AUTH_TOKEN", "auth-token-0123456789"),
            ],
            (account, "auth-token-0123456789"),
        ),
    ];

    for (env, (user, password)) in cases {
        let server = upstream().await;
        let prepared = Rpc::FetchParticipant.fresh();
        prepared.mount(&server, prepared.success()).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let uri = server.uri();
        let child = ChildServer::start_with_env(
            &dir.path().join("data"),
            &["--backend", "twilio", "--upstream-url", &uri],
            env,
        )
        .await;

        let result = prepared.call_with(child.client().await, None).await;

        assert!(result.is_ok(), "{env:?}: {result:?}\n{}", child.logs());
        let sent = received_on(&server, "GET", &prepared.path).await;
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        assert_eq!(
            header(&sent[0], "authorization"),
            Some(expected.as_str()),
            "{env:?}"
        );
    }
}
