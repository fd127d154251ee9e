//! The REST front's extractors: the path, Twilio's JSON (v2) and form (v1) bodies, and the
//! headers handlers read. Each kind of refusal is made here, once, the same way for every
//! route: a wrong content type is 415 ([`BodyFormat`]), a body past the router's
//! `DefaultBodyLimit` 413 ([`body`]), a malformed body 400 naming the field and never its
//! value ([`decode_json`], [`decode_form`]), a path that does not decode 400 naming the
//! parameter ([`TwilioPath`]), and a header of the wrong form 400.
//!
//! axum's own `Json` and `Form` are not used for two reasons:
//! - their rejections quote serde's message, which echoes the rejected value
//!   (`invalid type: string "+18005550199", expected ...`): a phone number or e-mail
//!   address would come back in the error body and land in logs. Here a rejection names the
//!   field and what it must be, never what it was;
//! - `Form` decodes percent-escapes lossily, so `Identity=%FF%FE` became U+FFFD and two
//!   different inputs collided on one identity. Here a field that is not UTF-8 is a 400,
//!   as the JSON routes answer invalid UTF-8.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use serde::de::DeserializeOwned;

use super::errors::RestError;
use crate::domain::Webhooks;
use crate::domain::error::Error;

/// The path's parameters (`Path`, with the path's refusal).
pub(super) struct TwilioPath<T>(pub(super) T);

/// A JSON request body (`Content-Type: application/json` or `+json`).
pub(super) struct TwilioJson<T>(pub(super) T);

/// A form request body (`Content-Type: application/x-www-form-urlencoded`).
pub(super) struct TwilioForm<T>(pub(super) T);

/// The query string's parameters, decoded as a form is (every name and value UTF-8, a
/// refusal naming the parameter, never its value).
pub(super) struct TwilioQuery<T>(pub(super) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for TwilioPath<T> {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::from_request_parts(parts, state)
            .await
            .map(|Path(params)| TwilioPath(params))
            .map_err(|r| path_refusal(&r).into())
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for TwilioQuery<T> {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        decode_pairs(query.as_bytes(), "query string")
            .map(TwilioQuery)
            .map_err(Into::into)
    }
}

/// A path that does not decode. Every path parameter is a string, so the only failure is
/// a segment that is not UTF-8 once percent-decoded; the message names the parameter (a
/// name from the route template), never the segment.
fn path_refusal(r: &PathRejection) -> Error {
    use axum::extract::path::ErrorKind;
    let message = match r {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => {
                format!("Invalid URL: the path parameter `{key}` is not valid UTF-8")
            }
            _ => "Invalid URL: a path parameter cannot be read".to_owned(),
        },
        _ => "Invalid URL: a path parameter cannot be read".to_owned(),
    };
    Error::rejected(400, message)
}

/// The body formats the routes take, each with its media type.
#[derive(Debug, Clone, Copy)]
enum BodyFormat {
    Json,
    Form,
}

impl BodyFormat {
    /// Whether the request's media type (parameters aside) is this format's, or for JSON
    /// a `+json` suffix type.
    fn accepts(self, request: &Request) -> bool {
        let Some(value) = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let essence = value.split(';').next().unwrap_or_default().trim();
        match self {
            BodyFormat::Json => {
                essence.eq_ignore_ascii_case("application/json")
                    || essence
                        .rsplit_once('+')
                        .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json"))
            }
            BodyFormat::Form => essence.eq_ignore_ascii_case("application/x-www-form-urlencoded"),
        }
    }

    /// The 415's message, in axum's words for its own extractors.
    fn wrong_type(self) -> &'static str {
        match self {
            BodyFormat::Json => "Expected request with `Content-Type: application/json`",
            BodyFormat::Form => {
                "Form requests must have `Content-Type: application/x-www-form-urlencoded`"
            }
        }
    }
}

/// The body, if it is in `format` (415 otherwise) and within the router's
/// `DefaultBodyLimit` (413 past it).
async fn body<S: Send + Sync>(
    request: Request,
    state: &S,
    format: BodyFormat,
) -> Result<Bytes, Error> {
    if !format.accepts(&request) {
        return Err(Error::rejected(415, format.wrong_type()));
    }
    Bytes::from_request(request, state)
        .await
        .map_err(|r| Error::rejected(r.status().as_u16(), r.body_text()))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for TwilioJson<T> {
    type Rejection = RestError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body(request, state, BodyFormat::Json).await?;
        Ok(TwilioJson(decode_json(&bytes)?))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for TwilioForm<T> {
    type Rejection = RestError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body(request, state, BodyFormat::Form).await?;
        Ok(TwilioForm(decode_form(&bytes)?))
    }
}

/// The `Idempotency-Key` header. Bytes that are not UTF-8 are refused rather than
/// replaced, so two different keys can never collide on one.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<String, RestError> {
    headers
        .get("idempotency-key")
        .map(|v| std::str::from_utf8(v.as_bytes()).map(str::to_owned))
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(|_| Error::rejected(400, "Idempotency-Key must be UTF-8 text").into())
}

/// The `X-Twilio-Webhook-Enabled` header: `true` or `false` in any case, forwarded as
/// given; absent sends none.
pub(super) fn webhooks(headers: &HeaderMap) -> Result<Webhooks, RestError> {
    match headers
        .get("x-twilio-webhook-enabled")
        .map(HeaderValue::as_bytes)
    {
        None => Ok(Webhooks::Unsaid),
        Some(v) if v.eq_ignore_ascii_case(b"true") => Ok(Webhooks::Enabled),
        Some(v) if v.eq_ignore_ascii_case(b"false") => Ok(Webhooks::Disabled),
        Some(_) => {
            Err(Error::rejected(400, "X-Twilio-Webhook-Enabled must be true or false").into())
        }
    }
}

/// Decodes a JSON body; a refusal says where and what was expected, never the value.
fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_refusal(&path, &inner)
    })?;
    // Trailing bytes after the value ("{} x") are malformed JSON too.
    deserializer
        .end()
        .map_err(|e| json_refusal(".", &e))
        .map(|()| value)
}

fn json_refusal(path: &str, e: &serde_json::Error) -> Error {
    use serde_json::error::Category;
    let (line, column) = (e.line(), e.column());
    let message = match e.classify() {
        Category::Syntax | Category::Io => {
            format!("The body is not valid JSON (line {line}, column {column})")
        }
        Category::Eof => "The body ends before its JSON value does".to_owned(),
        Category::Data => {
            let field = if path == "." || path.is_empty() {
                "the body".to_owned()
            } else {
                format!("`{path}`")
            };
            format!(
                "Invalid JSON body: {field} {}",
                data_refusal(&e.to_string())
            )
        }
    };
    Error::rejected(400, message)
}

/// What a data error says, without what serde quotes of the input: serde's messages put
/// the rejected value first (`invalid type: string "...", expected a string`) and what
/// was expected, which comes from our own types, last.
fn data_refusal(message: &str) -> String {
    // serde_json appends the position: " at line 1 column 30".
    let message = message
        .rsplit_once(" at line ")
        .map_or(message, |(text, _)| text);
    let expected = message
        .rsplit_once(", expected ")
        .map(|(_, expected)| expected);
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('`'))
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_owned())
    };
    if let Some(field) = named("missing field ") {
        // The name comes from our schema, not from the input.
        format!("lacks the required field `{field}`")
    } else if let Some(field) = named("duplicate field ") {
        format!("has the field `{field}` twice")
    } else if message.starts_with("unknown field") {
        "has a field that is not part of this resource".to_owned()
    } else if let Some(expected) = expected {
        format!("has the wrong type or value: expected {expected}")
    } else {
        "has an invalid value".to_owned()
    }
}

/// Decodes a form body. Every name and value must be UTF-8 once percent-decoded (`+` is a
/// space); a field that is not is refused by name when it is one of `T`'s fields (any
/// other name is the caller's text, and not quoted).
fn decode_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    decode_pairs(bytes, "form body")
}

/// Decodes `name=value&...` pairs (a form body or a query string, `what` in refusals), as
/// [`decode_form`] says.
fn decode_pairs<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    let fields = field_names::<T>();
    for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let Some(name) = form_text(name) else {
            return Err(Error::rejected(
                400,
                format!("Invalid {what}: a field name is not valid UTF-8"),
            ));
        };
        if form_text(value).is_none() {
            let message = if fields.contains(&name.as_str()) {
                format!("Invalid {what}: the value of `{name}` is not valid UTF-8")
            } else {
                format!(
                    "Invalid {what}: the value of a field that is not part of this resource \
                     is not valid UTF-8"
                )
            };
            return Err(Error::rejected(400, message));
        }
    }
    serde_urlencoded::from_bytes(bytes).map_err(|e| {
        Error::rejected(
            400,
            format!("Invalid {what}: {}", data_refusal(&e.to_string())),
        )
    })
}

/// The field names `T` deserializes (after renames), as its `Deserialize` impl gives them
/// to `deserialize_struct`; none for a type that is not a plain struct.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    struct Fields<'a>(&'a std::cell::Cell<&'static [&'static str]>);

    impl<'de> de::Deserializer<'de> for Fields<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(de::Error::custom("only the field names are read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let fields = std::cell::Cell::new(&[][..]);
    let _ = T::deserialize(Fields(&fields));
    fields.get()
}

/// One percent-encoded form token as text, or `None` if it is not UTF-8.
fn form_text(token: &[u8]) -> Option<String> {
    let plus_as_space: Vec<u8> = token
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: Option<String>,
        addresses: Option<Vec<Address>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Address {
        address: Option<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Form {
        #[serde(rename = "Identity")]
        identity: Option<String>,
    }

    fn message(e: Error) -> String {
        match e {
            Error::Rejected {
                status: 400,
                message,
            } => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn json_refusals_name_the_field_and_never_echo_the_value() {
        for (body, field) in [
            (r#"{"name": 5}"#, "`name`"),
            (
                r#"{"addresses": [{"address": 18005550199}]}"#,
                "`addresses[0].address`",
            ),
            (r#"{"addresses": "+18005550199"}"#, "`addresses`"),
            (r#""+18005550199""#, "the body"),
        ] {
            let refused = message(decode_json::<Body>(body.as_bytes()).expect_err(body));
            assert!(refused.contains(field), "{refused}");
            assert!(!refused.contains("18005550199"), "{refused}");
        }
    }

    #[test]
    fn json_syntax_errors_give_the_position_only() {
        let refused =
            message(decode_json::<Body>(br#"{"name": "ada@example.com" x}"#).expect_err("bad"));
        assert!(refused.contains("line 1"), "{refused}");
        assert!(!refused.contains("ada"), "{refused}");
        assert!(decode_json::<Body>(br#"{"name": "a"} trailing"#).is_err());
    }

    #[test]
    fn form_fields_must_be_utf8() {
        let refused = message(decode_form::<Form>(b"Identity=%FF%FE").expect_err("not UTF-8"));
        assert!(refused.contains("`Identity`"), "{refused}");
        // Found by fuzz/fuzz_targets/rest_v1_form.rs: a name that is not one of the form's
        // fields is the caller's text, and was quoted.
        let refused =
            message(decode_form::<Form>(b"ada.lovelace%40example.com=%FF").expect_err("not UTF-8"));
        assert!(refused.contains("not part of this resource"), "{refused}");
        assert!(!refused.contains("lovelace"), "{refused}");
        assert_eq!(field_names::<Form>(), ["Identity"]);
        assert!(field_names::<String>().is_empty());
        assert!(decode_form::<Form>(b"%FF=x").is_err());
        let form: Form = decode_form(b"Identity=ad+a%C3%A9").expect("UTF-8");
        assert_eq!(form.identity.as_deref(), Some("ad a\u{e9}"));
    }
}
