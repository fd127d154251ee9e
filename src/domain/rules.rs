//! Twilio's input rules, written once for every front and backend.
//!
//! Each rule appends to a [`Violations`] list instead of returning early, so a caller
//! learns about every bad field in one round trip. Descriptions never echo the value
//! they reject: the values are phone numbers, e-mail addresses and names.

use chrono::{DateTime, Datelike, Utc};

use crate::domain::error::{Error, FieldViolation};
use crate::domain::{Address, AddressDraft, Channel, MessagingBinding, Raw};

/// Longest display name, in characters.
pub(crate) const MAX_NAME: usize = 256;
/// Longest v1 identity, in characters (Twilio's documented limit).
pub(crate) const MAX_IDENTITY: usize = 256;
/// Longest opaque identifier (conversation, participant, profile, channel ids).
pub(crate) const MAX_ID: usize = 128;
/// Longest address (RFC 5321 allows 254 for e-mail; the rest is headroom for prefixes).
pub(crate) const MAX_ADDRESS: usize = 320;
/// Most addresses on one participant.
pub(crate) const MAX_ADDRESSES: usize = 20;
/// Largest `attributes` JSON text, in bytes (Twilio's limit for Conversations attributes).
pub(crate) const MAX_ATTRIBUTES: usize = 16 * 1024;
/// Longest idempotency key, in bytes.
pub(crate) const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The field violations found so far in one request.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Records that `field` breaks a rule described by `description`.
    pub(crate) fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// The same violations with `prefix` before every field name.
    pub(crate) fn prefixed(self, prefix: &str) -> Self {
        Violations(
            self.0
                .into_iter()
                .map(|f| FieldViolation {
                    field: format!("{prefix}{}", f.field),
                    ..f
                })
                .collect(),
        )
    }

    /// Adds every violation of `other`.
    pub(crate) fn extend(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    /// `Ok` when nothing was recorded, else INVALID_ARGUMENT with every violation.
    pub(crate) fn into_result(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// An optional free-text field: at most `max` characters, no control characters.
pub(crate) fn text(v: &mut Violations, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    } else if has_control(value) {
        v.add(field, "must not contain control characters");
    }
}

/// Whether `value` is a path segment that URL normalisation would remove (`.`, `..`).
pub(crate) fn is_dot_segment(value: &str) -> bool {
    value == "." || value == ".."
}

/// A required opaque identifier that ends up in a URL path: letters, digits and
/// `_ - . :`, at most [`MAX_ID`] characters. Returns whether it passed.
pub(crate) fn resource_id(v: &mut Violations, field: &str, value: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    let fault = if value.is_empty() {
        "required".to_owned()
    } else if value.len() > MAX_ID {
        format!("must be at most {MAX_ID} characters")
    } else if !value.chars().all(allowed) {
        "may contain only letters, digits, '_', '-', '.' and ':'".to_owned()
    } else if is_dot_segment(value) {
        "must not be '.' or '..'".to_owned()
    } else {
        return true;
    };
    v.add(field, fault);
    false
}

/// The kinds of v2 resource whose ids Twilio makes: a prefix naming the kind, then an
/// identifier (a ULID in Twilio's own ids and in ours, see [`crate::domain::ids`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum V2Id {
    /// `conv_conversation_…`
    Conversation,
    /// `conv_participant_…`
    Participant,
}

impl V2Id {
    /// What every id of this kind starts with.
    pub(crate) const fn prefix(self) -> &'static str {
        match self {
            V2Id::Conversation => "conv_conversation_",
            V2Id::Participant => "conv_participant_",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            V2Id::Conversation => "conversation",
            V2Id::Participant => "participant",
        }
    }
}

/// A v2 id of Twilio's making: a [`resource_id`] that is `kind`'s prefix and an identifier
/// after it. Returns whether it passed.
pub(crate) fn v2_id(v: &mut Violations, field: &str, value: &str, kind: V2Id) -> bool {
    if !resource_id(v, field, value) {
        return false;
    }
    let prefix = kind.prefix();
    if value.strip_prefix(prefix).is_none_or(str::is_empty) {
        v.add(
            field,
            format!(
                "must be a v2 {} id: {prefix} and an identifier",
                kind.noun()
            ),
        );
        return false;
    }
    true
}

/// Whether `value` passes [`v2_id`].
pub(crate) fn is_v2_id(value: &str, kind: V2Id) -> bool {
    v2_id(&mut Violations::default(), "", value, kind)
}

/// Whether `value` is `prefix` followed by 32 hex digits, Twilio's sid shape. Every check
/// of a sid's shape comes here.
pub(crate) fn is_sid(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A Twilio sid field (`^{prefix}[0-9a-fA-F]{32}$`), required or optional.
pub(crate) fn sid(v: &mut Violations, field: &str, value: &str, prefix: &str, required: bool) {
    if value.is_empty() {
        if required {
            v.add(field, "required");
        }
    } else if !is_sid(value, prefix) {
        v.add(field, format!("must match ^{prefix}[0-9a-fA-F]{{32}}$"));
    }
}

/// An optional idempotency key: 1 to 255 printable ASCII characters.
pub(crate) fn idempotency_key(v: &mut Violations, value: &str) {
    if value.len() > MAX_IDEMPOTENCY_KEY {
        v.add(
            "idempotency_key",
            format!("must be at most {MAX_IDEMPOTENCY_KEY} characters"),
        );
    } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
        v.add(
            "idempotency_key",
            "may contain only printable ASCII characters without spaces",
        );
    }
}

/// Optional attributes: structurally valid JSON of at most [`MAX_ATTRIBUTES`] bytes.
pub(crate) fn attributes(v: &mut Violations, field: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    if value.len() > MAX_ATTRIBUTES {
        v.add(field, format!("must be at most {MAX_ATTRIBUTES} bytes"));
    } else if serde_json::from_str::<serde::de::IgnoredAny>(value).is_err() {
        v.add(field, "must be valid JSON");
    }
}

/// An optional timestamp: a real instant between the years 1970 and 9999.
pub(crate) fn timestamp(
    v: &mut Violations,
    field: &str,
    value: Option<Raw<DateTime<Utc>>>,
) -> Option<DateTime<Utc>> {
    match value? {
        Raw::Unset => None,
        Raw::Known(t) if (1970..=9999).contains(&t.year()) => Some(t),
        Raw::Known(_) => {
            v.add(field, "must be between the years 1970 and 9999");
            None
        }
        Raw::Unknown(_) => {
            v.add(field, "is not a valid timestamp");
            None
        }
    }
}

/// Whether `s` is an E.164 number: `+`, then 2 to 15 digits, the first not 0.
pub(crate) fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Whether `s` looks like a deliverable e-mail address (`local@domain.tld`, RFC 5321 lengths).
pub(crate) fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = s.len() <= 254
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// Whether `s` is an RCS address: `rcs:` and a sender id or an E.164 number.
fn is_rcs(s: &str) -> bool {
    s.strip_prefix("rcs:").is_some_and(|rest| {
        is_e164(rest)
            || ((1..=MAX_ID).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
    })
}

fn is_whatsapp(s: &str) -> bool {
    s.strip_prefix("whatsapp:").is_some_and(is_e164)
}

/// One v2 address. Returns the typed address when its channel is known, so the caller
/// can still look for duplicates; the address's own violations are recorded either way.
pub(crate) fn address(v: &mut Violations, field: &str, draft: AddressDraft) -> Option<Address> {
    let channel = match draft.channel {
        // OTHER names no channel: only upstream answers carry it, with Twilio's own name.
        Raw::Known(Channel::Other) => {
            v.add(
                format!("{field}.channel"),
                "unknown channel; expected VOICE, SMS, RCS, EMAIL, WHATSAPP, CHAT or VIDEO",
            );
            None
        }
        Raw::Known(c) => Some(c),
        Raw::Unset => {
            v.add(format!("{field}.channel"), "required");
            None
        }
        // The value itself is not quoted: over REST it is any text the caller sent.
        Raw::Unknown(_) => {
            v.add(
                format!("{field}.channel"),
                "unknown channel; expected VOICE, SMS, RCS, EMAIL, WHATSAPP, CHAT or VIDEO",
            );
            None
        }
    };
    let address_field = format!("{field}.address");
    let value = draft.address.as_str();
    if value.is_empty() {
        v.add(&address_field, "required");
    } else if value.len() > MAX_ADDRESS {
        v.add(
            &address_field,
            format!("must be at most {MAX_ADDRESS} characters"),
        );
    } else if let Some(channel) = channel {
        let (ok, expected) = match channel {
            Channel::Sms | Channel::Voice => {
                (is_e164(value), "an E.164 phone number such as +18005550100")
            }
            Channel::Email => (
                is_email(value),
                "an e-mail address such as user@example.com",
            ),
            Channel::Whatsapp => (
                is_whatsapp(value),
                "whatsapp: and an E.164 number, such as whatsapp:+18005550100",
            ),
            Channel::Rcs => (
                is_rcs(value),
                "rcs: and a sender id or E.164 number, such as rcs:brand_acme_agent",
            ),
            Channel::Chat | Channel::Video => (
                value.chars().count() <= MAX_IDENTITY && !has_control(value),
                "an identity of at most 256 characters without control characters",
            ),
            // Never parsed from a request; only upstream answers carry it.
            Channel::Other => (!has_control(value), "free of control characters"),
        };
        if !ok {
            v.add(
                &address_field,
                format!("must be {expected} for channel {channel}"),
            );
        }
    }
    text(v, &format!("{field}.channel_id"), &draft.channel_id, MAX_ID);
    Some(Address {
        channel: channel?,
        address: draft.address,
        channel_id: Some(draft.channel_id).filter(|s| !s.is_empty()),
        channel_name: None,
    })
}

/// The fields an update changes: the mask's paths when it names any (each one of `known`,
/// else a violation on `update_mask.paths[i]` that says `expected`), else the paths of
/// `known` whose field is `set`; none at all is a violation on `update_mask`.
pub(crate) fn update_paths(
    v: &mut Violations,
    mask: Option<Vec<String>>,
    known: &[&str],
    set: &[bool],
    expected: &str,
) -> Vec<String> {
    let paths: Vec<String> = match mask.filter(|m| !m.is_empty()) {
        Some(paths) => {
            for (i, path) in paths.iter().enumerate() {
                if !known.contains(&path.as_str()) {
                    // The path is not quoted: it is any text the caller sent.
                    v.add(
                        format!("update_mask.paths[{i}]"),
                        format!("unknown field; expected {expected}"),
                    );
                }
            }
            paths
        }
        None => known
            .iter()
            .zip(set)
            .filter(|(_, set)| **set)
            .map(|(path, _)| (*path).to_owned())
            .collect(),
    };
    if paths.is_empty() {
        v.add(
            "update_mask",
            "names no field to change; set a field or name it in update_mask",
        );
    }
    paths
}

/// What a binding's own or proxy address must be.
pub(crate) const PHONE_LIKE: &str = "must be an E.164 number such as +18005550100, whatsapp: and an E.164 number, or rcs: and a sender id or E.164 number";

/// Whether `s` may be a binding's own or proxy address.
pub(crate) fn is_phone_like(s: &str) -> bool {
    is_e164(s) || is_whatsapp(s) || is_rcs(s)
}

/// The v1 messaging binding and its relation to the identity, after Twilio's rules: a
/// participant is either a chat participant (identity, optionally projected into group MMS
/// with `projected_address`) or an SMS/WhatsApp participant (`address` with
/// `proxy_address`), never both and never neither.
pub(crate) fn messaging_binding(
    v: &mut Violations,
    field: &str,
    binding: MessagingBinding,
    has_identity: bool,
) -> MessagingBinding {
    let binding = MessagingBinding {
        address: binding.address.filter(|s| !s.is_empty()),
        proxy_address: binding.proxy_address.filter(|s| !s.is_empty()),
        projected_address: binding.projected_address.filter(|s| !s.is_empty()),
        proxy_address_fallback: binding.proxy_address_fallback.filter(|s| !s.is_empty()),
        kind: binding.kind.filter(|s| !s.is_empty()),
    };
    for (name, value) in [
        ("address", &binding.address),
        ("proxy_address", &binding.proxy_address),
        ("proxy_address_fallback", &binding.proxy_address_fallback),
    ] {
        if let Some(value) = value
            && !is_phone_like(value)
        {
            v.add(format!("{field}.{name}"), PHONE_LIKE);
        }
    }
    if let Some(projected) = &binding.projected_address
        && !is_e164(projected)
    {
        v.add(
            format!("{field}.projected_address"),
            "must be an E.164 number such as +18005550100",
        );
    }
    if binding.proxy_address_fallback.is_some() && binding.proxy_address.is_none() {
        v.add(
            format!("{field}.proxy_address_fallback"),
            "requires messaging_binding.proxy_address (it is the sender used when that one cannot deliver)",
        );
    }
    match (&binding.address, &binding.proxy_address) {
        (Some(_), None) => v.add(
            format!("{field}.proxy_address"),
            "required together with messaging_binding.address",
        ),
        (None, Some(_)) => v.add(
            format!("{field}.address"),
            "required together with messaging_binding.proxy_address",
        ),
        _ => {}
    }
    if binding.address.is_some() && has_identity {
        v.add(
            "identity",
            "must be empty when messaging_binding.address is set: a participant is either a chat or an SMS/WhatsApp participant",
        );
    }
    if binding.projected_address.is_some() && !has_identity {
        v.add(
            format!("{field}.projected_address"),
            "requires an identity (group MMS projects a chat participant)",
        );
    }
    if binding.address.is_none() && !has_identity {
        v.add(
            "identity",
            "either identity or messaging_binding.address is required",
        );
    }
    binding
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_international_numbers_and_rejects_the_rest() {
        assert!(is_e164("+18005550100"));
        assert!(is_e164("+447700900123"));
        for bad in [
            "18005550100",
            "+",
            "+0123",
            "+1800555010012345",
            "+1 800",
            "+1a",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn email_accepts_ordinary_addresses_and_rejects_malformed_ones() {
        assert!(is_email("user@example.com"));
        assert!(is_email("first.last+tag@sub.example.co"));
        for bad in [
            "user",
            "@example.com",
            "user@",
            "user@localhost",
            "a@b@c.com",
            "user@-x.com",
            "us er@x.com",
            ".u@x.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn rcs_takes_a_sender_id_or_a_number() {
        assert!(is_rcs("rcs:brand_acme_agent"));
        assert!(is_rcs("rcs:+18005550100"));
        assert!(!is_rcs("rcs:"));
        assert!(!is_rcs("brand_acme_agent"));
        assert!(!is_rcs("rcs:has space"));
    }

    #[test]
    fn unknown_enum_values_are_refused_without_being_quoted() {
        // Found by fuzz/fuzz_targets/rest_v2_json.rs: over REST, `type` and `channel` are
        // any text the caller sent, and the description quoted it.
        use crate::domain::ParticipantDraft;
        let secret = "ada.lovelace@example.com";
        let draft = ParticipantDraft {
            conversation_id: "conv_1".into(),
            kind: Some(Raw::Unknown(secret.into())),
            addresses: vec![AddressDraft {
                channel: Raw::Unknown(secret.into()),
                address: "+18005550100".into(),
                channel_id: String::new(),
            }],
            ..ParticipantDraft::default()
        };
        let Err(Error::InvalidArgument(violations)) = draft.validate() else {
            panic!("unknown values must be refused");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["type", "addresses[0].channel"]);
        for v in &violations {
            assert!(v.description.starts_with("unknown "), "{v:?}");
            assert!(!v.description.contains("lovelace"), "{v:?}");
        }
    }

    #[test]
    fn sid_shape_is_prefix_and_32_hex_digits() {
        assert!(is_sid("IS0123456789abcdef0123456789ABCDEF", "IS"));
        assert!(!is_sid("IS0123456789abcdef0123456789ABCDEG", "IS"));
        assert!(!is_sid("CH0123456789abcdef0123456789abcdef", "IS"));
        assert!(!is_sid("IS0123", "IS"));
        assert!(!is_sid("IS0123456789abcdef0123456789abcdé", "IS"));
    }

    #[test]
    fn v2_ids_are_resource_ids_with_their_kinds_prefix_and_more() {
        let participant = "conv_participant_01hzy3v6b0qz8d3v5e6w7x8y9z";
        assert!(is_v2_id(participant, V2Id::Participant));
        assert!(!is_v2_id(participant, V2Id::Conversation));
        assert!(is_v2_id("conv_conversation_1", V2Id::Conversation));
        for bad in [
            "",
            "conv_participant_",
            "p1",
            "conv_participant_x/..",
            "conv_participant_é",
        ] {
            assert!(!is_v2_id(bad, V2Id::Participant), "{bad}");
        }
        let mut v = Violations::default();
        assert!(!v2_id(&mut v, "id", "p1", V2Id::Participant));
        let Err(Error::InvalidArgument(found)) = v.into_result() else {
            panic!("p1 is not a participant id");
        };
        assert_eq!(
            found[0].description,
            "must be a v2 participant id: conv_participant_ and an identifier"
        );
    }

    #[test]
    fn a_fallback_sender_is_phone_like_and_needs_a_proxy_address() {
        let check = |proxy: Option<&str>, fallback: &str| {
            let mut v = Violations::default();
            let binding = messaging_binding(
                &mut v,
                "messaging_binding",
                MessagingBinding {
                    address: Some("rcs:+18005550100".into()),
                    proxy_address: proxy.map(str::to_owned),
                    proxy_address_fallback: Some(fallback.into()),
                    ..Default::default()
                },
                false,
            );
            (v.into_result(), binding)
        };
        let (ok, binding) = check(Some("rcs:brand_acme_agent"), "+18005550199");
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(
            binding.proxy_address_fallback.as_deref(),
            Some("+18005550199"),
            "kept, never dropped"
        );
        let fields = |r: Result<(), Error>| match r {
            Err(Error::InvalidArgument(f)) => f.into_iter().map(|f| f.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert!(
            fields(check(Some("rcs:brand_acme_agent"), "not a number").0)
                .contains(&"messaging_binding.proxy_address_fallback".to_owned())
        );
        assert!(
            fields(check(None, "+18005550199").0)
                .contains(&"messaging_binding.proxy_address_fallback".to_owned())
        );
    }
}
