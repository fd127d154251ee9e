//! Integration tests of participants-facade, in one test binary: the gRPC API against an
//! in-process server (`fixtures::spawn_app`), and the compiled binary as a child process
//! for configuration, shutdown and crash-safety behaviour. `twilio` runs the twilio backend
//! against real HTTP servers on 127.0.0.1 (wiremock, raw listeners, Prism on Twilio's specs).
//! What the tests share (servers, clients, fakes, waits) is in `fixtures`, once.

// Test and bench code: a failed unwrap is a failed run, and helpers are `pub` for the
// crate's own modules.
#![allow(unreachable_pub, clippy::unwrap_used)]

mod auth;
mod concurrency;
mod connect;
mod crud;
mod deadlines;
mod discovery;
mod fixtures;
mod grpc_web;
mod hardening;
mod hostile;
mod lifecycle;
mod observability;
mod participants;
mod persistence;
mod postgres_fixture;
mod rest;
mod sdk;
mod service_participants;
mod shared_store;
mod shared_store_logs;
mod shared_store_tls;
mod twilio;
mod validation;
