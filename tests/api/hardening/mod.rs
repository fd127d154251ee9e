//! TLS and listener hardening, against the real server on 127.0.0.1:
//! - `tls`: TLS (`--tls-cert`/`--tls-key`) serving REST and gRPC, refusing cleartext;
//!   mutual TLS (`--tls-client-ca`); TLS configuration errors of the binary;
//! - `http2`: SETTINGS_MAX_CONCURRENT_STREAMS advertised and enforced, the "rapid reset"
//!   flood answered with GOAWAY(ENHANCE_YOUR_CALM);
//! - `listener`: oversized request heads (HTTP/1 header count and head buffer, the HTTP/2
//!   header list), and clients that send a head slowly or never (the header read timeout);
//! - `limits`: message size limits on both fronts, load shedding past `--max-in-flight`;
//! - `deadlines`: the server's `--request-timeout`, and refusals and timeouts answered to
//!   gRPC-Web callers in gRPC-Web framing.
//!
//! `pki` makes the certificates (rcgen: a test CA, a server certificate for `localhost`
//! and 127.0.0.1, client certificates) and the TLS clients. Clients are reqwest (REST),
//! tonic over a tokio-rustls connector (gRPC over TLS), and the raw HTTP/1.1 and HTTP/2
//! fixtures where the test must send what a well-behaved client library would not.

mod deadlines;
mod http2;
mod limits;
mod listener;
mod pki;
mod tls;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::fixtures::*;
use pki::*;

/// The gRPC health check, a unary call.
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// Server reflection: a bidirectional stream, served while its requests still arrive.
const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

/// One gRPC frame holding `ServerReflectionRequest { list_services: "" }`.
const LIST_SERVICES: &[u8] = &[0, 0, 0, 0, 2, 0x3a, 0];

/// Polls `addr` until its gRPC health check answers SERVING (bounded).
async fn assert_still_serving(addr: SocketAddr) {
    let serving = eventually(WAIT, || async {
        health_status(addr, "").await == Some(ServingStatus::Serving)
    })
    .await;
    assert!(serving, "the server stopped serving");
    let mut client = ParticipantServiceClient::new(connect(addr).await);
    client
        .create_participant(create_request())
        .await
        .expect("a create on a new connection succeeds");
}

/// Waits (bounded) until a create on `app` is refused RESOURCE_EXHAUSTED: the calls the
/// test holds have taken every slot. Returns the refusal and how long that call took.
async fn until_shedding(app: &TestApp) -> (tonic::Status, Duration) {
    let last = std::cell::RefCell::new(Err("no call yet".to_owned()));
    eventually(WAIT, || async {
        let started = Instant::now();
        let outcome = match app.create(create_request()).await {
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                Ok((status, started.elapsed()))
            }
            other => Err(format!("{other:?}")),
        };
        let refused = outcome.is_ok();
        *last.borrow_mut() = outcome;
        refused
    })
    .await;
    last.into_inner()
        .unwrap_or_else(|other| panic!("a further call was never refused: {other}"))
}
