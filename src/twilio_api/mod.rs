//! Twilio's wire format, modelled once: the error body and the error-code table, and the
//! participant JSON and forms of both API versions. The REST front writes the answers and
//! reads the requests; the twilio backend writes the requests and reads the answers, so
//! each type says how it is read leniently where Twilio's answers need it. Field names
//! follow `../shared/specs/` (Twilio's OpenAPI). Imports nothing of the crate but
//! [`crate::domain`].

pub(crate) mod codes;
mod error_body;
mod fields;
pub mod v1;
pub mod v2;

pub use error_body::{TwilioErrorBody, error_body};
