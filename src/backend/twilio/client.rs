//! One logical upstream call, as a stack built in one place ([`TwilioBackend::exchange`]):
//! the bound on calls in flight, one deadline over every attempt and pause, retries per
//! the call's rules (`retry`), the circuit breaker (`breaker`), and one attempt with its
//! timeout, client span and metric sample.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode, Url};
use tokio::time::Instant;
use tower::retry::RetryLayer;
use tower::{ServiceBuilder, ServiceExt as _};
use tracing::Instrument as _;

use super::breaker::{BreakerLayer, Health, Open};
use super::errors::upstream_error;
use super::retry::{Attempt, Call, Failed, Failure};
use super::{TwilioBackend, redact};
use crate::backend::CallContext;
use crate::domain::error::Error;
use crate::observability::ClientAttempt;

/// Largest upstream body read; Twilio's participant bodies are a few KiB.
const MAX_BODY: usize = 1024 * 1024;

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
    pub(super) const V2_LIST: Route = Route {
        method: "GET",
        template: "/v2/Conversations/{ConversationId}/Participants",
    };
    pub(super) const V2_UPDATE: Route = Route {
        method: "PUT",
        template: "/v2/Conversations/{ConversationId}/Participants/{id}",
    };
    pub(super) const V1_LIST: Route = Route {
        method: "GET",
        template: "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants",
    };
    pub(super) const V1_UPDATE: Route = Route {
        method: "POST",
        template: "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants/{Sid}",
    };
    pub(super) const V1_DELETE: Route = Route {
        method: "DELETE",
        template: "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants/{Sid}",
    };
    pub(super) const V1_FETCH: Route = Route {
        method: "GET",
        template: "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants/{Sid}",
    };
}

/// A complete upstream answer.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// What each attempt of one call sends, and what its span names.
#[derive(Clone, Copy)]
struct Exchange<'a> {
    ctx: &'a CallContext,
    route: Route,
    url: &'a Url,
    /// A fresh request per attempt.
    build: &'a (dyn Fn() -> RequestBuilder + Sync),
}

impl From<Open> for Failure {
    fn from(open: Open) -> Failure {
        Failure::new(open.into(), Failed::NotSent)
    }
}

/// What an attempt says of Twilio for the breaker: an answer, success or below 500, is
/// healthy; no connection, a broken exchange, a timeout or a 5xx is failing.
fn health(result: &Result<Answer, Failure>) -> Health {
    match result {
        Ok(_) => Health::Healthy,
        Err(failure) => match failure.failed {
            Failed::Status { status, .. } if status < 500 => Health::Healthy,
            Failed::NotSent => Health::Untried,
            Failed::Status { .. } | Failed::Unreached | Failed::Ambiguous | Failed::OutOfTime => {
                Health::Failing
            }
        },
    }
}

impl TwilioBackend {
    /// Runs one logical call: attempts, pauses and all, within its deadline.
    pub(super) async fn exchange(
        &self,
        ctx: &CallContext,
        call: Call,
        route: Route,
        url: &Url,
        build: impl Fn() -> RequestBuilder + Sync,
    ) -> Result<Answer, Failure> {
        // In flight: a slot, or RESOURCE_EXHAUSTED at once; a call is refused, never queued.
        let _permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            let message = format!(
                "too many Twilio requests in flight (limit {}); retry later",
                self.max_in_flight
            );
            Failure::new(Error::ResourceExhausted(message), Failed::NotSent)
        })?;
        // Deadline: the caller's, else --upstream-timeout; never past the server's own.
        // Every attempt and pause below fits in it.
        let deadline = ctx
            .deadline
            .unwrap_or_else(|| Instant::now() + self.default_timeout);
        let deadline = ctx.server_deadline.map_or(deadline, |d| d.min(deadline));
        let exchange = Exchange {
            ctx,
            route,
            url,
            build: &build,
        };
        let stack = ServiceBuilder::new()
            // Retry: what the call's rules repeat, after a pause (backoff or Retry-After)
            // that never reaches the deadline; counted per route.
            .layer(RetryLayer::new(self.retry.clone()))
            // Breaker: refuses while Twilio keeps failing; learns from every attempt.
            .layer(BreakerLayer::new(Arc::clone(&self.breaker), health))
            // One attempt of this call: within its timeout and what is left of the deadline.
            .service_fn(move |attempt| self.attempt(exchange, attempt));
        stack
            .oneshot(Attempt::first(call, route.template, deadline))
            .await
    }

    /// One attempt, within the attempt timeout and what is left of the call's deadline.
    /// It gets a client span (carried upstream in `traceparent`) and a metric sample.
    async fn attempt(&self, exchange: Exchange<'_>, attempt: Attempt) -> Result<Answer, Failure> {
        let Exchange {
            ctx,
            route,
            url,
            build,
        } = exchange;
        let remaining = attempt.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            let error = deadline_exceeded(attempt.resends);
            return Err(Failure::new(error, Failed::NotSent));
        }
        let budget = remaining.min(self.attempt_timeout);
        let mut headers = HeaderMap::new();
        let observed = ClientAttempt::start(
            route.method,
            route.template,
            url,
            &redact::safe_url(url, route.template),
            attempt.resends,
            &mut headers,
            &ctx.trace,
        );
        let request = self.authorized(ctx, build()).headers(headers);
        let sent = tokio::time::timeout(budget, self.send(request))
            .instrument(observed.span().clone())
            .await;
        let route = route.template;
        let attempt = attempt.resends + 1;
        match sent {
            Ok(Ok(answer)) if answer.status.is_success() => {
                observed.finish(Some(answer.status.as_u16()), None);
                tracing::debug!(
                    route,
                    attempt,
                    status = answer.status.as_u16(),
                    "upstream answered"
                );
                Ok(answer)
            }
            Ok(Ok(answer)) => {
                let status = answer.status.as_u16();
                observed.finish(Some(status), None);
                tracing::debug!(route, attempt, status, "upstream answered an error");
                let error = upstream_error(&answer);
                let failed = Failed::Status {
                    status,
                    retry_after: error.retry_after,
                };
                Err(Failure::new(Error::Upstream(Box::new(error)), failed))
            }
            Ok(Err(e)) if e.is_connect() => {
                observed.finish(None, Some("connect_error"));
                let e = e.without_url();
                tracing::debug!(route, attempt, error = %e, "cannot connect upstream");
                let message = format!("cannot connect to Twilio: {e}");
                Err(Failure::new(
                    Error::unavailable(message, None),
                    Failed::Unreached,
                ))
            }
            Ok(Err(e)) => {
                observed.finish(None, Some("request_error"));
                let e = e.without_url();
                tracing::debug!(route, attempt, error = %e, "upstream exchange failed");
                let message = format!("the exchange with Twilio failed: {e}");
                Err(Failure::new(
                    Error::unavailable(message, None),
                    Failed::Ambiguous,
                ))
            }
            Err(_) => {
                observed.finish(None, Some("timeout"));
                tracing::debug!(route, attempt, ?budget, "upstream attempt timed out");
                if budget == remaining {
                    return Err(Failure::new(deadline_exceeded(attempt), Failed::OutOfTime));
                }
                let message = format!("Twilio did not answer within {budget:?}");
                Err(Failure::new(
                    Error::DeadlineExceeded(message),
                    Failed::Ambiguous,
                ))
            }
        }
    }

    /// One HTTP exchange, body included (up to [`MAX_BODY`]).
    async fn send(&self, request: RequestBuilder) -> Result<Answer, reqwest::Error> {
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
