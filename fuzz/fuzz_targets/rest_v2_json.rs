//! Arbitrary bytes as the JSON body of `POST /v2/Conversations/{id}/Participants`,
//! through the REST front itself (its strict JSON extractor, the handler's draft and
//! validation) over a backend stub.
//!
//! Checks: 201 exactly when the front handed the backend a request, and that request
//! revalidates to itself; any other answer is 400 (413 past the body limit) with Twilio's
//! error body, whose message echoes nothing of the body.

#![no_main]

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use participants_facade::twilio_api::v2::ParticipantJson;
use participants_facade_fuzz::*;

fuzz_target!(|data: &[u8]| {
    let fronts = stub_fronts();
    let request = Request::post(format!("/v2/Conversations/{CONVERSATION_ID}/Participants"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(data)))
        .expect("a well-formed request");
    let answer = call(&fronts.rest, request);
    let created = fronts.backend.take_v2_created();
    if answer.status == StatusCode::CREATED {
        let created = created.expect("201 without a create reaching the backend");
        assert_v2_revalidates(&created);
        let json: ParticipantJson =
            serde_json::from_slice(&answer.body).expect("201 body is a v2 participant");
        assert_eq!(json.conversation_id, created.conversation_id);
        assert_eq!(json.name, created.name);
        assert_eq!(json.profile_id, created.profile_id);
        assert_eq!(json.addresses.len(), created.addresses.len());
    } else {
        assert!(created.is_none(), "{answer:?}");
        let expected = if data.len() > MAX_BODY { 413 } else { 400 };
        assert_eq!(answer.status.as_u16(), expected, "{answer:?}");
        assert_twilio_error(&answer, false);
    }
});
