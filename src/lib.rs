//! participants-facade: one typed gRPC API over Twilio's Conversations participants.

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
