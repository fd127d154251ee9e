//! The domain: participants as the facade understands them, independent of protobuf,
//! JSON and SQL, and the one error type. Nothing here knows of gRPC, HTTP or SQLite.
//!
//! Requests arrive as *drafts* (what a caller sent, every field as a plain string or a
//! [`Raw`] choice) and become typed values only through `validate()`, which reports every
//! violated field at once. Backends therefore only ever see valid input, and the gRPC and
//! REST fronts share one set of rules (see `rules`).

pub mod error;
pub(crate) mod ids;
pub mod page;
mod participant;
pub(crate) mod rules;
mod service_participant;

use std::str::FromStr;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The server's clock as each API's participants carry it: milliseconds (v2), whole
/// seconds (v1, as Twilio writes them).
pub use participant::next_updated_at;
pub use participant::now as v2_now;
pub use service_participant::now as v1_now;

pub use page::{ListParticipants, ListServiceParticipants, Page, PageQuery};
pub use participant::{
    Address, AddressDraft, Channel, NewParticipant, PARTICIPANT_UPDATE_PATHS, Participant,
    ParticipantChanges, ParticipantDraft, ParticipantRef, ParticipantType, ParticipantUpdate,
    ParticipantUpdateDraft,
};
pub use service_participant::{
    DeleteServiceParticipant, MessagingBinding, NewServiceParticipant,
    SERVICE_PARTICIPANT_UPDATE_PATHS, ServiceParticipant, ServiceParticipantChanges,
    ServiceParticipantDraft, ServiceParticipantRef, ServiceParticipantUpdate,
    ServiceParticipantUpdateDraft, Webhooks, is_conversation_sid,
};

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

pub(crate) fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
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
