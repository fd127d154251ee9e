//! Input rules, table-driven: each case is a request and the exact set of BadRequest
//! field paths the server must report.

use participants_facade::proto::{
    Address, Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
    FetchParticipantRequest, FetchServiceParticipantRequest, MessagingBinding,
};
use prost_types::Timestamp;

use crate::fixtures::*;

fn with_address(channel: Channel, value: &str) -> CreateParticipantRequest {
    CreateParticipantRequest {
        addresses: vec![address(channel, value)],
        ..create_request()
    }
}

fn raw_address(channel: i32, value: &str) -> Address {
    Address {
        channel,
        address: value.to_owned(),
        channel_id: String::new(),
        ..Default::default()
    }
}

#[tokio::test]
async fn invalid_create_participant_requests_report_exactly_the_bad_fields() {
    let app = spawn_app().await;
    let sms = || address(Channel::Sms, &phone());
    let cases: Vec<(&str, CreateParticipantRequest, Vec<&str>)> = vec![
        (
            "empty conversation_id",
            CreateParticipantRequest {
                conversation_id: String::new(),
                ..create_request()
            },
            vec!["conversation_id"],
        ),
        (
            "conversation_id with a slash",
            CreateParticipantRequest {
                conversation_id: "conv/../../etc".into(),
                ..create_request()
            },
            vec!["conversation_id"],
        ),
        (
            "conversation_id with a space",
            CreateParticipantRequest {
                conversation_id: "conv 1".into(),
                ..create_request()
            },
            vec!["conversation_id"],
        ),
        (
            "conversation_id over 128 characters",
            CreateParticipantRequest {
                conversation_id: "c".repeat(129),
                ..create_request()
            },
            vec!["conversation_id"],
        ),
        (
            "no addresses",
            CreateParticipantRequest {
                addresses: vec![],
                ..create_request()
            },
            vec!["addresses"],
        ),
        (
            "21 addresses",
            CreateParticipantRequest {
                addresses: (0..21).map(|_| sms()).collect(),
                ..create_request()
            },
            vec!["addresses"],
        ),
        (
            "channel unspecified",
            CreateParticipantRequest {
                addresses: vec![raw_address(0, "+18005550100")],
                ..create_request()
            },
            vec!["addresses[0].channel"],
        ),
        (
            "channel out of range",
            CreateParticipantRequest {
                addresses: vec![raw_address(99, "+18005550100")],
                ..create_request()
            },
            vec!["addresses[0].channel"],
        ),
        (
            "negative channel",
            CreateParticipantRequest {
                addresses: vec![raw_address(-2, "+18005550100")],
                ..create_request()
            },
            vec!["addresses[0].channel"],
        ),
        (
            "empty address",
            with_address(Channel::Sms, ""),
            vec!["addresses[0].address"],
        ),
        (
            "unknown channel and empty address",
            CreateParticipantRequest {
                addresses: vec![raw_address(99, "")],
                ..create_request()
            },
            vec!["addresses[0].channel", "addresses[0].address"],
        ),
        (
            "second address bad, first fine",
            CreateParticipantRequest {
                addresses: vec![sms(), address(Channel::Email, "not-an-email")],
                ..create_request()
            },
            vec!["addresses[1].address"],
        ),
        (
            "address over 320 characters",
            with_address(Channel::Chat, &"x".repeat(321)),
            vec!["addresses[0].address"],
        ),
        (
            "duplicate address",
            CreateParticipantRequest {
                addresses: vec![
                    address(Channel::Sms, "+18005550123"),
                    address(Channel::Sms, "+18005550123"),
                ],
                ..create_request()
            },
            vec!["addresses[1].address"],
        ),
        (
            "duplicate e-mail differing only in case",
            CreateParticipantRequest {
                addresses: vec![
                    address(Channel::Email, "ann@example.com"),
                    address(Channel::Email, "ANN@EXAMPLE.COM"),
                ],
                ..create_request()
            },
            vec!["addresses[1].address"],
        ),
        (
            "duplicate third address",
            CreateParticipantRequest {
                addresses: vec![
                    address(Channel::Chat, "bob"),
                    address(Channel::Sms, "+18005550123"),
                    address(Channel::Chat, "bob"),
                ],
                ..create_request()
            },
            vec!["addresses[2].address"],
        ),
        (
            "channel_id over 128 characters",
            CreateParticipantRequest {
                addresses: vec![Address {
                    channel_id: "i".repeat(129),
                    ..sms()
                }],
                ..create_request()
            },
            vec!["addresses[0].channel_id"],
        ),
        (
            "type out of range",
            CreateParticipantRequest {
                r#type: 99,
                ..create_request()
            },
            vec!["type"],
        ),
        (
            "negative type",
            CreateParticipantRequest {
                r#type: -1,
                ..create_request()
            },
            vec!["type"],
        ),
        (
            "name over 256 characters",
            CreateParticipantRequest {
                name: "n".repeat(257),
                ..create_request()
            },
            vec!["name"],
        ),
        (
            "name over 256 characters, multi-byte",
            CreateParticipantRequest {
                name: "é".repeat(257),
                ..create_request()
            },
            vec!["name"],
        ),
        (
            "name with a control character",
            CreateParticipantRequest {
                name: "Ada\nLovelace".into(),
                ..create_request()
            },
            vec!["name"],
        ),
        (
            "profile_id over 128 characters",
            CreateParticipantRequest {
                profile_id: "p".repeat(129),
                ..create_request()
            },
            vec!["profile_id"],
        ),
        (
            "idempotency_key with a space",
            CreateParticipantRequest {
                idempotency_key: "my key".into(),
                ..create_request()
            },
            vec!["idempotency_key"],
        ),
        (
            "idempotency_key over 255 characters",
            CreateParticipantRequest {
                idempotency_key: "k".repeat(256),
                ..create_request()
            },
            vec!["idempotency_key"],
        ),
        (
            "idempotency_key not ASCII",
            CreateParticipantRequest {
                idempotency_key: "clé".into(),
                ..create_request()
            },
            vec!["idempotency_key"],
        ),
        // Channel formats.
        (
            "SMS without +",
            with_address(Channel::Sms, "18005550100"),
            vec!["addresses[0].address"],
        ),
        (
            "SMS starting with 0",
            with_address(Channel::Sms, "+0123456"),
            vec!["addresses[0].address"],
        ),
        (
            "SMS with spaces",
            with_address(Channel::Sms, "+1 800 555 0100"),
            vec!["addresses[0].address"],
        ),
        (
            "SMS over 15 digits",
            with_address(Channel::Sms, "+1234567890123456"),
            vec!["addresses[0].address"],
        ),
        (
            "SMS with a WhatsApp address",
            with_address(Channel::Sms, "whatsapp:+18005550100"),
            vec!["addresses[0].address"],
        ),
        (
            "VOICE with a name",
            with_address(Channel::Voice, "alice"),
            vec!["addresses[0].address"],
        ),
        (
            "EMAIL without a domain",
            with_address(Channel::Email, "user@"),
            vec!["addresses[0].address"],
        ),
        (
            "EMAIL without a dot in the domain",
            with_address(Channel::Email, "user@localhost"),
            vec!["addresses[0].address"],
        ),
        (
            "EMAIL with a space",
            with_address(Channel::Email, "us er@example.com"),
            vec!["addresses[0].address"],
        ),
        (
            "EMAIL with a phone number",
            with_address(Channel::Email, "+18005550100"),
            vec!["addresses[0].address"],
        ),
        (
            "WHATSAPP without prefix",
            with_address(Channel::Whatsapp, "+18005550100"),
            vec!["addresses[0].address"],
        ),
        (
            "WHATSAPP prefix without E.164",
            with_address(Channel::Whatsapp, "whatsapp:18005550100"),
            vec!["addresses[0].address"],
        ),
        (
            "RCS empty sender",
            with_address(Channel::Rcs, "rcs:"),
            vec!["addresses[0].address"],
        ),
        (
            "RCS without prefix",
            with_address(Channel::Rcs, "brand_acme_agent"),
            vec!["addresses[0].address"],
        ),
        (
            "RCS sender with a space",
            with_address(Channel::Rcs, "rcs:has space"),
            vec!["addresses[0].address"],
        ),
        (
            "CHAT identity with a control character",
            with_address(Channel::Chat, "al\u{7}ice"),
            vec!["addresses[0].address"],
        ),
        (
            "CHAT identity over 256 characters",
            with_address(Channel::Chat, &"a".repeat(257)),
            vec!["addresses[0].address"],
        ),
        (
            "VIDEO identity with a newline",
            with_address(Channel::Video, "bob\n"),
            vec!["addresses[0].address"],
        ),
        (
            "several bad fields at once",
            CreateParticipantRequest {
                conversation_id: String::new(),
                name: "n".repeat(300),
                r#type: 42,
                profile_id: "p".repeat(200),
                addresses: vec![
                    raw_address(0, "+18005550100"),
                    address(Channel::Sms, "555-0100"),
                    address(Channel::Whatsapp, "whatsapp:+18005550100"),
                    address(Channel::Whatsapp, "whatsapp:+18005550100"),
                ],
                idempotency_key: "has space".into(),
            },
            vec![
                "conversation_id",
                "name",
                "type",
                "profile_id",
                "addresses[0].channel",
                "addresses[1].address",
                "addresses[3].address",
                "idempotency_key",
            ],
        ),
    ];

    for (case, request, expected) in cases {
        let result = app.create(request).await;
        assert_bad_request(result, &expected, case);
    }
}

#[tokio::test]
async fn valid_addresses_of_every_channel_are_accepted() {
    let app = spawn_app().await;
    let cases = [
        (Channel::Sms, "+18005550100"),
        (Channel::Sms, "+12"),
        (Channel::Sms, "+123456789012345"),
        (Channel::Voice, "+447700900123"),
        (Channel::Email, "user@example.com"),
        (Channel::Email, "first.last+tag@sub.example.co"),
        (Channel::Whatsapp, "whatsapp:+18005550100"),
        (Channel::Rcs, "rcs:brand_acme_agent"),
        (Channel::Rcs, "rcs:+18005550100"),
        (Channel::Rcs, "rcs:brand-acme.agent_1"),
        (Channel::Chat, "alice"),
        (Channel::Chat, "Zoë Ünicode user@example"),
        (Channel::Video, "room-user-1"),
    ];
    for (channel, value) in cases {
        let request = with_address(channel, value);
        let created = app
            .create(request.clone())
            .await
            .unwrap_or_else(|e| panic!("{channel:?} {value:?} rejected: {e:?}"));
        assert_eq!(
            created.addresses, request.addresses,
            "{channel:?} {value:?}"
        );
    }
}

#[tokio::test]
async fn values_at_the_limits_are_accepted() {
    let app = spawn_app().await;
    let cases: Vec<(&str, CreateParticipantRequest)> = vec![
        (
            "name of 256 multi-byte characters",
            CreateParticipantRequest {
                name: "é".repeat(256),
                ..create_request()
            },
        ),
        (
            "profile_id of 128 characters",
            CreateParticipantRequest {
                profile_id: "p".repeat(128),
                ..create_request()
            },
        ),
        (
            "conversation_id of 128 characters with every allowed symbol",
            CreateParticipantRequest {
                conversation_id: format!("a_b-c.d:e{}", "z".repeat(119)),
                ..create_request()
            },
        ),
        (
            "idempotency_key of 255 printable characters",
            CreateParticipantRequest {
                idempotency_key: format!("{}!~{}", unique(), "k".repeat(255))[..255].to_owned(),
                ..create_request()
            },
        ),
        (
            "20 addresses",
            CreateParticipantRequest {
                addresses: (0..20).map(|_| address(Channel::Sms, &phone())).collect(),
                ..create_request()
            },
        ),
        (
            "channel_id of 128 characters",
            CreateParticipantRequest {
                addresses: vec![Address {
                    channel_id: "i".repeat(128),
                    ..address(Channel::Sms, &phone())
                }],
                ..create_request()
            },
        ),
        (
            "CHAT identity of 256 characters",
            with_address(Channel::Chat, &"a".repeat(256)),
        ),
    ];
    for (case, request) in cases {
        let created = app
            .create(request.clone())
            .await
            .unwrap_or_else(|e| panic!("{case}: rejected: {e:?}"));
        assert_eq!(created.name, request.name, "{case}");
        assert_eq!(created.addresses, request.addresses, "{case}");
        let fetched = app
            .fetch(&request.conversation_id, &created.id)
            .await
            .unwrap();
        assert_eq!(fetched, created, "{case}");
    }
}

#[tokio::test]
async fn invalid_create_service_participant_requests_report_exactly_the_bad_fields() {
    let app = spawn_app().await;
    let base = create_v1_request;
    let binding_only = |address: &str, proxy: &str| CreateServiceParticipantRequest {
        identity: String::new(),
        messaging_binding: Some(MessagingBinding {
            address: address.into(),
            proxy_address: proxy.into(),
            projected_address: String::new(),
            ..Default::default()
        }),
        ..base()
    };
    let ts = |seconds: i64, nanos: i32| Some(Timestamp { seconds, nanos });
    let cases: Vec<(&str, CreateServiceParticipantRequest, Vec<&str>)> = vec![
        (
            "empty chat_service_sid",
            CreateServiceParticipantRequest {
                chat_service_sid: String::new(),
                ..base()
            },
            vec!["chat_service_sid"],
        ),
        (
            "short chat_service_sid",
            CreateServiceParticipantRequest {
                chat_service_sid: "IS123".into(),
                ..base()
            },
            vec!["chat_service_sid"],
        ),
        (
            "chat_service_sid with the wrong prefix",
            CreateServiceParticipantRequest {
                chat_service_sid: "CH0123456789abcdef0123456789abcdef".into(),
                ..base()
            },
            vec!["chat_service_sid"],
        ),
        (
            "chat_service_sid with a non-hex digit",
            CreateServiceParticipantRequest {
                chat_service_sid: "IS0123456789abcdef0123456789abcdeg".into(),
                ..base()
            },
            vec!["chat_service_sid"],
        ),
        (
            "empty conversation_sid",
            CreateServiceParticipantRequest {
                conversation_sid: String::new(),
                ..base()
            },
            vec!["conversation_sid"],
        ),
        (
            "conversation_sid with the wrong prefix",
            CreateServiceParticipantRequest {
                conversation_sid: "IS0123456789abcdef0123456789abcdef".into(),
                ..base()
            },
            vec!["conversation_sid"],
        ),
        (
            "conversation_sid too long",
            CreateServiceParticipantRequest {
                conversation_sid: "CH0123456789abcdef0123456789abcdef0".into(),
                ..base()
            },
            vec!["conversation_sid"],
        ),
        (
            "role_sid malformed",
            CreateServiceParticipantRequest {
                role_sid: "RL123".into(),
                ..base()
            },
            vec!["role_sid"],
        ),
        (
            "role_sid with the wrong prefix",
            CreateServiceParticipantRequest {
                role_sid: "MB0123456789abcdef0123456789abcdef".into(),
                ..base()
            },
            vec!["role_sid"],
        ),
        (
            "identity over 256 characters",
            CreateServiceParticipantRequest {
                identity: "i".repeat(257),
                ..base()
            },
            vec!["identity"],
        ),
        (
            "identity with a control character",
            CreateServiceParticipantRequest {
                identity: "alice\u{1b}[31m".into(),
                ..base()
            },
            vec!["identity"],
        ),
        (
            "attributes not JSON",
            CreateServiceParticipantRequest {
                attributes: "{not json".into(),
                ..base()
            },
            vec!["attributes"],
        ),
        (
            "attributes with trailing garbage",
            CreateServiceParticipantRequest {
                attributes: r#"{"a":1} x"#.into(),
                ..base()
            },
            vec!["attributes"],
        ),
        (
            "attributes over 16 KiB",
            CreateServiceParticipantRequest {
                attributes: format!(r#"{{"a":"{}"}}"#, "x".repeat(16 * 1024)),
                ..base()
            },
            vec!["attributes"],
        ),
        (
            "binding address without proxy_address",
            binding_only("+15550000001", ""),
            vec!["messaging_binding.proxy_address"],
        ),
        (
            "binding proxy_address without address and no identity",
            binding_only("", "+18005550100"),
            vec!["messaging_binding.address", "identity"],
        ),
        (
            "binding proxy_address without address, with identity",
            CreateServiceParticipantRequest {
                messaging_binding: Some(MessagingBinding {
                    proxy_address: "+18005550100".into(),
                    ..Default::default()
                }),
                ..base()
            },
            vec!["messaging_binding.address"],
        ),
        (
            "binding address together with identity",
            CreateServiceParticipantRequest {
                messaging_binding: binding("+15550000001", "+18005550100"),
                ..base()
            },
            vec!["identity"],
        ),
        (
            "projected_address without identity",
            CreateServiceParticipantRequest {
                identity: String::new(),
                messaging_binding: Some(MessagingBinding {
                    address: "+15550000001".into(),
                    proxy_address: "+18005550100".into(),
                    projected_address: "+18005550199".into(),
                    ..Default::default()
                }),
                ..base()
            },
            vec!["messaging_binding.projected_address"],
        ),
        (
            "only projected_address",
            CreateServiceParticipantRequest {
                identity: String::new(),
                messaging_binding: Some(MessagingBinding {
                    projected_address: "+18005550199".into(),
                    ..Default::default()
                }),
                ..base()
            },
            vec!["messaging_binding.projected_address", "identity"],
        ),
        (
            "projected_address not E.164",
            CreateServiceParticipantRequest {
                messaging_binding: Some(MessagingBinding {
                    projected_address: "whatsapp:+18005550199".into(),
                    ..Default::default()
                }),
                ..base()
            },
            vec!["messaging_binding.projected_address"],
        ),
        (
            "neither identity nor binding",
            CreateServiceParticipantRequest {
                identity: String::new(),
                ..base()
            },
            vec!["identity"],
        ),
        (
            "neither identity nor binding, empty binding message",
            CreateServiceParticipantRequest {
                identity: String::new(),
                messaging_binding: Some(MessagingBinding::default()),
                ..base()
            },
            vec!["identity"],
        ),
        (
            "binding address not a number",
            binding_only("555-0100", "+18005550100"),
            vec!["messaging_binding.address"],
        ),
        (
            "binding proxy_address not a number",
            binding_only("+15550000001", "twilio"),
            vec!["messaging_binding.proxy_address"],
        ),
        (
            "date_created nanos above range",
            CreateServiceParticipantRequest {
                date_created: ts(1_600_000_000, 1_000_000_000),
                ..base()
            },
            vec!["date_created"],
        ),
        (
            "date_created negative nanos",
            CreateServiceParticipantRequest {
                date_created: ts(1_600_000_000, -1),
                ..base()
            },
            vec!["date_created"],
        ),
        (
            "date_created before 1970",
            CreateServiceParticipantRequest {
                date_created: ts(-1, 0),
                ..base()
            },
            vec!["date_created"],
        ),
        (
            "date_updated after 9999",
            CreateServiceParticipantRequest {
                date_updated: ts(253_402_300_800, 0),
                ..base()
            },
            vec!["date_updated"],
        ),
        (
            "date_updated absurdly far",
            CreateServiceParticipantRequest {
                date_updated: ts(i64::MAX, 0),
                ..base()
            },
            vec!["date_updated"],
        ),
        (
            "idempotency_key with a space",
            CreateServiceParticipantRequest {
                idempotency_key: "a b".into(),
                ..base()
            },
            vec!["idempotency_key"],
        ),
        (
            "several bad fields at once",
            CreateServiceParticipantRequest {
                chat_service_sid: "nope".into(),
                conversation_sid: String::new(),
                identity: String::new(),
                attributes: "[".into(),
                messaging_binding: Some(MessagingBinding {
                    address: String::new(),
                    proxy_address: "+18005550100".into(),
                    projected_address: "x".into(),
                    ..Default::default()
                }),
                role_sid: "RL".into(),
                date_created: ts(0, -5),
                date_updated: ts(0, 2_000_000_000),
                webhook_enabled: false,
                idempotency_key: "tab\tkey".into(),
                ..Default::default()
            },
            vec![
                "chat_service_sid",
                "conversation_sid",
                "role_sid",
                "attributes",
                "idempotency_key",
                "date_created",
                "date_updated",
                "messaging_binding.address",
                "messaging_binding.projected_address",
                "identity",
            ],
        ),
    ];

    for (case, request, expected) in cases {
        let result = app.create_v1(request).await;
        assert_bad_request(result, &expected, case);
    }
}

#[tokio::test]
async fn valid_service_participant_requests_at_the_limits_are_accepted() {
    let app = spawn_app().await;
    let exactly_16_kib = {
        let overhead = r#"{"a":""}"#.len();
        format!(r#"{{"a":"{}"}}"#, "x".repeat(16 * 1024 - overhead))
    };
    assert_eq!(exactly_16_kib.len(), 16 * 1024);
    let cases: Vec<(&str, CreateServiceParticipantRequest)> = vec![
        (
            "identity of 256 characters",
            CreateServiceParticipantRequest {
                identity: format!("{:0>256}", unique()),
                ..create_v1_request()
            },
        ),
        (
            "attributes of exactly 16 KiB",
            CreateServiceParticipantRequest {
                attributes: exactly_16_kib,
                ..create_v1_request()
            },
        ),
        (
            "attributes that are a JSON array",
            CreateServiceParticipantRequest {
                attributes: "[1, 2, 3]".into(),
                ..create_v1_request()
            },
        ),
        (
            "upper-case hex sids",
            CreateServiceParticipantRequest {
                chat_service_sid: sid("IS").to_ascii_uppercase(),
                conversation_sid: sid("CH").to_ascii_uppercase(),
                role_sid: "RL0123456789ABCDEF0123456789ABCDEF".into(),
                ..create_v1_request()
            },
        ),
        (
            "date at the epoch",
            CreateServiceParticipantRequest {
                date_created: Some(Timestamp {
                    seconds: 0,
                    nanos: 0,
                }),
                date_updated: Some(Timestamp {
                    seconds: 0,
                    nanos: 999_999_999,
                }),
                ..create_v1_request()
            },
        ),
    ];
    for (case, request) in cases {
        let created = app
            .create_v1(request.clone())
            .await
            .unwrap_or_else(|e| panic!("{case}: rejected: {e:?}"));
        assert_eq!(created.identity, request.identity, "{case}");
        if !request.attributes.is_empty() {
            assert_eq!(created.attributes, request.attributes, "{case}");
        }
        if request.date_created.is_some() {
            assert_eq!(created.date_created, request.date_created, "{case}");
            assert_eq!(created.date_updated, request.date_updated, "{case}");
        }
        let fetched = app
            .fetch_v1(
                &request.chat_service_sid,
                &request.conversation_sid,
                &created.sid,
            )
            .await
            .unwrap();
        assert_eq!(fetched, created, "{case}");
    }
}

#[tokio::test]
async fn invalid_fetch_participant_requests_report_exactly_the_bad_fields() {
    let app = spawn_app().await;
    let cases: Vec<(&str, FetchParticipantRequest, Vec<&str>)> = vec![
        (
            "both empty",
            FetchParticipantRequest::default(),
            vec!["conversation_id", "participant_id"],
        ),
        (
            "empty participant_id",
            FetchParticipantRequest {
                conversation_id: conversation_id(),
                participant_id: String::new(),
            },
            vec!["participant_id"],
        ),
        (
            "participant_id with a slash",
            FetchParticipantRequest {
                conversation_id: conversation_id(),
                participant_id: "conv_participant_/x".into(),
            },
            vec!["participant_id"],
        ),
        (
            "participant_id over 128 characters",
            FetchParticipantRequest {
                conversation_id: conversation_id(),
                participant_id: "p".repeat(129),
            },
            vec!["participant_id"],
        ),
        (
            "conversation_id with a question mark",
            FetchParticipantRequest {
                conversation_id: "conv?x=1".into(),
                participant_id: "conv_participant_01h2xcejqtf2nbrexx3vqjhp41".into(),
            },
            vec!["conversation_id"],
        ),
    ];
    for (case, request, expected) in cases {
        let result = app.client.clone().fetch_participant(request).await;
        assert_bad_request(result, &expected, case);
    }
}

#[tokio::test]
async fn invalid_fetch_service_participant_requests_report_exactly_the_bad_fields() {
    let app = spawn_app().await;
    let good = || FetchServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        sid: "MB0123456789abcdef0123456789abcdef".into(),
    };
    let cases: Vec<(&str, FetchServiceParticipantRequest, Vec<&str>)> = vec![
        (
            "all empty",
            FetchServiceParticipantRequest::default(),
            vec!["chat_service_sid", "conversation_sid", "sid"],
        ),
        (
            "bad chat_service_sid",
            FetchServiceParticipantRequest {
                chat_service_sid: "IS1".into(),
                ..good()
            },
            vec!["chat_service_sid"],
        ),
        (
            "bad conversation_sid",
            FetchServiceParticipantRequest {
                conversation_sid: "conv/1".into(),
                ..good()
            },
            vec!["conversation_sid"],
        ),
        (
            "empty sid",
            FetchServiceParticipantRequest {
                sid: String::new(),
                ..good()
            },
            vec!["sid"],
        ),
        (
            "identity over 256 characters",
            FetchServiceParticipantRequest {
                sid: "i".repeat(257),
                ..good()
            },
            vec!["sid"],
        ),
        (
            "identity with a control character",
            FetchServiceParticipantRequest {
                sid: "bad\u{0}identity".into(),
                ..good()
            },
            vec!["sid"],
        ),
    ];
    for (case, request, expected) in cases {
        let result = app.client.clone().fetch_service_participant(request).await;
        assert_bad_request(result, &expected, case);
    }
}

#[tokio::test]
async fn invalid_requests_create_nothing() {
    // A request rejected for one bad field must not reserve its valid addresses.
    let app = spawn_app().await;
    let good = create_request();
    let rejected = CreateParticipantRequest {
        name: "n".repeat(1000),
        ..good.clone()
    };
    assert_bad_request(app.create(rejected).await, &["name"], "long name");

    app.create(good)
        .await
        .expect("the addresses of the rejected request are still free");
}

#[tokio::test]
async fn messaging_binding_addresses_take_the_documented_formats_and_nothing_else() {
    // participants.proto: MessagingBinding.address is an E.164 number, whatsapp:+E.164,
    // or rcs: and a sender id or E.164 number (Twilio's RCS senders, as in the spec's
    // createRcsWithFallback example).
    let app = spawn_app().await;
    for (i, value) in [
        "rcs:brand_acme_agent",
        "rcs:+15551112222",
        "whatsapp:+15551112223",
        "+15551112224",
    ]
    .into_iter()
    .enumerate()
    {
        let request = CreateServiceParticipantRequest {
            identity: String::new(),
            messaging_binding: binding(value, &format!("+1800555010{i}")),
            ..create_v1_request()
        };
        app.create_v1(request)
            .await
            .unwrap_or_else(|s| panic!("{value} is a documented binding address: {s:?}"));
    }
    for value in [
        "sms:+15551112222",
        "rcs:",
        "whatsapp:15551112222",
        "15551112222",
        "user@example.com",
    ] {
        let request = CreateServiceParticipantRequest {
            identity: String::new(),
            messaging_binding: binding(value, "+18005550100"),
            ..create_v1_request()
        };
        assert_bad_request(
            app.create_v1(request).await,
            &["messaging_binding.address"],
            value,
        );
    }
}
