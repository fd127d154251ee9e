//! gRPC health checking and server reflection (v1 and v1alpha).

use std::collections::BTreeSet;

use prost::Message;
use prost_types::FileDescriptorProto;
use tonic::Code;
use tonic::codegen::tokio_stream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_reflection::pb::{v1, v1alpha};

use crate::fixtures::*;

#[tokio::test]
async fn health_check_reports_serving_for_the_server_and_the_participant_service() {
    let app = spawn_app().await;
    for service in ["", SERVICE_NAME] {
        let response = app
            .health
            .clone()
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap_or_else(|e| panic!("health check of {service:?}: {e:?}"))
            .into_inner();
        assert_eq!(
            response.status(),
            ServingStatus::Serving,
            "service {service:?}"
        );
    }
}

#[tokio::test]
async fn health_check_of_an_unknown_service_is_not_found() {
    let app = spawn_app().await;
    let result = app
        .health
        .clone()
        .check(HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        })
        .await;
    expect_code(result, Code::NotFound);
}

/// One v1 reflection request, one response (or the status the stream ended with).
async fn try_reflect_v1(
    app: &TestApp,
    request: v1::server_reflection_request::MessageRequest,
) -> Result<v1::server_reflection_response::MessageResponse, tonic::Status> {
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    Ok(responses
        .message()
        .await?
        .expect("one response")
        .message_response
        .expect("a message_response"))
}

async fn reflect_v1(
    app: &TestApp,
    request: v1::server_reflection_request::MessageRequest,
) -> v1::server_reflection_response::MessageResponse {
    try_reflect_v1(app, request)
        .await
        .expect("reflection v1 answers")
}

async fn reflect_v1alpha(
    app: &TestApp,
    request: v1alpha::server_reflection_request::MessageRequest,
) -> v1alpha::server_reflection_response::MessageResponse {
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1alpha call")
        .into_inner();
    responses
        .message()
        .await
        .expect("reflection v1alpha response")
        .expect("one response")
        .message_response
        .expect("a message_response")
}

#[tokio::test]
async fn reflection_v1_lists_the_participant_health_and_reflection_services() {
    let app = spawn_app().await;

    let response = reflect_v1(
        &app,
        v1::server_reflection_request::MessageRequest::ListServices(String::new()),
    )
    .await;

    let v1::server_reflection_response::MessageResponse::ListServicesResponse(list) = response
    else {
        panic!("expected ListServicesResponse, got {response:?}");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        SERVICE_NAME,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_participant_health_and_reflection_services() {
    let app = spawn_app().await;

    let response = reflect_v1alpha(
        &app,
        v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
    )
    .await;

    let v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list) = response
    else {
        panic!("expected ListServicesResponse, got {response:?}");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        SERVICE_NAME,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
}

fn participants_file(descriptors: Vec<Vec<u8>>) -> FileDescriptorProto {
    descriptors
        .iter()
        .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()).expect("decodes"))
        .find(|fd| fd.package() == "participants.v1")
        .expect("the participants.v1 file is among the descriptors")
}

fn assert_describes_the_participant_service(fd: &FileDescriptorProto) {
    assert_eq!(fd.name(), "participants/v1/participants.proto");
    let service = fd
        .service
        .iter()
        .find(|s| s.name() == "ParticipantService")
        .expect("ParticipantService in the file");
    let methods: BTreeSet<&str> = service.method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
        BTreeSet::from([
            "CreateParticipant",
            "FetchParticipant",
            "CreateServiceParticipant",
            "FetchServiceParticipant",
            "ListParticipants",
            "UpdateParticipant",
            "ListServiceParticipants",
            "UpdateServiceParticipant",
            "DeleteServiceParticipant",
        ])
    );
    assert!(
        fd.dependency
            .iter()
            .any(|d| d == "google/protobuf/timestamp.proto"),
        "{:?}",
        fd.dependency
    );
    let comments: Vec<&str> = fd
        .source_code_info
        .as_ref()
        .expect("source_code_info is kept, so grpcurl describe shows comments")
        .location
        .iter()
        .map(|l| l.leading_comments())
        .filter(|c| !c.is_empty())
        .collect();
    assert!(
        comments
            .iter()
            .any(|c| c.contains("ParticipantService adds people to conversations")),
        "service comment missing: {comments:?}"
    );
}

#[tokio::test]
async fn reflection_v1_file_containing_symbol_returns_the_commented_descriptor() {
    let app = spawn_app().await;

    let response = reflect_v1(
        &app,
        v1::server_reflection_request::MessageRequest::FileContainingSymbol(
            SERVICE_NAME.to_owned(),
        ),
    )
    .await;

    let v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files) = response
    else {
        panic!("expected FileDescriptorResponse, got {response:?}");
    };
    assert_describes_the_participant_service(&participants_file(files.file_descriptor_proto));
}

#[tokio::test]
async fn reflection_v1alpha_file_containing_symbol_returns_the_commented_descriptor() {
    let app = spawn_app().await;

    let response = reflect_v1alpha(
        &app,
        v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "participants.v1.CreateParticipantRequest".to_owned(),
        ),
    )
    .await;

    let v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files) =
        response
    else {
        panic!("expected FileDescriptorResponse, got {response:?}");
    };
    assert_describes_the_participant_service(&participants_file(files.file_descriptor_proto));
}

#[tokio::test]
async fn reflection_resolves_the_imported_timestamp_file() {
    // grpcurl follows the participants file's imports; they must be served too.
    let app = spawn_app().await;

    let response = reflect_v1(
        &app,
        v1::server_reflection_request::MessageRequest::FileByFilename(
            "google/protobuf/timestamp.proto".to_owned(),
        ),
    )
    .await;

    let v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files) = response
    else {
        panic!("expected FileDescriptorResponse, got {response:?}");
    };
    let names: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|b| {
            FileDescriptorProto::decode(b.as_slice())
                .unwrap()
                .name()
                .to_owned()
        })
        .collect();
    assert!(
        names.iter().any(|n| n == "google/protobuf/timestamp.proto"),
        "{names:?}"
    );
}

#[tokio::test]
async fn reflection_of_an_unknown_symbol_is_not_found() {
    let app = spawn_app().await;

    let result = try_reflect_v1(
        &app,
        v1::server_reflection_request::MessageRequest::FileContainingSymbol(
            "participants.v1.NoSuchThing".to_owned(),
        ),
    )
    .await;

    // The reflection spec allows an ErrorResponse message or an error status.
    match result {
        Ok(v1::server_reflection_response::MessageResponse::ErrorResponse(error)) => {
            assert_eq!(error.error_code, Code::NotFound as i32);
        }
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        Ok(other) => panic!("expected NOT_FOUND, got {other:?}"),
    }
}
