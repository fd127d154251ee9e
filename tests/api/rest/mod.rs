//! The REST front: Twilio-compatible v2 (JSON) and v1 (form) routes against the real
//! server with reqwest, over HTTP/1.1 and HTTP/2.
//! - `v2`, `v1`: round trips, the answer's fields and shapes, and the same participant
//!   seen over REST and gRPC;
//! - `errors`: every error class with its status and Twilio error body;
//! - `headers`: `Idempotency-Key` (over REST, and across REST and gRPC) and
//!   `X-Twilio-Webhook-Enabled`;
//! - `probes`: `/healthz` and `/readyz`, also while draining; `openapi`: `/openapi.json`,
//!   and that it agrees with the routes;
//! - `list`, `update`, `delete`: the participant lifecycle (v2 list and PUT, v1 list,
//!   update and DELETE): pages and their `meta`, partial updates, removal;
//! - `timestamps`: every route writes dates as Twilio does (whole seconds, `Z`);
//! - `twilio_mode`: the REST front over the twilio backend and a loopback upstream
//!   (wiremock), passing calls through with the mapping intact.
//!
//! The REST helpers (`http_client`, `send`, `Answer`, `assert_twilio_error`, ...) are in
//! `fixtures::rest`; here are the answer shapes the tests expect.

mod delete;
mod errors;
mod headers;
mod list;
mod openapi;
mod probes;
mod timestamps;
mod twilio_mode;
mod update;
mod v1;
mod v2;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::fixtures::*;

/// The keys of a JSON object.
fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

/// A JSON string holding an RFC 3339 date.
fn rfc3339(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a date string: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// Whether `text` is Twilio's v1 date shape, `2015-12-16T22:18:37Z`.
fn is_v1_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Every key of a v2 participant, in Twilio's camelCase.
const V2_KEYS: [&str; 9] = [
    "id",
    "conversationId",
    "accountId",
    "name",
    "type",
    "profileId",
    "addresses",
    "createdAt",
    "updatedAt",
];

/// Every key of a v1 participant, in Twilio's snake_case.
const V1_KEYS: [&str; 13] = [
    "account_sid",
    "chat_service_sid",
    "conversation_sid",
    "sid",
    "identity",
    "attributes",
    "messaging_binding",
    "role_sid",
    "date_created",
    "date_updated",
    "url",
    "last_read_message_index",
    "last_read_timestamp",
];

/// `list` as a set, to compare with [`keys`].
fn expected_keys(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|k| (*k).to_owned()).collect()
}

/// Creates `n` v2 participants in `conversation` over REST, one after the other; returns
/// their ids in creation order.
async fn create_v2_participants(app: &TestApp, conversation: &str, n: usize) -> Vec<String> {
    let (base, client) = (base_url(app), http_client());
    let mut ids = Vec::new();
    for _ in 0..n {
        let created = post_v2(&client, &base, conversation, &v2_body(&phone())).await;
        let created = created.expect_status(201).json();
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    ids
}

/// Creates `n` v1 chat participants in `service`/`conversation` over REST, one after the
/// other; returns their sids in creation order.
async fn create_v1_participants(
    app: &TestApp,
    service: &str,
    conversation: &str,
    n: usize,
) -> Vec<String> {
    let (base, client) = (base_url(app), http_client());
    let mut sids = Vec::new();
    for _ in 0..n {
        let identity = format!("user-{}", unique());
        let created = post_v1(
            &client,
            &base,
            service,
            conversation,
            &[("Identity", &identity)],
        )
        .await;
        let created = created.expect_status(201).json();
        sids.push(created["sid"].as_str().expect("sid").to_owned());
    }
    sids
}

/// The `field` of every participant of a list answer, in order.
fn listed(page: &Value, field: &str) -> Vec<String> {
    page["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("participants is a list: {page}"))
        .iter()
        .map(|p| p[field].as_str().expect("the field is text").to_owned())
        .collect()
}

/// PUTs a v2 JSON body to a participant; returns the answer.
async fn put_v2(
    client: &reqwest::Client,
    base: &str,
    conversation: &str,
    id: &str,
    body: &Value,
) -> Answer {
    send(
        client
            .put(format!("{base}{}", v2_fetch_path(conversation, id)))
            .json(body),
    )
    .await
}

/// POSTs a v1 update form to a participant; returns the answer.
async fn post_v1_update(
    client: &reqwest::Client,
    base: &str,
    service: &str,
    conversation: &str,
    sid: &str,
    form: &[(&str, &str)],
) -> Answer {
    send(
        client
            .post(format!(
                "{base}{}",
                v1_fetch_path(service, conversation, sid)
            ))
            .form(form),
    )
    .await
}
