//! Twilio's wire formats for participants: what we send (v2 JSON, v1 form) and what we
//! accept back (tolerant of unknown and absent fields), and Twilio's error body.
//! Field names follow `../shared/specs/` (Twilio's official OpenAPI).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{
    Address, Channel, MessagingBinding, NewParticipant, NewServiceParticipant, Participant,
    ParticipantType, ServiceParticipant,
};

/// `POST /v2/Conversations/{id}/Participants` body. Unset fields are omitted, and so is
/// `type` when the caller left it unspecified.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct V2CreateBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<ParticipantType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_id: Option<&'a str>,
    addresses: Vec<V2AddressOut<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct V2AddressOut<'a> {
    channel: Channel,
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_id: Option<&'a str>,
}

impl<'a> From<&'a NewParticipant> for V2CreateBody<'a> {
    fn from(r: &'a NewParticipant) -> Self {
        V2CreateBody {
            name: r.name.as_deref(),
            kind: r.kind,
            profile_id: r.profile_id.as_deref(),
            addresses: r
                .addresses
                .iter()
                .map(|a| V2AddressOut {
                    channel: a.channel,
                    address: &a.address,
                    channel_id: a.channel_id.as_deref(),
                })
                .collect(),
        }
    }
}

/// A v2 participant as Twilio returns it (`conversations.v2.participant`), before
/// [`super::answer`] checks it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct V2Participant {
    pub(super) id: String,
    pub(super) conversation_id: String,
    pub(super) account_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    profile_id: Option<String>,
    #[serde(default)]
    pub(super) addresses: Option<Vec<V2AddressIn>>,
    #[serde(default, deserialize_with = "lenient_date")]
    created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_date")]
    updated_at: Option<DateTime<Utc>>,
}

/// One address of a [`V2Participant`], its channel as Twilio wrote it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct V2AddressIn {
    pub(super) channel: String,
    pub(super) address: String,
    #[serde(default)]
    pub(super) channel_id: Option<String>,
}

/// The channel Twilio named, `None` for one this build does not know.
pub(crate) fn parse_channel(s: &str) -> Option<Channel> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

impl V2Participant {
    /// The domain participant, with `addresses` as [`super::answer`] checked them.
    pub(crate) fn into_domain(self, addresses: Vec<Address>) -> Participant {
        Participant {
            id: self.id,
            conversation_id: self.conversation_id,
            account_id: self.account_id,
            name: self.name.filter(|s| !s.is_empty()),
            // A type this build does not know yet is, to it, UNKNOWN.
            kind: self.kind.map(|k| {
                serde_json::from_value(serde_json::Value::String(k))
                    .unwrap_or(ParticipantType::Unknown)
            }),
            profile_id: self.profile_id.filter(|s| !s.is_empty()),
            addresses,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// `POST /v1/Services/{IS}/Conversations/{CH}/Participants` form fields, in Twilio's names.
pub(crate) fn v1_create_form(r: &NewServiceParticipant) -> Vec<(&'static str, String)> {
    let mut form = Vec::new();
    let mut put = |name: &'static str, value: Option<&String>| {
        if let Some(v) = value {
            form.push((name, v.clone()));
        }
    };
    put("Identity", r.identity.as_ref());
    put("Attributes", r.attributes.as_ref());
    if let Some(b) = &r.messaging_binding {
        put("MessagingBinding.Address", b.address.as_ref());
        put("MessagingBinding.ProxyAddress", b.proxy_address.as_ref());
        put(
            "MessagingBinding.ProjectedAddress",
            b.projected_address.as_ref(),
        );
    }
    put("RoleSid", r.role_sid.as_ref());
    let date = |d: &DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    if let Some(d) = &r.date_created {
        form.push(("DateCreated", date(d)));
    }
    if let Some(d) = &r.date_updated {
        form.push(("DateUpdated", date(d)));
    }
    form
}

/// A v1 participant as Twilio returns it, before [`super::answer`] checks it; every field
/// is nullable in the spec.
#[derive(Debug, Deserialize)]
pub(crate) struct V1Participant {
    pub(super) sid: String,
    #[serde(default)]
    pub(super) account_sid: Option<String>,
    #[serde(default)]
    pub(super) chat_service_sid: Option<String>,
    #[serde(default)]
    pub(super) conversation_sid: Option<String>,
    #[serde(default)]
    pub(super) identity: Option<String>,
    #[serde(default)]
    attributes: Option<String>,
    #[serde(default)]
    messaging_binding: Option<V1Binding>,
    #[serde(default)]
    pub(super) role_sid: Option<String>,
    #[serde(default, deserialize_with = "lenient_date")]
    date_created: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_date")]
    date_updated: Option<DateTime<Utc>>,
    #[serde(default)]
    last_read_message_index: Option<i64>,
    #[serde(default)]
    last_read_timestamp: Option<String>,
}

/// `messaging_binding`: untyped in the spec; these are the fields Twilio documents.
#[derive(Debug, Default, Deserialize)]
struct V1Binding {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    proxy_address: Option<String>,
    #[serde(default)]
    projected_address: Option<String>,
}

impl V1Participant {
    /// The domain participant; parents Twilio left out come from the request's path.
    pub(crate) fn into_domain(
        self,
        chat_service_sid: &str,
        conversation_sid: &str,
    ) -> ServiceParticipant {
        let binding = self.messaging_binding.map(|b| MessagingBinding {
            address: b.address,
            proxy_address: b.proxy_address,
            projected_address: b.projected_address,
        });
        ServiceParticipant {
            sid: self.sid,
            account_sid: self.account_sid.unwrap_or_default(),
            chat_service_sid: self
                .chat_service_sid
                .unwrap_or_else(|| chat_service_sid.to_owned()),
            conversation_sid: self
                .conversation_sid
                .unwrap_or_else(|| conversation_sid.to_owned()),
            identity: self.identity,
            attributes: self.attributes.unwrap_or_else(|| "{}".to_owned()),
            messaging_binding: binding,
            role_sid: self.role_sid,
            date_created: self.date_created,
            date_updated: self.date_updated,
            last_read_message_index: self.last_read_message_index,
            last_read_timestamp: self.last_read_timestamp,
        }
    }
}

/// Twilio's error body; every field optional in the spec.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TwilioErrorBody {
    /// Twilio's error code, such as 20404.
    #[serde(default)]
    pub code: Option<i64>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// Link to the error's documentation.
    #[serde(default)]
    pub more_info: Option<String>,
}

/// A date that does not parse is absent, not a failed call: the participant itself is
/// still worth returning.
fn lenient_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.and_then(|s| {
        DateTime::parse_from_rfc3339(&s)
            .or_else(|_| DateTime::parse_from_rfc2822(&s))
            .map(|t| t.with_timezone(&Utc))
            .ok()
    }))
}

/// Whether a participant Twilio holds is the one `request` would have created: used to
/// recognise our own earlier attempt behind a 409 after an ambiguous failure.
pub(crate) fn same_participant(request: &NewParticipant, existing: &Participant) -> bool {
    let key = |a: &Address| (a.channel, a.conflict_key(), a.channel_id.clone());
    let mut wanted: Vec<_> = request.addresses.iter().map(key).collect();
    let mut found: Vec<_> = existing.addresses.iter().map(key).collect();
    wanted.sort();
    found.sort();
    existing.conversation_id == request.conversation_id
        && existing.name == request.name
        && (request.kind.is_none() || existing.kind == request.kind)
        && (request.profile_id.is_none() || existing.profile_id == request.profile_id)
        && wanted == found
}

/// Whether `existing` holds one of `request`'s addresses (same channel, same address as
/// conflicts compare them): what a participant must do to conflict with the request.
pub(crate) fn shares_an_address(request: &NewParticipant, existing: &Participant) -> bool {
    existing.addresses.iter().any(|held| {
        request.addresses.iter().any(|wanted| {
            wanted.channel == held.channel && wanted.conflict_key() == held.conflict_key()
        })
    })
}

/// The `Idempotency-Key` header for a caller's key. Twilio declares a UUID there
/// (`8-4-4-4-12` hex digits); a key of that shape is sent as it is, any other becomes the
/// name-based UUID (version 5) of the key, so that the same key always sends the same
/// header and different keys different ones.
pub(crate) fn idempotency_header(key: &str) -> String {
    if is_hyphenated_uuid(key) {
        return key.to_owned();
    }
    uuid::Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, key.as_bytes())
        .hyphenated()
        .to_string()
}

/// The namespace of derived idempotency UUIDs: the v5 UUID, in the URL namespace, of
/// `https://github.com/participants-facade/participants-facade/idempotency-key`. Fixed
/// forever: changing it would change every derived key.
const IDEMPOTENCY_NAMESPACE: uuid::Uuid = uuid::uuid!("ea36d4db-fbfb-5f20-a238-49f9f6577250");

fn is_hyphenated_uuid(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod idempotency_header_tests {
    use super::*;

    #[test]
    fn uuid_keys_pass_as_they_are_and_others_map_to_a_stable_v5_uuid() {
        let uuid = "01890a5d-aa0f-7c80-b8e6-0242ac140004";
        assert_eq!(idempotency_header(uuid), uuid);
        assert_eq!(
            idempotency_header("01890A5D-AA0F-7C80-B8E6-0242AC140004"),
            "01890A5D-AA0F-7C80-B8E6-0242AC140004"
        );
        let derived = idempotency_header("order-42");
        assert!(is_hyphenated_uuid(&derived), "{derived}");
        assert_eq!(&derived[14..15], "5", "version 5: {derived}");
        assert_eq!(derived, idempotency_header("order-42"));
        assert_ne!(derived, idempotency_header("order-43"));
        assert_eq!(
            IDEMPOTENCY_NAMESPACE,
            uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_URL,
                b"https://github.com/participants-facade/participants-facade/idempotency-key"
            )
        );
        // Not a hyphenated UUID, so derived: simple form, braces, a stray character.
        for other in [
            "01890a5daa0f7c80b8e60242ac140004",
            "{01890a5d-aa0f-7c80-b8e6-0242ac140004}",
            "01890a5d-aa0f-7c80-b8e6-0242ac14000g",
        ] {
            assert_ne!(idempotency_header(other), other);
        }
    }
}
