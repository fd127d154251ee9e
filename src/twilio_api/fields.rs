//! Single fields as Twilio writes them: its dates, and the fields read leniently from its
//! answers, so that a field nothing here relies on cannot fail a whole answer.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A date in a request to Twilio (the twilio backend's forms): RFC 3339 in UTC (`Z`),
/// fractional seconds only when there are any, so that a date a caller gave is passed on
/// as given.
pub(super) fn format_date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A date in an answer, as Twilio writes it: RFC 3339 in UTC, whole seconds, `Z`
/// (`2009-07-06T20:30:00Z`); a fraction of a second is dropped (truncated, never rounded
/// up into the next second).
pub(super) fn format_answer_date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `serialize_with` for an optional date in an answer: [`format_answer_date`], or null.
/// Reading stays [`lenient_date`], which takes fractional seconds too.
pub(super) fn write_date<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    t.map(format_answer_date).serialize(s)
}

/// `deserialize_with` for an optional date in Twilio's answers: one that does not parse
/// (RFC 3339, or RFC 2822 as older APIs write it) is absent, not a failed call: the
/// participant itself is still worth returning. A value that is not text at all still
/// fails, as any mistyped field does.
pub(super) fn lenient_date<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.and_then(|s| {
        DateTime::parse_from_rfc3339(&s)
            .or_else(|_| DateTime::parse_from_rfc2822(&s))
            .map(|t| t.with_timezone(&Utc))
            .ok()
    }))
}

/// `deserialize_with` for a field the REST front writes and the twilio backend never
/// needs from Twilio: whatever Twilio sends there, a value that is not a `T` is absent.
pub(super) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ValueOr<T> {
        Value(T),
        Other(IgnoredAny),
    }
    Ok(match Option::<ValueOr<T>>::deserialize(d)? {
        Some(ValueOr::Value(v)) => Some(v),
        Some(ValueOr::Other(_)) | None => None,
    })
}

/// `deserialize_with` (with `default`) for a field whose presence matters: absent is
/// `None`, present `Some`, and present as null `Some(None)`.
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Fields {
        #[serde(default, deserialize_with = "lenient_date")]
        date: Option<DateTime<Utc>>,
        #[serde(default, deserialize_with = "lenient")]
        status: Option<u16>,
    }

    fn read(json: &str) -> Result<Fields, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn lenient_fields_are_absent_rather_than_wrong() {
        let f = read(r#"{"date": "2015-12-16T22:18:37Z", "status": 404}"#).expect("valid");
        assert_eq!(
            f.date.map(format_date).as_deref(),
            Some("2015-12-16T22:18:37Z")
        );
        assert_eq!(f.status, Some(404));
        let f = read(r#"{"date": "Wed, 16 Dec 2015 22:18:37 +0000"}"#).expect("RFC 2822");
        assert!(f.date.is_some());
        let f = read(r#"{"date": "yesterday", "status": {"no": [1]}}"#).expect("lenient");
        assert_eq!((f.date, f.status), (None, None));
        let f = read(r#"{"date": null, "status": 70000}"#).expect("lenient");
        assert_eq!((f.date, f.status), (None, None));
        assert!(read(r#"{"date": 5}"#).is_err(), "a date must still be text");
    }

    #[test]
    fn dates_are_written_as_twilio_writes_them() {
        let t = DateTime::parse_from_rfc3339("2015-12-16T22:18:37.999+01:00")
            .expect("date")
            .with_timezone(&Utc);
        // Answers: whole seconds, truncated.
        assert_eq!(format_answer_date(t), "2015-12-16T21:18:37Z");
        #[derive(Serialize)]
        struct Answer {
            #[serde(serialize_with = "write_date")]
            date: Option<DateTime<Utc>>,
        }
        let json = serde_json::to_string(&Answer { date: Some(t) }).expect("json");
        assert_eq!(json, r#"{"date":"2015-12-16T21:18:37Z"}"#);
        let json = serde_json::to_string(&Answer { date: None }).expect("json");
        assert_eq!(json, r#"{"date":null}"#);
        // Requests to Twilio: the date as given, its fraction kept.
        assert_eq!(format_date(t), "2015-12-16T21:18:37.999Z");
        // And read back, fractions are taken.
        let f = read(r#"{"date": "2015-12-16T22:18:37.123456Z"}"#).expect("fraction");
        assert_eq!(f.date.map(|d| d.timestamp_subsec_micros()), Some(123_456));
    }
}
