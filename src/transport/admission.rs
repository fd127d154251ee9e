//! What a call must pass before it takes one of the server's `--max-in-flight` slots:
//! its client address's fair share ([`PeerShare`]), and its whole body, read within
//! `--body-timeout` and a size bound ([`read_body`]). A client that sends a few bytes and
//! goes quiet holds only its own address's share, for at most the body timeout, never a
//! slot everyone else needs.
//!
//! gRPC framing is checked here too, once the body is in: a unary method takes exactly
//! one message ([`grpc_messages`]); gRPC's status-code table calls anything else a
//! cardinality violation, answered UNIMPLEMENTED, not "the first message wins".

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};

use crate::domain::error::Error;

/// The client address a request came from, put in its extensions by the accept loop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub IpAddr);

/// How many calls each client address has at once, and the most it may have.
#[derive(Debug)]
pub(crate) struct PeerShare {
    limit: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One call's place in its address's share; given back when dropped.
#[derive(Debug)]
pub(crate) struct PeerSlot {
    share: Arc<PeerShare>,
    ip: IpAddr,
}

impl PeerShare {
    /// A share of at most `limit` calls per address.
    pub(crate) fn new(limit: u32) -> Arc<PeerShare> {
        Arc::new(PeerShare {
            limit: limit.max(1) as usize,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, unless it already holds its whole share.
    pub(crate) fn try_take(self: &Arc<Self>, ip: IpAddr) -> Result<PeerSlot, Error> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(ip).or_insert(0);
        if *count >= self.limit {
            return Err(Error::ResourceExhausted(format!(
                "this client address already has {} calls in flight, its share of the \
                 server (--max-in-flight-per-peer); retry later",
                self.limit
            )));
        }
        *count += 1;
        Ok(PeerSlot {
            share: self.clone(),
            ip,
        })
    }

    /// Addresses holding at least one slot.
    #[cfg(test)]
    pub(crate) fn peers(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut held = self.share.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// `body`, holding `guard` (slots, permits) until the body has been sent or dropped.
pub(crate) fn held_until_sent<G: Send + Sync + Unpin + 'static>(
    body: axum::body::Body,
    guard: G,
) -> axum::body::Body {
    axum::body::Body::new(Held {
        body,
        _guard: guard,
    })
}

/// A body that keeps something alive as long as itself.
struct Held<G> {
    body: axum::body::Body,
    _guard: G,
}

impl<G: Unpin> hyper::body::Body for Held<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Reads a request body whole: at most `max_bytes` (else 413, RESOURCE_EXHAUSTED over
/// gRPC), within `timeout` (else 408, DEADLINE_EXCEEDED over gRPC). A `Content-Length`
/// past the bound is refused before a byte is read.
pub(crate) async fn read_body<B>(
    headers: &http::HeaderMap,
    body: B,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, Error>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || Error::Rejected {
        status: 413,
        message: format!("the request body is larger than the limit of {max_bytes} bytes"),
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(timeout, Limited::new(body, max_bytes).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        // The client reset the stream or closed the connection: nobody reads the answer.
        Ok(Err(_)) => Err(Error::Rejected {
            status: 400,
            message: "the request body ended before it was complete".into(),
        }),
        Err(_) => Err(Error::Rejected {
            status: 408,
            message: format!("the request body did not arrive within {timeout:?} (--body-timeout)"),
        }),
    }
}

/// What a whole gRPC (or gRPC-Web) request body holds, read from its frame headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GrpcMessages {
    /// How many data messages it carries; `None` when the framing is not complete (tonic
    /// then answers for it).
    pub count: Option<usize>,
    /// The largest length a data message's header declares, a truncated last one
    /// included: the size limit is judged on it, as gRPC implementations judge it before
    /// reading the message.
    pub largest: usize,
}

/// Reads the frame headers of a whole gRPC (or binary gRPC-Web) request body. gRPC-Web
/// text bodies are base64-decoded first.
pub(crate) fn grpc_messages(content_type: &[u8], body: &[u8]) -> GrpcMessages {
    let unreadable = GrpcMessages {
        count: None,
        largest: 0,
    };
    let decoded;
    let mut frames = if content_type.starts_with(b"application/grpc-web-text") {
        let text: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(bytes) => decoded = bytes,
            Err(_) => return unreadable,
        }
        &decoded[..]
    } else {
        body
    };
    let mut messages = GrpcMessages {
        count: Some(0),
        largest: 0,
    };
    while !frames.is_empty() {
        let Some((head, rest)) = frames.split_at_checked(5) else {
            messages.count = None;
            break;
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        // gRPC-Web marks a trailers frame with the high bit of the flags byte.
        let data = head[0] & 0x80 == 0;
        if data {
            messages.largest = messages.largest.max(len);
        }
        let Some(rest) = rest.get(len..) else {
            messages.count = None;
            break;
        };
        if data {
            messages.count = messages.count.map(|n| n + 1);
        }
        frames = rest;
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![flags];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn count(content_type: &[u8], body: &[u8]) -> Option<usize> {
        grpc_messages(content_type, body).count
    }

    #[test]
    fn messages_are_counted_in_every_framing() {
        let one = frame(0, b"abc");
        let two = [frame(0, b"abc"), frame(0, b"")].concat();
        assert_eq!(count(b"application/grpc", &one), Some(1));
        assert_eq!(count(b"application/grpc", &two), Some(2));
        assert_eq!(count(b"application/grpc", b""), Some(0));
        assert_eq!(count(b"application/grpc", &one[..6]), None);
        let trailers = [frame(0, b"abc"), frame(0x80, b"x: y\r\n")].concat();
        assert_eq!(count(b"application/grpc-web+proto", &trailers), Some(1));
        let text = base64::engine::general_purpose::STANDARD.encode(&two);
        assert_eq!(
            count(b"application/grpc-web-text", text.as_bytes()),
            Some(2)
        );
        assert_eq!(count(b"application/grpc-web-text", b"not base64!"), None);
    }

    #[test]
    fn the_largest_declared_message_is_read_from_the_headers_even_when_truncated() {
        let body = [frame(0, b"abc"), frame(0x80, &[0; 40])].concat();
        assert_eq!(grpc_messages(b"application/grpc-web", &body).largest, 3);
        // A header declaring 1 MiB, with only a few bytes behind it.
        let mut truncated = vec![0, 0, 0x10, 0, 0];
        truncated.extend_from_slice(b"abc");
        let read = grpc_messages(b"application/grpc", &truncated);
        assert_eq!((read.count, read.largest), (None, 1 << 20));
    }

    #[test]
    fn a_peer_holds_at_most_its_share_and_gets_it_back() {
        let share = PeerShare::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = share.try_take(a).unwrap();
        let _second = share.try_take(a).unwrap();
        assert!(share.try_take(a).is_err());
        let _other = share
            .try_take(b)
            .expect("another address has its own share");
        drop(first);
        let _again = share.try_take(a).expect("a freed slot is taken again");
        assert_eq!(share.peers(), 2);
    }
}
