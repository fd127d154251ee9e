//! The facade against the Prism mock server serving Twilio's official OpenAPI specs
//! (`../shared/specs/twilio_conversations_v2.json` and `_v1.json`): every request the
//! RPCs send (the lifecycle's List, Update and Delete included) is valid against the spec (Prism answers a request that is not with
//! 400/422 and its violations, and one without credentials with 401), and Prism's
//! example answers parse into our messages, field for field.
//!
//! Prism answers every request with the spec's first example, whatever the request named,
//! and the facade checks that an answer is the participant asked for (its conversation,
//! the participant fetched). So the requests here name the examples' own conversation,
//! chat service and participant; a fetch by identity, which Prism answers with the
//! by-sid example (identity null), is refused as not the participant fetched.
//!
//! Prism is installed by `scripts/install-tools` into `tools/node_modules`; these tests
//! fail, never skip, when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use participants_facade::proto::{
    self, Address, Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
    ParticipantType, WebhookMode,
};
use serde_json::{Value, json};
use tonic::Code;

use super::*;

/// The directory of Twilio's specs: `shared/specs` beside the checkout.
fn specs_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/specs");
    assert!(
        dir.join("twilio_conversations_v2.json").is_file()
            && dir.join("twilio_conversations_v1.json").is_file(),
        "Twilio's OpenAPI specs are missing: expected twilio_conversations_v1.json and \
         twilio_conversations_v2.json in {} (shared/ beside the checkout)",
        dir.display()
    );
    dir
}

/// The Prism CLI installed by scripts/install-tools.
fn prism_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/prism");
    assert!(
        bin.exists(),
        "the Prism mock server is not installed ({} is missing): run scripts/install-tools",
        bin.display()
    );
    bin
}

/// A Prism mock server serving one spec on 127.0.0.1; killed on drop.
struct Prism {
    child: Child,
    url: String,
    log: PathBuf,
    /// Holds the log.
    _dir: Option<tempfile::TempDir>,
}

impl Prism {
    /// Starts Prism on `spec` and waits (bounded) until it listens.
    async fn start(spec: &str) -> Prism {
        let spec = specs_dir().join(spec);
        let bin = prism_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        // The port is chosen before Prism binds it; if another process takes it in
        // between, Prism exits at once and another port is tried.
        for attempt in 0..3 {
            let port = free_port();
            let log = dir.path().join(format!("prism-{attempt}.log"));
            let out = std::fs::File::create(&log).expect("prism log");
            let child = Command::new(&bin)
                .arg("mock")
                .arg(&spec)
                .args(["-p", &port.to_string(), "-h", "127.0.0.1"])
                .stdin(Stdio::null())
                .stdout(Stdio::from(out.try_clone().expect("log handle")))
                .stderr(Stdio::from(out))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run {} ({e}): run scripts/install-tools",
                        bin.display()
                    )
                });
            let mut prism = Prism {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
                _dir: None,
            };
            if prism.wait_until_listening(port).await {
                prism._dir = Some(dir);
                return prism;
            }
            eprintln!("port {port} was taken; retrying");
        }
        panic!("could not start Prism on a free port in 3 attempts")
    }

    /// Whether Prism came up (bounded by 60 s); `false` when its port was taken.
    async fn wait_until_listening(&mut self, port: u16) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let log = self.log();
                if log.contains("EADDRINUSE") {
                    return false;
                }
                panic!("Prism exited with {status} before listening:\n{log}");
            }
            if self.log().contains("Prism is listening")
                && tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "Prism did not listen within 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What Prism's validator said against requests, for failure messages.
    fn violations(&self) -> String {
        self.log()
            .lines()
            .filter(|l| l.contains("[VALIDATOR]") && !l.contains("success"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits (bounded) until Prism has logged `passed` requests that passed validation and
    /// `failed` that did not, and asserts exactly those counts.
    async fn assert_validated(&self, passed: usize, failed: usize) {
        let count = |log: &str| {
            (
                log.matches("The request passed the validation rules")
                    .count(),
                log.matches("Request did not pass the validation rules")
                    .count(),
            )
        };
        eventually(Duration::from_secs(5), || async {
            count(&self.log()) == (passed, failed)
        })
        .await;
        assert_eq!(
            count(&self.log()),
            (passed, failed),
            "(passed, failed) validation as logged by Prism; its complaints:\n{}",
            self.violations()
        );
    }

    /// A request straight to Prism (not through the facade), with or without credentials.
    async fn direct(
        &self,
        method: reqwest::Method,
        path: &str,
        authenticated: bool,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> (u16, Value) {
        let request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .timeout(WAIT);
        let request = if authenticated {
            request.basic_auth(API_KEY, Some(API_SECRET))
        } else {
            request
        };
        let response = build(request).send().await.expect("Prism answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unwraps an RPC result, or fails with what Prism's validator said.
fn accepted<T>(prism: &Prism, case: &str, result: Result<T, tonic::Status>) -> T {
    result.unwrap_or_else(|status| {
        panic!(
            "{case}: Prism did not accept the facade's request: {status:?}\nPrism's validator:\n{}",
            prism.violations()
        )
    })
}

/// A spec timestamp as (seconds, nanos).
fn instant(value: &Value) -> Option<(i64, i32)> {
    let t = chrono::DateTime::parse_from_rfc3339(value.as_str()?).ok()?;
    Some((t.timestamp(), t.timestamp_subsec_nanos() as i32))
}

fn timestamp_pair(t: &Option<prost_types::Timestamp>) -> Option<(i64, i32)> {
    t.as_ref().map(|t| (t.seconds, t.nanos))
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// Asserts the facade's v2 participant is Prism's example, field for field.
fn assert_v2_is(p: &proto::Participant, example: &Value) {
    assert_eq!(p.id, text(&example["id"]));
    assert_eq!(p.conversation_id, text(&example["conversationId"]));
    assert_eq!(p.account_id, text(&example["accountId"]));
    assert_eq!(p.name, text(&example["name"]));
    let kind =
        ParticipantType::from_str_name(&format!("PARTICIPANT_TYPE_{}", text(&example["type"])))
            .map_or(0, i32::from);
    assert_eq!(p.r#type, kind, "type {}", example["type"]);
    assert_eq!(p.profile_id, text(&example["profileId"]));
    let addresses: Vec<Address> = example["addresses"]
        .as_array()
        .expect("the example has addresses")
        .iter()
        .map(|a| Address {
            channel: Channel::from_str_name(&format!("CHANNEL_{}", text(&a["channel"])))
                .expect("a known channel")
                .into(),
            address: text(&a["address"]).to_owned(),
            channel_id: text(&a["channelId"]).to_owned(),
            ..Default::default()
        })
        .collect();
    assert!(!addresses.is_empty());
    assert_eq!(p.addresses, addresses);
    assert_eq!(
        timestamp_pair(&p.created_at),
        instant(&example["createdAt"])
    );
    assert_eq!(
        timestamp_pair(&p.updated_at),
        instant(&example["updatedAt"])
    );
    assert!(p.created_at.is_some(), "the example has createdAt");
}

/// Asserts the facade's v1 participant is Prism's example, field for field.
fn assert_v1_is(p: &proto::ServiceParticipant, example: &Value) {
    assert_eq!(p.sid, text(&example["sid"]));
    assert_eq!(p.account_sid, text(&example["account_sid"]));
    assert_eq!(p.chat_service_sid, text(&example["chat_service_sid"]));
    assert_eq!(p.conversation_sid, text(&example["conversation_sid"]));
    assert_eq!(p.identity, text(&example["identity"]));
    assert_eq!(p.attributes, text(&example["attributes"]));
    let binding = &example["messaging_binding"];
    if binding.is_null() {
        assert_eq!(p.messaging_binding, None);
    } else {
        assert_eq!(
            p.messaging_binding,
            Some(proto::MessagingBinding {
                address: text(&binding["address"]).to_owned(),
                proxy_address: text(&binding["proxy_address"]).to_owned(),
                projected_address: text(&binding["projected_address"]).to_owned(),
                r#type: text(&binding["type"]).to_owned(),
                ..Default::default()
            })
        );
    }
    assert_eq!(p.role_sid, text(&example["role_sid"]));
    assert_eq!(
        timestamp_pair(&p.date_created),
        instant(&example["date_created"])
    );
    assert_eq!(
        timestamp_pair(&p.date_updated),
        instant(&example["date_updated"])
    );
    assert!(p.date_created.is_some(), "the example has date_created");
    assert_eq!(
        p.last_read_message_index,
        example["last_read_message_index"].as_i64()
    );
    assert_eq!(p.last_read_timestamp, text(&example["last_read_timestamp"]));
}

#[tokio::test]
async fn prism_accepts_every_v2_request_the_facade_sends_and_its_examples_parse() {
    // Arrange
    let prism = Prism::start("twilio_conversations_v2.json").await;
    let app = spawn_twilio_app(&prism.url, |_| {}).await;
    let number = phone();
    let (status, create_example) = prism
        .direct(
            reqwest::Method::POST,
            &v2_path(&conversation_id()),
            true,
            |r| r.json(&json!({"addresses": [{"channel": "SMS", "address": number}]})),
        )
        .await;
    assert_eq!(status, 201, "{create_example}");
    // The example's conversation, so that its answers are answers to these requests.
    let conversation = text(&create_example["conversationId"]).to_owned();
    let example_id = "conv_participant_00000000000000000000000001";
    let mut creates = vec![(
        "minimal: one SMS address, type unspecified",
        CreateParticipantRequest {
            conversation_id: conversation.clone(),
            name: String::new(),
            r#type: 0,
            profile_id: String::new(),
            addresses: vec![address(Channel::Sms, &number)],
            idempotency_key: String::new(),
        },
    )];
    creates.push((
        "every field, every channel the spec knows, an idempotency key",
        CreateParticipantRequest {
            conversation_id: conversation.clone(),
            name: "Dana Scully".into(),
            r#type: ParticipantType::HumanAgent.into(),
            profile_id: "mem_profile_0042".into(),
            addresses: vec![
                address(Channel::Voice, &number),
                Address {
                    channel: Channel::Whatsapp.into(),
                    address: format!("whatsapp:{number}"),
                    channel_id: "XE0123".into(),
                    ..Default::default()
                },
                address(Channel::Rcs, "rcs:brand_acme_agent"),
                address(Channel::Chat, "dana-chat"),
                address(Channel::Video, "dana-video"),
            ],
            idempotency_key: format!("key-{}", unique()),
        },
    ));
    for kind in [
        ParticipantType::Customer,
        ParticipantType::AiAgent,
        ParticipantType::Agent,
        ParticipantType::Unknown,
    ] {
        creates.push((
            kind.as_str_name(),
            CreateParticipantRequest {
                conversation_id: conversation.clone(),
                r#type: kind.into(),
                ..create_request()
            },
        ));
    }
    let fetch_path = v2_fetch_path(&conversation, example_id);
    let (status, fetch_example) = prism
        .direct(reqwest::Method::GET, &fetch_path, true, |r| r)
        .await;
    assert_eq!(status, 200, "{fetch_example}");

    // Act and assert: creates
    for (case, request) in &creates {
        let created = accepted(&prism, case, app.create(request.clone()).await);
        assert_v2_is(&created, &create_example);
    }

    // Act and assert: fetch
    let fetched = accepted(&prism, "fetch", app.fetch(&conversation, example_id).await);
    assert_v2_is(&fetched, &fetch_example);

    // Prism does check: an address on a channel the spec's request enum lacks (EMAIL) is
    // refused (400, the spec's BadRequest), and so is a request without credentials.
    let email = app
        .create(CreateParticipantRequest {
            conversation_id: conversation.clone(),
            addresses: vec![address(Channel::Email, "dana@example.com")],
            ..create_request()
        })
        .await;
    let status = expect_code(email, Code::InvalidArgument);
    assert_eq!(
        twilio_error_info(&status)
            .metadata
            .get("http_status")
            .map(String::as_str),
        Some("400"),
        "{status:?}"
    );
    let (status, body) = prism
        .direct(reqwest::Method::GET, &fetch_path, false, |r| r)
        .await;
    assert_eq!(status, 401, "{body}");
    prism.assert_validated(2 + creates.len() + 1, 2).await;
}

#[tokio::test]
async fn prism_accepts_every_v1_request_the_facade_sends_and_its_examples_parse() {
    // Arrange: the path parameters must match the spec's patterns (IS + 32 hex).
    let prism = Prism::start("twilio_conversations_v1.json").await;
    let app = spawn_twilio_app(&prism.url, |_| {}).await;
    let (status, create_example) = prism
        .direct(
            reqwest::Method::POST,
            &v1_path(&sid("IS"), &sid("CH")),
            true,
            |r| r.form(&[("Identity", "dana")]),
        )
        .await;
    assert_eq!(status, 201, "{create_example}");
    // The example's service, conversation and participant, so that its answers are
    // answers to these requests.
    let service = text(&create_example["chat_service_sid"]).to_owned();
    let conversation = text(&create_example["conversation_sid"]).to_owned();
    let fetch_sid = text(&create_example["sid"]).to_owned();
    let base = CreateServiceParticipantRequest {
        chat_service_sid: service.clone(),
        conversation_sid: conversation.clone(),
        ..create_v1_request()
    };
    let creates = [
        ("chat participant, identity only", base.clone()),
        (
            "chat participant, every field, webhooks on, an idempotency key",
            CreateServiceParticipantRequest {
                identity: "dana@example.com".into(),
                attributes: r#"{"role":"agent","tags":["a&b","ü"]}"#.into(),
                messaging_binding: Some(proto::MessagingBinding {
                    address: String::new(),
                    proxy_address: String::new(),
                    projected_address: "+15017122661".into(),
                    ..Default::default()
                }),
                role_sid: sid("RL"),
                date_created: Some(prost_types::Timestamp {
                    seconds: 1_704_164_645,
                    nanos: 0,
                }),
                date_updated: Some(prost_types::Timestamp {
                    seconds: 1_704_164_646,
                    nanos: 250_000_000,
                }),
                webhook_enabled: true,
                idempotency_key: format!("key-{}", unique()),
                ..base.clone()
            },
        ),
        (
            "SMS participant, webhooks off",
            CreateServiceParticipantRequest {
                identity: String::new(),
                messaging_binding: binding("+15558675310", "+15017122661"),
                webhook_enabled: false,
                ..base.clone()
            },
        ),
        (
            "RCS participant with an SMS fallback sender",
            CreateServiceParticipantRequest {
                identity: String::new(),
                messaging_binding: Some(proto::MessagingBinding {
                    address: "rcs:+15558675310".into(),
                    proxy_address: "rcs:+15017122661".into(),
                    proxy_address_fallback: "+15017122661".into(),
                    ..Default::default()
                }),
                ..base.clone()
            },
        ),
        (
            "WhatsApp participant, webhooks on",
            CreateServiceParticipantRequest {
                identity: String::new(),
                messaging_binding: binding("whatsapp:+15558675310", "whatsapp:+15017122661"),
                webhook_enabled: true,
                ..base.clone()
            },
        ),
    ];
    let create_path = v1_path(&service, &conversation);
    let (status, fetch_example) = prism
        .direct(
            reqwest::Method::GET,
            &v1_fetch_path(&service, &conversation, &fetch_sid),
            true,
            |r| r,
        )
        .await;
    assert_eq!(status, 200, "{fetch_example}");

    // Act and assert: creates
    for (case, request) in &creates {
        let created = accepted(&prism, case, app.create_v1(request.clone()).await);
        assert_v1_is(&created, &create_example);
    }

    // Act and assert: fetch by sid, and by identity, which Prism answers with the by-sid
    // example (identity null): not the participant with that identity, so refused.
    let fetched = accepted(
        &prism,
        "fetch by sid",
        app.fetch_v1(&service, &conversation, &fetch_sid).await,
    );
    assert_v1_is(&fetched, &fetch_example);
    assert!(fetch_example["identity"].is_null(), "{fetch_example}");
    let by_identity = app
        .fetch_v1(&service, &conversation, "dana@example.com")
        .await;
    let status = expect_code(by_identity, Code::Internal);
    assert!(
        status.message().contains("identity: is not the identity"),
        "{status:?}"
    );
    assert!(!status.message().contains("dana"), "{status:?}");

    // Prism does check: a RoleSid off the spec's pattern is refused with 422, and a
    // request without credentials with 401.
    let (status, body) = prism
        .direct(reqwest::Method::POST, &create_path, true, |r| {
            r.form(&[("RoleSid", "RL123")])
        })
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = prism
        .direct(
            reqwest::Method::GET,
            &v1_fetch_path(&service, &conversation, &fetch_sid),
            false,
            |r| r,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    prism.assert_validated(2 + creates.len() + 2, 2).await;
}

#[tokio::test]
async fn prism_accepts_every_v2_lifecycle_request_the_facade_sends() {
    // Arrange: the examples' conversation and participant.
    let prism = Prism::start("twilio_conversations_v2.json").await;
    let app = spawn_twilio_app(&prism.url, |_| {}).await;
    let (status, example) = prism
        .direct(
            reqwest::Method::POST,
            &v2_path(&conversation_id()),
            true,
            |r| r.json(&json!({"addresses": [{"channel": "SMS", "address": phone()}]})),
        )
        .await;
    assert_eq!(status, 201, "{example}");
    let conversation = text(&example["conversationId"]).to_owned();
    let id = text(&example["id"]).to_owned();
    let mut client = app.client.clone();

    // Act and assert: a list, and its next page when Prism's example has one.
    let page = accepted(
        &prism,
        "list",
        client
            .list_participants(proto::ListParticipantsRequest {
                conversation_id: conversation.clone(),
                page_size: 2,
                page_token: String::new(),
            })
            .await,
    )
    .into_inner();
    assert!(!page.participants.is_empty());
    // The list itself; then each request below adds to it.
    let mut sent = 1;
    if !page.next_page_token.is_empty() {
        accepted(
            &prism,
            "list, next page",
            client
                .list_participants(proto::ListParticipantsRequest {
                    conversation_id: conversation.clone(),
                    page_size: 2,
                    page_token: page.next_page_token,
                })
                .await,
        );
        sent += 1;
    }

    // Updates: a GET and a PUT of the whole participant each.
    let updates = [
        (
            "name only",
            proto::Participant {
                name: "Dana S.".into(),
                ..Default::default()
            },
            vec!["name"],
        ),
        (
            "every field",
            proto::Participant {
                name: "Dana Scully".into(),
                r#type: ParticipantType::HumanAgent.into(),
                profile_id: "mem_profile_0042".into(),
                addresses: vec![
                    address(Channel::Sms, &phone()),
                    Address {
                        channel: Channel::Whatsapp.into(),
                        address: format!("whatsapp:{}", phone()),
                        channel_id: "XE0123".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            vec!["name", "type", "profile_id", "addresses"],
        ),
        (
            "cleared name and profile",
            proto::Participant::default(),
            vec!["name", "profile_id"],
        ),
    ];
    for (case, values, paths) in updates {
        let updated = accepted(
            &prism,
            case,
            client
                .update_participant(proto::UpdateParticipantRequest {
                    participant: Some(proto::Participant {
                        conversation_id: conversation.clone(),
                        id: id.clone(),
                        ..values
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: paths.into_iter().map(str::to_owned).collect(),
                    }),
                })
                .await,
        );
        assert_eq!(updated.into_inner().id, id);
        sent += 2;
    }
    prism.assert_validated(1 + sent, 0).await;
}

#[tokio::test]
async fn prism_accepts_every_v1_lifecycle_request_the_facade_sends() {
    // Arrange: the examples' service, conversation and participant.
    let prism = Prism::start("twilio_conversations_v1.json").await;
    let app = spawn_twilio_app(&prism.url, |_| {}).await;
    let (status, example) = prism
        .direct(
            reqwest::Method::POST,
            &v1_path(&sid("IS"), &sid("CH")),
            true,
            |r| r.form(&[("Identity", "dana")]),
        )
        .await;
    assert_eq!(status, 201, "{example}");
    let service = text(&example["chat_service_sid"]).to_owned();
    let conversation = text(&example["conversation_sid"]).to_owned();
    let mb = text(&example["sid"]).to_owned();
    let mut client = app.client.clone();

    // Act and assert: list.
    let page = accepted(
        &prism,
        "list",
        client
            .list_service_participants(proto::ListServiceParticipantsRequest {
                chat_service_sid: service.clone(),
                conversation_sid: conversation.clone(),
                page_size: 100,
                page_token: String::new(),
            })
            .await,
    )
    .into_inner();
    assert!(!page.participants.is_empty());
    assert_eq!(
        page.participants[0]
            .messaging_binding
            .as_ref()
            .map(|b| b.r#type.as_str()),
        Some("sms"),
        "Twilio's binding type passes through"
    );

    // Updates: only the changed fields, in the spec's names.
    let updates = [
        (
            "every field, webhooks on",
            proto::ServiceParticipant {
                identity: "dana".into(),
                attributes: r#"{"role":"driver"}"#.into(),
                role_sid: sid("RL"),
                messaging_binding: Some(proto::MessagingBinding {
                    projected_address: "+15017122661".into(),
                    ..Default::default()
                }),
                date_created: Some(prost_types::Timestamp {
                    seconds: 1_450_304_317,
                    nanos: 0,
                }),
                date_updated: Some(prost_types::Timestamp {
                    seconds: 1_450_304_318,
                    nanos: 0,
                }),
                last_read_message_index: Some(3),
                last_read_timestamp: "2016-03-24T21:05:50Z".into(),
                ..Default::default()
            },
            None,
            WebhookMode::Enabled,
        ),
        (
            "cleared proxy and projected addresses (null), webhooks off",
            proto::ServiceParticipant::default(),
            Some(vec![
                "messaging_binding.proxy_address",
                "messaging_binding.projected_address",
            ]),
            WebhookMode::Disabled,
        ),
        (
            "a new proxy address",
            proto::ServiceParticipant {
                messaging_binding: Some(proto::MessagingBinding {
                    proxy_address: "+15017122662".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
            WebhookMode::Unspecified,
        ),
    ];
    let sent_updates = updates.len();
    for (case, values, paths, mode) in updates {
        let updated = accepted(
            &prism,
            case,
            client
                .update_service_participant(proto::UpdateServiceParticipantRequest {
                    service_participant: Some(proto::ServiceParticipant {
                        chat_service_sid: service.clone(),
                        conversation_sid: conversation.clone(),
                        sid: mb.clone(),
                        ..values
                    }),
                    update_mask: paths.map(|p| prost_types::FieldMask {
                        paths: p.into_iter().map(str::to_owned).collect(),
                    }),
                    webhook_enabled: false,
                    webhook_mode: mode.into(),
                })
                .await,
        );
        assert_eq!(updated.into_inner().sid, mb);
    }

    // Delete, with and without the webhook header.
    for mode in [WebhookMode::Enabled, WebhookMode::Unspecified] {
        accepted(
            &prism,
            "delete",
            client
                .delete_service_participant(proto::DeleteServiceParticipantRequest {
                    chat_service_sid: service.clone(),
                    conversation_sid: conversation.clone(),
                    sid: mb.clone(),
                    webhook_enabled: false,
                    webhook_mode: mode.into(),
                })
                .await,
        );
    }
    prism.assert_validated(1 + 1 + sent_updates + 2, 0).await;
}
