//! The domain: participants as the facade understands them, independent of protobuf,
//! JSON and SQL.
//!
//! Requests arrive as *drafts* (what a caller sent, every field as a plain string or a
//! [`Raw`] choice) and become typed values only through `validate()`, which reports every
//! violated field at once. Backends therefore only ever see valid input, and the gRPC and
//! REST fronts share one set of rules (see [`crate::domain::rules`]).

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strum::{Display, EnumString, IntoStaticStr};

use crate::domain::error::Error;
use crate::domain::rules::{self as rules, Violations};

/// A value for an enumerated field as the caller sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw<T> {
    /// The field was absent (proto zero value, empty string).
    Unset,
    /// A value the facade knows.
    Known(T),
    /// A value outside the enumeration, kept as text for the error message.
    Unknown(String),
}

impl<T: FromStr> Raw<T> {
    /// A choice sent as text: absent or empty is unset, a spelling `T` knows is known, and
    /// any other text is kept as unknown.
    pub fn parse(text: Option<String>) -> Self {
        match text {
            None => Raw::Unset,
            Some(s) if s.is_empty() => Raw::Unset,
            Some(s) => s.parse().map_or(Raw::Unknown(s), Raw::Known),
        }
    }
}

// Two derives spell each enum: serde for JSON (the store, request fingerprints, Twilio's
// bodies) and strum for text (parsing, messages, store keys). Both use Twilio's spelling;
// a test below keeps them equal.

/// The role of a Conversation Orchestrator (v2) participant.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, EnumString, IntoStaticStr, Display,
)]
#[cfg_attr(test, derive(strum::VariantArray))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ParticipantType {
    /// A person working for the business.
    HumanAgent,
    /// The business's customer.
    Customer,
    /// An automated agent.
    AiAgent,
    /// An agent, human or AI.
    Agent,
    /// Twilio could not tell.
    Unknown,
}

/// A channel through which a v2 participant is reached.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    EnumString,
    IntoStaticStr,
    Display,
)]
#[cfg_attr(test, derive(strum::VariantArray))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    /// Voice calls, E.164 addresses.
    Voice,
    /// SMS, E.164 addresses.
    Sms,
    /// RCS, `rcs:` addresses.
    Rcs,
    /// E-mail addresses.
    Email,
    /// WhatsApp, `whatsapp:+E.164` addresses.
    Whatsapp,
    /// In-app chat identities.
    Chat,
    /// Video identities.
    Video,
}

impl Channel {
    /// Twilio's name for the channel, as used in its JSON and in our store keys (the
    /// derived spelling).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One way of reaching a v2 participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The channel.
    pub channel: Channel,
    /// The address in the channel's format.
    pub address: String,
    /// Optional channel-specific identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
}

impl Address {
    /// The form under which two addresses count as the same for conflict detection:
    /// e-mail addresses compare case-insensitively, every other channel exactly.
    pub fn conflict_key(&self) -> String {
        match self.channel {
            Channel::Email => self.address.to_ascii_lowercase(),
            _ => self.address.clone(),
        }
    }
}

/// A Conversation Orchestrator (v2) participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// `conv_participant_` + 26 lowercase ULID characters.
    pub id: String,
    /// The owning conversation.
    pub conversation_id: String,
    /// The owning account (`AC...`).
    pub account_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Role in the conversation.
    #[serde(rename = "type")]
    pub kind: Option<ParticipantType>,
    /// Customer profile id.
    pub profile_id: Option<String>,
    /// How the participant is reached.
    pub addresses: Vec<Address>,
    /// Creation time, set by the server (absent only when an upstream omitted it).
    pub created_at: Option<DateTime<Utc>>,
    /// Last update time, set by the server (absent only when an upstream omitted it).
    pub updated_at: Option<DateTime<Utc>>,
}

/// A request to create a v2 participant, as the caller sent it.
#[derive(Debug, Clone, Default)]
pub struct ParticipantDraft {
    /// Required.
    pub conversation_id: String,
    /// Optional display name.
    pub name: String,
    /// Optional role.
    pub kind: Option<Raw<ParticipantType>>,
    /// Optional profile id.
    pub profile_id: String,
    /// At least one.
    pub addresses: Vec<AddressDraft>,
    /// Optional idempotency key.
    pub idempotency_key: String,
}

/// One address of a [`ParticipantDraft`].
#[derive(Debug, Clone)]
pub struct AddressDraft {
    /// Required.
    pub channel: Raw<Channel>,
    /// Required.
    pub address: String,
    /// Optional.
    pub channel_id: String,
}

/// A valid request to create a v2 participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewParticipant {
    /// The conversation to join.
    pub conversation_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Role; `None` leaves it to the backend.
    pub kind: Option<ParticipantType>,
    /// Profile id.
    pub profile_id: Option<String>,
    /// At least one, no two with the same channel and address.
    pub addresses: Vec<Address>,
    /// Idempotency key; not part of the request's identity.
    #[serde(skip)]
    pub idempotency_key: Option<String>,
}

/// Names one v2 participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRef {
    /// The conversation.
    pub conversation_id: String,
    /// The participant id.
    pub participant_id: String,
}

/// How a v1 participant exchanges messages outside the chat SDK.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagingBinding {
    /// The participant's own number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The Twilio number the participant talks to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_address: Option<String>,
    /// The Twilio number a chat participant is projected as in group MMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_address: Option<String>,
}

impl MessagingBinding {
    fn is_empty(&self) -> bool {
        self.address.is_none() && self.proxy_address.is_none() && self.projected_address.is_none()
    }
}

/// A Conversations (v1) participant inside a chat service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceParticipant {
    /// `MB` + 32 hex.
    pub sid: String,
    /// `AC` + 32 hex.
    pub account_sid: String,
    /// `IS` + 32 hex.
    pub chat_service_sid: String,
    /// `CH` + 32 hex.
    pub conversation_sid: String,
    /// Chat identity.
    pub identity: Option<String>,
    /// JSON text, `{}` when unset.
    pub attributes: String,
    /// Non-chat binding.
    pub messaging_binding: Option<MessagingBinding>,
    /// `RL` + 32 hex.
    pub role_sid: Option<String>,
    /// Creation date (absent only when an upstream omitted it).
    pub date_created: Option<DateTime<Utc>>,
    /// Last update date (absent only when an upstream omitted it).
    pub date_updated: Option<DateTime<Utc>>,
    /// Index of the last read message.
    pub last_read_message_index: Option<i64>,
    /// Timestamp of the last read message.
    pub last_read_timestamp: Option<String>,
}

impl ServiceParticipant {
    /// The resource's path, as Twilio builds its `url` field.
    pub fn path(&self) -> String {
        format!(
            "/v1/Services/{}/Conversations/{}/Participants/{}",
            self.chat_service_sid, self.conversation_sid, self.sid
        )
    }
}

/// A request to create a v1 participant, as the caller sent it.
#[derive(Debug, Clone, Default)]
pub struct ServiceParticipantDraft {
    /// Required, `IS` + 32 hex.
    pub chat_service_sid: String,
    /// Required, `CH` + 32 hex.
    pub conversation_sid: String,
    /// Chat identity.
    pub identity: String,
    /// JSON text.
    pub attributes: String,
    /// Binding fields; empty strings when unset.
    pub messaging_binding: MessagingBinding,
    /// `RL` + 32 hex when set.
    pub role_sid: String,
    /// Caller-chosen creation date.
    pub date_created: Option<Raw<DateTime<Utc>>>,
    /// Caller-chosen update date.
    pub date_updated: Option<Raw<DateTime<Utc>>>,
    /// Whether upstream webhooks fire.
    pub webhook_enabled: bool,
    /// Optional idempotency key.
    pub idempotency_key: String,
}

/// A valid request to create a v1 participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewServiceParticipant {
    /// The chat service.
    pub chat_service_sid: String,
    /// The conversation.
    pub conversation_sid: String,
    /// Chat identity.
    pub identity: Option<String>,
    /// JSON text as sent (validated).
    pub attributes: Option<String>,
    /// Non-chat binding, `None` when no field of it was set.
    pub messaging_binding: Option<MessagingBinding>,
    /// Role.
    pub role_sid: Option<String>,
    /// Caller-chosen creation date.
    pub date_created: Option<DateTime<Utc>>,
    /// Caller-chosen update date.
    pub date_updated: Option<DateTime<Utc>>,
    /// Whether upstream webhooks fire; not part of the request's identity.
    #[serde(skip)]
    pub webhook_enabled: bool,
    /// Idempotency key; not part of the request's identity.
    #[serde(skip)]
    pub idempotency_key: Option<String>,
}

/// Names one v1 participant, by sid or by identity as Twilio allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceParticipantRef {
    /// The chat service.
    pub chat_service_sid: String,
    /// The conversation.
    pub conversation_sid: String,
    /// `MB...` sid or identity.
    pub sid: String,
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

impl ParticipantDraft {
    /// Checks every rule and returns the typed request, or INVALID_ARGUMENT listing every
    /// violated field.
    pub fn validate(self) -> Result<NewParticipant, Error> {
        let mut v = Violations::default();
        rules::resource_id(&mut v, "conversation_id", &self.conversation_id);
        rules::text(&mut v, "name", &self.name, rules::MAX_NAME);
        rules::text(&mut v, "profile_id", &self.profile_id, rules::MAX_ID);
        rules::idempotency_key(&mut v, &self.idempotency_key);
        let kind = match self.kind {
            None | Some(Raw::Unset) => None,
            Some(Raw::Known(kind)) => Some(kind),
            // The value itself is not quoted: over REST it is any text the caller sent.
            Some(Raw::Unknown(_)) => {
                v.add(
                    "type",
                    "unknown participant type; expected HUMAN_AGENT, CUSTOMER, AI_AGENT, AGENT or UNKNOWN",
                );
                None
            }
        };
        if self.addresses.is_empty() {
            v.add("addresses", "at least one address is required");
        } else if self.addresses.len() > rules::MAX_ADDRESSES {
            v.add(
                "addresses",
                format!("at most {} addresses are allowed", rules::MAX_ADDRESSES),
            );
        }
        let mut addresses = Vec::with_capacity(self.addresses.len());
        for (i, draft) in self.addresses.into_iter().enumerate() {
            let field = format!("addresses[{i}]");
            if let Some(address) = rules::address(&mut v, &field, draft) {
                let duplicate = addresses.iter().any(|seen: &Address| {
                    seen.channel == address.channel && seen.conflict_key() == address.conflict_key()
                });
                if duplicate {
                    v.add(
                        format!("{field}.address"),
                        "the same channel and address appear twice in this request",
                    );
                }
                addresses.push(address);
            }
        }
        v.into_result()?;
        Ok(NewParticipant {
            conversation_id: self.conversation_id,
            name: non_empty(self.name),
            kind,
            profile_id: non_empty(self.profile_id),
            addresses,
            idempotency_key: non_empty(self.idempotency_key),
        })
    }
}

impl ParticipantRef {
    /// Checks the identifiers' shape; an unknown but well-formed id is the backend's
    /// NOT_FOUND, not a validation error.
    pub fn validate(self) -> Result<Self, Error> {
        let mut v = Violations::default();
        rules::resource_id(&mut v, "conversation_id", &self.conversation_id);
        rules::resource_id(&mut v, "participant_id", &self.participant_id);
        v.into_result().map(|()| self)
    }
}

impl ServiceParticipantDraft {
    /// Checks every rule and returns the typed request, or INVALID_ARGUMENT listing every
    /// violated field.
    pub fn validate(self) -> Result<NewServiceParticipant, Error> {
        let mut v = Violations::default();
        rules::sid(
            &mut v,
            "chat_service_sid",
            &self.chat_service_sid,
            "IS",
            true,
        );
        rules::sid(
            &mut v,
            "conversation_sid",
            &self.conversation_sid,
            "CH",
            true,
        );
        rules::sid(&mut v, "role_sid", &self.role_sid, "RL", false);
        rules::text(&mut v, "identity", &self.identity, rules::MAX_IDENTITY);
        rules::attributes(&mut v, "attributes", &self.attributes);
        rules::idempotency_key(&mut v, &self.idempotency_key);
        let date_created = rules::timestamp(&mut v, "date_created", self.date_created);
        let date_updated = rules::timestamp(&mut v, "date_updated", self.date_updated);
        let binding = rules::messaging_binding(
            &mut v,
            "messaging_binding",
            self.messaging_binding,
            !self.identity.is_empty(),
        );
        v.into_result()?;
        Ok(NewServiceParticipant {
            chat_service_sid: self.chat_service_sid,
            conversation_sid: self.conversation_sid,
            identity: non_empty(self.identity),
            attributes: non_empty(self.attributes),
            messaging_binding: Some(binding).filter(|b| !b.is_empty()),
            role_sid: non_empty(self.role_sid),
            date_created,
            date_updated,
            webhook_enabled: self.webhook_enabled,
            idempotency_key: non_empty(self.idempotency_key),
        })
    }
}

impl ServiceParticipantRef {
    /// Checks the identifiers' shape. `sid` may be an `MB` sid or an identity.
    pub fn validate(self) -> Result<Self, Error> {
        let mut v = Violations::default();
        rules::sid(
            &mut v,
            "chat_service_sid",
            &self.chat_service_sid,
            "IS",
            true,
        );
        rules::sid(
            &mut v,
            "conversation_sid",
            &self.conversation_sid,
            "CH",
            true,
        );
        if self.sid.is_empty() {
            v.add("sid", "required");
        } else if rules::is_dot_segment(&self.sid) {
            v.add("sid", "must not be '.' or '..'");
        } else {
            rules::text(&mut v, "sid", &self.sid, rules::MAX_IDENTITY);
        }
        v.into_result().map(|()| self)
    }
}

impl NewParticipant {
    /// Builds the participant this request creates, with a fresh id and the server's clock.
    pub fn into_participant(self, account_id: &str) -> Participant {
        let now = Utc::now().trunc_subsecs(3);
        Participant {
            id: crate::domain::ids::participant_id(),
            conversation_id: self.conversation_id,
            account_id: account_id.to_owned(),
            name: self.name,
            kind: self.kind,
            profile_id: self.profile_id,
            addresses: self.addresses,
            created_at: Some(now),
            updated_at: Some(now),
        }
    }
}

impl NewServiceParticipant {
    /// Builds the participant this request creates, with a fresh sid; dates given in the
    /// request are kept, as Twilio does, and the others come from the server's clock
    /// (whole seconds, as Twilio writes them).
    pub fn into_participant(self, account_sid: &str) -> ServiceParticipant {
        let now = Utc::now().trunc_subsecs(0);
        ServiceParticipant {
            sid: crate::domain::ids::service_participant_sid(),
            account_sid: account_sid.to_owned(),
            chat_service_sid: self.chat_service_sid,
            conversation_sid: self.conversation_sid,
            identity: self.identity,
            attributes: self.attributes.unwrap_or_else(|| "{}".to_owned()),
            messaging_binding: self.messaging_binding,
            role_sid: self.role_sid,
            date_created: Some(self.date_created.unwrap_or(now)),
            date_updated: Some(self.date_updated.unwrap_or(now)),
            last_read_message_index: None,
            last_read_timestamp: None,
        }
    }
}

/// A create request as idempotency sees it: an optional key, and a fingerprint that tells
/// whether a second request with the same key is the same request.
pub trait CreateRequest: Serialize {
    /// Names the operation; part of the fingerprint, so a key reused across the v1 and v2
    /// creates counts as a different request.
    const OPERATION: &'static str;

    /// The caller's idempotency key, if any.
    fn idempotency_key(&self) -> Option<&str>;

    /// SHA-256 of the operation and the request's canonical JSON (the key, and options
    /// that do not change the resource, excluded).
    fn fingerprint(&self) -> Vec<u8> {
        let mut hash = Sha256::new();
        hash.update(Self::OPERATION.as_bytes());
        hash.update([0]);
        // Serialising plain structs of strings cannot fail.
        hash.update(serde_json::to_vec(self).unwrap_or_default());
        hash.finalize().to_vec()
    }
}

impl CreateRequest for NewParticipant {
    const OPERATION: &'static str = "CreateParticipant";
    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

impl CreateRequest for NewServiceParticipant {
    const OPERATION: &'static str = "CreateServiceParticipant";
    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    /// serde's spelling (JSON) and strum's (text) of every variant, which must agree.
    fn spellings<T>() -> Vec<(String, &'static str)>
    where
        T: VariantArray + Serialize + Copy + Into<&'static str>,
    {
        T::VARIANTS
            .iter()
            .map(|v| {
                let json = serde_json::to_string(v).expect("a unit variant serialises");
                (json.trim_matches('"').to_owned(), (*v).into())
            })
            .collect()
    }

    #[test]
    fn enums_have_one_spelling_in_json_and_in_text() {
        for (json, text) in spellings::<Channel>()
            .into_iter()
            .chain(spellings::<ParticipantType>())
        {
            assert_eq!(json, text);
        }
        assert_eq!(Channel::Whatsapp.as_str(), "WHATSAPP");
        assert_eq!(ParticipantType::AiAgent.to_string(), "AI_AGENT");
        assert_eq!("HUMAN_AGENT".parse(), Ok(ParticipantType::HumanAgent));
    }

    #[test]
    fn raw_choices_keep_unknown_text_and_treat_empty_as_unset() {
        assert_eq!(Raw::<Channel>::parse(None), Raw::Unset);
        assert_eq!(Raw::<Channel>::parse(Some(String::new())), Raw::Unset);
        assert_eq!(Raw::parse(Some("SMS".into())), Raw::Known(Channel::Sms));
        // Spellings are exact, as Twilio's JSON is.
        assert_eq!(
            Raw::<Channel>::parse(Some("sms".into())),
            Raw::Unknown("sms".into())
        );
    }
}
