//! The stored form of a participant (schema version 3): what a row holds, and turning it
//! back into the record.
//!
//! A row keeps out of its body what its key columns already say, and keeps the rest in
//! protobuf's binary encoding (these messages are the store's own, derived here, not the
//! API's `proto/`): about a quarter of the JSON text that version 2 stored, and decoded
//! without parsing text.
//!
//! - **Ids as keys.** A canonical v2 id (`conv_participant_` + a lowercase ULID) is stored
//!   as the ULID's 16 bytes, a canonical v1 sid (`MB` + 32 lowercase hex digits) as its 16
//!   bytes; anything else (a store written before ids had one shape) as its text. An id is
//!   canonical only when writing its bytes back gives the very same text, so the mapping
//!   is exact both ways, and a blob never equals a text in SQLite, so the two kinds of key
//!   cannot collide.
//! - **Conversations by number.** Each conversation (a v2 conversation id, or a v1 chat
//!   service and conversation pair) is written once, in `conversations`, with a number
//!   that the participant, address and index rows carry instead of its text.
//! - **The account once.** The account a store writes its records under is kept once
//!   (`store_account`); a body names its account only when it is another.

use chrono::{DateTime, Utc};
use prost::Message as _;
use rusqlite::types::{Value, ValueRef};

use crate::domain::error::{Error, StoreFault};
use crate::domain::rules::V2Id;
use crate::domain::{Address, Channel, MessagingBinding, Participant, ServiceParticipant};

/// A v2 participant's body: everything but its id and conversation.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct V2Body {
    /// `None`: the store's account.
    #[prost(string, optional, tag = "1")]
    pub(super) account: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub(super) name: Option<String>,
    /// Twilio's spelling (`CUSTOMER`).
    #[prost(string, optional, tag = "3")]
    pub(super) kind: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub(super) profile_id: Option<String>,
    #[prost(message, repeated, tag = "5")]
    pub(super) addresses: Vec<StoredAddress>,
    #[prost(message, optional, tag = "6")]
    pub(super) created_at: Option<Time>,
    #[prost(message, optional, tag = "7")]
    pub(super) updated_at: Option<Time>,
}

/// One address of a [`V2Body`].
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StoredAddress {
    /// Twilio's spelling of the channel (`SMS`).
    #[prost(string, tag = "1")]
    pub(super) channel: String,
    #[prost(string, tag = "2")]
    pub(super) address: String,
    #[prost(string, optional, tag = "3")]
    pub(super) channel_id: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub(super) channel_name: Option<String>,
}

/// A v1 participant's body: everything but its sid, chat service and conversation.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct V1Body {
    /// `None`: the store's account.
    #[prost(string, optional, tag = "1")]
    pub(super) account: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub(super) identity: Option<String>,
    #[prost(string, tag = "3")]
    pub(super) attributes: String,
    #[prost(message, optional, tag = "4")]
    pub(super) binding: Option<StoredBinding>,
    #[prost(string, optional, tag = "5")]
    pub(super) role_sid: Option<String>,
    #[prost(message, optional, tag = "6")]
    pub(super) date_created: Option<Time>,
    #[prost(message, optional, tag = "7")]
    pub(super) date_updated: Option<Time>,
    #[prost(int64, optional, tag = "8")]
    pub(super) last_read_message_index: Option<i64>,
    #[prost(string, optional, tag = "9")]
    pub(super) last_read_timestamp: Option<String>,
}

/// The messaging binding of a [`V1Body`].
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StoredBinding {
    #[prost(string, optional, tag = "1")]
    pub(super) address: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub(super) proxy_address: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub(super) projected_address: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub(super) proxy_address_fallback: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub(super) kind: Option<String>,
}

/// A point in time, exactly (seconds since the epoch and nanoseconds).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(super) struct Time {
    #[prost(int64, tag = "1")]
    pub(super) seconds: i64,
    #[prost(uint32, tag = "2")]
    pub(super) nanos: u32,
}

impl From<DateTime<Utc>> for Time {
    fn from(t: DateTime<Utc>) -> Time {
        Time {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos(),
        }
    }
}

impl Time {
    fn to_datetime(self) -> Result<DateTime<Utc>, Error> {
        DateTime::from_timestamp(self.seconds, self.nanos)
            .ok_or_else(|| corrupt(format!("a stored time is out of range: {self:?}")))
    }
}

fn corrupt(detail: String) -> Error {
    Error::Store {
        fault: StoreFault::Corrupt,
        detail,
    }
}

fn time(t: Option<Time>) -> Result<Option<DateTime<Utc>>, Error> {
    t.map(Time::to_datetime).transpose()
}

/// The store's account in a body: left out when it is the store's.
fn own_account(account: &str, store_account: &str) -> Option<String> {
    (account != store_account).then(|| account.to_owned())
}

/// The body of `participant`, without its id and conversation.
pub(super) fn v2_body(participant: &Participant, store_account: &str) -> Vec<u8> {
    V2Body {
        account: own_account(&participant.account_id, store_account),
        name: participant.name.clone(),
        kind: participant.kind.map(|kind| kind.to_string()),
        profile_id: participant.profile_id.clone(),
        addresses: participant
            .addresses
            .iter()
            .map(|a| StoredAddress {
                channel: a.channel.as_str().to_owned(),
                address: a.address.clone(),
                channel_id: a.channel_id.clone(),
                channel_name: a.channel_name.clone(),
            })
            .collect(),
        created_at: participant.created_at.map(Time::from),
        updated_at: participant.updated_at.map(Time::from),
    }
    .encode_to_vec()
}

/// The v2 participant stored as `body` under `id` in `conversation_id`.
pub(super) fn v2_participant(
    id: String,
    conversation_id: String,
    body: &[u8],
    store_account: &str,
) -> Result<Participant, Error> {
    let body = V2Body::decode(body)
        .map_err(|e| corrupt(format!("a stored v2 participant does not decode: {e}")))?;
    let addresses = body
        .addresses
        .into_iter()
        .map(|a| {
            Ok(Address {
                channel: a.channel.parse::<Channel>().map_err(|_| {
                    corrupt(format!(
                        "a stored address has an unknown channel {:?}",
                        a.channel
                    ))
                })?,
                address: a.address,
                channel_id: a.channel_id,
                channel_name: a.channel_name,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Participant {
        id,
        conversation_id,
        account_id: body.account.unwrap_or_else(|| store_account.to_owned()),
        name: body.name,
        kind: body
            .kind
            .map(|kind| {
                kind.parse()
                    .map_err(|_| corrupt(format!("a stored participant type {kind:?} is unknown")))
            })
            .transpose()?,
        profile_id: body.profile_id,
        addresses,
        created_at: time(body.created_at)?,
        updated_at: time(body.updated_at)?,
    })
}

/// The body of `participant`, without its sid, chat service and conversation.
pub(super) fn v1_body(participant: &ServiceParticipant, store_account: &str) -> Vec<u8> {
    V1Body {
        account: own_account(&participant.account_sid, store_account),
        identity: participant.identity.clone(),
        attributes: participant.attributes.clone(),
        binding: participant
            .messaging_binding
            .as_ref()
            .map(|b| StoredBinding {
                address: b.address.clone(),
                proxy_address: b.proxy_address.clone(),
                projected_address: b.projected_address.clone(),
                proxy_address_fallback: b.proxy_address_fallback.clone(),
                kind: b.kind.clone(),
            }),
        role_sid: participant.role_sid.clone(),
        date_created: participant.date_created.map(Time::from),
        date_updated: participant.date_updated.map(Time::from),
        last_read_message_index: participant.last_read_message_index,
        last_read_timestamp: participant.last_read_timestamp.clone(),
    }
    .encode_to_vec()
}

/// Where a v1 participant is: its sid, chat service and conversation.
pub(super) struct V1Place {
    pub(super) sid: String,
    pub(super) chat_service_sid: String,
    pub(super) conversation_sid: String,
}

/// The v1 participant stored as `body` at `place`.
pub(super) fn v1_participant(
    place: V1Place,
    body: &[u8],
    store_account: &str,
) -> Result<ServiceParticipant, Error> {
    let body = V1Body::decode(body)
        .map_err(|e| corrupt(format!("a stored v1 participant does not decode: {e}")))?;
    Ok(ServiceParticipant {
        sid: place.sid,
        account_sid: body.account.unwrap_or_else(|| store_account.to_owned()),
        chat_service_sid: place.chat_service_sid,
        conversation_sid: place.conversation_sid,
        identity: body.identity,
        attributes: body.attributes,
        messaging_binding: body.binding.map(|b| MessagingBinding {
            address: b.address,
            proxy_address: b.proxy_address,
            projected_address: b.projected_address,
            proxy_address_fallback: b.proxy_address_fallback,
            kind: b.kind,
        }),
        role_sid: body.role_sid,
        date_created: time(body.date_created)?,
        date_updated: time(body.date_updated)?,
        last_read_message_index: body.last_read_message_index,
        last_read_timestamp: body.last_read_timestamp,
    })
}

/// The number of a conversation (`service` is '' for v2), written now with `fresh()` if it
/// has none yet.
pub(super) fn conversation_number(
    tx: &rusqlite::Connection,
    service: &str,
    conversation: &str,
    fresh: impl FnOnce() -> i64,
) -> Result<i64, Error> {
    use rusqlite::{OptionalExtension as _, params};
    let known: Option<i64> = tx
        .prepare_cached("SELECT n FROM conversations WHERE service = ?1 AND id = ?2")?
        .query_row(params![service, conversation], |r| r.get(0))
        .optional()?;
    if let Some(n) = known {
        return Ok(n);
    }
    let n = fresh();
    tx.prepare_cached("INSERT INTO conversations (service, id, n) VALUES (?1, ?2, ?3)")?
        .execute(params![service, conversation, n])?;
    Ok(n)
}

/// The key under which the v2 participant `id` is stored.
pub(super) fn v2_key(id: &str) -> Value {
    let canonical = id
        .strip_prefix(V2Id::Participant.prefix())
        .filter(|ulid| ulid.len() == 26)
        .and_then(|ulid| ulid::Ulid::from_string(ulid).ok())
        .filter(|ulid| v2_text(ulid.0.to_be_bytes()) == id);
    match canonical {
        Some(ulid) => Value::Blob(ulid.0.to_be_bytes().to_vec()),
        None => Value::Text(id.to_owned()),
    }
}

fn v2_text(bytes: [u8; 16]) -> String {
    // One allocation: a list reads an id back for every row of its page.
    let prefix = V2Id::Participant.prefix();
    let mut buf = [0_u8; ulid::ULID_LEN];
    let mut text = String::with_capacity(prefix.len() + ulid::ULID_LEN);
    text.push_str(prefix);
    let ulid = ulid::Ulid(u128::from_be_bytes(bytes)).array_to_str(&mut buf);
    ulid.make_ascii_lowercase();
    text.push_str(ulid);
    text
}

/// The key under which the v1 participant `sid` is stored.
pub(super) fn v1_key(sid: &str) -> Value {
    let canonical = sid
        .strip_prefix("MB")
        .filter(|hex| hex.len() == 32)
        .and_then(|hex| u128::from_str_radix(hex, 16).ok())
        .filter(|n| v1_text(n.to_be_bytes()) == sid);
    match canonical {
        Some(n) => Value::Blob(n.to_be_bytes().to_vec()),
        None => Value::Text(sid.to_owned()),
    }
}

fn v1_text(bytes: [u8; 16]) -> String {
    format!("MB{:032x}", u128::from_be_bytes(bytes))
}

/// The id a v2 key column holds.
pub(super) fn v2_id(key: ValueRef<'_>) -> Result<String, Error> {
    id_from(key, v2_text)
}

/// The sid a v1 key column holds.
pub(super) fn v1_sid(key: ValueRef<'_>) -> Result<String, Error> {
    id_from(key, v1_text)
}

fn id_from(key: ValueRef<'_>, text: fn([u8; 16]) -> String) -> Result<String, Error> {
    match key {
        ValueRef::Blob(bytes) => bytes
            .try_into()
            .map(text)
            .map_err(|_| corrupt(format!("a stored key is {} bytes, not 16", bytes.len()))),
        ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
            .map_err(|_| corrupt("a stored key is not UTF-8".into())),
        other => Err(corrupt(format!(
            "a stored key is of type {}",
            other.data_type()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ParticipantType;

    const ACCOUNT: &str = "AC00000000000000000000000000000000";

    fn key_of(value: &Value) -> ValueRef<'_> {
        ValueRef::from(value)
    }

    #[test]
    fn canonical_ids_are_16_bytes_and_every_id_comes_back_as_it_was() {
        let v2 = crate::domain::ids::participant_id();
        let v1 = crate::domain::ids::service_participant_sid();
        for (id, bytes) in [
            (v2.as_str(), true),
            ("conv_participant_01ARZ3NDEKTSV4RRFFQ69G5FAV", false), // upper case
            ("conv_participant_01arz3ndektsv4rrffq69g5fa", false),  // 25 characters
            ("conv_participant_81arz3ndektsv4rrffq69g5fav", false), // past 128 bits
            ("legacy-id", false),
            ("", false),
        ] {
            let key = v2_key(id);
            assert_eq!(matches!(key, Value::Blob(_)), bytes, "{id}");
            assert_eq!(v2_id(key_of(&key)).expect("decodes"), id);
        }
        for (sid, bytes) in [
            (v1.as_str(), true),
            ("MB0123456789ABCDEF0123456789ABCDEF", false), // upper-case hex
            ("MB0123456789abcdef0123456789abcde", false),  // 31 digits
            ("MB+123456789abcdef0123456789abcdef", false), // a sign u128 parsing accepts
            ("alice", false),
        ] {
            let key = v1_key(sid);
            assert_eq!(matches!(key, Value::Blob(_)), bytes, "{sid}");
            assert_eq!(v1_sid(key_of(&key)).expect("decodes"), sid);
        }
    }

    #[test]
    fn records_come_back_exactly_and_the_store_account_is_left_out() {
        let now = chrono::Utc::now();
        let participant = Participant {
            id: crate::domain::ids::participant_id(),
            conversation_id: "conv_conversation_01".into(),
            account_id: ACCOUNT.into(),
            name: Some("Ada".into()),
            kind: Some(ParticipantType::Customer),
            profile_id: None,
            addresses: vec![
                Address {
                    channel: Channel::Sms,
                    address: "+15550001111".into(),
                    channel_id: Some("x".into()),
                    channel_name: None,
                },
                Address {
                    channel: Channel::Other,
                    address: "id-1".into(),
                    channel_id: None,
                    channel_name: Some("FAX".into()),
                },
            ],
            created_at: Some(now),
            updated_at: None,
        };
        let body = v2_body(&participant, ACCOUNT);
        assert!(V2Body::decode(body.as_slice()).unwrap().account.is_none());
        let back = v2_participant(
            participant.id.clone(),
            participant.conversation_id.clone(),
            &body,
            ACCOUNT,
        )
        .unwrap();
        assert_eq!(back, participant);
        // Under another store account, the record keeps its own.
        let other = v2_body(&participant, "AC1");
        let back = v2_participant(
            participant.id.clone(),
            participant.conversation_id.clone(),
            &other,
            "AC1",
        )
        .unwrap();
        assert_eq!(back, participant);

        let service = ServiceParticipant {
            sid: crate::domain::ids::service_participant_sid(),
            account_sid: ACCOUNT.into(),
            chat_service_sid: "IS1".into(),
            conversation_sid: "CH1".into(),
            identity: None,
            attributes: "{\"a\":1}".into(),
            messaging_binding: Some(MessagingBinding {
                address: Some("+15550001111".into()),
                proxy_address: Some("+15550002222".into()),
                projected_address: None,
                proxy_address_fallback: None,
                kind: Some("sms".into()),
            }),
            role_sid: None,
            date_created: Some(now),
            date_updated: Some(now),
            last_read_message_index: Some(-1),
            last_read_timestamp: Some("2026-01-01T00:00:00Z".into()),
        };
        let back = v1_participant(
            V1Place {
                sid: service.sid.clone(),
                chat_service_sid: "IS1".into(),
                conversation_sid: "CH1".into(),
            },
            &v1_body(&service, ACCOUNT),
            ACCOUNT,
        )
        .unwrap();
        assert_eq!(back, service);
    }

    #[test]
    fn a_damaged_body_is_a_corrupt_store_not_a_panic() {
        for body in [
            &[0xff_u8, 0xff, 0xff][..],
            &[0x1a, 0x05, b'N', b'O', b'P', b'E', b'!'],
        ] {
            let err = v2_participant("p".into(), "c".into(), body, ACCOUNT).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Store {
                        fault: StoreFault::Corrupt,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }
}
