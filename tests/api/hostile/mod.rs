//! The hostile world: the service attacked from outside as a hostile client and a hostile
//! upstream would, each test asserting the behaviour that must hold, not only "no crash".
//! - `credentials`: forged passthrough credentials, flag combinations that weaken auth,
//!   duplicated `Authorization` headers;
//! - `forms`: invalid UTF-8 in forms, errors that never echo the rejected value;
//! - `bodies`: slow bodies holding in-flight slots, per-peer fair share, gRPC protocol
//!   edge cases (two messages in a unary call, a malformed `grpc-timeout`), hyper's own
//!   refusals in Twilio's error body;
//! - `store`: a corrupt store at start-up and at run time, an empty database file, a
//!   file-size limit (SIGXFSZ), readiness on a full disk;
//! - `upstream`: a fault-injecting Twilio under concurrent load, and answers of the wrong
//!   shape (the fault-injecting Twilio is `fixtures::faulty_twilio`).

mod bodies;
mod credentials;
mod forms;
mod store;
mod upstream;
