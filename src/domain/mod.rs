//! The domain: participants of both APIs, the drafts a front builds from a request, the
//! rules that turn a draft into a valid request, identifiers, and the one error type.
//! Nothing here knows of gRPC, HTTP or SQLite.

pub mod error;
pub mod ids;
mod model;
pub mod rules;

pub use model::*;
