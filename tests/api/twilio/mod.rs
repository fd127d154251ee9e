//! The `twilio` backend against real HTTP servers on 127.0.0.1, never a mock of our own
//! client: wiremock for scripted answers, raw tokio listeners for what wiremock cannot do
//! (connection resets, an upstream that never answers), and the Prism mock server serving
//! Twilio's official OpenAPI specs.
//!
//! - `mapping`: upstream statuses and bodies become the contract's gRPC codes and details.
//! - `retries`: which calls are retried, how often, and within which deadlines.
//! - `requests`: what goes over the wire (auth, user agent, JSON and form encodings,
//!   headers, path encoding of hostile input).
//! - `idempotency`: the facade's idempotency key over an upstream that has none.
//! - `resilience`: circuit breaker, in-flight limit, cancellation, start-up without
//!   credentials, and no credential in any log line or error.
//! - `lifecycle`: List, Update and Delete: requests, paging tokens, next-page links,
//!   retries per operation, answer checks and the fidelity fields.
//! - `prism`: every request of the four RPCs is valid against Twilio's spec.
//!
//! Here: the four RPCs as cases ([`Rpc`], [`Prepared`]: a fresh request, its upstream
//! route and Twilio's success answer). The Twilio fakes are in `fixtures::upstream`.

mod idempotency;
mod lifecycle;
mod mapping;
mod prism;
mod requests;
mod resilience;
mod retries;

use std::time::Duration;

use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{
    CreateParticipantRequest, CreateServiceParticipantRequest, FetchParticipantRequest,
    FetchServiceParticipantRequest,
};
use tonic::Status;
use wiremock::{MockServer, ResponseTemplate};

use crate::fixtures::*;

// ---------------------------------------------------------------------------------------
// The four RPCs, for tests that run the same case through each
// ---------------------------------------------------------------------------------------

/// One of the four RPCs, named as in the service.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    CreateParticipant,
    FetchParticipant,
    CreateServiceParticipant,
    FetchServiceParticipant,
}

/// Every RPC.
pub const RPCS: [Rpc; 4] = [
    Rpc::CreateParticipant,
    Rpc::FetchParticipant,
    Rpc::CreateServiceParticipant,
    Rpc::FetchServiceParticipant,
];

/// A request of one RPC, ready to send, with the upstream route it goes to.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub rpc: Rpc,
    pub method: &'static str,
    pub path: String,
    create_v2: Option<CreateParticipantRequest>,
    fetch_v2: Option<FetchParticipantRequest>,
    create_v1: Option<CreateServiceParticipantRequest>,
    fetch_v1: Option<FetchServiceParticipantRequest>,
}

impl Rpc {
    /// A valid request on fresh identifiers (so on a route no other case uses).
    pub fn fresh(self) -> Prepared {
        let mut p = Prepared {
            rpc: self,
            method: "GET",
            path: String::new(),
            create_v2: None,
            fetch_v2: None,
            create_v1: None,
            fetch_v1: None,
        };
        match self {
            Rpc::CreateParticipant => {
                let r = create_request();
                p.method = "POST";
                p.path = v2_path(&r.conversation_id);
                p.create_v2 = Some(r);
            }
            Rpc::FetchParticipant => {
                let r = fetch_v2_request(&conversation_id(), &participant_id());
                p.path = v2_fetch_path(&r.conversation_id, &r.participant_id);
                p.fetch_v2 = Some(r);
            }
            Rpc::CreateServiceParticipant => {
                let r = create_v1_request();
                p.method = "POST";
                p.path = v1_path(&r.chat_service_sid, &r.conversation_sid);
                p.create_v1 = Some(r);
            }
            Rpc::FetchServiceParticipant => {
                let r = fetch_v1_request(&sid("IS"), &sid("CH"), &sid("MB"));
                p.path = v1_fetch_path(&r.chat_service_sid, &r.conversation_sid, &r.sid);
                p.fetch_v1 = Some(r);
            }
        }
        p
    }
}

impl Prepared {
    /// The success answer Twilio would give to this request.
    pub fn success(&self) -> ResponseTemplate {
        if let Some(r) = &self.create_v2 {
            return ResponseTemplate::new(201).set_body_json(v2_answer(&participant_id(), r));
        }
        if let Some(r) = &self.fetch_v2 {
            let created = CreateParticipantRequest {
                conversation_id: r.conversation_id.clone(),
                ..create_request()
            };
            return ResponseTemplate::new(200)
                .set_body_json(v2_answer(&r.participant_id, &created));
        }
        if let Some(r) = &self.create_v1 {
            return ResponseTemplate::new(201).set_body_json(v1_answer(&sid("MB"), r));
        }
        let r = self.fetch_v1.as_ref().expect("one request is set");
        let created = CreateServiceParticipantRequest {
            chat_service_sid: r.chat_service_sid.clone(),
            conversation_sid: r.conversation_sid.clone(),
            ..create_v1_request()
        };
        ResponseTemplate::new(200).set_body_json(v1_answer(&r.sid, &created))
    }

    /// Sends the request (with a gRPC deadline when `deadline` is set); the id or sid of
    /// the participant on success.
    pub async fn call(&self, app: &TestApp, deadline: Option<Duration>) -> Result<String, Status> {
        self.call_with(app.client.clone(), deadline).await
    }

    /// As [`Prepared::call`], through `client`.
    pub async fn call_with(
        &self,
        mut client: ParticipantServiceClient<tonic::transport::Channel>,
        deadline: Option<Duration>,
    ) -> Result<String, Status> {
        fn wrap<T>(r: T, deadline: Option<Duration>) -> tonic::Request<T> {
            match deadline {
                Some(d) => with_deadline(r, d),
                None => tonic::Request::new(r),
            }
        }
        if let Some(r) = &self.create_v2 {
            let p = client.create_participant(wrap(r.clone(), deadline)).await?;
            return Ok(p.into_inner().id);
        }
        if let Some(r) = &self.fetch_v2 {
            let p = client.fetch_participant(wrap(r.clone(), deadline)).await?;
            return Ok(p.into_inner().id);
        }
        if let Some(r) = &self.create_v1 {
            let p = client
                .create_service_participant(wrap(r.clone(), deadline))
                .await?;
            return Ok(p.into_inner().sid);
        }
        let r = self.fetch_v1.clone().expect("one request is set");
        let p = client.fetch_service_participant(wrap(r, deadline)).await?;
        Ok(p.into_inner().sid)
    }

    /// Mounts `template` for this request's route on `server`.
    pub async fn mount(&self, server: &MockServer, template: ResponseTemplate) {
        self.mount_responder(server, template).await;
    }

    /// Mounts `responder` for this request's route on `server`.
    pub async fn mount_responder(
        &self,
        server: &MockServer,
        responder: impl wiremock::Respond + 'static,
    ) {
        wiremock::Mock::given(wiremock::matchers::method(self.method))
            .and(wiremock::matchers::path(self.path.as_str()))
            .respond_with(responder)
            .mount(server)
            .await;
    }

    /// How many requests `server` received on this request's route.
    pub async fn attempts(&self, server: &MockServer) -> usize {
        received_on(server, self.method, &self.path).await.len()
    }
}

impl Prepared {
    /// Sends the request over a raw HTTP/2 stream with `grpc-timeout: grpc_timeout`, so
    /// that the answer is the server's own and not the client library's (tonic enforces a
    /// deadline itself and reports it as CANCELLED).
    pub async fn raw_call(&self, app: &TestApp, grpc_timeout: &str) -> RawResponse {
        let (name, frame) = if let Some(r) = &self.create_v2 {
            ("CreateParticipant", grpc_frame(r))
        } else if let Some(r) = &self.fetch_v2 {
            ("FetchParticipant", grpc_frame(r))
        } else if let Some(r) = &self.create_v1 {
            ("CreateServiceParticipant", grpc_frame(r))
        } else {
            let r = self.fetch_v1.as_ref().expect("one request is set");
            ("FetchServiceParticipant", grpc_frame(r))
        };
        let method = format!("/participants.v1.ParticipantService/{name}");
        let (response, mut body) =
            start_raw_call(app.addr, &method, &[("grpc-timeout", grpc_timeout)]).await;
        body.send_data(bytes::Bytes::from(frame), true)
            .expect("send the request");
        read_raw_response(response).await
    }
}
