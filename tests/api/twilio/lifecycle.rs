//! The lifecycle RPCs in twilio mode (List, Update and Delete): the exact upstream
//! requests, paging through several upstream pages with the facade's own tokens, tokens
//! of other lists and garbage refused, Twilio's v1 next-page link never followed to
//! another host or list, the v2 update as a GET and a PUT of the whole participant,
//! status mapping, retries per operation (a delete whose earlier attempt may have landed
//! is done when the repeat finds nothing), answer checks, and the fidelity fields
//! (binding type, proxy address fallback, unknown channels, unique names).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use participants_facade::proto::{
    self, Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
    DeleteServiceParticipantRequest, ListParticipantsRequest, ListServiceParticipantsRequest,
    UpdateParticipantRequest, UpdateServiceParticipantRequest, WebhookMode,
};
use serde_json::{Value, json};
use tonic::Code;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, ResponseTemplate};

use crate::fixtures::*;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn v2_list_path(conversation: &str) -> String {
    v2_path(conversation)
}

/// A v2 participant of `conversation` as Twilio answers it.
fn v2_participant(conversation: &str) -> Value {
    let request = CreateParticipantRequest {
        conversation_id: conversation.to_owned(),
        ..create_request()
    };
    v2_answer(&participant_id(), &request)
}

/// A v1 chat participant of `service`/`conversation` as Twilio answers it.
fn v1_participant(service: &str, conversation: &str) -> Value {
    let request = CreateServiceParticipantRequest {
        chat_service_sid: service.to_owned(),
        conversation_sid: conversation.to_owned(),
        ..create_v1_request()
    };
    v1_answer(&sid("MB"), &request)
}

fn v2_page(participants: Vec<Value>, next: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "participants": participants,
        "meta": {"key": "participants", "pageSize": 2, "previousToken": null, "nextToken": next},
    }))
}

fn v1_page(participants: Vec<Value>, url: &str, next: Option<String>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "participants": participants,
        "meta": {
            "page": 0, "page_size": 2, "first_page_url": url, "previous_page_url": null,
            "url": url, "next_page_url": next, "key": "participants",
        },
    }))
}

async fn invalid_answers(app: &TestApp, operation: &str, reason: &str) -> f64 {
    sample(
        &scrape(app.addr).await,
        "upstream_invalid_answers_total",
        &[("operation", operation), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// A TCP listener on another loopback host (127.0.0.2) that counts connections: the
/// host a hostile next-page link names.
async fn foreign_host() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (format!("http://{addr}"), seen)
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

// ---------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_v2_list_pages_through_twilio_pages_with_the_facades_tokens() {
    // Arrange
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let conversation = conversation_id();
    let route = v2_list_path(&conversation);
    let first = vec![v2_participant(&conversation), v2_participant(&conversation)];
    let second = vec![v2_participant(&conversation)];
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .and(query_param("pageSize", "2"))
        .and(query_param_is_missing("pageToken"))
        .respond_with(v2_page(first.clone(), Some("NT-1")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .and(query_param("pageSize", "2"))
        .and(query_param("pageToken", "NT-1"))
        .respond_with(v2_page(second.clone(), None))
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let page1 = app
        .client
        .clone()
        .list_participants(ListParticipantsRequest {
            conversation_id: conversation.clone(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .expect("page 1")
        .into_inner();
    let page2 = app
        .client
        .clone()
        .list_participants(ListParticipantsRequest {
            conversation_id: conversation.clone(),
            page_size: 2,
            page_token: page1.next_page_token.clone(),
        })
        .await
        .expect("page 2")
        .into_inner();

    // Assert
    let ids = |p: &[proto::Participant]| p.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
    let want = |v: &[Value]| {
        v.iter()
            .map(|p| p["id"].as_str().expect("id").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&page1.participants), want(&first));
    assert_eq!(ids(&page2.participants), want(&second));
    assert!(!page1.next_page_token.is_empty());
    assert!(
        !page1.next_page_token.contains("NT-1"),
        "the token is the facade's own, not Twilio's"
    );
    assert_eq!(page2.next_page_token, "", "the last page");
    let requests = received_on(&server, "GET", &route).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].url.query(), Some("pageSize=2"));
    assert_eq!(requests[1].url.query(), Some("pageSize=2&pageToken=NT-1"));
    for r in &requests {
        assert_eq!(header(r, "authorization"), Some(authorization().as_str()));
        assert!(header(r, "x-twilio-webhook-enabled").is_none());
    }
}

#[tokio::test]
async fn a_v1_list_follows_twilios_next_page_on_the_configured_upstream() {
    // Arrange
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (service, conversation) = (sid("IS"), sid("CH"));
    let route = v1_path(&service, &conversation);
    let url = format!("{}{route}", server.uri());
    let next = format!("{url}?PageSize=2&Page=1&PageToken=PTMB123");
    let first = vec![
        v1_participant(&service, &conversation),
        v1_participant(&service, &conversation),
    ];
    let second = vec![v1_participant(&service, &conversation)];
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .and(query_param_is_missing("PageToken"))
        .respond_with(v1_page(first, &url, Some(next.clone())))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .and(query_param("PageToken", "PTMB123"))
        .respond_with(v1_page(second, &url, None))
        .expect(1)
        .mount(&server)
        .await;
    let list = |token: String| ListServiceParticipantsRequest {
        chat_service_sid: service.clone(),
        conversation_sid: conversation.clone(),
        page_size: 2,
        page_token: token,
    };

    // Act
    let page1 = app
        .client
        .clone()
        .list_service_participants(list(String::new()))
        .await
        .expect("page 1")
        .into_inner();
    let page2 = app
        .client
        .clone()
        .list_service_participants(list(page1.next_page_token.clone()))
        .await
        .expect("page 2")
        .into_inner();

    // Assert
    assert_eq!(page1.participants.len(), 2);
    assert_eq!(page2.participants.len(), 1);
    assert!(!page1.next_page_token.is_empty());
    assert_eq!(page2.next_page_token, "");
    let requests = received_on(&server, "GET", &route).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].url.query(), Some("PageSize=2"));
    assert_eq!(
        format!(
            "{}{}?{}",
            server.uri(),
            requests[1].url.path(),
            requests[1].url.query().unwrap_or_default()
        ),
        next,
        "Twilio's link, exactly"
    );
    let host = header(&requests[1], "host").expect("host");
    assert_eq!(
        format!("http://{host}"),
        server.uri(),
        "the configured upstream"
    );
}

#[tokio::test]
async fn a_token_of_another_list_or_garbage_is_invalid_argument_and_sends_nothing() {
    // Arrange: a real token of one v2 list.
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let conversation = conversation_id();
    Mock::given(method("GET"))
        .and(path(v2_list_path(&conversation)))
        .respond_with(v2_page(vec![v2_participant(&conversation)], Some("NT-1")))
        .expect(1)
        .mount(&server)
        .await;
    let token = app
        .client
        .clone()
        .list_participants(ListParticipantsRequest {
            conversation_id: conversation.clone(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("page 1")
        .into_inner()
        .next_page_token;
    let before = received_count(&server).await;

    // Act + Assert: on another v2 list, on a v1 list, and garbage.
    let other = app
        .client
        .clone()
        .list_participants(ListParticipantsRequest {
            conversation_id: conversation_id(),
            page_size: 1,
            page_token: token.clone(),
        })
        .await;
    assert_bad_request(other, &["page_token"], "another conversation's token");
    let v1 = app
        .client
        .clone()
        .list_service_participants(ListServiceParticipantsRequest {
            chat_service_sid: sid("IS"),
            conversation_sid: sid("CH"),
            page_size: 1,
            page_token: token,
        })
        .await;
    assert_bad_request(v1, &["page_token"], "a v2 token on a v1 list");
    for garbage in ["garbage", "eyJhcGkiOiJ2MiJ9", "bm90LWpzb24"] {
        let result = app
            .client
            .clone()
            .list_participants(ListParticipantsRequest {
                conversation_id: conversation.clone(),
                page_size: 1,
                page_token: garbage.to_owned(),
            })
            .await;
        assert_bad_request(result, &["page_token"], garbage);
    }
    assert_eq!(
        received_count(&server).await,
        before,
        "nothing went upstream"
    );
}

#[tokio::test]
async fn a_next_page_link_to_another_host_or_list_is_refused_and_never_followed() {
    // Arrange
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (foreign, connections) = foreign_host().await;
    let (service, conversation) = (sid("IS"), sid("CH"));
    let route = v1_path(&service, &conversation);
    let other_port = upstream().await;
    let links = [
        format!("{foreign}{route}?PageSize=1&Page=1&PageToken=PT1"),
        format!(
            "{}{route}?PageSize=1&Page=1&PageToken=PT1",
            other_port.uri()
        ),
        format!(
            "{}{}?PageSize=1&Page=1&PageToken=PT1",
            server.uri(),
            v1_path(&service, &sid("CH"))
        ),
        format!("{}/v1/Services?PageToken=PT1", server.uri()),
    ];
    let before = invalid_answers(&app, "ListServiceParticipants", "next_page").await;

    for (i, link) in links.iter().enumerate() {
        server.reset().await;
        Mock::given(method("GET"))
            .and(path(route.as_str()))
            .respond_with(v1_page(
                vec![v1_participant(&service, &conversation)],
                &format!("{}{route}", server.uri()),
                Some(link.clone()),
            ))
            .expect(1)
            .mount(&server)
            .await;

        // Act
        let result = app
            .client
            .clone()
            .list_service_participants(ListServiceParticipantsRequest {
                chat_service_sid: service.clone(),
                conversation_sid: conversation.clone(),
                page_size: 1,
                page_token: String::new(),
            })
            .await;

        // Assert
        let status = expect_code(result, Code::Internal);
        assert!(
            !status.message().contains("127.0.0.2") && !status.message().contains("PT1"),
            "link {i} not echoed: {status:?}"
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no request to 127.0.0.2"
    );
    assert_eq!(received_count(&other_port).await, 0, "nor to another port");
    let after = invalid_answers(&app, "ListServiceParticipants", "next_page").await;
    assert!(after - before >= links.len() as f64, "{before} -> {after}");
}

#[tokio::test]
async fn a_listed_participant_of_another_conversation_is_refused() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let conversation = conversation_id();
    Mock::given(method("GET"))
        .and(path(v2_list_path(&conversation)))
        .respond_with(v2_page(
            vec![
                v2_participant(&conversation),
                v2_participant(&conversation_id()),
            ],
            None,
        ))
        .expect(1)
        .mount(&server)
        .await;

    let result = app
        .client
        .clone()
        .list_participants(ListParticipantsRequest {
            conversation_id: conversation,
            page_size: 0,
            page_token: String::new(),
        })
        .await;

    let status = expect_code(result, Code::Internal);
    assert!(
        status.message().contains("participants[1].conversation_id"),
        "{status:?}"
    );
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests[0].url.query(), Some("pageSize=50"), "0 means 50");
}

#[tokio::test]
async fn lists_map_twilios_errors_and_retry_server_errors() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let conversation = conversation_id();
    let route = v2_list_path(&conversation);
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .respond_with(twilio_error(503, 20503, "Service Unavailable"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .respond_with(v2_page(vec![v2_participant(&conversation)], None))
        .mount(&server)
        .await;
    let list = |c: &str| ListParticipantsRequest {
        conversation_id: c.to_owned(),
        page_size: 0,
        page_token: String::new(),
    };

    let page = app
        .client
        .clone()
        .list_participants(list(&conversation))
        .await
        .expect("retried");
    assert_eq!(page.into_inner().participants.len(), 1);
    assert_eq!(received_on(&server, "GET", &route).await.len(), 2);

    let missing = conversation_id();
    Mock::given(method("GET"))
        .and(path(v2_list_path(&missing)))
        .respond_with(twilio_error(404, 20404, "Not found"))
        .expect(1)
        .mount(&server)
        .await;
    expect_code(
        app.client.clone().list_participants(list(&missing)).await,
        Code::NotFound,
    );
}

// ---------------------------------------------------------------------------------------
// v2 update: GET, then PUT of the whole participant
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_v2_update_gets_the_participant_and_puts_it_back_whole_with_the_change() {
    // Arrange
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let conversation = conversation_id();
    let id = participant_id();
    let route = v2_fetch_path(&conversation, &id);
    let phone = phone();
    let current = json!({
        "id": id, "conversationId": conversation, "accountId": ACCOUNT,
        "name": "Old Name", "type": "CUSTOMER", "profileId": "mem_profile_1",
        "addresses": [
            {"channel": "SMS", "address": phone},
            {"channel": "CARRIER_PIGEON", "address": "loft 7", "channelId": "XE1"},
        ],
        "createdAt": "2026-01-02T03:04:05Z", "updatedAt": "2026-01-02T03:04:05Z",
    });
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(current.clone()))
        .expect(1)
        .mount(&server)
        .await;
    let echoed = {
        let current = current.clone();
        move |request: &wiremock::Request| {
            let body: Value = request.body_json().unwrap_or_default();
            let mut answer = current.clone();
            for field in ["name", "type", "profileId", "addresses"] {
                answer[field] = body.get(field).cloned().unwrap_or(Value::Null);
            }
            answer["updatedAt"] = json!("2026-01-02T03:04:09Z");
            ResponseTemplate::new(200).set_body_json(answer)
        }
    };
    Mock::given(method("PUT"))
        .and(path(route.as_str()))
        .respond_with(echoed)
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let updated = app
        .client
        .clone()
        .update_participant(UpdateParticipantRequest {
            participant: Some(proto::Participant {
                conversation_id: conversation.clone(),
                id: id.clone(),
                name: "New Name".into(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
        })
        .await
        .expect("updated")
        .into_inner();

    // Assert: GET first, then the whole participant PUT with the new name.
    let requests = server.received_requests().await.expect("recorded");
    let verbs: Vec<String> = requests.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(verbs, ["GET", "PUT"]);
    let put = &requests[1];
    assert!(put.url.query().is_none());
    assert_eq!(header(put, "content-type"), Some("application/json"));
    assert_eq!(header(put, "authorization"), Some(authorization().as_str()));
    let body: Value = put.body_json().expect("json body");
    assert_eq!(
        body,
        json!({
            "name": "New Name", "type": "CUSTOMER", "profileId": "mem_profile_1",
            "addresses": [
                {"channel": "SMS", "address": phone},
                {"channel": "CARRIER_PIGEON", "address": "loft 7", "channelId": "XE1"},
            ],
        }),
        "create's fields, the whole participant, the unknown channel kept"
    );
    assert_eq!(updated.name, "New Name");
    assert_eq!(updated.addresses.len(), 2);
    let pigeon = &updated.addresses[1];
    assert_eq!(pigeon.channel, i32::from(Channel::Unspecified));
    assert_eq!(pigeon.channel_name, "CARRIER_PIGEON");
    assert_eq!(pigeon.address, "loft 7");
    assert_eq!(updated.addresses[0].channel_name, "");
}

#[tokio::test]
async fn a_v2_update_of_an_unknown_participant_is_not_found_without_a_put() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (conversation, id) = (conversation_id(), participant_id());
    Mock::given(method("GET"))
        .and(path(v2_fetch_path(&conversation, &id)))
        .respond_with(twilio_error(404, 20404, "Not found"))
        .expect(1)
        .mount(&server)
        .await;

    let result = app
        .client
        .clone()
        .update_participant(UpdateParticipantRequest {
            participant: Some(proto::Participant {
                conversation_id: conversation,
                id,
                name: "Someone".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await;

    expect_code(result, Code::NotFound);
    let puts = server.received_requests().await.expect("recorded");
    assert!(puts.iter().all(|r| r.method.as_str() == "GET"));
}

#[tokio::test]
async fn a_v2_put_is_retried_after_a_server_error_and_its_answer_must_be_the_participant() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (conversation, id) = (conversation_id(), participant_id());
    let route = v2_fetch_path(&conversation, &id);
    let created = CreateParticipantRequest {
        conversation_id: conversation.clone(),
        ..create_request()
    };
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(v2_answer(&id, &created)))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(route.as_str()))
        .respond_with(twilio_error(500, 20500, "Internal"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(v2_answer(&id, &created)))
        .mount(&server)
        .await;
    let update = |id: &str| UpdateParticipantRequest {
        participant: Some(proto::Participant {
            conversation_id: conversation.clone(),
            id: id.to_owned(),
            profile_id: "mem_profile_2".into(),
            ..Default::default()
        }),
        update_mask: None,
    };

    app.client
        .clone()
        .update_participant(update(&id))
        .await
        .expect("retried PUT");
    assert_eq!(received_on(&server, "PUT", &route).await.len(), 2);

    // Another participant in the PUT's answer is refused.
    let other = participant_id();
    let other_route = v2_fetch_path(&conversation, &other);
    Mock::given(method("GET"))
        .and(path(other_route.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(v2_answer(&other, &created)))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(other_route.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(v2_answer(&id, &created)))
        .expect(1)
        .mount(&server)
        .await;
    expect_code(
        app.client.clone().update_participant(update(&other)).await,
        Code::Internal,
    );
}

// ---------------------------------------------------------------------------------------
// v1 update and delete
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_v1_update_posts_only_the_changed_fields_with_cleared_addresses_as_null() {
    // Arrange
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (service, conversation, mb) = (sid("IS"), sid("CH"), sid("MB"));
    let route = v1_fetch_path(&service, &conversation, &mb);
    let created = CreateServiceParticipantRequest {
        chat_service_sid: service.clone(),
        conversation_sid: conversation.clone(),
        ..create_v1_request()
    };
    Mock::given(method("POST"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(v1_answer(&mb, &created)))
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let updated = app
        .client
        .clone()
        .update_service_participant(UpdateServiceParticipantRequest {
            service_participant: Some(proto::ServiceParticipant {
                chat_service_sid: service.clone(),
                conversation_sid: conversation.clone(),
                sid: mb.clone(),
                attributes: r#"{"tier":"gold"}"#.into(),
                last_read_message_index: Some(7),
                ..Default::default()
            }),
            update_mask: mask(&[
                "attributes",
                "messaging_binding.projected_address",
                "last_read_message_index",
            ]),
            webhook_enabled: true,
            webhook_mode: 0,
        })
        .await
        .expect("updated")
        .into_inner();

    // Assert
    assert_eq!(updated.sid, mb);
    let requests = received_on(&server, "POST", &route).await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        header(request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(request, "x-twilio-webhook-enabled"), Some("true"));
    assert!(header(request, "idempotency-key").is_none());
    assert_eq!(
        form_pairs(&request.body),
        [
            ("Attributes".to_owned(), r#"{"tier":"gold"}"#.to_owned()),
            (
                "MessagingBinding.ProjectedAddress".to_owned(),
                "null".to_owned()
            ),
            ("LastReadMessageIndex".to_owned(), "7".to_owned()),
        ],
        "only the changed fields, in the spec's order"
    );
}

#[tokio::test]
async fn a_v1_update_is_retried_and_a_conflict_names_the_existing_participant() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (service, conversation, mb) = (sid("IS"), sid("CH"), sid("MB"));
    let route = v1_fetch_path(&service, &conversation, &mb);
    let created = CreateServiceParticipantRequest {
        chat_service_sid: service.clone(),
        conversation_sid: conversation.clone(),
        ..create_v1_request()
    };
    Mock::given(method("POST"))
        .and(path(route.as_str()))
        .respond_with(twilio_error(502, 20502, "Bad gateway"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(v1_answer(&mb, &created)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let existing = sid("MB");
    Mock::given(method("POST"))
        .and(path(route.as_str()))
        .respond_with(
            twilio_error(409, 50416, "Identity taken")
                .insert_header("X-Conflicting-Resource-Id", existing.as_str()),
        )
        .mount(&server)
        .await;
    let update = || UpdateServiceParticipantRequest {
        service_participant: Some(proto::ServiceParticipant {
            chat_service_sid: service.clone(),
            conversation_sid: conversation.clone(),
            sid: mb.clone(),
            identity: "new-identity".into(),
            ..Default::default()
        }),
        ..Default::default()
    };

    app.client
        .clone()
        .update_service_participant(update())
        .await
        .expect("retried after 502");
    assert_eq!(received_on(&server, "POST", &route).await.len(), 2);

    assert_conflict_with(
        app.client
            .clone()
            .update_service_participant(update())
            .await,
        &existing,
    );
    assert_eq!(
        received_on(&server, "POST", &route).await.len(),
        3,
        "a 409 is not retried"
    );
}

fn delete_request(
    service: &str,
    conversation: &str,
    who: &str,
    mode: WebhookMode,
) -> DeleteServiceParticipantRequest {
    DeleteServiceParticipantRequest {
        chat_service_sid: service.to_owned(),
        conversation_sid: conversation.to_owned(),
        sid: who.to_owned(),
        webhook_enabled: false,
        webhook_mode: mode.into(),
    }
}

#[tokio::test]
async fn a_v1_delete_sends_delete_with_the_webhook_header_and_answers_empty() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (service, conversation, mb) = (sid("IS"), sid("CH"), sid("MB"));
    let route = v1_fetch_path(&service, &conversation, &mb);
    Mock::given(method("DELETE"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    app.client
        .clone()
        .delete_service_participant(delete_request(
            &service,
            &conversation,
            &mb,
            WebhookMode::Disabled,
        ))
        .await
        .expect("deleted");

    let requests = received_on(&server, "DELETE", &route).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        header(&requests[0], "x-twilio-webhook-enabled"),
        Some("false")
    );
    assert!(requests[0].body.is_empty() && requests[0].url.query().is_none());
}

#[tokio::test]
async fn a_delete_that_finds_nothing_after_an_attempt_that_may_have_landed_is_done() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |c| {
        c.upstream.attempt_timeout = Duration::from_millis(300);
    })
    .await;
    // (first answer, expected code, attempts)
    let cases = [
        (Some(twilio_error(500, 20500, "Internal")), None, 2),
        (Some(twilio_error(503, 20503, "Unavailable")), None, 2),
        (
            Some(ResponseTemplate::new(204).set_delay(Duration::from_secs(3))),
            None,
            2,
        ),
        (
            Some(twilio_error(429, 20429, "Too many requests")),
            Some(Code::NotFound),
            2,
        ),
        (None, Some(Code::NotFound), 1),
    ];
    for (i, (first, code, attempts)) in cases.into_iter().enumerate() {
        let (service, conversation, mb) = (sid("IS"), sid("CH"), sid("MB"));
        let route = v1_fetch_path(&service, &conversation, &mb);
        if let Some(first) = first {
            Mock::given(method("DELETE"))
                .and(path(route.as_str()))
                .respond_with(first)
                .up_to_n_times(1)
                .mount(&server)
                .await;
        }
        Mock::given(method("DELETE"))
            .and(path(route.as_str()))
            .respond_with(twilio_error(404, 20404, "Not found"))
            .mount(&server)
            .await;

        let result = app
            .client
            .clone()
            .delete_service_participant(delete_request(
                &service,
                &conversation,
                &mb,
                WebhookMode::Unspecified,
            ))
            .await;

        match code {
            None => {
                result.unwrap_or_else(|e| panic!("case {i}: done, got {e:?}"));
            }
            Some(code) => {
                expect_code(result, code);
            }
        }
        assert_eq!(
            received_on(&server, "DELETE", &route).await.len(),
            attempts,
            "case {i}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Fidelity: binding type, fallback, unique names
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn twilios_binding_type_is_passed_through_and_the_fallback_is_forwarded() {
    // Arrange
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (service, conversation, mb) = (sid("IS"), sid("CH"), sid("MB"));
    let phone = phone();
    let answer = json!({
        "account_sid": ACCOUNT, "chat_service_sid": service, "conversation_sid": conversation,
        "sid": mb, "identity": null, "attributes": "{}",
        "messaging_binding": {"type": "rcs", "address": format!("rcs:{phone}"),
            "proxy_address": "rcs:brand_acme_agent"},
        "role_sid": null, "date_created": "2026-01-02T03:04:05Z",
        "date_updated": "2026-01-02T03:04:05Z", "url": null,
        "last_read_message_index": null, "last_read_timestamp": null,
    });
    let route = v1_path(&service, &conversation);
    Mock::given(method("POST"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(answer))
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let created = app
        .client
        .clone()
        .create_service_participant(CreateServiceParticipantRequest {
            chat_service_sid: service.clone(),
            conversation_sid: conversation.clone(),
            identity: String::new(),
            messaging_binding: Some(proto::MessagingBinding {
                address: format!("rcs:{phone}"),
                proxy_address: "rcs:brand_acme_agent".into(),
                proxy_address_fallback: "+18005550199".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("created")
        .into_inner();

    // Assert
    let binding = created.messaging_binding.expect("binding");
    assert_eq!(binding.r#type, "rcs");
    let requests = received_on(&server, "POST", &route).await;
    let pairs = form_pairs(&requests[0].body);
    assert!(
        pairs.contains(&(
            "MessagingBinding.ProxyAddressFallback".to_owned(),
            "+18005550199".to_owned()
        )),
        "{pairs:?}"
    );
}

#[tokio::test]
async fn a_v1_conversation_may_be_named_by_its_unique_name() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (service, ch) = (sid("IS"), sid("CH"));
    let name = format!("support room {}", unique());
    let encoded = name.replace(' ', "%20");
    let route = format!("/v1/Services/{service}/Conversations/{encoded}/Participants");
    Mock::given(method("GET"))
        .and(path(route.as_str()))
        .respond_with(v1_page(
            vec![v1_participant(&service, &ch), v1_participant(&service, &ch)],
            "https://conversations.twilio.com/",
            None,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let mb = sid("MB");
    Mock::given(method("DELETE"))
        .and(path(format!("{route}/{mb}")))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    let page = app
        .client
        .clone()
        .list_service_participants(ListServiceParticipantsRequest {
            chat_service_sid: service.clone(),
            conversation_sid: name.clone(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("listed by unique name")
        .into_inner();
    assert_eq!(page.participants.len(), 2);
    assert!(page.participants.iter().all(|p| p.conversation_sid == ch));
    app.client
        .clone()
        .delete_service_participant(delete_request(
            &service,
            &name,
            &mb,
            WebhookMode::Unspecified,
        ))
        .await
        .expect("deleted by unique name");

    for bad in ["a/b", ".", "..", &"n".repeat(257)] {
        let result = app
            .client
            .clone()
            .list_service_participants(ListServiceParticipantsRequest {
                chat_service_sid: service.clone(),
                conversation_sid: bad.to_owned(),
                page_size: 0,
                page_token: String::new(),
            })
            .await;
        assert_bad_request(result, &["conversation_sid"], bad);
    }
}

#[tokio::test]
async fn a_v1_update_by_identity_that_renames_expects_the_new_identity_back() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let (service, conversation) = (sid("IS"), sid("CH"));
    let (old, new) = (format!("old-{}", unique()), format!("new-{}", unique()));
    let route = v1_fetch_path(&service, &conversation, &old);
    let renamed = CreateServiceParticipantRequest {
        chat_service_sid: service.clone(),
        conversation_sid: conversation.clone(),
        identity: new.clone(),
        ..Default::default()
    };
    Mock::given(method("POST"))
        .and(path(route.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(v1_answer(&sid("MB"), &renamed)))
        .mount(&server)
        .await;
    let update = |identity: &str| UpdateServiceParticipantRequest {
        service_participant: Some(proto::ServiceParticipant {
            chat_service_sid: service.clone(),
            conversation_sid: conversation.clone(),
            sid: old.clone(),
            identity: identity.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };

    let updated = app
        .client
        .clone()
        .update_service_participant(update(&new))
        .await
        .expect("renamed")
        .into_inner();
    assert_eq!(updated.identity, new);

    // An answer with neither the old nor the new identity is refused.
    let other = app
        .client
        .clone()
        .update_service_participant(update(&format!("third-{}", unique())))
        .await;
    expect_code(other, Code::Internal);
}

#[tokio::test]
async fn the_new_calls_map_twilios_statuses_per_the_contract() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let table = [
        (400, Code::InvalidArgument),
        (401, Code::Unauthenticated),
        (403, Code::PermissionDenied),
        (404, Code::NotFound),
        (409, Code::AlreadyExists),
        (412, Code::FailedPrecondition),
        (422, Code::InvalidArgument),
        (501, Code::Unimplemented),
    ];
    for (status, code) in table {
        let (service, conversation, mb) = (sid("IS"), sid("CH"), sid("MB"));
        let route = v1_fetch_path(&service, &conversation, &mb);
        for verb in ["DELETE", "POST"] {
            Mock::given(method(verb))
                .and(path(route.as_str()))
                .respond_with(twilio_error(status, 20000 + i64::from(status), "refused"))
                .expect(1)
                .mount(&server)
                .await;
        }
        Mock::given(method("GET"))
            .and(path(v1_path(&service, &conversation)))
            .respond_with(twilio_error(status, 20000 + i64::from(status), "refused"))
            .expect(1)
            .mount(&server)
            .await;

        let deleted = app
            .client
            .clone()
            .delete_service_participant(delete_request(
                &service,
                &conversation,
                &mb,
                WebhookMode::Unspecified,
            ))
            .await;
        let updated = app
            .client
            .clone()
            .update_service_participant(UpdateServiceParticipantRequest {
                service_participant: Some(proto::ServiceParticipant {
                    chat_service_sid: service.clone(),
                    conversation_sid: conversation.clone(),
                    sid: mb.clone(),
                    attributes: "{}".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await;
        let listed = app
            .client
            .clone()
            .list_service_participants(ListServiceParticipantsRequest {
                chat_service_sid: service.clone(),
                conversation_sid: conversation.clone(),
                page_size: 0,
                page_token: String::new(),
            })
            .await;

        for (rpc, status_of) in [
            ("delete", expect_code(deleted, code)),
            ("update", expect_code(updated, code)),
            ("list", expect_code(listed, code)),
        ] {
            let info = twilio_error_info(&status_of);
            assert_eq!(
                info.metadata.get("http_status").map(String::as_str),
                Some(status.to_string().as_str()),
                "{rpc} {status}"
            );
        }
    }
    server.verify().await;
}

#[tokio::test]
async fn a_unique_name_list_whose_participants_name_two_conversations_is_refused() {
    let server = upstream().await;
    let app = spawn_twilio_app(&server.uri(), |_| {}).await;
    let service = sid("IS");
    let name = format!("room-{}", unique());
    Mock::given(method("GET"))
        .and(path(v1_path(&service, &name)))
        .respond_with(v1_page(
            vec![
                v1_participant(&service, &sid("CH")),
                v1_participant(&service, &sid("CH")),
            ],
            "https://conversations.twilio.com/",
            None,
        ))
        .expect(1)
        .mount(&server)
        .await;

    let result = app
        .client
        .clone()
        .list_service_participants(ListServiceParticipantsRequest {
            chat_service_sid: service,
            conversation_sid: name,
            page_size: 0,
            page_token: String::new(),
        })
        .await;

    let status = expect_code(result, Code::Internal);
    assert!(
        status
            .message()
            .contains("participants[1].conversation_sid"),
        "{status:?}"
    );
}
