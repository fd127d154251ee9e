//! One logical upstream call: the bound on calls in flight, the circuit breaker, one
//! deadline over every attempt and pause, retries per the call's rules, and a client span
//! and metric sample per attempt.

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode, Url};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::errors::upstream_error;
use super::{TwilioBackend, redact};
use crate::backend::CallContext;
use crate::domain::error::Error;
use crate::observability::ClientAttempt;
use crate::observability::metrics::METRICS;

/// Largest upstream body read; Twilio's participant bodies are a few KiB.
const MAX_BODY: usize = 1024 * 1024;
/// Which retry rules a call follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// A GET: safe to repeat.
    Fetch,
    /// A v2 create: repeatable after an ambiguous failure, because a repeat that finds
    /// our own first attempt gets 409 with `X-Conflicting-Resource-Id`, resolved by
    /// [`TwilioBackend::resolve_conflict`].
    CreateV2,
    /// A v1 create: repeated only where Twilio cannot have processed it (429, no
    /// connection), since a duplicate would be a second participant.
    CreateV1,
}

impl Call {
    fn retries_status(self, status: u16) -> bool {
        match self {
            Call::Fetch | Call::CreateV2 => matches!(status, 429 | 500 | 502 | 503 | 504),
            Call::CreateV1 => status == 429,
        }
    }

    fn retries_ambiguous(self) -> bool {
        self != Call::CreateV1
    }
}

/// An upstream operation as spans and metrics name it: the method and the path template
/// (never the concrete path, which may hold personal data).
#[derive(Debug, Clone, Copy)]
pub(super) struct Route {
    method: &'static str,
    template: &'static str,
}

impl Route {
    pub(super) const V2_CREATE: Route = Route {
        method: "POST",
        template: "/v2/Conversations/{ConversationId}/Participants",
    };
    pub(super) const V2_FETCH: Route = Route {
        method: "GET",
        template: "/v2/Conversations/{ConversationId}/Participants/{id}",
    };
    pub(super) const V1_CREATE: Route = Route {
        method: "POST",
        template: "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants",
    };
    pub(super) const V1_FETCH: Route = Route {
        method: "GET",
        template: "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants/{Sid}",
    };
}

/// A failed exchange, and whether an earlier attempt may have reached Twilio.
pub(super) struct Failure {
    pub(super) error: Error,
    pub(super) maybe_landed: bool,
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        f.error
    }
}

/// A complete upstream answer.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl TwilioBackend {
    /// Runs one logical call: attempts, pauses and all, within its deadline. Each attempt
    /// gets a client span (carried upstream in `traceparent`) and a metric sample.
    pub(super) async fn exchange(
        &self,
        ctx: &CallContext,
        call: Call,
        route: Route,
        url: &Url,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Answer, Failure> {
        // The caller's deadline, else --upstream-timeout; never past the server's own.
        let deadline = ctx
            .deadline
            .unwrap_or_else(|| Instant::now() + self.default_timeout);
        let deadline = ctx.server_deadline.map_or(deadline, |d| d.min(deadline));
        let fail = |error, maybe_landed| Failure {
            error,
            maybe_landed,
        };
        let _permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            fail(
                Error::ResourceExhausted(format!(
                    "too many Twilio requests in flight (limit {}); retry later",
                    self.max_in_flight
                )),
                false,
            )
        })?;
        let mut maybe_landed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Err(wait) = self.breaker.admit() {
                return Err(fail(
                    Error::unavailable(
                        "Twilio has been failing; the circuit breaker is open",
                        Some(wait),
                    ),
                    maybe_landed,
                ));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(fail(deadline_exceeded(attempt - 1), maybe_landed));
            }
            let budget = remaining.min(self.attempt_timeout);
            let mut headers = HeaderMap::new();
            let observed = ClientAttempt::start(
                route.method,
                route.template,
                url,
                &redact::safe_url(url, route.template),
                attempt - 1,
                &mut headers,
                &ctx.trace,
            );
            let request = self.authorized(ctx, build()).headers(headers);
            let sent = tokio::time::timeout(budget, self.attempt(request))
                .instrument(observed.span().clone())
                .await;
            let route = route.template;
            let (error, retryable, retry_after) = match sent {
                Ok(Ok(answer)) if answer.status.is_success() => {
                    observed.finish(Some(answer.status.as_u16()), None);
                    self.breaker.record(true);
                    tracing::debug!(
                        route,
                        attempt,
                        status = answer.status.as_u16(),
                        "upstream answered"
                    );
                    return Ok(answer);
                }
                Ok(Ok(answer)) => {
                    let status = answer.status.as_u16();
                    observed.finish(Some(status), None);
                    self.breaker.record(status < 500);
                    // Twilio may have acted on a request it then failed to answer.
                    maybe_landed |= status >= 500;
                    tracing::debug!(route, attempt, status, "upstream answered an error");
                    let error = upstream_error(&answer);
                    let retry_after = error.retry_after;
                    (
                        Error::Upstream(Box::new(error)),
                        call.retries_status(status),
                        retry_after,
                    )
                }
                Ok(Err(e)) if e.is_connect() => {
                    observed.finish(None, Some("connect_error"));
                    self.breaker.record(false);
                    let e = e.without_url();
                    tracing::debug!(route, attempt, error = %e, "cannot connect upstream");
                    let message = format!("cannot connect to Twilio: {e}");
                    (Error::unavailable(message, None), true, None)
                }
                Ok(Err(e)) => {
                    observed.finish(None, Some("request_error"));
                    self.breaker.record(false);
                    maybe_landed = true;
                    let e = e.without_url();
                    tracing::debug!(route, attempt, error = %e, "upstream exchange failed");
                    let message = format!("the exchange with Twilio failed: {e}");
                    (
                        Error::unavailable(message, None),
                        call.retries_ambiguous(),
                        None,
                    )
                }
                Err(_) => {
                    observed.finish(None, Some("timeout"));
                    self.breaker.record(false);
                    maybe_landed = true;
                    tracing::debug!(route, attempt, ?budget, "upstream attempt timed out");
                    if budget == remaining {
                        return Err(fail(deadline_exceeded(attempt), maybe_landed));
                    }
                    let message = format!("Twilio did not answer within {budget:?}");
                    (
                        Error::DeadlineExceeded(message),
                        call.retries_ambiguous(),
                        None,
                    )
                }
            };
            if !retryable || attempt >= self.retry.max_attempts {
                return Err(fail(error, maybe_landed));
            }
            let pause = retry_after.unwrap_or_else(|| self.retry.backoff(attempt + 1));
            if Instant::now() + pause >= deadline {
                return Err(fail(error, maybe_landed));
            }
            tracing::debug!(route, attempt, ?pause, "retrying upstream call");
            METRICS.upstream_retries.with_label_values(&[route]).inc();
            tokio::time::sleep(pause).await;
        }
    }

    /// One HTTP exchange, body included (up to [`MAX_BODY`]).
    async fn attempt(&self, request: RequestBuilder) -> Result<Answer, reqwest::Error> {
        let mut response = request.send().await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        Ok(Answer {
            status,
            headers,
            body: body.into(),
        })
    }
}

pub(super) fn deadline_exceeded(attempts: u32) -> Error {
    Error::DeadlineExceeded(format!(
        "the call's deadline passed before Twilio answered ({attempts} attempt(s))"
    ))
}
