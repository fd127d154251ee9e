//! What only a shared store has: several replicas on one PostgreSQL database
//! (`--database-url`). Each test takes a database of its own (`fresh_database`), or a
//! cluster of its own when it stops the server (`PrivateCluster`):
//!
//! - `replicas`: a write on one replica is read at once on the other (no stale cache), and
//!   a page token of one continues the listing on the other;
//! - `idempotency`: one idempotency key sent to both replicas at once is decided once;
//! - `conflicts`: one address or identity wanted on both replicas at once (creates, or an
//!   update against a create) has one holder; a delete on both is done once;
//! - `crash`: `kill -9` of one replica during a create storm on both loses nothing
//!   acknowledged, and the creates it had in flight, retried on the other, are made once;
//! - `outage`: the database stopped, and crashed, under load: UNAVAILABLE with RetryInfo,
//!   NOT_SERVING, then back by itself with nothing acknowledged lost or made twice;
//! - `migrations`: replicas starting together migrate once; a newer schema is refused;
//! - `refusals`: an unusable database at start-up is one line on stderr and exit code 2;
//! - `secrets`: the database password never reaches a log or a span, an outage included;
//! - `twilio`: twilio-mode replicas share their idempotency keys.

mod conflicts;
mod crash;
mod idempotency;
mod migrations;
mod outage;
mod refusals;
mod replicas;
mod secrets;
mod twilio;

use participants_facade::app::Settings;
use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{
    ListParticipantsRequest, ListServiceParticipantsRequest, Participant, ServiceParticipant,
};
use tonic::transport::Channel as GrpcChannel;

use crate::fixtures::*;

/// A gRPC client of one replica.
type Client = ParticipantServiceClient<GrpcChannel>;

/// Most pages any walk here takes: a bound on every paging loop.
const MAX_PAGES: usize = 1_000;

/// An in-process replica (local backend) on the shared store at `url`.
async fn replica(url: &str) -> TestApp {
    replica_with(url, |_| {}).await
}

/// As [`replica`], with its settings adjusted by `configure` after the URL is set.
async fn replica_with(url: &str, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(move |settings| {
        settings.config.database.url = Some(url.parse().expect("never fails"));
        configure(settings);
    })
    .await
}

/// A v1 participant as compared across replicas: without its url (whose host:port is the
/// answering replica's listener).
fn v1_record(p: &ServiceParticipant) -> ServiceParticipant {
    ServiceParticipant {
        url: String::new(),
        ..p.clone()
    }
}

/// Every v2 participant of the conversation through `client`, in pages of 100.
async fn all_v2(client: &Client, conversation_id: &str) -> Vec<Participant> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let page = client
            .clone()
            .list_participants(ListParticipantsRequest {
                conversation_id: conversation_id.to_owned(),
                page_size: 100,
                page_token: token,
            })
            .await
            .expect("list v2")
            .into_inner();
        all.extend(page.participants);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
    panic!("more than {MAX_PAGES} pages");
}

/// Every v1 participant of the conversation through `client`, in pages of 100.
async fn all_v1(client: &Client, service: &str, conversation: &str) -> Vec<ServiceParticipant> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let page = client
            .clone()
            .list_service_participants(ListServiceParticipantsRequest {
                chat_service_sid: service.to_owned(),
                conversation_sid: conversation.to_owned(),
                page_size: 100,
                page_token: token,
            })
            .await
            .expect("list v1")
            .into_inner();
        all.extend(page.participants);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
    panic!("more than {MAX_PAGES} pages");
}

/// The non-empty lines of `text`.
fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}
