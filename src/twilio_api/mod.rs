//! Twilio's wire format, modelled once: the error body and the error-code table, and the
//! participant JSON and forms of both API versions. The REST front writes it; the twilio
//! backend reads it.

pub mod codes;
pub mod error_body;

pub use error_body::{TwilioErrorBody, error_body};
