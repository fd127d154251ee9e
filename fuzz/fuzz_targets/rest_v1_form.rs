//! Arbitrary bytes as the form body of
//! `POST /v1/Services/{IS}/Conversations/{CH}/Participants`, through the REST front itself
//! (its strict form extractor, the handler's draft and validation) over a backend stub.
//!
//! Checks: 201 exactly when the front handed the backend a request, and that request
//! revalidates to itself; a form with a name or value that is not UTF-8 once
//! percent-decoded (decoded here independently of the crate) is never accepted, and a
//! U+FFFD in what was stored was in the input; any other answer is 400 (413 past the
//! body limit) with Twilio's error body, whose message echoes nothing of the body.

#![no_main]

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use participants_facade::twilio_api::v1::ServiceParticipantJson;
use participants_facade_fuzz::*;

/// `application/x-www-form-urlencoded` decoding of one name or value: `+` is a space,
/// `%XY` a byte, anything else (a lone or malformed `%` too) itself.
fn percent_decode(token: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(token.len());
    let mut i = 0;
    while i < token.len() {
        match token[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                token.get(i + 1).copied().and_then(hex),
                token.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Every name and value of the form, decoded.
fn decoded_tokens(body: &[u8]) -> Vec<Vec<u8>> {
    body.split(|b| *b == b'&')
        .flat_map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            [percent_decode(name), percent_decode(value)]
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let fronts = stub_fronts();
    let request = Request::post(format!(
        "/v1/Services/{SERVICE_SID}/Conversations/{CONVERSATION_SID}/Participants"
    ))
    .header("content-type", "application/x-www-form-urlencoded")
    .body(Full::new(Bytes::copy_from_slice(data)))
    .expect("a well-formed request");
    let answer = call(&fronts.rest, request);
    let created = fronts.backend.take_v1_created();
    let tokens = decoded_tokens(data);
    let all_utf8 = tokens.iter().all(|t| std::str::from_utf8(t).is_ok());
    if answer.status == StatusCode::CREATED {
        let created = created.expect("201 without a create reaching the backend");
        assert!(all_utf8, "a form that is not UTF-8 was accepted: {data:?}");
        assert_v1_revalidates(&created);
        let stored = format!("{created:?}");
        if stored.contains('\u{FFFD}') {
            assert!(
                tokens
                    .iter()
                    .any(|t| String::from_utf8_lossy(t).contains('\u{FFFD}')),
                "U+FFFD stored but not sent: {data:?}"
            );
        }
        let json: ServiceParticipantJson =
            serde_json::from_slice(&answer.body).expect("201 body is a v1 participant");
        assert_eq!(json.identity, created.identity);
        assert_eq!(json.chat_service_sid.as_deref(), Some(SERVICE_SID));
        assert_eq!(json.conversation_sid.as_deref(), Some(CONVERSATION_SID));
    } else {
        assert!(created.is_none(), "{answer:?}");
        let expected = if data.len() > MAX_BODY { 413 } else { 400 };
        assert_eq!(answer.status.as_u16(), expected, "{answer:?}");
        assert_twilio_error(&answer, false);
    }
});
