//! participants-facade: one typed gRPC API over Twilio's Conversations participants.
//!
//! Where a call goes, in order:
//! - [`server`] binds everything together: limits, health, reflection, drain on shutdown.
//!   [`admission`] decides what a call must pass before it takes an in-flight slot (its
//!   address's fair share, its whole body within `--body-timeout`); [`refusals`] puts
//!   hyper's own refusals of unparsable requests in Twilio's error body.
//! - [`grpc`] is the front door: `participants.v1.ParticipantService`, converting
//!   protobuf to the domain ([`model`]) and back. Generated code lives in [`proto`].
//! - [`model`] holds the domain types; [`validate`] holds Twilio's input rules that turn
//!   a draft into a valid request.
//! - [`backend`] is the trait every backend implements; [`store`] is the `local` backend
//!   (SQLite with group commit), identifiers come from [`ids`]; [`upstream`] is the
//!   `twilio` backend (reqwest, retries, circuit breaker), with per-replica idempotency
//!   from [`idempotency`].
//! - [`rest`] is the Twilio-compatible REST front over the same backend; [`extract`]
//!   reads its JSON and form bodies, refusing what does not decode without echoing it.
//! - [`error`] is the one error type and the one place it becomes a gRPC status.
//! - [`config`] parses flags and environment; [`telemetry`] sets up logging.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod auth;
pub mod backend;
pub mod config;
pub mod error;
pub mod extract;
pub mod grpc;
pub mod idempotency;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod proto;
pub mod refusals;
pub mod rest;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod validate;
