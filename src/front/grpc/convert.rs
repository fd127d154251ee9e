//! Protobuf to the domain and back. Protobuf types go no further than the gRPC front:
//! requests become the same drafts the REST front builds, and answers are built here.

use chrono::{DateTime, Utc};

use super::ParticipantApi;
use crate::domain::{
    self, AddressDraft, Channel, ParticipantDraft, ParticipantType, ParticipantUpdateDraft, Raw,
    ServiceParticipantDraft, ServiceParticipantUpdateDraft,
};
use crate::proto;

impl ParticipantApi {
    pub(super) fn service_participant(
        &self,
        p: domain::ServiceParticipant,
    ) -> proto::ServiceParticipant {
        let url = format!("{}{}", self.public_url, p.path());
        let binding = p.messaging_binding.map(|b| proto::MessagingBinding {
            address: b.address.unwrap_or_default(),
            proxy_address: b.proxy_address.unwrap_or_default(),
            projected_address: b.projected_address.unwrap_or_default(),
            r#type: b.kind.unwrap_or_default(),
            proxy_address_fallback: b.proxy_address_fallback.unwrap_or_default(),
        });
        proto::ServiceParticipant {
            url,
            sid: p.sid,
            account_sid: p.account_sid,
            chat_service_sid: p.chat_service_sid,
            conversation_sid: p.conversation_sid,
            identity: p.identity.unwrap_or_default(),
            attributes: p.attributes,
            messaging_binding: binding,
            role_sid: p.role_sid.unwrap_or_default(),
            date_created: p.date_created.and_then(timestamp),
            date_updated: p.date_updated.and_then(timestamp),
            last_read_message_index: p.last_read_message_index,
            last_read_timestamp: p.last_read_timestamp.unwrap_or_default(),
        }
    }
}

pub(super) fn raw_enum<P, T>(value: i32, known: impl Fn(P) -> Option<T>) -> Raw<T>
where
    P: TryFrom<i32>,
{
    match P::try_from(value) {
        _ if value == 0 => Raw::Unset,
        Ok(p) => known(p).map_or_else(|| Raw::Unknown(value.to_string()), Raw::Known),
        Err(_) => Raw::Unknown(value.to_string()),
    }
}

pub(super) fn participant_type(p: proto::ParticipantType) -> Option<ParticipantType> {
    use proto::ParticipantType as P;
    Some(match p {
        P::Unspecified => return None,
        P::HumanAgent => ParticipantType::HumanAgent,
        P::Customer => ParticipantType::Customer,
        P::AiAgent => ParticipantType::AiAgent,
        P::Agent => ParticipantType::Agent,
        P::Unknown => ParticipantType::Unknown,
    })
}

pub(super) fn channel(c: proto::Channel) -> Option<Channel> {
    use proto::Channel as C;
    Some(match c {
        C::Unspecified => return None,
        C::Voice => Channel::Voice,
        C::Sms => Channel::Sms,
        C::Rcs => Channel::Rcs,
        C::Email => Channel::Email,
        C::Whatsapp => Channel::Whatsapp,
        C::Chat => Channel::Chat,
        C::Video => Channel::Video,
    })
}

/// `t` as a `google.protobuf.Timestamp`, which spans the years 1 to 9999 and has no leap
/// seconds. A leap second (`23:59:60`, which chrono keeps as nanoseconds past 10^9, and
/// which Twilio's dates and the v1 dates a caller gives may carry) is smeared into the
/// last nanosecond of the second before; an instant outside the span, which no valid
/// Timestamp can carry (an upstream date such as year 0), is left out.
pub(super) fn timestamp(t: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    /// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    const SPAN: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
    let seconds = t.timestamp();
    let nanos = i32::try_from(t.timestamp_subsec_nanos().min(999_999_999)).ok()?;
    SPAN.contains(&seconds)
        .then_some(prost_types::Timestamp { seconds, nanos })
}

pub(super) fn raw_timestamp(t: prost_types::Timestamp) -> Raw<DateTime<Utc>> {
    u32::try_from(t.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .map_or_else(|| Raw::Unknown(format!("{t:?}")), Raw::Known)
}

impl From<proto::CreateParticipantRequest> for ParticipantDraft {
    fn from(r: proto::CreateParticipantRequest) -> Self {
        ParticipantDraft {
            conversation_id: r.conversation_id,
            name: r.name,
            kind: Some(raw_enum(r.r#type, participant_type)),
            profile_id: r.profile_id,
            addresses: address_drafts(r.addresses),
            idempotency_key: r.idempotency_key,
        }
    }
}

fn address_drafts(addresses: Vec<proto::Address>) -> Vec<AddressDraft> {
    addresses
        .into_iter()
        .map(|a| AddressDraft {
            channel: raw_enum(a.channel, channel),
            address: a.address,
            channel_id: a.channel_id,
        })
        .collect()
}

impl From<proto::UpdateParticipantRequest> for ParticipantUpdateDraft {
    fn from(r: proto::UpdateParticipantRequest) -> Self {
        let p = r.participant.unwrap_or_default();
        ParticipantUpdateDraft {
            conversation_id: p.conversation_id,
            participant_id: p.id,
            name: p.name,
            kind: Some(raw_enum(p.r#type, participant_type)),
            profile_id: p.profile_id,
            addresses: address_drafts(p.addresses),
            mask: r.update_mask.map(|m| m.paths),
            field_prefix: "participant.",
        }
    }
}

impl From<proto::UpdateServiceParticipantRequest> for ServiceParticipantUpdateDraft {
    fn from(r: proto::UpdateServiceParticipantRequest) -> Self {
        let p = r.service_participant.unwrap_or_default();
        let binding = p.messaging_binding.unwrap_or_default();
        ServiceParticipantUpdateDraft {
            chat_service_sid: p.chat_service_sid,
            conversation_sid: p.conversation_sid,
            sid: p.sid,
            identity: p.identity,
            attributes: p.attributes,
            role_sid: p.role_sid,
            proxy_address: binding.proxy_address,
            projected_address: binding.projected_address,
            date_created: p.date_created.map(raw_timestamp),
            date_updated: p.date_updated.map(raw_timestamp),
            last_read_message_index: p.last_read_message_index.map(Raw::Known),
            last_read_timestamp: p.last_read_timestamp,
            mask: r.update_mask.map(|m| m.paths),
            field_prefix: "service_participant.",
            webhooks: webhooks(r.webhook_enabled, r.webhook_mode),
        }
    }
}

impl From<proto::CreateServiceParticipantRequest> for ServiceParticipantDraft {
    fn from(r: proto::CreateServiceParticipantRequest) -> Self {
        let binding = r.messaging_binding.unwrap_or_default();
        ServiceParticipantDraft {
            chat_service_sid: r.chat_service_sid,
            conversation_sid: r.conversation_sid,
            identity: r.identity,
            attributes: r.attributes,
            messaging_binding: domain::MessagingBinding {
                address: Some(binding.address),
                proxy_address: Some(binding.proxy_address),
                projected_address: Some(binding.projected_address),
                proxy_address_fallback: Some(binding.proxy_address_fallback),
                kind: None,
            },
            role_sid: r.role_sid,
            date_created: r.date_created.map(raw_timestamp),
            date_updated: r.date_updated.map(raw_timestamp),
            webhooks: webhooks(r.webhook_enabled, r.webhook_mode),
            idempotency_key: r.idempotency_key,
        }
    }
}

impl From<domain::Participant> for proto::Participant {
    fn from(p: domain::Participant) -> Self {
        let kind = match p.kind {
            None => proto::ParticipantType::Unspecified,
            Some(ParticipantType::HumanAgent) => proto::ParticipantType::HumanAgent,
            Some(ParticipantType::Customer) => proto::ParticipantType::Customer,
            Some(ParticipantType::AiAgent) => proto::ParticipantType::AiAgent,
            Some(ParticipantType::Agent) => proto::ParticipantType::Agent,
            Some(ParticipantType::Unknown) => proto::ParticipantType::Unknown,
        };
        proto::Participant {
            id: p.id,
            conversation_id: p.conversation_id,
            account_id: p.account_id,
            name: p.name.unwrap_or_default(),
            r#type: kind.into(),
            profile_id: p.profile_id.unwrap_or_default(),
            addresses: p
                .addresses
                .into_iter()
                .map(|a| proto::Address {
                    channel: proto_channel(a.channel).into(),
                    address: a.address,
                    channel_id: a.channel_id.unwrap_or_default(),
                    channel_name: a.channel_name.unwrap_or_default(),
                })
                .collect(),
            created_at: p.created_at.and_then(timestamp),
            updated_at: p.updated_at.and_then(timestamp),
        }
    }
}

pub(super) fn proto_channel(c: Channel) -> proto::Channel {
    match c {
        Channel::Voice => proto::Channel::Voice,
        Channel::Sms => proto::Channel::Sms,
        Channel::Rcs => proto::Channel::Rcs,
        Channel::Email => proto::Channel::Email,
        Channel::Whatsapp => proto::Channel::Whatsapp,
        Channel::Chat => proto::Channel::Chat,
        Channel::Video => proto::Channel::Video,
        // Twilio's name is in the address's channel_name.
        Channel::Other => proto::Channel::Unspecified,
    }
}

/// `X-Twilio-Webhook-Enabled` from a request's `bool webhook_enabled` and `WebhookMode`
/// (which wins when set; a value this build does not know counts as unset).
pub(super) fn webhooks(enabled: bool, mode: i32) -> domain::Webhooks {
    let mode = match proto::WebhookMode::try_from(mode) {
        Ok(proto::WebhookMode::Enabled) => Some(true),
        Ok(proto::WebhookMode::Disabled) => Some(false),
        Ok(proto::WebhookMode::Unspecified) | Err(_) => None,
    };
    domain::Webhooks::from_request(enabled, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_valid_protobuf_whatever_the_date() {
        // Found by fuzz/fuzz_targets/upstream_answer.rs: a leap second in Twilio's answer
        // (`2016-12-31T23:59:60Z`) became `nanos: 1000000000`, which protobuf forbids.
        let leap = DateTime::parse_from_rfc3339("2016-12-31T23:59:60.5Z")
            .expect("chrono reads leap seconds")
            .with_timezone(&Utc);
        assert_eq!(
            timestamp(leap),
            Some(prost_types::Timestamp {
                seconds: 1_483_228_799,
                nanos: 999_999_999
            })
        );
        let ordinary = DateTime::parse_from_rfc3339("2015-12-16T22:18:37.25Z")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(
            timestamp(ordinary),
            Some(prost_types::Timestamp {
                seconds: 1_450_304_317,
                nanos: 250_000_000
            })
        );
        for outside in ["0000-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00"] {
            let t = DateTime::parse_from_rfc3339(outside)
                .expect("date")
                .with_timezone(&Utc);
            assert_eq!(timestamp(t), None, "{outside}");
        }
        let last = DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999999999Z")
            .expect("date")
            .with_timezone(&Utc);
        assert!(timestamp(last).is_some());
    }

    #[test]
    fn out_of_range_enum_values_are_unknown_not_unset() {
        assert_eq!(raw_enum(0, channel), Raw::Unset);
        assert_eq!(raw_enum(2, channel), Raw::Known(Channel::Sms));
        assert_eq!(raw_enum(42, channel), Raw::Unknown("42".into()));
        assert_eq!(raw_enum(-1, participant_type), Raw::Unknown("-1".into()));
    }
}
