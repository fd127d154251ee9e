//! Conversations (v1) participants of a chat service: the participant, its draft and the
//! rules that make the draft a valid create, and the reference that names one (by sid or
//! identity).

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::error::Error;
use super::rules::{self as rules, Violations};
use super::{CreateRequest, Raw, non_empty};

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
    /// The sender Twilio falls back to when `proxy_address` cannot deliver (RCS to SMS);
    /// sent upstream as `MessagingBinding.ProxyAddressFallback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_address_fallback: Option<String>,
    /// Twilio's kind of binding (`sms`, `whatsapp`, `rcs`, ...), as Twilio answers it or
    /// the local store derives it from the address; set by the server, never by a request.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl MessagingBinding {
    fn is_empty(&self) -> bool {
        self.address.is_none()
            && self.proxy_address.is_none()
            && self.projected_address.is_none()
            && self.proxy_address_fallback.is_none()
    }

    /// Twilio's kind of a binding to `address`: `whatsapp`, `rcs` or `sms` (an E.164
    /// number); `None` for none.
    pub fn kind_of(address: Option<&str>) -> Option<String> {
        let a = address?;
        let kind = if a.starts_with("whatsapp:") {
            "whatsapp"
        } else if a.starts_with("rcs:") {
            "rcs"
        } else {
            "sms"
        };
        Some(kind.to_owned())
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
    /// Required, `CH` + 32 hex, or (twilio mode) the conversation's unique name.
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
    pub webhooks: Webhooks,
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
    pub webhooks: Webhooks,
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

impl ServiceParticipantDraft {
    /// Checks every rule and returns the typed request, or INVALID_ARGUMENT listing every
    /// violated field.
    pub fn validate(self) -> Result<NewServiceParticipant, Error> {
        let mut v = Violations::default();
        conversation(&mut v, &self.chat_service_sid, &self.conversation_sid);
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
            webhooks: self.webhooks,
            idempotency_key: non_empty(self.idempotency_key),
        })
    }
}

impl ServiceParticipantRef {
    /// Checks the identifiers' shape. `sid` may be an `MB` sid or an identity.
    pub fn validate(self) -> Result<Self, Error> {
        let mut v = Violations::default();
        self.check(&mut v);
        v.into_result().map(|()| self)
    }

    fn check(&self, v: &mut Violations) {
        conversation(v, &self.chat_service_sid, &self.conversation_sid);
        if self.sid.is_empty() {
            v.add("sid", "required");
        } else if rules::is_dot_segment(&self.sid) {
            v.add("sid", "must not be '.' or '..'");
        } else {
            rules::text(v, "sid", &self.sid, rules::MAX_IDENTITY);
        }
    }
}

impl NewServiceParticipant {
    /// Builds the participant this request creates, with a fresh sid; dates given in the
    /// request are kept, as Twilio does, and the others come from the server's clock
    /// (whole seconds, as Twilio writes them).
    pub fn into_participant(self, account_sid: &str) -> ServiceParticipant {
        let now = now();
        ServiceParticipant {
            sid: crate::domain::ids::service_participant_sid(),
            account_sid: account_sid.to_owned(),
            chat_service_sid: self.chat_service_sid,
            conversation_sid: self.conversation_sid,
            identity: self.identity,
            attributes: self.attributes.unwrap_or_else(|| "{}".to_owned()),
            // The kind Twilio reports, from the address (Twilio types a chat
            // participant's projected group MMS binding "sms", as its examples show).
            messaging_binding: self.messaging_binding.map(|mut b| {
                b.kind = MessagingBinding::kind_of(
                    b.address
                        .as_deref()
                        .or(b.proxy_address.as_deref())
                        .or(b.projected_address.as_deref()),
                );
                b
            }),
            role_sid: self.role_sid,
            date_created: Some(self.date_created.unwrap_or(now)),
            date_updated: Some(self.date_updated.unwrap_or(now)),
            last_read_message_index: None,
            last_read_timestamp: None,
        }
    }
}

impl CreateRequest for NewServiceParticipant {
    const OPERATION: &'static str = "CreateServiceParticipant";
    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

/// `X-Twilio-Webhook-Enabled` as the facade sends it upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Webhooks {
    /// No header: Twilio's default.
    #[default]
    Unsaid,
    /// `X-Twilio-Webhook-Enabled: true`.
    Enabled,
    /// `X-Twilio-Webhook-Enabled: false`.
    Disabled,
}

impl Webhooks {
    /// The header's value, when one is sent.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Webhooks::Unsaid => None,
            Webhooks::Enabled => Some("true"),
            Webhooks::Disabled => Some("false"),
        }
    }

    /// From a gRPC request: `mode` (the `WebhookMode` enum, when set) wins over the older
    /// `bool webhook_enabled`, whose `false` sends no header.
    pub fn from_request(enabled: bool, mode: Option<bool>) -> Self {
        match (mode, enabled) {
            (Some(true), _) | (None, true) => Webhooks::Enabled,
            (Some(false), _) => Webhooks::Disabled,
            (None, false) => Webhooks::Unsaid,
        }
    }
}

/// The fields a v1 update may change, by their names in an update mask.
pub const SERVICE_PARTICIPANT_UPDATE_PATHS: [&str; 9] = [
    "identity",
    "attributes",
    "role_sid",
    "messaging_binding.proxy_address",
    "messaging_binding.projected_address",
    "date_created",
    "date_updated",
    "last_read_message_index",
    "last_read_timestamp",
];

/// Longest `last_read_timestamp`, in characters.
const MAX_LAST_READ_TIMESTAMP: usize = 64;

/// A request to change a v1 participant, as the caller sent it.
#[derive(Debug, Clone, Default)]
pub struct ServiceParticipantUpdateDraft {
    /// Names the participant: its chat service.
    pub chat_service_sid: String,
    /// Names the participant: its conversation.
    pub conversation_sid: String,
    /// Names the participant: its `MB` sid or identity.
    pub sid: String,
    /// New identity; empty clears it.
    pub identity: String,
    /// New attributes (JSON text); empty sets `{}`.
    pub attributes: String,
    /// New role; empty clears it.
    pub role_sid: String,
    /// New proxy address; empty clears it (REST's `null`).
    pub proxy_address: String,
    /// New projected address; empty clears it (REST's `null`).
    pub projected_address: String,
    /// New creation date.
    pub date_created: Option<Raw<DateTime<Utc>>>,
    /// New update date; when not changed, the update sets the server's clock.
    pub date_updated: Option<Raw<DateTime<Utc>>>,
    /// New last-read index; `None` or unset clears it.
    pub last_read_message_index: Option<Raw<i64>>,
    /// New last-read timestamp; empty clears it.
    pub last_read_timestamp: String,
    /// The mask's paths (see [`SERVICE_PARTICIPANT_UPDATE_PATHS`]); `None` or empty:
    /// every field that is set.
    pub mask: Option<Vec<String>>,
    /// Prefix of the fields in violations: `service_participant.` over gRPC, empty over REST.
    pub field_prefix: &'static str,
    /// Whether upstream webhooks fire.
    pub webhooks: Webhooks,
}

/// What a v1 update changes; `None` keeps the field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceParticipantChanges {
    /// New identity (`Some(None)` clears it).
    pub identity: Option<Option<String>>,
    /// New attributes (JSON text).
    pub attributes: Option<String>,
    /// New role (`Some(None)` clears it).
    pub role_sid: Option<Option<String>>,
    /// New proxy address of the binding (`Some(None)` clears it).
    pub proxy_address: Option<Option<String>>,
    /// New projected address of the binding (`Some(None)` clears it).
    pub projected_address: Option<Option<String>>,
    /// New creation date.
    pub date_created: Option<DateTime<Utc>>,
    /// New update date; `None` means the server's clock at the update.
    pub date_updated: Option<DateTime<Utc>>,
    /// New last-read index (`Some(None)` clears it).
    pub last_read_message_index: Option<Option<i64>>,
    /// New last-read timestamp (`Some(None)` clears it).
    pub last_read_timestamp: Option<Option<String>>,
}

/// A valid request to change a v1 participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceParticipantUpdate {
    /// The participant, by sid or identity.
    pub key: ServiceParticipantRef,
    /// What changes.
    pub changes: ServiceParticipantChanges,
    /// Whether upstream webhooks fire.
    pub webhooks: Webhooks,
    /// Prefix of the fields in violations found when the changes meet the record.
    pub field_prefix: &'static str,
}

/// A valid request to remove a v1 participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteServiceParticipant {
    /// The participant, by sid or identity.
    pub key: ServiceParticipantRef,
    /// Whether upstream webhooks fire.
    pub webhooks: Webhooks,
}

impl ServiceParticipantUpdateDraft {
    /// Checks the mask and, for every field it names, the rules of create; INVALID_ARGUMENT
    /// lists every violation (an unknown mask path included). The rules that need the
    /// record (identity or binding, never both or neither) are checked by
    /// [`ServiceParticipantUpdate::apply`].
    pub fn validate(self) -> Result<ServiceParticipantUpdate, Error> {
        let p = self.field_prefix;
        let key = ServiceParticipantRef {
            chat_service_sid: self.chat_service_sid,
            conversation_sid: self.conversation_sid,
            sid: self.sid,
        };
        let mut v = Violations::default();
        key.check(&mut v);
        let set = [
            !self.identity.is_empty(),
            !self.attributes.is_empty(),
            !self.role_sid.is_empty(),
            !self.proxy_address.is_empty(),
            !self.projected_address.is_empty(),
            !matches!(self.date_created, None | Some(Raw::Unset)),
            !matches!(self.date_updated, None | Some(Raw::Unset)),
            !matches!(self.last_read_message_index, None | Some(Raw::Unset)),
            !self.last_read_timestamp.is_empty(),
        ];
        let paths = rules::update_paths(
            &mut v,
            self.mask,
            &SERVICE_PARTICIPANT_UPDATE_PATHS,
            &set,
            "identity, attributes, role_sid, messaging_binding.proxy_address, \
             messaging_binding.projected_address, date_created, date_updated, \
             last_read_message_index or last_read_timestamp",
        );
        let named = |path: &str| paths.iter().any(|p| p == path);
        let mut c = ServiceParticipantChanges::default();
        if named("identity") {
            rules::text(
                &mut v,
                &format!("{p}identity"),
                &self.identity,
                rules::MAX_IDENTITY,
            );
            c.identity = Some(non_empty(self.identity));
        }
        if named("attributes") {
            rules::attributes(&mut v, &format!("{p}attributes"), &self.attributes);
            c.attributes = Some(non_empty(self.attributes).unwrap_or_else(|| "{}".to_owned()));
        }
        if named("role_sid") {
            rules::sid(&mut v, &format!("{p}role_sid"), &self.role_sid, "RL", false);
            c.role_sid = Some(non_empty(self.role_sid));
        }
        if named("messaging_binding.proxy_address") {
            let field = format!("{p}messaging_binding.proxy_address");
            if !self.proxy_address.is_empty() && !rules::is_phone_like(&self.proxy_address) {
                v.add(field, rules::PHONE_LIKE);
            }
            c.proxy_address = Some(non_empty(self.proxy_address));
        }
        if named("messaging_binding.projected_address") {
            let field = format!("{p}messaging_binding.projected_address");
            if !self.projected_address.is_empty() && !rules::is_e164(&self.projected_address) {
                v.add(field, "must be an E.164 number such as +18005550100");
            }
            c.projected_address = Some(non_empty(self.projected_address));
        }
        for (path, value, slot) in [
            ("date_created", self.date_created, &mut c.date_created),
            ("date_updated", self.date_updated, &mut c.date_updated),
        ] {
            if named(path) {
                let field = format!("{p}{path}");
                match rules::timestamp(&mut v, &field, value) {
                    Some(t) => *slot = Some(t),
                    None if path == "date_created" => {
                        v.add(field, "cannot be cleared; give a date");
                    }
                    // An update without a date sets the server's clock.
                    None => {}
                }
            }
        }
        if named("last_read_message_index") {
            let field = format!("{p}last_read_message_index");
            c.last_read_message_index = Some(match self.last_read_message_index {
                None | Some(Raw::Unset) => None,
                Some(Raw::Known(n)) if n >= 0 => Some(n),
                Some(Raw::Known(_)) => {
                    v.add(field, "must be 0 or more");
                    None
                }
                Some(Raw::Unknown(_)) => {
                    v.add(field, "must be an integer");
                    None
                }
            });
        }
        if named("last_read_timestamp") {
            rules::text(
                &mut v,
                &format!("{p}last_read_timestamp"),
                &self.last_read_timestamp,
                MAX_LAST_READ_TIMESTAMP,
            );
            c.last_read_timestamp = Some(non_empty(self.last_read_timestamp));
        }
        v.into_result()?;
        Ok(ServiceParticipantUpdate {
            key,
            changes: c,
            webhooks: self.webhooks,
            field_prefix: p,
        })
    }
}

impl ServiceParticipantUpdate {
    /// Applies the changes to `record`: `date_updated` becomes the request's date or
    /// `now`, and the record must still be a chat participant (identity) or an SMS/WhatsApp
    /// one (binding address with proxy address), never both or neither: INVALID_ARGUMENT
    /// otherwise, and `record` is left as it was.
    pub fn apply(&self, record: &mut ServiceParticipant, now: DateTime<Utc>) -> Result<(), Error> {
        let c = &self.changes;
        let mut next = record.clone();
        if let Some(identity) = &c.identity {
            next.identity.clone_from(identity);
        }
        if let Some(attributes) = &c.attributes {
            next.attributes.clone_from(attributes);
        }
        if let Some(role_sid) = &c.role_sid {
            next.role_sid.clone_from(role_sid);
        }
        let mut binding = next.messaging_binding.take().unwrap_or_default();
        if let Some(proxy) = &c.proxy_address {
            binding.proxy_address.clone_from(proxy);
        }
        if let Some(projected) = &c.projected_address {
            binding.projected_address.clone_from(projected);
        }
        let mut v = Violations::default();
        let binding = rules::messaging_binding(
            &mut v,
            "messaging_binding",
            binding,
            next.identity.is_some(),
        );
        v.prefixed(self.field_prefix).into_result()?;
        next.messaging_binding = Some(binding).filter(|b| !b.is_empty());
        if let Some(date) = c.date_created {
            next.date_created = Some(date);
        }
        next.date_updated = Some(c.date_updated.unwrap_or(now));
        if let Some(index) = c.last_read_message_index {
            next.last_read_message_index = index;
        }
        if let Some(timestamp) = &c.last_read_timestamp {
            next.last_read_timestamp.clone_from(timestamp);
        }
        *record = next;
        Ok(())
    }
}

/// The server's clock as v1 participants carry it: whole seconds, as Twilio writes them.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// Longest conversation unique name, in characters.
const MAX_UNIQUE_NAME: usize = 256;

/// The conversation every v1 request names: a chat service (`IS`) sid, and the
/// conversation by its `CH` sid or, as Twilio allows, by its unique name (non-empty, at
/// most 256 characters, no control character, no `/`, not `.` or `..`). Only Twilio
/// resolves unique names: the local store knows conversations by sid alone, and answers
/// one named otherwise as not found ([`is_conversation_sid`]).
pub(crate) fn conversation(v: &mut Violations, chat_service_sid: &str, conversation_sid: &str) {
    rules::sid(v, "chat_service_sid", chat_service_sid, "IS", true);
    // What looks like a sid (two capitals and some 32 hex digits) is held to a sid's
    // rule: another resource's sid (`IS...`) or a mistyped one is a mistake, not a name.
    let sid_shaped = (30..=40).contains(&conversation_sid.len())
        && conversation_sid
            .bytes()
            .take(2)
            .all(|b| b.is_ascii_uppercase())
        && conversation_sid
            .bytes()
            .skip(2)
            .all(|b| b.is_ascii_hexdigit());
    if sid_shaped || (conversation_sid.starts_with("CH") && conversation_sid.len() == 34) {
        rules::sid(v, "conversation_sid", conversation_sid, "CH", true);
        return;
    }
    let fault = if conversation_sid.is_empty() {
        Some("required")
    } else if conversation_sid.chars().count() > MAX_UNIQUE_NAME
        || conversation_sid.chars().any(char::is_control)
        // `%` and `\` too: a proxy that decodes or normalises paths twice would read
        // them as separators.
        || conversation_sid.contains(['/', '\\', '%'])
        || rules::is_dot_segment(conversation_sid)
    {
        Some(
            "must be a CH sid (CH and 32 hex digits) or the conversation's unique name \
             (at most 256 characters, no '/', '\\' or '%', no control characters, not '.' or '..')",
        )
    } else {
        None
    };
    if let Some(fault) = fault {
        v.add("conversation_sid", fault);
    }
}

/// Whether a valid request's `conversation_sid` is a `CH` sid, not a unique name.
pub fn is_conversation_sid(conversation_sid: &str) -> bool {
    rules::is_sid(conversation_sid, "CH")
}

#[cfg(test)]
mod tests {
    use super::*;

    const IS: &str = "IS00000000000000000000000000000000";
    const CH: &str = "CH00000000000000000000000000000000";

    fn draft() -> ServiceParticipantUpdateDraft {
        ServiceParticipantUpdateDraft {
            chat_service_sid: IS.into(),
            conversation_sid: CH.into(),
            sid: "MB00000000000000000000000000000000".into(),
            field_prefix: "service_participant.",
            ..Default::default()
        }
    }

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::InvalidArgument(v) => v.into_iter().map(|f| f.field).collect(),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    fn record(identity: Option<&str>, binding: Option<MessagingBinding>) -> ServiceParticipant {
        let date = Utc::now().trunc_subsecs(0) - chrono::Duration::days(1);
        ServiceParticipant {
            sid: "MB00000000000000000000000000000000".into(),
            account_sid: "AC00000000000000000000000000000000".into(),
            chat_service_sid: IS.into(),
            conversation_sid: CH.into(),
            identity: identity.map(str::to_owned),
            attributes: "{}".into(),
            messaging_binding: binding,
            role_sid: None,
            date_created: Some(date),
            date_updated: Some(date),
            last_read_message_index: None,
            last_read_timestamp: None,
        }
    }

    fn sms_binding() -> Option<MessagingBinding> {
        Some(MessagingBinding {
            address: Some("+15550000001".into()),
            proxy_address: Some("+18005550100".into()),
            ..Default::default()
        })
    }

    #[test]
    fn without_a_mask_the_set_fields_change() {
        let update = ServiceParticipantUpdateDraft {
            identity: "alice".into(),
            last_read_message_index: Some(Raw::Known(3)),
            ..draft()
        }
        .validate()
        .expect("valid");
        assert_eq!(
            update.changes,
            ServiceParticipantChanges {
                identity: Some(Some("alice".into())),
                last_read_message_index: Some(Some(3)),
                ..Default::default()
            }
        );
    }

    #[test]
    fn named_empty_fields_are_cleared_and_attributes_become_an_empty_object() {
        let update = ServiceParticipantUpdateDraft {
            mask: Some(vec![
                "attributes".into(),
                "role_sid".into(),
                "last_read_timestamp".into(),
                "date_updated".into(),
            ]),
            ..draft()
        }
        .validate()
        .expect("valid");
        assert_eq!(
            update.changes,
            ServiceParticipantChanges {
                attributes: Some("{}".into()),
                role_sid: Some(None),
                last_read_timestamp: Some(None),
                ..Default::default()
            }
        );
    }

    #[test]
    fn unknown_paths_empty_updates_and_bad_values_name_their_fields() {
        let cases: Vec<(ServiceParticipantUpdateDraft, Vec<&str>)> = vec![
            (
                ServiceParticipantUpdateDraft {
                    mask: Some(vec!["sid".into()]),
                    ..draft()
                },
                vec!["update_mask.paths[0]"],
            ),
            (draft(), vec!["update_mask"]),
            (
                ServiceParticipantUpdateDraft {
                    mask: Some(vec!["date_created".into()]),
                    ..draft()
                },
                vec!["service_participant.date_created"],
            ),
            (
                ServiceParticipantUpdateDraft {
                    last_read_message_index: Some(Raw::Known(-1)),
                    proxy_address: "nope".into(),
                    ..draft()
                },
                vec![
                    "service_participant.messaging_binding.proxy_address",
                    "service_participant.last_read_message_index",
                ],
            ),
        ];
        for (draft, expected) in cases {
            let got = fields(draft.validate().expect_err("invalid"));
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn apply_keeps_the_record_a_chat_or_binding_participant() {
        let now = Utc::now().trunc_subsecs(0);
        // Clearing the proxy address of an SMS participant leaves a binding without one.
        let clear_proxy = ServiceParticipantUpdateDraft {
            mask: Some(vec!["messaging_binding.proxy_address".into()]),
            ..draft()
        }
        .validate()
        .expect("valid draft");
        let mut sms = record(None, sms_binding());
        let before = sms.clone();
        let err = clear_proxy
            .apply(&mut sms, now)
            .expect_err("invalid binding");
        assert_eq!(
            fields(err),
            vec!["service_participant.messaging_binding.proxy_address"]
        );
        assert_eq!(sms, before, "a refused update leaves the record as it was");

        // Clearing a chat participant's identity leaves neither.
        let clear_identity = ServiceParticipantUpdateDraft {
            mask: Some(vec!["identity".into()]),
            ..draft()
        }
        .validate()
        .expect("valid draft");
        let mut chat = record(Some("alice"), None);
        assert_eq!(
            fields(clear_identity.apply(&mut chat, now).expect_err("invalid")),
            vec!["service_participant.identity"]
        );

        // A new proxy is fine; date_updated is the update's time, date_created stays.
        let new_proxy = ServiceParticipantUpdateDraft {
            proxy_address: "+18005550101".into(),
            ..draft()
        }
        .validate()
        .expect("valid draft");
        let mut sms = record(None, sms_binding());
        let created = sms.date_created;
        new_proxy.apply(&mut sms, now).expect("valid");
        let binding = sms.messaging_binding.clone().expect("binding");
        assert_eq!(binding.proxy_address.as_deref(), Some("+18005550101"));
        assert_eq!(binding.address.as_deref(), Some("+15550000001"));
        assert_eq!(sms.date_created, created);
        assert_eq!(sms.date_updated, Some(now));

        // A date_updated in the request wins over the clock.
        let given = now - chrono::Duration::days(3);
        let dated = ServiceParticipantUpdateDraft {
            date_updated: Some(Raw::Known(given)),
            date_created: Some(Raw::Known(given)),
            ..draft()
        }
        .validate()
        .expect("valid draft");
        let mut chat = record(Some("alice"), None);
        dated.apply(&mut chat, now).expect("valid");
        assert_eq!(chat.date_updated, Some(given));
        assert_eq!(chat.date_created, Some(given));
    }
}
