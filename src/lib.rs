//! participants-facade: one typed gRPC API over Twilio's Conversations participants.
//!
//! The crate is in layers; each imports only the layers listed after it, so the
//! dependencies run one way (`tests/layers.rs` checks it on every `cargo test`):
//!
//! | layer | what is there | may import |
//! |---|---|---|
//! | [`app`] | `settings_or_exit`, `run`: opens the backend, builds the fronts and the stack, serves, drains, closes; readiness, signals | every layer |
//! | [`transport`] | the listener (hyper, TLS, bounded heads, drain), the tower stack every call passes through (`stack.rs`: trace, auth, deadline, fair share, whole body, load shedding, dispatch to gRPC, gRPC-Web, Connect or REST), CORS, hyper's refusals in Twilio's body | front, backend, twilio_api, domain, observability, config |
//! | [`front`] | `grpc/`: `participants.v1.ParticipantService` (service, protobuf <-> domain, error -> `Status`; Connect, unary, through the same routes: `connect.rs`); `rest/`: Twilio's REST routes (v1, v2, probes, errors, body extractors) and the OpenAPI document | backend, twilio_api, domain, observability, config, proto |
//! | [`backend`] | the `ParticipantBackend` seam with `CallContext` and `Credentials`; `local/`: the embedded SQLite store (writer with group commit, schema migration, page tokens, checkpoint, cache, health, integrity check); `postgres/`: the shared store on PostgreSQL (the local backend for several replicas, and the twilio backend's shared idempotency keys: migrations, batched creates, TLS); `twilio/`: Twilio's REST API (client, retry, breaker, page tokens, idempotency, answer checks) | twilio_api, domain, observability, config |
//! | [`twilio_api`] | Twilio's wire format, once: error body, error-code table, participant JSON, list pages, create and update bodies and forms | domain |
//! | [`domain`] | participants of both APIs, create and update drafts and the rules that validate them, page queries, ids, the one error type | nothing |
//! | [`config`], [`observability`], [`proto`] | flags and environment; logs, spans and metrics; the generated protobuf code | nothing |
//!
//! Where a call goes: `transport::listener` accepts it, `transport::stack` admits it and
//! dispatches it to `front::grpc` (gRPC, gRPC-Web, Connect) or `front::rest`, which validate it into a domain request
//! and call one `backend` method.
//!
//! A new RPC goes: the proto, the domain types and rules, the `ParticipantBackend` trait,
//! both backends (and `twilio_api` for its wire format), both fronts, then its metrics,
//! spans and OpenAPI entry.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod backend;
pub mod config;
pub mod domain;
pub mod front;
pub mod observability;
pub mod proto;
pub mod transport;
pub mod twilio_api;
