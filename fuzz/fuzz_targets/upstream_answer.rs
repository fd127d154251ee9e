//! Arbitrary bytes as Twilio's answer, read and checked by the twilio backend's own
//! functions: as a v2 participant and a v1 participant fetched (the ids the seed corpus
//! answers with), an error body (with the first line as `Retry-After`
//! and `X-Conflicting-Resource-Id`), and as a `Retry-After` value. Whatever parses is
//! then answered to callers by both fronts (a backend stub hands it to them), as a
//! fetch's result or as the error.
//!
//! Checks: a body that is not the resource is UPSTREAM_PROTOCOL, saying so without
//! quoting it; `Retry-After` is never above its cap; what the fronts answer encodes (gRPC:
//! valid `Timestamp`s; REST: 200 with the JSON resource, or Twilio's error body with the
//! upstream status).

#![no_main]

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use participants_facade::domain::error::Error;
use participants_facade::domain::{ParticipantRef, ServiceParticipantRef};
use participants_facade::proto::participant_service_server::ParticipantService;
use participants_facade::proto::{FetchParticipantRequest, FetchServiceParticipantRequest};
use participants_facade::front::rest::error_response;
use participants_facade::twilio_api::TwilioErrorBody;
use participants_facade::twilio_api::v1::ServiceParticipantJson;
use participants_facade::twilio_api::v2::ParticipantJson;
use participants_facade::backend::twilio::fuzzing;
use participants_facade_fuzz::*;
use prost::Message;
use tonic::Status;

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .body(Full::new(Bytes::new()))
        .expect("a well-formed request")
}

fn not_the_resource(e: &Error) {
    match e {
        Error::UpstreamProtocol(message) => assert_no_echo("protocol error", message),
        other => panic!("a body that does not parse gave {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let fronts = stub_fronts();
    // The status an error answer came with: any error status, from the body's length.
    let status = StatusCode::from_u16(400 + (data.len() % 200) as u16).expect("4xx or 5xx");

    // v2 participant, then both fronts answering it to a fetch.
    let v2_key = ParticipantRef {
        conversation_id: "conv_conversation_00000000000000000000000001".into(),
        participant_id: "conv_participant_00000000000000000000000001".into(),
    };
    match fuzzing::v2_participant(StatusCode::OK, data, &v2_key) {
        Ok(p) => {
            fronts.backend.answer_v2(Some(p.clone()));
            let grpc = block_on(fronts.grpc.fetch_participant(tonic::Request::new(
                FetchParticipantRequest {
                    conversation_id: CONVERSATION_ID.into(),
                    participant_id: "conv_participant_x".into(),
                },
            )))
            .expect("the stub answers the fetch")
            .into_inner();
            for t in [&grpc.created_at, &grpc.updated_at].into_iter().flatten() {
                assert_valid_timestamp("v2 Participant from Twilio", t);
            }
            let _ = grpc.encode_to_vec();
            let answer = call(
                &fronts.rest,
                get(&format!(
                    "/v2/Conversations/{CONVERSATION_ID}/Participants/conv_participant_x"
                )),
            );
            assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
            let json: ParticipantJson =
                serde_json::from_slice(&answer.body).expect("200 body is a v2 participant");
            assert_eq!(json.id, p.id);
            assert_eq!(json.addresses.len(), p.addresses.len());
        }
        Err(e) => not_the_resource(&e),
    }

    // v1 participant, likewise.
    let v1_key = ServiceParticipantRef {
        chat_service_sid: "ISaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        conversation_sid: "CHaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        sid: "MBaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
    };
    match fuzzing::v1_participant(StatusCode::OK, data, &v1_key) {
        Ok(p) => {
            fronts.backend.answer_v1(Some(p.clone()));
            let grpc = block_on(fronts.grpc.fetch_service_participant(tonic::Request::new(
                FetchServiceParticipantRequest {
                    chat_service_sid: SERVICE_SID.into(),
                    conversation_sid: CONVERSATION_SID.into(),
                    sid: "ada".into(),
                },
            )))
            .expect("the stub answers the fetch")
            .into_inner();
            for t in [&grpc.date_created, &grpc.date_updated]
                .into_iter()
                .flatten()
            {
                assert_valid_timestamp("v1 ServiceParticipant from Twilio", t);
            }
            let _ = grpc.encode_to_vec();
            let answer = call(
                &fronts.rest,
                get(&format!(
                    "/v1/Services/{SERVICE_SID}/Conversations/{CONVERSATION_SID}/Participants/ada"
                )),
            );
            assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
            let json: ServiceParticipantJson =
                serde_json::from_slice(&answer.body).expect("200 body is a v1 participant");
            assert_eq!(json.sid, p.sid);
        }
        Err(e) => not_the_resource(&e),
    }

    // An error answer, its first line also as Retry-After and X-Conflicting-Resource-Id.
    let first_line = data.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(first_line) {
        headers.insert("retry-after", value.clone());
        headers.insert("x-conflicting-resource-id", value);
    }
    let upstream = fuzzing::error_answer(status, headers, data);
    assert_eq!(upstream.http_status, status.as_u16());
    assert!(!upstream.message.is_empty());
    if let Some(after) = upstream.retry_after {
        assert!(after <= fuzzing::MAX_RETRY_AFTER, "{after:?}");
    }
    let error = Error::Upstream(Box::new(upstream));
    // REST: Twilio's error body with Twilio's status. (The message is Twilio's own text,
    // passed through, so it may be anything; the echo check does not apply.)
    let response = error_response(&error);
    assert_eq!(response.status(), status);
    let body = block_on(http_body_util::BodyExt::collect(response.into_body()))
        .expect("in-memory body")
        .to_bytes();
    let body: TwilioErrorBody = serde_json::from_slice(&body).expect("Twilio's error body");
    assert_eq!(body.status, Some(status.as_u16()));
    // gRPC: the status, with its details, encodes into headers.
    let status = Status::from(error);
    assert_status_encodes(&status);

    // The whole input as a Retry-After value.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(after) = fuzzing::retry_after(text) {
            assert!(after <= fuzzing::MAX_RETRY_AFTER, "{after:?}");
        }
    }
});
