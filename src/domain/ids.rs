//! Identifiers in Twilio's shapes.

use crate::domain::rules::V2Id;

/// A v2 participant id: `conv_participant_` and a ULID in 26 lowercase Crockford base32
/// characters, so ids sort by creation time as Twilio's do.
pub(crate) fn participant_id() -> String {
    format!(
        "{}{}",
        V2Id::Participant.prefix(),
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}

/// A v1 participant sid: `MB` and 32 lowercase hex digits (128 random bits).
pub(crate) fn service_participant_sid() -> String {
    format!("MB{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_ids_have_twilios_shape_and_are_unique() {
        let a = participant_id();
        let b = participant_id();
        assert_ne!(a, b);
        assert!(crate::domain::rules::is_v2_id(&a, V2Id::Participant), "{a}");
        let suffix = a.strip_prefix("conv_participant_").expect("prefix");
        assert_eq!(suffix.len(), 26);
        assert!(
            suffix
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert!(ulid::Ulid::from_string(suffix).is_ok());
    }

    #[test]
    fn service_participant_sids_have_twilios_shape() {
        let sid = service_participant_sid();
        assert!(crate::domain::rules::is_sid(&sid, "MB"), "{sid}");
        assert_eq!(sid[2..].to_ascii_lowercase(), sid[2..]);
    }
}
