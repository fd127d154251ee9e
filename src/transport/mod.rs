//! The transport: the listener, TLS, and everything a request passes through before it
//! reaches a front (admission, inbound auth, deadlines, CORS).

pub mod admission;
pub mod auth;
pub mod cors;
pub mod listener;
pub mod refusals;
pub mod stack;
pub mod tls;
