//! Twilio's success answers, checked as strictly as requests before they reach a caller.
//!
//! A 2xx from Twilio is believed only when its body is the participant that was asked
//! for: ids in Twilio's shapes (the rules of [`crate::domain::rules`], the same the fronts
//! apply to requests), the conversation (and chat service) of the request, the
//! participant fetched, and v2 addresses that are well-formed for their channel. Anything
//! else is [`Error::UpstreamProtocol`] (INTERNAL): its message names each field and what
//! was wrong with it, never the value (phone numbers, e-mail addresses and names are
//! personal data), and the answer is counted in `upstream_invalid_answers_total
//! {operation, reason}`. A refused answer is never retried: the exchange is over, and the
//! next answer would be the same.
//!
//! Tolerated, because Twilio really answers it (its OpenAPI specs in `shared/specs`):
//! - fields the spec makes optional or nullable may be absent: a v1 participant's parents
//!   then come from the request's path, as before;
//! - an address on a channel this build does not know is kept, with Twilio's name of the
//!   channel, not refused, so that a channel Twilio adds does not break every answer that
//!   carries it;
//! - a fetched v2 participant may have no address: the spec lets participants be created
//!   inline with a conversation, or updated, without one. A created one may not: the
//!   request carried at least one.
//! - v1 sids compare without regard to the case of their hex digits, as the request's
//!   rules accept either case;
//! - a v1 create's `identity` is not compared: Twilio's own examples answer the string
//!   `"null"` there for binding participants.

use reqwest::StatusCode;

use super::client::Answer;
use crate::domain::error::Error;
use crate::domain::rules::{self as rules, V2Id, Violations};
use crate::domain::{
    Address, Channel, NewParticipant, NewServiceParticipant, Participant, ParticipantRef, Raw,
    ServiceParticipant, ServiceParticipantRef,
};
use crate::observability::metrics::METRICS;
use crate::twilio_api::v1::{ListServiceParticipantsJson, ServiceParticipantJson};
use crate::twilio_api::v2::{AddressBody, ListParticipantsJson, ParticipantJson};

/// The call an answer belongs to, as the metric's `operation` label names it (the RPC).
// The variants are the RPCs' own names, which all end in "Participant".
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    CreateParticipant,
    FetchParticipant,
    CreateServiceParticipant,
    FetchServiceParticipant,
    ListParticipants,
    UpdateParticipant,
    ListServiceParticipants,
    UpdateServiceParticipant,
}

impl Operation {
    fn label(self) -> &'static str {
        match self {
            Operation::CreateParticipant => "CreateParticipant",
            Operation::FetchParticipant => "FetchParticipant",
            Operation::CreateServiceParticipant => "CreateServiceParticipant",
            Operation::FetchServiceParticipant => "FetchServiceParticipant",
            Operation::ListParticipants => "ListParticipants",
            Operation::UpdateParticipant => "UpdateParticipant",
            Operation::ListServiceParticipants => "ListServiceParticipants",
            Operation::UpdateServiceParticipant => "UpdateServiceParticipant",
        }
    }
}

/// The metric's `reason` label: the top-level field at fault, from a fixed set, so that
/// the label stays low-cardinality whatever Twilio sends.
const REASONS: &[&str] = &[
    "id",
    "conversation_id",
    "account_id",
    "addresses",
    "sid",
    "account_sid",
    "chat_service_sid",
    "conversation_sid",
    "identity",
    "role_sid",
    "participants",
    "next_page",
];

fn reason_of(field: &str) -> &'static str {
    let top = field.split(['[', '.']).next().unwrap_or_default();
    REASONS
        .iter()
        .find(|r| **r == top)
        .copied()
        .unwrap_or("other")
}

/// What a v2 answer must say, from the request it answers.
#[derive(Debug, Clone, Copy)]
pub(super) struct V2Expected<'a> {
    operation: Operation,
    conversation_id: &'a str,
    /// The participant fetched; `None` for a create (Twilio chooses the id).
    id: Option<&'a str>,
    /// Whether the participant was just created with at least one address.
    created: bool,
}

impl<'a> V2Expected<'a> {
    /// The answer to `request`'s create.
    pub(super) fn created(request: &'a NewParticipant) -> Self {
        V2Expected {
            operation: Operation::CreateParticipant,
            conversation_id: &request.conversation_id,
            id: None,
            created: true,
        }
    }

    /// A participant listed in `conversation_id`.
    pub(super) fn listed(conversation_id: &'a str) -> Self {
        V2Expected {
            operation: Operation::ListParticipants,
            conversation_id,
            id: None,
            created: false,
        }
    }

    /// The answer to an update of `key` (the fetch before it, and the `PUT`).
    pub(super) fn updated(key: &'a ParticipantRef) -> Self {
        V2Expected {
            operation: Operation::UpdateParticipant,
            ..Self::fetched(key)
        }
    }

    /// The answer to a fetch of `key`.
    pub(super) fn fetched(key: &'a ParticipantRef) -> Self {
        V2Expected {
            operation: Operation::FetchParticipant,
            conversation_id: &key.conversation_id,
            id: Some(&key.participant_id),
            created: false,
        }
    }
}

/// What a v1 answer must say, from the request it answers.
#[derive(Debug, Clone, Copy)]
pub(super) struct V1Expected<'a> {
    operation: Operation,
    chat_service_sid: &'a str,
    conversation_sid: &'a str,
    /// The `MB` sid fetched.
    sid: Option<&'a str>,
    /// The identity fetched (a fetch whose key is not an `MB` sid, as Twilio reads it).
    identity: Option<&'a str>,
}

impl<'a> V1Expected<'a> {
    /// The answer to `request`'s create.
    pub(super) fn created(request: &'a NewServiceParticipant) -> Self {
        V1Expected {
            operation: Operation::CreateServiceParticipant,
            chat_service_sid: &request.chat_service_sid,
            conversation_sid: &request.conversation_sid,
            sid: None,
            identity: None,
        }
    }

    /// The answer to a fetch of `key`, by sid or by identity.
    pub(super) fn fetched(key: &'a ServiceParticipantRef) -> Self {
        let by_sid = rules::is_sid(&key.sid, "MB");
        V1Expected {
            operation: Operation::FetchServiceParticipant,
            chat_service_sid: &key.chat_service_sid,
            conversation_sid: &key.conversation_sid,
            sid: by_sid.then_some(key.sid.as_str()),
            identity: (!by_sid).then_some(key.sid.as_str()),
        }
    }

    /// The answer to an update of `key`, by sid or by identity; `new_identity` is the
    /// update's own identity change, if any (the answer then carries the new one).
    pub(super) fn updated(
        key: &'a ServiceParticipantRef,
        new_identity: Option<&'a Option<String>>,
    ) -> Self {
        let fetched = Self::fetched(key);
        V1Expected {
            operation: Operation::UpdateServiceParticipant,
            identity: match (fetched.identity, new_identity) {
                (Some(_), Some(changed)) => changed.as_deref(),
                (identity, _) => identity,
            },
            ..fetched
        }
    }

    /// A participant listed in a conversation.
    pub(super) fn listed(chat_service_sid: &'a str, conversation_sid: &'a str) -> Self {
        V1Expected {
            operation: Operation::ListServiceParticipants,
            chat_service_sid,
            conversation_sid,
            sid: None,
            identity: None,
        }
    }
}

/// The v2 participant in `answer`, if it is the one `expected` describes.
pub(super) fn participant(answer: &Answer, expected: V2Expected<'_>) -> Result<Participant, Error> {
    let raw: ParticipantJson = decode(answer, expected.operation)?;
    let mut v = Violations::default();
    let p = check_participant(&mut v, raw, expected);
    judge(answer.status, expected.operation, v)?;
    Ok(p)
}

/// A page of v2 participants of `conversation_id`, each checked as a fetched one, and
/// Twilio's next-page token.
pub(super) fn participant_page(
    answer: &Answer,
    conversation_id: &str,
) -> Result<(Vec<Participant>, Option<String>), Error> {
    let expected = V2Expected::listed(conversation_id);
    let page: ListParticipantsJson = decode(answer, expected.operation)?;
    let mut v = Violations::default();
    let mut items = Vec::with_capacity(page.participants.len());
    for (i, raw) in page.participants.into_iter().enumerate() {
        let mut one = Violations::default();
        items.push(check_participant(&mut one, raw, expected));
        v.extend(one.prefixed(&format!("participants[{i}].")));
    }
    judge(answer.status, expected.operation, v)?;
    let next = page.meta.next_token.filter(|t| !t.is_empty());
    Ok((items, next))
}

fn check_participant(
    v: &mut Violations,
    mut raw: ParticipantJson,
    expected: V2Expected<'_>,
) -> Participant {
    participant_id(v, &raw.id, expected.id);
    same(
        v,
        "conversation_id",
        &raw.conversation_id,
        expected.conversation_id,
        "names another conversation than the request's",
    );
    rules::sid(v, "account_id", &raw.account_id, "AC", true);
    let listed = std::mem::take(&mut raw.addresses);
    if listed.is_empty() && expected.created {
        v.add(
            "addresses",
            "is empty, but the participant was created with at least one address",
        );
    }
    let mut addresses = Vec::with_capacity(listed.len());
    for (i, a) in listed.into_iter().enumerate() {
        let field = format!("addresses[{i}]");
        if let Some(address) = answered_address(v, &field, a) {
            addresses.push(address);
        }
    }
    raw.into_domain(addresses)
}

/// An address from Twilio: one on a channel this build knows follows the request's rules;
/// one on a channel it does not know is kept with Twilio's name of the channel
/// ([`Channel::Other`]), so that a channel Twilio adds neither breaks nor disappears from
/// answers (and a v2 update, which writes the whole participant back, keeps it).
fn answered_address(v: &mut Violations, field: &str, a: AddressBody) -> Option<Address> {
    let draft = a.into_draft();
    let unknown = match &draft.channel {
        Raw::Unknown(name) => Some(name.clone()),
        Raw::Known(Channel::Other) => Some(Channel::Other.as_str().to_owned()),
        _ => None,
    };
    match unknown {
        Some(name) => {
            rules::text(v, &format!("{field}.channel"), &name, rules::MAX_ID);
            rules::text(
                v,
                &format!("{field}.address"),
                &draft.address,
                rules::MAX_ADDRESS,
            );
            rules::text(
                v,
                &format!("{field}.channel_id"),
                &draft.channel_id,
                rules::MAX_ID,
            );
            tracing::debug!("upstream returned an address on a channel this build does not know");
            Some(Address {
                channel: Channel::Other,
                address: draft.address,
                channel_id: Some(draft.channel_id).filter(|c| !c.is_empty()),
                channel_name: Some(name),
            })
        }
        None => rules::address(v, field, draft),
    }
}

/// The v1 participant in `answer`, if it is the one `expected` describes. Parents Twilio
/// left out come from the request's path.
pub(super) fn service_participant(
    answer: &Answer,
    expected: V1Expected<'_>,
) -> Result<ServiceParticipant, Error> {
    let raw: ServiceParticipantJson = decode(answer, expected.operation)?;
    let mut v = Violations::default();
    let p = check_service_participant(&mut v, raw, expected);
    judge(answer.status, expected.operation, v)?;
    Ok(p)
}

/// A page of v1 participants, each of the listed conversation, and Twilio's
/// `next_page_url` as it gave it.
pub(super) fn service_participant_page(
    answer: &Answer,
    expected: V1Expected<'_>,
) -> Result<(Vec<ServiceParticipant>, Option<String>), Error> {
    let page: ListServiceParticipantsJson = decode(answer, expected.operation)?;
    let mut v = Violations::default();
    let mut items = Vec::with_capacity(page.participants.len());
    for (i, raw) in page.participants.into_iter().enumerate() {
        let mut one = Violations::default();
        let p = check_service_participant(&mut one, raw, expected);
        // A conversation named by its unique name is one conversation: one CH sid.
        if let Some(first) = items
            .first()
            .map(|f: &ServiceParticipant| &f.conversation_sid)
            && !first.eq_ignore_ascii_case(&p.conversation_sid)
        {
            one.add(
                "conversation_sid",
                "names another conversation than the page's other participants",
            );
        }
        items.push(p);
        v.extend(one.prefixed(&format!("participants[{i}].")));
    }
    judge(answer.status, expected.operation, v)?;
    let next = page.meta.next_page_url.filter(|u| !u.is_empty());
    Ok((items, next))
}

/// Refuses an answer whose next-page link cannot be followed safely (another host,
/// another list): INTERNAL, counted as an invalid answer.
pub(super) fn bad_next_page(status: StatusCode, operation: Operation, what: &str) -> Error {
    let mut v = Violations::default();
    v.add("next_page", what);
    match judge(status, operation, v) {
        Err(e) => e,
        Ok(()) => Error::UpstreamProtocol(what.to_owned()),
    }
}

fn check_service_participant(
    v: &mut Violations,
    raw: ServiceParticipantJson,
    expected: V1Expected<'_>,
) -> ServiceParticipant {
    rules::sid(v, "sid", &raw.sid, "MB", true);
    if let Some(sid) = expected.sid
        && rules::is_sid(&raw.sid, "MB")
        && !raw.sid.eq_ignore_ascii_case(sid)
    {
        v.add("sid", "names another participant than the one fetched");
    }
    if let Some(account) = &raw.account_sid {
        rules::sid(v, "account_sid", account, "AC", true);
    }
    // A conversation named by its unique name (twilio mode) is answered with its CH sid,
    // which the request could not know: any CH sid is then accepted.
    let by_name = !rules::is_sid(expected.conversation_sid, "CH");
    let parents = [
        (
            "chat_service_sid",
            &raw.chat_service_sid,
            expected.chat_service_sid,
            "IS",
            "names another chat service than the request's",
            false,
        ),
        (
            "conversation_sid",
            &raw.conversation_sid,
            expected.conversation_sid,
            "CH",
            "names another conversation than the request's",
            by_name,
        ),
    ];
    for (field, value, wanted, prefix, other, any) in parents {
        if let Some(value) = value {
            rules::sid(v, field, value, prefix, true);
            if !any && rules::is_sid(value, prefix) && !value.eq_ignore_ascii_case(wanted) {
                v.add(field, other);
            }
        }
    }
    if let Some(identity) = expected.identity
        && raw.identity.as_deref() != Some(identity)
    {
        v.add(
            "identity",
            "is not the identity the participant was fetched by",
        );
    }
    if let Some(role) = &raw.role_sid {
        rules::sid(v, "role_sid", role, "RL", false);
    }
    raw.into_domain(expected.chat_service_sid, expected.conversation_sid)
}

/// A v2 participant id: the rule for ids Twilio makes ([`rules::v2_id`]), and the one
/// fetched when it was a fetch.
fn participant_id(v: &mut Violations, id: &str, fetched: Option<&str>) {
    if rules::v2_id(v, "id", id, V2Id::Participant) && fetched.is_some_and(|wanted| wanted != id) {
        v.add("id", "names another participant than the one fetched");
    }
}

/// `value` must be `wanted`; `other` says what it is otherwise (empty: "required").
fn same(v: &mut Violations, field: &str, value: &str, wanted: &str, other: &str) {
    if value.is_empty() {
        v.add(field, "required");
    } else if value != wanted {
        v.add(field, other);
    }
}

/// Decodes a success body, or says plainly that Twilio's answer was not what it promises.
fn decode<T: serde::de::DeserializeOwned>(
    answer: &Answer,
    operation: Operation,
) -> Result<T, Error> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        count(operation, "body");
        Error::UpstreamProtocol(format!(
            "Twilio answered HTTP {} with a body that is not the expected resource ({})",
            answer.status.as_u16(),
            classify(&e)
        ))
    })
}

/// `Ok` when `v` is empty; otherwise the answer is refused, counted and logged (fields
/// and rules only, no value).
fn judge(status: StatusCode, operation: Operation, v: Violations) -> Result<(), Error> {
    let Err(Error::InvalidArgument(violations)) = v.into_result() else {
        return Ok(());
    };
    let reason = violations.first().map_or("other", |f| reason_of(&f.field));
    count(operation, reason);
    let fields = violations
        .iter()
        .map(|f| format!("{}: {}", f.field, f.description))
        .collect::<Vec<_>>()
        .join("; ");
    tracing::warn!(
        operation = operation.label(),
        reason,
        status = status.as_u16(),
        "refused an upstream answer that is not the participant asked for"
    );
    Err(Error::UpstreamProtocol(format!(
        "Twilio answered HTTP {} with a participant that is not the one asked for ({fields})",
        status.as_u16()
    )))
}

fn count(operation: Operation, reason: &'static str) {
    METRICS
        .upstream_invalid_answers
        .with_label_values(&[operation.label(), reason])
        .inc();
}

fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "missing or mistyped fields",
        serde_json::error::Category::Eof => "empty or truncated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use reqwest::header::HeaderMap;
    use serde_json::json;

    const ACCOUNT: &str = "ACabcdefabcdefabcdefabcdefabcdefab";
    const ID: &str = "conv_participant_01hzy3v6b0qz8d3v5e6w7x8y9z";

    fn answer(status: u16, body: serde_json::Value) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).expect("status"),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    fn v2(id: &str, conversation: &str, addresses: serde_json::Value) -> serde_json::Value {
        json!({"id": id, "conversationId": conversation, "accountId": ACCOUNT, "addresses": addresses})
    }

    fn fetch_key(id: &str) -> ParticipantRef {
        ParticipantRef {
            conversation_id: "conv_conversation_1".into(),
            participant_id: id.into(),
        }
    }

    fn refused(result: Result<impl std::fmt::Debug, Error>) -> String {
        match result {
            Err(Error::UpstreamProtocol(message)) => message,
            other => panic!("expected UpstreamProtocol, got {other:?}"),
        }
    }

    #[test]
    fn a_fetched_v2_participant_must_be_the_one_fetched_in_its_conversation() {
        let key = fetch_key(ID);
        let sms = json!([{"channel": "SMS", "address": "+18005550100"}]);
        let ok = participant(
            &answer(200, v2(ID, "conv_conversation_1", sms.clone())),
            V2Expected::fetched(&key),
        )
        .expect("the participant fetched");
        assert_eq!(ok.id, ID);

        for (body, says) in [
            (v2("", "conv_conversation_1", sms.clone()), "id: required"),
            (
                v2("p1", "conv_conversation_1", sms.clone()),
                "id: must be a v2",
            ),
            (
                v2("conv_participant_", "conv_conversation_1", sms.clone()),
                "id: must be a v2",
            ),
            (
                v2("conv_participant_x/..", "conv_conversation_1", sms.clone()),
                "id: may contain only",
            ),
            (
                v2("conv_participant_other", "conv_conversation_1", sms.clone()),
                "id: names another participant",
            ),
            (
                v2(ID, "conv_conversation_2", sms.clone()),
                "conversation_id: names another",
            ),
            (v2(ID, "", sms.clone()), "conversation_id: required"),
            (
                json!({"id": ID, "conversationId": "conv_conversation_1", "accountId": "AC1"}),
                "account_id: must match",
            ),
        ] {
            let message = refused(participant(
                &answer(200, body.clone()),
                V2Expected::fetched(&key),
            ));
            assert!(message.contains(says), "{body}: {message}");
        }
    }

    #[test]
    fn v2_addresses_follow_the_request_rules_and_unknown_channels_are_kept() {
        let key = fetch_key(ID);
        let fetched = |addresses| {
            participant(
                &answer(200, v2(ID, "conv_conversation_1", addresses)),
                V2Expected::fetched(&key),
            )
        };
        let p = fetched(json!([
            {"channel": "SMS", "address": "+18005550100"},
            {"channel": "CARRIER_PIGEON", "address": "loft 7"},
        ]))
        .expect("unknown channels are kept");
        assert_eq!(p.addresses.len(), 2);
        assert_eq!(p.addresses[1].channel, crate::domain::Channel::Other);
        assert_eq!(p.addresses[1].channel_text(), "CARRIER_PIGEON");
        assert_eq!(p.addresses[1].address, "loft 7");
        assert!(
            fetched(json!([])).is_ok(),
            "a fetched participant may have none"
        );
        let message = refused(fetched(json!([
            {"channel": "SMS", "address": "+18005550100"},
            {"channel": "EMAIL", "address": "dana.scully-at-fbi.gov"},
        ])));
        assert!(
            message.contains("addresses[1].address: must be an e-mail"),
            "{message}"
        );
        assert!(!message.contains("dana"), "no value echoed: {message}");
        let request = NewParticipant {
            conversation_id: "conv_conversation_1".into(),
            name: None,
            kind: None,
            profile_id: None,
            addresses: Vec::new(),
            idempotency_key: None,
        };
        let message = refused(participant(
            &answer(201, v2(ID, "conv_conversation_1", json!(null))),
            V2Expected::created(&request),
        ));
        assert!(message.contains("addresses: is empty"), "{message}");
    }

    #[test]
    fn a_v1_participant_must_be_in_the_requests_conversation_and_the_one_fetched() {
        let (service, conversation) = (
            "IS0123456789abcdef0123456789abcdef",
            "CH0123456789abcdef0123456789abcdef",
        );
        let sid = "MB0123456789abcdef0123456789abcdef";
        let by_sid = ServiceParticipantRef {
            chat_service_sid: service.into(),
            conversation_sid: conversation.into(),
            // The request's rules take either case of hex digits.
            sid: format!("MB{}", sid[2..].to_ascii_uppercase()),
        };
        let by_identity = ServiceParticipantRef {
            sid: "dana".into(),
            ..by_sid.clone()
        };
        let body = |fields: serde_json::Value| {
            let mut b = json!({"sid": sid, "account_sid": ACCOUNT, "chat_service_sid": service,
                "conversation_sid": conversation, "identity": "dana"});
            for (k, v) in fields.as_object().expect("object") {
                b[k] = v.clone();
            }
            answer(200, b)
        };
        assert!(service_participant(&body(json!({})), V1Expected::fetched(&by_sid)).is_ok());
        assert!(service_participant(&body(json!({})), V1Expected::fetched(&by_identity)).is_ok());
        let minimal = answer(200, json!({"sid": sid}));
        let p = service_participant(&minimal, V1Expected::fetched(&by_sid)).expect("minimal");
        assert_eq!(p.conversation_sid, conversation, "parent from the path");

        for (fields, key, says) in [
            (json!({"sid": ""}), &by_sid, "sid: required"),
            (json!({"sid": "MB123"}), &by_sid, "sid: must match"),
            (
                json!({"sid": "MBffffffffffffffffffffffffffffffff"}),
                &by_sid,
                "sid: names another participant",
            ),
            (json!({"account_sid": ""}), &by_sid, "account_sid: required"),
            (
                json!({"conversation_sid": "CHffffffffffffffffffffffffffffffff"}),
                &by_sid,
                "conversation_sid: names another conversation",
            ),
            (
                json!({"chat_service_sid": "ISffffffffffffffffffffffffffffffff"}),
                &by_sid,
                "chat_service_sid: names another chat service",
            ),
            (
                json!({"identity": "mulder"}),
                &by_identity,
                "identity: is not",
            ),
            (json!({"identity": null}), &by_identity, "identity: is not"),
            (json!({"role_sid": "RL1"}), &by_sid, "role_sid: must match"),
        ] {
            let message = refused(service_participant(
                &body(fields.clone()),
                V1Expected::fetched(key),
            ));
            assert!(message.contains(says), "{fields}: {message}");
            assert!(!message.contains("mulder"), "no value echoed: {message}");
        }
    }

    #[test]
    fn the_reason_label_is_one_of_a_fixed_set() {
        assert_eq!(reason_of("addresses[3].address"), "addresses");
        assert_eq!(reason_of("conversation_id"), "conversation_id");
        assert_eq!(reason_of("whatever[1]"), "other");
    }
}
