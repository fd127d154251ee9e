//! Connect, unary (<https://connectrpc.com/docs/protocol/>): `POST
//! /participants.v1.ParticipantService/{Method}` with `application/json` (protobuf's JSON
//! mapping) or `application/proto`, answered 200 with the message in the same encoding, or
//! with Connect's error JSON and the HTTP status of its code.
//!
//! A Connect call is a gRPC call in other clothes, so it is served once: `transport::stack`
//! admits it like any call (auth, `Connect-Timeout-Ms` as the deadline, fair share, the
//! whole body, load shedding, one span and the call metrics), [`ConnectCall::grpc_body`]
//! turns its body into one gRPC frame, the request goes to the same tonic routes as gRPC,
//! and [`ConnectCall::answer`] turns tonic's answer (message, `grpc-status`, `grpc-message`,
//! `grpc-status-details-bin`) back into Connect's. The error details are the gRPC ones
//! (BadRequest, ErrorInfo, RetryInfo), each as `{"type", "value", "debug"}`.
//!
//! Why a layer of our own: of the crates that serve Connect in Rust, `connectrpc-axum`
//! says it is not for production, `axum-connect` pins prost below 0.14, and `connectrpc`
//! generates its own message types instead of serving prost's. Unary Connect over an
//! existing gRPC service is small: this file.
//!
//! Why prost-reflect for the JSON mapping, not pbjson: `pbjson-types` 0.9 (the version for
//! prost 0.14) writes a `Timestamp` as `...+00:00` where the mapping asks for `...Z`, and
//! maps `FieldMask` as a message (`{"paths": [...]}`) where the mapping asks for one
//! comma-separated camelCase string (`"updateMask": "name,attributes"`), so an
//! `UpdateParticipant` from any conformant client would be refused. prost-reflect (the
//! crate protox is built on, already in the build) implements the mapping over the
//! descriptors `build.rs` writes, including the well-known types, and is tested against
//! protobuf's conformance suite; the generated prost types stay as they are. The common
//! cases skip its dynamic messages: `wire_json` converts straight between JSON and the
//! binary form with the same results, and leaves everything else to prost-reflect.
//!
//! Unknown JSON fields are ignored, as connect-go does: its JSON codec unmarshals with
//! `protojson.UnmarshalOptions{DiscardUnknown: true}` ("so clients and servers aren't
//! forced to always use exactly the same version of the schema", connect-go `codec.go`).
//! The same option makes an unknown enum name read as unset (protojson's `DiscardUnknown`
//! does the same), which validation then judges as it judges a missing value. A
//! zero-length JSON body is refused, as connect-go refuses it; a zero-length binary body
//! is the empty message.

use std::sync::LazyLock;

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use bytes::{BufMut as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body_util::BodyExt as _;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions, ServiceDescriptor,
};
use tonic::{Code, Status};

use crate::domain::error::{Error, FieldViolation};
use crate::observability::RpcCode;

/// The path prefix of the methods served over Connect.
const SERVICE_PATH: &str = "/participants.v1.ParticipantService/";
/// What a 415 answer lists in `Accept-Post`.
const ACCEPTED: &str = "application/json, application/proto";

/// The service's descriptor, from the file descriptor set `build.rs` writes.
static SERVICE: LazyLock<Result<ServiceDescriptor, String>> = LazyLock::new(|| {
    let pool = DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| format!("the service's descriptors do not decode: {e}"))?;
    pool.get_service_by_name("participants.v1.ParticipantService")
        .ok_or_else(|| "participants.v1.ParticipantService is not in its descriptors".to_owned())
});

/// The `google.rpc` error details, to write each detail's `debug` JSON.
static DETAILS: LazyLock<Option<DescriptorPool>> =
    LazyLock::new(|| DescriptorPool::decode(tonic_types::pb::FILE_DESCRIPTOR_SET).ok());

/// Unknown fields are ignored, as connect-go does (see the module's comment).
const DESERIALIZE: DeserializeOptions = DeserializeOptions::new().deny_unknown_fields(false);
/// protobuf's JSON mapping as written: lowerCamelCase names, enums by name, 64-bit
/// integers as strings, default values omitted.
const SERIALIZE: SerializeOptions = SerializeOptions::new();

/// The encoding of a Connect call's messages, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// `application/json`: protobuf's JSON mapping.
    Json,
    /// `application/proto`: protobuf's binary encoding.
    Proto,
}

impl Codec {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Codec::Json => "application/json",
            Codec::Proto => "application/proto",
        })
    }
}

/// Why a Connect call is refused from its head alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    UnknownMethod,
    UnsupportedMediaType,
    ProtocolVersion,
    ContentEncoding,
    Descriptors,
}

/// A Connect call, as judged from its head.
#[derive(Debug)]
pub(crate) struct ConnectCall {
    codec: Codec,
    method: Option<MethodDescriptor>,
    problem: Option<Problem>,
}

impl ConnectCall {
    /// The Connect call this request is, if it is one: a POST to a method path of the
    /// service whose content type is not gRPC's. Its problems (unknown method, content
    /// type, protocol version, encoding) are answered by [`ConnectCall::refusal`].
    pub(crate) fn classify(
        method: &http::Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<ConnectCall> {
        let name = path.strip_prefix(SERVICE_PATH)?;
        let content_type = headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
        if method != http::Method::POST
            || content_type.is_some_and(|v| v.starts_with(b"application/grpc"))
        {
            return None;
        }
        let codec = content_type.and_then(codec_of);
        let mut call = ConnectCall {
            codec: codec.unwrap_or(Codec::Json),
            method: None,
            problem: None,
        };
        let service = match &*SERVICE {
            Ok(service) => service,
            Err(_) => {
                call.problem = Some(Problem::Descriptors);
                return Some(call);
            }
        };
        call.method = service.methods().find(|m| m.name() == name);
        call.problem = if call.method.is_none() {
            Some(Problem::UnknownMethod)
        } else if codec.is_none() {
            Some(Problem::UnsupportedMediaType)
        } else if headers
            .get("connect-protocol-version")
            .is_some_and(|v| v.as_bytes() != b"1")
        {
            Some(Problem::ProtocolVersion)
        } else if [
            header::CONTENT_ENCODING.as_str(),
            "connect-content-encoding",
        ]
        .iter()
        .filter_map(|name| headers.get(*name))
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
        {
            Some(Problem::ContentEncoding)
        } else {
            None
        };
        Some(call)
    }

    /// The answer to a call refused from its head, in Connect's error JSON: an unknown
    /// method 404 (`unimplemented`), an unsupported content type 415 with `Accept-Post`, a
    /// `Connect-Protocol-Version` other than 1 `invalid_argument`, a compressed body
    /// `unimplemented` (only identity is served).
    pub(crate) fn refusal(&self) -> Option<Response> {
        let problem = self.problem?;
        Some(match problem {
            Problem::UnknownMethod => error_with_status(
                &Status::unimplemented(
                    "participants.v1.ParticipantService has no such method; see \
                     proto/participants/v1/participants.proto",
                ),
                StatusCode::NOT_FOUND,
            ),
            Problem::UnsupportedMediaType => {
                let mut response = error_with_status(
                    &Status::unimplemented(
                        "Connect calls must be application/json (protobuf's JSON mapping) \
                         or application/proto",
                    ),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                );
                response
                    .headers_mut()
                    .insert("accept-post", HeaderValue::from_static(ACCEPTED));
                response
            }
            Problem::ProtocolVersion => error_response(&Status::invalid_argument(
                "connect-protocol-version must be 1",
            )),
            Problem::ContentEncoding => error_response(&Status::unimplemented(
                "the request body's content-encoding is not supported: send it uncompressed \
                 (identity)",
            )),
            Problem::Descriptors => {
                error_response(&Status::internal("the service's descriptors are unusable"))
            }
        })
    }

    /// The request's whole body as one gRPC frame of its message: JSON read through
    /// protobuf's JSON mapping into the method's input type and encoded; binary as it
    /// is. A message past `max_message_bytes` is refused as gRPC's is.
    pub(crate) fn grpc_body(&self, body: Bytes, max_message_bytes: usize) -> Result<Bytes, Error> {
        let Some(method) = &self.method else {
            return Err(Error::Internal("a Connect call without a method".into()));
        };
        let message = match self.codec {
            Codec::Proto => body,
            // Read straight into the binary form when plain, else by prost-reflect.
            Codec::Json => Bytes::from(match super::wire_json::from_json(&method.input(), &body) {
                Some(wire) => wire,
                None => json_to_proto(&method.input(), &body)?.encode_to_vec(),
            }),
        };
        if message.len() > max_message_bytes {
            return Err(Error::Rejected {
                status: 413,
                message: format!(
                    "the request message is larger than the limit of {max_message_bytes} bytes"
                ),
            });
        }
        let mut frame = BytesMut::with_capacity(5 + message.len());
        frame.put_u8(0);
        // At most `max_message_bytes`, a u32.
        frame.put_u32(message.len() as u32);
        frame.put_slice(&message);
        Ok(frame.freeze())
    }

    /// The head of the in-process gRPC request: gRPC's content type, no length (the body
    /// changed) and no encoding (the body is identity).
    pub(crate) fn grpc_head(headers: &mut HeaderMap) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::CONTENT_ENCODING);
    }

    /// tonic's answer as Connect's: 200 with the message in the request's encoding, or
    /// Connect's error JSON. gRPC metadata become headers, trailing metadata headers
    /// prefixed `trailer-`.
    pub(crate) async fn answer(&self, response: http::Response<tonic::body::Body>) -> Response {
        let (parts, body) = response.into_parts();
        // A trailers-only answer: the status is in the headers.
        if let Some(status) = Status::from_header_map(&parts.headers)
            && status.code() != Code::Ok
        {
            return error_response(&status);
        }
        let Ok(collected) = body.collect().await else {
            return error_response(&Status::internal("the answer could not be read"));
        };
        let trailers = collected.trailers().cloned().unwrap_or_default();
        match Status::from_header_map(&trailers) {
            Some(status) if status.code() != Code::Ok => return error_response(&status),
            Some(_) => {}
            None => return error_response(&Status::internal("the answer carried no status")),
        }
        let data = collected.to_bytes();
        let Some(message) = single_message(&data) else {
            return error_response(&Status::internal(
                "the answer did not carry exactly one message",
            ));
        };
        let body = match (self.codec, &self.method) {
            (Codec::Proto, _) => message,
            (Codec::Json, Some(method)) => match proto_to_json(&method.output(), message) {
                Ok(json) => Bytes::from(json),
                Err(err) => return error_response(&err),
            },
            (Codec::Json, None) => {
                return error_response(&Status::internal("a Connect call without a method"));
            }
        };
        let mut response = Response::new(Body::from(body));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.codec.content_type());
        for (name, value) in parts.headers.iter().filter(|(n, _)| is_metadata(n)) {
            headers.append(name.clone(), value.clone());
        }
        for (name, value) in trailers.iter().filter(|(n, _)| is_metadata(n)) {
            if let Ok(prefixed) = HeaderName::try_from(format!("trailer-{name}")) {
                headers.append(prefixed, value.clone());
            }
        }
        response.extensions_mut().insert(RpcCode(Code::Ok));
        response
    }
}

/// The codec of a Connect content type: `application/json` or `application/proto`, with
/// any parameters (`; charset=utf-8`).
fn codec_of(content_type: &[u8]) -> Option<Codec> {
    let media = content_type.split(|b| *b == b';').next()?.trim_ascii();
    if media.eq_ignore_ascii_case(b"application/json") {
        Some(Codec::Json)
    } else if media.eq_ignore_ascii_case(b"application/proto") {
        Some(Codec::Proto)
    } else {
        None
    }
}

/// Headers of a gRPC answer that are the RPC's metadata (not gRPC's own framing).
fn is_metadata(name: &HeaderName) -> bool {
    let name = name.as_str();
    !(name.starts_with("grpc-")
        || name == header::CONTENT_TYPE
        || name == header::CONTENT_LENGTH
        || name == header::CONTENT_ENCODING
        || name == header::TRAILER
        || name == header::TE)
}

/// The payload of a body holding exactly one uncompressed gRPC message.
fn single_message(data: &Bytes) -> Option<Bytes> {
    let (&flags, rest) = data.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    (flags == 0 && data.len() == 5 + len).then(|| data.slice(5..))
}

/// `body`, JSON in protobuf's JSON mapping, as a message of type `input`. Errors name the
/// field (as a JSON path) and where the body went wrong, never the value.
fn json_to_proto(input: &MessageDescriptor, body: &[u8]) -> Result<DynamicMessage, Error> {
    let violation = |field: String, description: String| {
        Error::InvalidArgument(vec![FieldViolation { field, description }])
    };
    if body.is_empty() {
        return Err(violation(
            "body".into(),
            "must be a JSON object: the request message in protobuf's JSON mapping".into(),
        ));
    }
    // Read untracked first: a body that reads needs no path. One that does not is read
    // again with its path tracked, to name the field.
    let mut plain = serde_json::Deserializer::from_slice(body);
    if let Ok(message) =
        DynamicMessage::deserialize_with_options(input.clone(), &mut plain, &DESERIALIZE)
            .and_then(|message| plain.end().map(|()| message))
    {
        return Ok(message);
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let read = DynamicMessage::deserialize_with_options(
        input.clone(),
        serde_path_to_error::Deserializer::new(&mut json, &mut track),
        &DESERIALIZE,
    )
    .and_then(|message| json.end().map(|()| message));
    read.map_err(|e| {
        let at = format!("line {}, column {}", e.line(), e.column());
        match e.classify() {
            serde_json::error::Category::Data => {
                let path = track.path().to_string();
                let field = if path.is_empty() || path == "." {
                    "body".to_owned()
                } else {
                    path
                };
                violation(
                    field,
                    format!(
                        "must be a value of the field's type in protobuf's JSON mapping \
                         (at {at}); see proto/participants/v1/participants.proto"
                    ),
                )
            }
            _ => violation(
                "body".into(),
                format!("must be valid JSON (the error is at {at})"),
            ),
        }
    })
}

/// A binary message of type `output` in protobuf's JSON mapping: written straight from the
/// wire ([`super::wire_json`]), or by prost-reflect for what that leaves to it.
fn proto_to_json(output: &MessageDescriptor, message: Bytes) -> Result<Vec<u8>, Status> {
    if let Some(json) = super::wire_json::to_json(output, &message) {
        return Ok(json);
    }
    reflected_json(output, message)
}

/// A binary message of type `output` in protobuf's JSON mapping, by prost-reflect.
fn reflected_json(output: &MessageDescriptor, message: Bytes) -> Result<Vec<u8>, Status> {
    let message = DynamicMessage::decode(output.clone(), message)
        .map_err(|_| Status::internal("the answer's message did not decode"))?;
    let mut json = serde_json::Serializer::new(Vec::with_capacity(256));
    message
        .serialize_with_options(&mut json, &SERIALIZE)
        .map_err(|_| Status::internal("the answer's message could not be written as JSON"))?;
    Ok(json.into_inner())
}

/// Connect's name of a status code.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The HTTP status of a code, per Connect's table
/// (<https://connectrpc.com/docs/protocol/#error-codes>).
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `status` as Connect's error answer: the HTTP status of its code and
/// `{"code", "message", "details"}`, each detail `{"type", "value", "debug"}` (`value`
/// the detail's bytes in unpadded standard base64, `debug` its JSON).
pub(crate) fn error_response(status: &Status) -> Response {
    error_with_status(status, http_status(status.code()))
}

/// As [`error_response`], with another HTTP status (404 for an unknown method, 415).
fn error_with_status(status: &Status, http: StatusCode) -> Response {
    // An OK status is no error; it cannot reach here, but would otherwise read as one.
    let code = match status.code() {
        Code::Ok => Code::Unknown,
        code => code,
    };
    let body = ErrorBody {
        code: code_name(code),
        message: status.message(),
        details: details_json(status.details()),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"code":"internal"}"#.to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = http;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.extensions_mut().insert(RpcCode(code));
    response
}

/// Connect's error JSON, its fields in the spec's order.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    code: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<Detail>,
}

/// One error detail: its type's full name, its bytes (unpadded standard base64), and its
/// JSON for reading (clients must not depend on it).
#[derive(Debug, serde::Serialize)]
struct Detail {
    r#type: String,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    debug: Option<serde_json::Value>,
}

/// The details of a `grpc-status-details-bin` (`google.rpc.Status`) in Connect's form.
fn details_json(encoded: &[u8]) -> Vec<Detail> {
    if encoded.is_empty() {
        return Vec::new();
    }
    let Ok(status) = tonic_types::pb::Status::decode(encoded) else {
        return Vec::new();
    };
    status
        .details
        .iter()
        .map(|any| {
            let name = any.type_url.rsplit('/').next().unwrap_or_default();
            Detail {
                r#type: name.to_owned(),
                value: base64::engine::general_purpose::STANDARD_NO_PAD.encode(&any.value),
                debug: debug_json(name, &any.value),
            }
        })
        .collect()
}

/// A detail in protobuf's JSON mapping, when its type is a known `google.rpc` one.
fn debug_json(name: &str, value: &[u8]) -> Option<serde_json::Value> {
    let descriptor = DETAILS.as_ref()?.get_message_by_name(name)?;
    let message = DynamicMessage::decode(descriptor, value).ok()?;
    message
        .serialize_with_options(serde_json::value::Serializer, &SERIALIZE)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    fn classify(path: &str, pairs: &[(&'static str, &'static str)]) -> Option<ConnectCall> {
        ConnectCall::classify(&http::Method::POST, path, &headers(pairs))
    }

    const FETCH: &str = "/participants.v1.ParticipantService/FetchParticipant";

    #[test]
    fn connect_is_told_from_grpc_and_rest_by_path_method_and_content_type() {
        let json = classify(
            FETCH,
            &[("content-type", "application/json; charset=utf-8")],
        )
        .expect("a Connect call");
        assert_eq!((json.codec, json.problem), (Codec::Json, None));
        let proto = classify(FETCH, &[("content-type", "application/proto")]).expect("Connect");
        assert_eq!((proto.codec, proto.problem), (Codec::Proto, None));
        assert!(classify(FETCH, &[("content-type", "application/grpc")]).is_none());
        assert!(classify(FETCH, &[("content-type", "application/grpc-web+proto")]).is_none());
        assert!(classify("/v2/Conversations", &[("content-type", "application/json")]).is_none());
        let get = ConnectCall::classify(&http::Method::GET, FETCH, &HeaderMap::new());
        assert!(get.is_none());
    }

    #[test]
    fn problems_of_the_head_are_found() {
        let problem = |path: &str, pairs: &[(&'static str, &'static str)]| {
            classify(path, pairs).and_then(|c| c.problem)
        };
        let json = ("content-type", "application/json");
        assert_eq!(
            problem("/participants.v1.ParticipantService/Nope", &[json]),
            Some(Problem::UnknownMethod)
        );
        assert_eq!(
            problem(FETCH, &[("content-type", "text/plain")]),
            Some(Problem::UnsupportedMediaType)
        );
        assert_eq!(problem(FETCH, &[]), Some(Problem::UnsupportedMediaType));
        assert_eq!(
            problem(FETCH, &[json, ("connect-protocol-version", "2")]),
            Some(Problem::ProtocolVersion)
        );
        assert_eq!(
            problem(FETCH, &[json, ("connect-protocol-version", "1")]),
            None
        );
        assert_eq!(
            problem(FETCH, &[json, ("content-encoding", "gzip")]),
            Some(Problem::ContentEncoding)
        );
        assert_eq!(
            problem(FETCH, &[json, ("content-encoding", "identity")]),
            None
        );
    }

    #[test]
    fn every_code_has_connects_http_status() {
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
        assert_eq!(
            http_status(Code::FailedPrecondition),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(http_status(Code::ResourceExhausted).as_u16(), 429);
        assert_eq!(http_status(Code::Unauthenticated).as_u16(), 401);
        assert_eq!(code_name(Code::Cancelled), "canceled");
    }

    #[test]
    fn error_details_carry_their_bytes_and_debug_json() {
        let status: Status = Error::InvalidArgument(vec![FieldViolation {
            field: "conversation_id".into(),
            description: "required".into(),
        }])
        .into();
        let details = serde_json::to_value(details_json(status.details())).expect("JSON");
        assert_eq!(details.as_array().map(Vec::len), Some(1), "{details:?}");
        assert_eq!(details[0]["type"], "google.rpc.BadRequest");
        let value = details[0]["value"].as_str().expect("value");
        assert!(!value.ends_with('='), "unpadded: {value}");
        assert_eq!(
            details[0]["debug"]["fieldViolations"][0]["field"],
            "conversation_id"
        );
    }

    fn input_of(method: &str) -> MessageDescriptor {
        SERVICE
            .as_ref()
            .expect("descriptors")
            .methods()
            .find(|m| m.name() == method)
            .expect("method")
            .input()
    }

    #[test]
    fn the_json_mapping_reads_what_protobuf_allows() {
        let input = input_of("UpdateServiceParticipant");
        let read = |json: &str| {
            let message = json_to_proto(&input, json.as_bytes()).expect(json);
            proto::UpdateServiceParticipantRequest::decode(message.encode_to_vec().as_slice())
                .expect("decodes as the generated type")
        };
        let from_strings = read(
            r#"{"serviceParticipant":{"lastReadMessageIndex":"5","dateCreated":"2026-11-30T10:00:00Z"},
                "updateMask":"lastReadMessageIndex,dateCreated","webhookMode":"WEBHOOK_MODE_DISABLED"}"#,
        );
        let from_numbers = read(
            r#"{"service_participant":{"last_read_message_index":5,"date_created":"2026-11-30T11:00:00+01:00"},
                "update_mask":"lastReadMessageIndex,dateCreated","webhook_mode":2}"#,
        );
        assert_eq!(from_strings, from_numbers);
        let p = from_strings.service_participant.expect("participant");
        assert_eq!(p.last_read_message_index, Some(5));
        assert_eq!(p.date_created.map(|t| t.seconds), Some(1_796_032_800));
        assert_eq!(
            from_strings.update_mask.expect("mask").paths,
            ["last_read_message_index", "date_created"]
        );
    }

    #[test]
    fn json_errors_name_the_field_never_the_value() {
        let input = input_of("CreateParticipant");
        let err = json_to_proto(
            &input,
            br#"{"addresses":[{"address":"+18005550100","channel":["PIGEON"]}]}"#,
        )
        .expect_err("a list where an enum goes");
        let text = format!("{err:?}");
        assert!(text.contains("addresses[0].channel"), "{text}");
        assert!(!text.contains("PIGEON") && !text.contains("555"), "{text}");
        // As protojson with DiscardUnknown (connect-go), an unknown enum name is unset.
        let message = json_to_proto(&input, br#"{"type":"PARTICIPANT_TYPE_PIGEON"}"#)
            .expect("an unknown enum name is ignored");
        assert_eq!(message.encode_to_vec(), Vec::<u8>::new());
        let err = json_to_proto(&input, b"{\"name\": ").expect_err("truncated");
        assert!(format!("{err:?}").contains("must be valid JSON"), "{err:?}");
        json_to_proto(&input, br#"{"name":"x","somethingNew":{"a":[1]}}"#)
            .expect("unknown fields are ignored");
    }
}
