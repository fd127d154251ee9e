//! Conversations v2 (Conversation Orchestrator) participants on the wire, camelCase as
//! Twilio's OpenAPI (`conversations.v2.participant`) names them: the create body, which
//! the REST front reads and the twilio backend writes, and the participant, which the REST
//! front writes and the twilio backend reads.

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::fields::{lenient_date, present, write_date};
use crate::domain::{
    Address, AddressDraft, NewParticipant, Page, Participant, ParticipantDraft, ParticipantType,
    ParticipantUpdateDraft, Raw,
};

/// Body of `POST /v2/Conversations/{ConversationSid}/Participants`, Twilio's field names.
// Read, every field is optional text, so that validation (not decoding) names what is
// missing or unknown. Written, unset fields are left out.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateParticipantBody {
    /// Display name.
    #[schema(example = "Dana")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// HUMAN_AGENT, CUSTOMER, AI_AGENT, AGENT or UNKNOWN.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Customer profile id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// At least one address.
    pub addresses: Option<Vec<AddressBody>>,
}

/// One address in a v2 body.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressBody {
    /// VOICE, SMS, RCS, EMAIL, WHATSAPP, CHAT or VIDEO.
    #[schema(example = "SMS")]
    pub channel: Option<String>,
    /// The address in the channel's format.
    #[schema(example = "+18005550100")]
    pub address: Option<String>,
    /// Channel-specific identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
}

/// A v2 participant, as Twilio returns it.
// Read from Twilio: `id`, `conversationId` and `accountId` are required, the rest may be
// absent or null (the spec makes them optional or nullable); a `type` this build does not
// know is UNKNOWN to it; a date that does not parse is absent; each address must name its
// channel and address. `twilio::answer` then checks the values.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantJson {
    /// `conv_participant_` + 26 ULID characters.
    pub id: String,
    /// The conversation.
    pub conversation_id: String,
    /// The account (`AC...`).
    pub account_id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The participant's role.
    #[serde(rename = "type", default, deserialize_with = "participant_type")]
    #[schema(value_type = Option<String>)]
    pub kind: Option<ParticipantType>,
    /// Customer profile id.
    #[serde(default)]
    pub profile_id: Option<String>,
    /// How the participant is reached.
    #[serde(default, deserialize_with = "complete_addresses")]
    #[schema(required = true)]
    pub addresses: Vec<AddressBody>,
    /// RFC 3339 creation time.
    #[serde(
        default,
        serialize_with = "write_date",
        deserialize_with = "lenient_date"
    )]
    #[schema(value_type = Option<String>)]
    pub created_at: Option<DateTime<Utc>>,
    /// RFC 3339 update time.
    #[serde(
        default,
        serialize_with = "write_date",
        deserialize_with = "lenient_date"
    )]
    #[schema(value_type = Option<String>)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Body of `PUT /v2/Conversations/{ConversationSid}/Participants/{Sid}`: create's fields,
/// each optional. A field present changes (null clears it), a field absent is kept; a
/// field this resource does not have is refused, so that a misspelt field is not taken for
/// an absent one.
// Read, presence is kept (`Some(None)` is a null); written, absent fields are left out and
// nulls written.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateParticipantBody {
    /// New display name; null clears it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, example = "Dana")]
    pub name: Option<Option<String>>,
    /// New role (HUMAN_AGENT, CUSTOMER, AI_AGENT, AGENT or UNKNOWN); null clears it.
    #[serde(
        rename = "type",
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub kind: Option<Option<String>>,
    /// New customer profile id; null clears it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub profile_id: Option<Option<String>>,
    /// New addresses, replacing all of them (at least one).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Vec<AddressBody>>)]
    pub addresses: Option<Option<Vec<AddressBody>>>,
}

impl UpdateParticipantBody {
    /// The request as a draft for the participant named by the path: the update mask is
    /// the fields present in the body, and violations name the fields without a prefix.
    pub(crate) fn into_draft(
        self,
        conversation_id: String,
        participant_id: String,
    ) -> ParticipantUpdateDraft {
        let mut mask = Vec::new();
        let mut named = |present: bool, path: &str| {
            if present {
                mask.push(path.to_owned());
            }
        };
        named(self.name.is_some(), "name");
        named(self.kind.is_some(), "type");
        named(self.profile_id.is_some(), "profile_id");
        named(self.addresses.is_some(), "addresses");
        ParticipantUpdateDraft {
            conversation_id,
            participant_id,
            name: self.name.flatten().unwrap_or_default(),
            kind: self.kind.map(Raw::parse),
            profile_id: self.profile_id.flatten().unwrap_or_default(),
            addresses: self
                .addresses
                .flatten()
                .unwrap_or_default()
                .into_iter()
                .map(AddressBody::into_draft)
                .collect(),
            mask: Some(mask),
            field_prefix: "",
        }
    }
}

/// `meta` of a v2 list, as Twilio writes it: tokens, not URLs.
// Written, every field; read (from Twilio), any may be missing: without `nextToken`
// there is no next page.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenMetaJson {
    /// The key of the list in the answer: `participants`.
    #[schema(example = "participants")]
    pub key: String,
    /// The page size asked for (or the default, 50).
    pub page_size: u32,
    /// Always null: pages are followed forward only.
    #[serde(default)]
    pub previous_token: Option<String>,
    /// `pageToken` of the next page; null on the last page.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// Answer of `GET /v2/Conversations/{ConversationSid}/Participants`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListParticipantsJson {
    /// The page's participants, oldest first.
    pub participants: Vec<ParticipantJson>,
    /// Where the page sits.
    #[serde(default)]
    pub meta: TokenMetaJson,
}

impl ListParticipantsJson {
    /// `page` as the REST front answers it; `page_size` is the size asked for.
    pub(crate) fn new(page: Page<Participant>, page_size: u32) -> Self {
        ListParticipantsJson {
            participants: page.items.into_iter().map(ParticipantJson::from).collect(),
            meta: TokenMetaJson {
                key: "participants".to_owned(),
                page_size,
                previous_token: None,
                next_token: page.next_page_token,
            },
        }
    }
}

/// A `type` as text; one this build does not know yet is, to it, UNKNOWN.
fn participant_type<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ParticipantType>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    Ok(text.map(|t| t.parse().unwrap_or(ParticipantType::Unknown)))
}

/// `addresses` in Twilio's answers: absent or null is none, and each names its channel
/// and its address.
fn complete_addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AddressBody>, D::Error> {
    let listed: Vec<AddressBody> = Option::deserialize(d)?.unwrap_or_default();
    for a in &listed {
        if a.channel.is_none() {
            return Err(D::Error::missing_field("channel"));
        }
        if a.address.is_none() {
            return Err(D::Error::missing_field("address"));
        }
    }
    Ok(listed)
}

impl AddressBody {
    /// The address as a draft: the channel as sent (unset, known or unknown text).
    pub(crate) fn into_draft(self) -> AddressDraft {
        AddressDraft {
            channel: Raw::parse(self.channel),
            address: self.address.unwrap_or_default(),
            channel_id: self.channel_id.unwrap_or_default(),
        }
    }
}

impl From<Address> for AddressBody {
    fn from(a: Address) -> Self {
        AddressBody {
            channel: Some(a.channel_text().to_owned()),
            address: Some(a.address),
            channel_id: a.channel_id,
        }
    }
}

impl CreateParticipantBody {
    /// The request as a draft for `conversation_id`, without an idempotency key (a header,
    /// not part of the body).
    pub(crate) fn into_draft(self, conversation_id: String) -> ParticipantDraft {
        ParticipantDraft {
            conversation_id,
            name: self.name.unwrap_or_default(),
            kind: Some(Raw::parse(self.kind)),
            profile_id: self.profile_id.unwrap_or_default(),
            addresses: self
                .addresses
                .unwrap_or_default()
                .into_iter()
                .map(AddressBody::into_draft)
                .collect(),
            idempotency_key: String::new(),
        }
    }
}

impl From<&Participant> for CreateParticipantBody {
    /// The whole participant as an update (`PUT`) carries it: Twilio's update takes
    /// create's fields, and a field left out is no longer set.
    fn from(p: &Participant) -> Self {
        CreateParticipantBody {
            name: p.name.clone(),
            kind: p.kind.map(|k| k.to_string()),
            profile_id: p.profile_id.clone(),
            addresses: Some(p.addresses.iter().cloned().map(AddressBody::from).collect()),
        }
    }
}

impl From<&NewParticipant> for CreateParticipantBody {
    fn from(r: &NewParticipant) -> Self {
        CreateParticipantBody {
            name: r.name.clone(),
            // Left out when the caller left it unspecified.
            kind: r.kind.map(|k| k.to_string()),
            profile_id: r.profile_id.clone(),
            addresses: Some(r.addresses.iter().cloned().map(AddressBody::from).collect()),
        }
    }
}

impl From<Participant> for ParticipantJson {
    fn from(p: Participant) -> Self {
        ParticipantJson {
            id: p.id,
            conversation_id: p.conversation_id,
            account_id: p.account_id,
            name: p.name,
            kind: p.kind,
            profile_id: p.profile_id,
            addresses: p.addresses.into_iter().map(AddressBody::from).collect(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl ParticipantJson {
    /// The domain participant, with `addresses` as the caller checked them (the JSON's own
    /// are left out: take them first).
    pub(crate) fn into_domain(self, addresses: Vec<Address>) -> Participant {
        Participant {
            id: self.id,
            conversation_id: self.conversation_id,
            account_id: self.account_id,
            name: self.name.filter(|s| !s.is_empty()),
            kind: self.kind,
            profile_id: self.profile_id.filter(|s| !s.is_empty()),
            addresses,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Channel;

    fn participant() -> Participant {
        Participant {
            id: "conv_participant_01hzy3v6b0qz8d3v5e6w7x8y9z".into(),
            conversation_id: "conv_conversation_1".into(),
            account_id: "ACabcdefabcdefabcdefabcdefabcdefab".into(),
            name: None,
            kind: Some(ParticipantType::HumanAgent),
            profile_id: None,
            addresses: vec![Address {
                channel: Channel::Sms,
                address: "+18005550100".into(),
                channel_id: None,
                channel_name: None,
            }],
            created_at: DateTime::parse_from_rfc3339("2015-12-16T22:18:37Z")
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            updated_at: None,
        }
    }

    #[test]
    fn a_participant_is_written_with_every_field_in_twilios_order() {
        let json = serde_json::to_string(&ParticipantJson::from(participant())).expect("json");
        assert_eq!(
            json,
            concat!(
                r#"{"id":"conv_participant_01hzy3v6b0qz8d3v5e6w7x8y9z","#,
                r#""conversationId":"conv_conversation_1","#,
                r#""accountId":"ACabcdefabcdefabcdefabcdefabcdefab","name":null,"#,
                r#""type":"HUMAN_AGENT","profileId":null,"#,
                r#""addresses":[{"channel":"SMS","address":"+18005550100"}],"#,
                r#""createdAt":"2015-12-16T22:18:37Z","updatedAt":null}"#
            )
        );
    }

    #[test]
    fn a_participant_is_read_as_twilio_may_answer_it() {
        let read = |v: serde_json::Value| serde_json::from_value::<ParticipantJson>(v);
        let minimal = json!({"id": "p", "conversationId": "c", "accountId": "a"});
        let p = read(minimal.clone()).expect("optional fields may be absent");
        assert!(p.addresses.is_empty() && p.kind.is_none());
        let mut fields = minimal.clone();
        fields["type"] = json!("SUPERVISOR");
        fields["addresses"] = json!(null);
        fields["createdAt"] = json!("not a date");
        let p = read(fields).expect("lenient");
        assert_eq!(
            (p.kind, p.addresses.len(), p.created_at),
            (Some(ParticipantType::Unknown), 0, None)
        );
        for address in [
            json!({"channel": "SMS"}),
            json!({"address": "+18005550100"}),
        ] {
            let mut fields = minimal.clone();
            fields["addresses"] = json!([address]);
            assert!(read(fields).is_err(), "an address names both");
        }
    }

    #[test]
    fn a_create_body_is_written_without_unset_fields() {
        let request = NewParticipant {
            conversation_id: "conv_conversation_1".into(),
            name: Some("Dana".into()),
            kind: None,
            profile_id: None,
            addresses: participant().addresses,
            idempotency_key: None,
        };
        let json = serde_json::to_string(&CreateParticipantBody::from(&request)).expect("json");
        assert_eq!(
            json,
            r#"{"name":"Dana","addresses":[{"channel":"SMS","address":"+18005550100"}]}"#
        );
    }

    #[test]
    fn an_update_body_masks_the_keys_present_and_nulls_clear() {
        let read = |v: serde_json::Value| serde_json::from_value::<UpdateParticipantBody>(v);
        let draft = read(json!({"name": null, "type": "AGENT"}))
            .expect("body")
            .into_draft("c".into(), "p".into());
        assert_eq!(draft.mask, Some(vec!["name".to_owned(), "type".to_owned()]));
        assert_eq!(draft.name, "");
        assert_eq!(draft.kind, Some(Raw::Known(ParticipantType::Agent)));
        assert_eq!(draft.field_prefix, "");
        let draft = read(json!({"profileId": "x", "addresses": null}))
            .expect("body")
            .into_draft("c".into(), "p".into());
        assert_eq!(
            draft.mask,
            Some(vec!["profile_id".to_owned(), "addresses".to_owned()])
        );
        assert!(draft.addresses.is_empty());
        let draft = read(json!({}))
            .expect("body")
            .into_draft("c".into(), "p".into());
        assert_eq!(draft.mask, Some(vec![]));
        assert!(
            read(json!({"profileID": "x"})).is_err(),
            "unknown keys refused"
        );
        let written = serde_json::to_string(&UpdateParticipantBody {
            name: Some(None),
            ..UpdateParticipantBody::default()
        })
        .expect("json");
        assert_eq!(written, r#"{"name":null}"#);
    }

    #[test]
    fn a_list_is_written_with_twilios_token_meta() {
        let page = Page {
            items: vec![participant()],
            next_page_token: Some("t1".into()),
        };
        let json = serde_json::to_value(ListParticipantsJson::new(page, 3)).expect("json");
        assert_eq!(
            json["meta"],
            json!({"key": "participants", "pageSize": 3, "previousToken": null, "nextToken": "t1"})
        );
        assert_eq!(json["participants"][0]["createdAt"], "2015-12-16T22:18:37Z");
        let last = Page {
            items: vec![],
            next_page_token: None,
        };
        let json = serde_json::to_value(ListParticipantsJson::new(last, 50)).expect("json");
        assert_eq!(json["meta"]["nextToken"], serde_json::Value::Null);
    }
}
