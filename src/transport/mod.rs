//! The transport: the listener, TLS, and everything a request passes through before it
//! reaches a front (admission, inbound auth, deadlines, CORS).

pub(crate) mod admission;
pub mod auth;
pub(crate) mod cors;
pub(crate) mod listener;
pub(crate) mod refusals;
pub(crate) mod stack;
pub(crate) mod tls;
