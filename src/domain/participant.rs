//! Conversation Orchestrator (v2) participants: the participant, its draft and the rules
//! that make the draft a valid create, and the reference that names one.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr};

use super::error::Error;
use super::rules::{self as rules, Violations};
use super::{CreateRequest, Raw, non_empty};

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
    /// A channel this build does not know, as an upstream (Twilio) answer names it; the
    /// address's `channel_name` holds Twilio's name. Refused in requests (`rules::address`),
    /// never produced by the local store.
    Other,
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
    /// Twilio's name of the channel when `channel` is [`Channel::Other`]; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<String>,
}

impl Address {
    /// Twilio's name of the address's channel (its own for a channel this build does not
    /// know).
    pub fn channel_text(&self) -> &str {
        match (&self.channel, &self.channel_name) {
            (Channel::Other, Some(name)) => name,
            (channel, _) => channel.as_str(),
        }
    }

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

impl ParticipantDraft {
    /// Checks every rule and returns the typed request, or INVALID_ARGUMENT listing every
    /// violated field.
    pub fn validate(self) -> Result<NewParticipant, Error> {
        let mut v = Violations::default();
        rules::resource_id(&mut v, "conversation_id", &self.conversation_id);
        rules::text(&mut v, "name", &self.name, rules::MAX_NAME);
        rules::text(&mut v, "profile_id", &self.profile_id, rules::MAX_ID);
        rules::idempotency_key(&mut v, &self.idempotency_key);
        let kind = participant_type(&mut v, "type", self.kind);
        let addresses = addresses(&mut v, "", self.addresses);
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

/// The participant's addresses: at least one, at most [`rules::MAX_ADDRESSES`], each valid,
/// no channel and address twice. Violations are named `{prefix}addresses...`.
fn addresses(v: &mut Violations, prefix: &str, drafts: Vec<AddressDraft>) -> Vec<Address> {
    if drafts.is_empty() {
        v.add(
            format!("{prefix}addresses"),
            "at least one address is required",
        );
    } else if drafts.len() > rules::MAX_ADDRESSES {
        v.add(
            format!("{prefix}addresses"),
            format!("at most {} addresses are allowed", rules::MAX_ADDRESSES),
        );
    }
    let mut addresses = Vec::with_capacity(drafts.len());
    for (i, draft) in drafts.into_iter().enumerate() {
        let field = format!("{prefix}addresses[{i}]");
        if let Some(address) = rules::address(v, &field, draft) {
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
    addresses
}

/// The participant type as sent: unset is `None`, unknown is a violation on `field`.
fn participant_type(
    v: &mut Violations,
    field: &str,
    kind: Option<Raw<ParticipantType>>,
) -> Option<ParticipantType> {
    match kind {
        None | Some(Raw::Unset) => None,
        Some(Raw::Known(kind)) => Some(kind),
        // The value itself is not quoted: over REST it is any text the caller sent.
        Some(Raw::Unknown(_)) => {
            v.add(
                field,
                "unknown participant type; expected HUMAN_AGENT, CUSTOMER, AI_AGENT, AGENT or UNKNOWN",
            );
            None
        }
    }
}

/// The fields an update may change, by their names in an update mask.
pub const PARTICIPANT_UPDATE_PATHS: [&str; 4] = ["name", "type", "profile_id", "addresses"];

/// A request to change a v2 participant, as the caller sent it: the new values, and which
/// of them to apply.
#[derive(Debug, Clone, Default)]
pub struct ParticipantUpdateDraft {
    /// Names the participant: its conversation.
    pub conversation_id: String,
    /// Names the participant: its id.
    pub participant_id: String,
    /// New display name; empty clears it.
    pub name: String,
    /// New role; unset clears it.
    pub kind: Option<Raw<ParticipantType>>,
    /// New profile id; empty clears it.
    pub profile_id: String,
    /// New addresses, replacing all of them.
    pub addresses: Vec<AddressDraft>,
    /// The mask's paths (see [`PARTICIPANT_UPDATE_PATHS`]); `None` or empty: every field
    /// that is set (non-empty).
    pub mask: Option<Vec<String>>,
    /// Prefix of the fields in violations: `participant.` over gRPC, where they sit in
    /// the request's `participant`, empty over REST.
    pub field_prefix: &'static str,
}

/// What an update changes; `None` keeps the field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ParticipantChanges {
    /// New display name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New role (`Some(None)` clears it).
    pub kind: Option<Option<ParticipantType>>,
    /// New profile id (`Some(None)` clears it).
    pub profile_id: Option<Option<String>>,
    /// New addresses, replacing all of them; never empty.
    pub addresses: Option<Vec<Address>>,
}

/// A valid request to change a v2 participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantUpdate {
    /// The participant.
    pub key: ParticipantRef,
    /// What changes.
    pub changes: ParticipantChanges,
}

impl ParticipantUpdateDraft {
    /// Checks the mask and, for every field it names, the rules of create; INVALID_ARGUMENT
    /// lists every violation (an unknown mask path included).
    pub fn validate(self) -> Result<ParticipantUpdate, Error> {
        let mut v = Violations::default();
        let p = self.field_prefix;
        rules::resource_id(
            &mut v,
            &format!("{p}conversation_id"),
            &self.conversation_id,
        );
        let id_field = if p.is_empty() {
            "participant_id"
        } else {
            "participant.id"
        };
        rules::resource_id(&mut v, id_field, &self.participant_id);
        let set = [
            !self.name.is_empty(),
            !matches!(self.kind, None | Some(Raw::Unset)),
            !self.profile_id.is_empty(),
            !self.addresses.is_empty(),
        ];
        let paths = rules::update_paths(
            &mut v,
            self.mask,
            &PARTICIPANT_UPDATE_PATHS,
            &set,
            "name, type, profile_id or addresses",
        );
        let named = |path: &str| paths.iter().any(|p| p == path);
        let mut changes = ParticipantChanges::default();
        if named("name") {
            rules::text(&mut v, &format!("{p}name"), &self.name, rules::MAX_NAME);
            changes.name = Some(non_empty(self.name));
        }
        if named("type") {
            changes.kind = Some(participant_type(&mut v, &format!("{p}type"), self.kind));
        }
        if named("profile_id") {
            rules::text(
                &mut v,
                &format!("{p}profile_id"),
                &self.profile_id,
                rules::MAX_ID,
            );
            changes.profile_id = Some(non_empty(self.profile_id));
        }
        if named("addresses") {
            changes.addresses = Some(addresses(&mut v, p, self.addresses));
        }
        v.into_result()?;
        Ok(ParticipantUpdate {
            key: ParticipantRef {
                conversation_id: self.conversation_id,
                participant_id: self.participant_id,
            },
            changes,
        })
    }
}

impl ParticipantChanges {
    /// Applies the changes to `p` and moves `updated_at` to `now`; `created_at` stays.
    pub fn apply(&self, p: &mut Participant, now: DateTime<Utc>) {
        if let Some(name) = &self.name {
            p.name.clone_from(name);
        }
        if let Some(kind) = self.kind {
            p.kind = kind;
        }
        if let Some(profile_id) = &self.profile_id {
            p.profile_id.clone_from(profile_id);
        }
        if let Some(addresses) = &self.addresses {
            p.addresses.clone_from(addresses);
        }
        p.updated_at = Some(now);
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

impl NewParticipant {
    /// Builds the participant this request creates, with a fresh id and the server's clock.
    pub fn into_participant(self, account_id: &str) -> Participant {
        let now = now();
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

impl CreateRequest for NewParticipant {
    const OPERATION: &'static str = "CreateParticipant";
    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

/// The server's clock as v2 participants carry it: milliseconds.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// The `updated_at` an update gives a v2 participant last updated at `last`: now, and at
/// least 1 ms past `last`, so that it tells updates apart even within one millisecond.
pub fn next_updated_at(last: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match last {
        Some(last) => now().max(last + chrono::Duration::milliseconds(1)),
        None => now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> ParticipantUpdateDraft {
        ParticipantUpdateDraft {
            conversation_id: "conv_1".into(),
            participant_id: "conv_participant_1".into(),
            field_prefix: "participant.",
            ..Default::default()
        }
    }

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::InvalidArgument(v) => v.into_iter().map(|f| f.field).collect(),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    fn sms(address: &str) -> AddressDraft {
        AddressDraft {
            channel: Raw::Known(Channel::Sms),
            address: address.into(),
            channel_id: String::new(),
        }
    }

    #[test]
    fn without_a_mask_the_set_fields_change_and_the_others_stay() {
        let update = ParticipantUpdateDraft {
            name: "New".into(),
            kind: Some(Raw::Unset),
            ..draft()
        }
        .validate()
        .expect("valid");
        assert_eq!(
            update.changes,
            ParticipantChanges {
                name: Some(Some("New".into())),
                ..Default::default()
            }
        );
        let update = ParticipantUpdateDraft {
            kind: Some(Raw::Known(ParticipantType::Agent)),
            addresses: vec![sms("+15550000001")],
            mask: Some(vec![]),
            ..draft()
        }
        .validate()
        .expect("valid");
        assert_eq!(update.changes.kind, Some(Some(ParticipantType::Agent)));
        assert_eq!(update.changes.addresses.map(|a| a.len()), Some(1));
        assert_eq!(update.changes.name, None);
    }

    #[test]
    fn a_mask_names_what_changes_and_an_empty_named_field_is_cleared() {
        let update = ParticipantUpdateDraft {
            profile_id: "ignored, not named".into(),
            mask: Some(vec!["name".into(), "type".into()]),
            ..draft()
        }
        .validate()
        .expect("valid");
        assert_eq!(
            update.changes,
            ParticipantChanges {
                name: Some(None),
                kind: Some(None),
                ..Default::default()
            }
        );
    }

    #[test]
    fn unknown_paths_empty_updates_and_bad_values_name_their_fields() {
        let cases: Vec<(ParticipantUpdateDraft, Vec<&str>)> = vec![
            (
                ParticipantUpdateDraft {
                    mask: Some(vec!["name".into(), "id".into(), "created_at".into()]),
                    ..draft()
                },
                vec!["update_mask.paths[1]", "update_mask.paths[2]"],
            ),
            (draft(), vec!["update_mask"]),
            (
                ParticipantUpdateDraft {
                    mask: Some(vec!["addresses".into()]),
                    ..draft()
                },
                vec!["participant.addresses"],
            ),
            (
                ParticipantUpdateDraft {
                    addresses: vec![sms("not a number")],
                    ..draft()
                },
                vec!["participant.addresses[0].address"],
            ),
            (
                ParticipantUpdateDraft {
                    name: "x".repeat(rules::MAX_NAME + 1),
                    kind: Some(Raw::Unknown("BOSS".into())),
                    ..draft()
                },
                vec!["participant.name", "participant.type"],
            ),
            (
                ParticipantUpdateDraft {
                    participant_id: String::new(),
                    name: "x".into(),
                    field_prefix: "",
                    ..draft()
                },
                vec!["participant_id"],
            ),
        ];
        for (draft, expected) in cases {
            let got = fields(draft.validate().expect_err("invalid"));
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn apply_changes_the_fields_and_moves_updated_at_only() {
        let created = now();
        let mut p = Participant {
            id: "conv_participant_1".into(),
            conversation_id: "conv_1".into(),
            account_id: "AC1".into(),
            name: Some("Old".into()),
            kind: Some(ParticipantType::Customer),
            profile_id: Some("p".into()),
            addresses: vec![],
            created_at: Some(created),
            updated_at: Some(created),
        };
        let later = created + chrono::Duration::seconds(5);
        ParticipantChanges {
            name: Some(None),
            profile_id: Some(Some("q".into())),
            ..Default::default()
        }
        .apply(&mut p, later);
        assert_eq!(p.name, None);
        assert_eq!(p.kind, Some(ParticipantType::Customer));
        assert_eq!(p.profile_id.as_deref(), Some("q"));
        assert_eq!(p.created_at, Some(created));
        assert_eq!(p.updated_at, Some(later));
    }
}
