//! hyper's own refusals in Twilio's error body. A request hyper cannot parse (a malformed
//! request line or header: 400; a URI or head past its buffer: 414, 431) never reaches
//! the service: hyper answers it itself, with an empty body, and closes the connection.
//! Every other REST error carries Twilio's body (`code`, `message`, `more_info`,
//! `status`), which Twilio's SDKs parse; so the connection's writer recognises hyper's
//! answer (an HTTP/1.1 400, 414 or 431 head with `connection: close`, `content-length: 0`
//! and no content type, which the service itself never writes) and writes the same
//! status with Twilio's body in its place. Everything else passes through untouched,
//! vectored writes included.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::domain::error::Error;

/// A connection whose hyper refusals are rewritten (see the module comment).
pub(crate) struct TwilioRefusals<T> {
    inner: T,
    /// A rewritten answer still being written, how much of it is written, and how many
    /// bytes of hyper's own answer it stands for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> TwilioRefusals<T> {
    /// Wraps a connection.
    pub(crate) fn new(inner: T) -> Self {
        TwilioRefusals {
            inner,
            pending: None,
        }
    }
}

/// The whole answer Twilio's way, if `head` is one of hyper's refusals.
pub(crate) fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    let status = match head.get(..13)? {
        b"HTTP/1.1 400 " => 400,
        b"HTTP/1.1 414 " => 414,
        b"HTTP/1.1 431 " => 431,
        _ => return None,
    };
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if end != head.len() {
        return None;
    }
    let lower = head.to_ascii_lowercase();
    let has = |line: &[u8]| lower.windows(line.len()).any(|w| w == line);
    if !has(b"\r\nconnection: close\r\n")
        || !has(b"\r\ncontent-length: 0\r\n")
        || has(b"\r\ncontent-type:")
    {
        return None;
    }
    let message = match status {
        400 => "the request could not be parsed as HTTP (request line or a header)",
        414 => "the request target is too long",
        _ => "the request head (headers and target) is too large",
    };
    let body = serde_json::to_vec(&crate::twilio_api::error_body(&Error::Rejected {
        status,
        message: message.to_owned(),
    }))
    .ok()?;
    let reason = match status {
        400 => "Bad Request",
        414 => "URI Too Long",
        _ => "Request Header Fields Too Large",
    };
    let mut answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

impl<T: AsyncWrite + Unpin> TwilioRefusals<T> {
    /// Writes what is pending; ready with the length of hyper's answer once it is all out.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        while let Some((answer, written, stands_for)) = &mut self.pending {
            if *written == answer.len() {
                let n = *stands_for;
                self.pending = None;
                return Poll::Ready(Ok(n));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TwilioRefusals<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TwilioRefusals<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.pending.is_none() {
            match rewrite(data) {
                Some(answer) => self.pending = Some((answer, 0, data.len())),
                None => return Pin::new(&mut self.inner).poll_write(cx, data),
            }
        }
        self.drive(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.pending.is_none() {
            // hyper's refusal is a head alone: one non-empty slice.
            let mut filled = bufs.iter().filter(|b| !b.is_empty());
            match (filled.next(), filled.next()) {
                (Some(only), None) if only.starts_with(b"HTTP/1.1 4") => match rewrite(only) {
                    Some(answer) => self.pending = Some((answer, 0, only.len())),
                    None => return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
                },
                _ => return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            }
        }
        self.drive(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.pending.is_some() {
            match self.drive(cx) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_refusals_are_rewritten_and_nothing_else() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                      content-length: 0\r\ndate: Fri, 04 Dec 2026 15:27:27 GMT\r\n\r\n";
        let answer = String::from_utf8(rewrite(hyper).expect("rewritten")).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], 431);
        assert_eq!(body["code"], 431);
        assert!(body["more_info"].as_str().unwrap().starts_with("https://"));

        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                     content-length: 0\r\nconnection: close\r\n\r\n";
        assert!(
            rewrite(ours).is_none(),
            "a typed answer is the service's own"
        );
        let with_body = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\
                          content-length: 0\r\n\r\n{}";
        assert!(rewrite(with_body).is_none());
        let ok = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(rewrite(ok).is_none());
        assert!(rewrite(b"HTTP/1.1 4").is_none());
    }
}
