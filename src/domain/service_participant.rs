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
            webhook_enabled: self.webhook_enabled,
            idempotency_key: non_empty(self.idempotency_key),
        })
    }
}

impl ServiceParticipantRef {
    /// Checks the identifiers' shape. `sid` may be an `MB` sid or an identity.
    pub fn validate(self) -> Result<Self, Error> {
        let mut v = Violations::default();
        conversation(&mut v, &self.chat_service_sid, &self.conversation_sid);
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

impl CreateRequest for NewServiceParticipant {
    const OPERATION: &'static str = "CreateServiceParticipant";
    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

/// The conversation every v1 request names: a chat service (`IS`) and a conversation
/// (`CH`) sid, both required.
fn conversation(v: &mut Violations, chat_service_sid: &str, conversation_sid: &str) {
    rules::sid(v, "chat_service_sid", chat_service_sid, "IS", true);
    rules::sid(v, "conversation_sid", conversation_sid, "CH", true);
}
