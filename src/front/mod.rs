//! The fronts: how callers reach the backend. [`grpc`] serves
//! `participants.v1.ParticipantService` (gRPC and, through tonic-web, gRPC-Web); [`rest`]
//! serves Twilio's own REST routes. Both validate, call one backend method, and map the
//! domain error into their protocol's answer.

pub mod grpc;
pub mod rest;
