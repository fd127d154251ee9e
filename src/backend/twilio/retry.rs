//! Retries after gRPC's retry design (gRFC A6): which failures each kind of call repeats
//! ([`Call`]), exponential backoff with full jitter or Twilio's `Retry-After`, and never a
//! pause past the call's deadline. [`RetryPolicy`] is tower's retry [`Policy`] over
//! [`Attempt`]s, on tokio's clock, so that a paused clock drives it in tests.
//!
//! The request passed down the stack is the [`Attempt`] alone: what it sends is the
//! attempt service's, built for one call.

use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::retry::Policy;

use crate::domain::error::Error;
use crate::observability::metrics::METRICS;

/// When and how often to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (gRFC A6 `maxAttempts`).
    pub max_attempts: u32,
    /// Upper bound of the first backoff.
    pub initial_backoff: Duration,
    /// Upper bound of any backoff.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The pause before attempt `next` (2 for the first retry): uniformly random in
    /// `[0, min(initial * 2^(next-2), max)]`, A6's full jitter, so that many clients
    /// failing together do not retry together.
    pub fn backoff(&self, next: u32) -> Duration {
        let exp = next.saturating_sub(2).min(20);
        let cap = self
            .initial_backoff
            .saturating_mul(1 << exp)
            .min(self.max_backoff);
        cap.mul_f64(rand::random::<f64>())
    }

    /// The pause before another attempt, after `made` attempts of which the last `failed`;
    /// `None` when there is to be no other: the call's rules do not repeat this failure,
    /// the attempts are spent, or the pause would reach the deadline.
    fn pause(&self, call: Call, made: u32, failed: Failed, deadline: Instant) -> Option<Duration> {
        if !call.retries(failed) || made >= self.max_attempts {
            return None;
        }
        let retry_after = match failed {
            Failed::Status { retry_after, .. } => retry_after,
            _ => None,
        };
        let pause = retry_after.unwrap_or_else(|| self.backoff(made + 1));
        (Instant::now() + pause < deadline).then_some(pause)
    }
}

/// Which retry rules a call follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// A GET (fetch, list): safe to repeat.
    Fetch,
    /// A write whose repeat has the effect of the first: a v2 update (`PUT` of the whole
    /// participant), a v1 update (`POST` of values: the same values again), a v1 delete
    /// (a repeat that finds the participant gone answers 404, which the delete settles as
    /// done when an earlier attempt may have landed).
    Idempotent,
    /// A v2 create: repeatable after an ambiguous failure, because a repeat that finds
    /// our own first attempt gets 409 with `X-Conflicting-Resource-Id`, resolved by
    /// `TwilioBackend::resolve_conflict`.
    CreateV2,
    /// A v1 create: repeated only where Twilio cannot have processed it (429, no
    /// connection), since a duplicate would be a second participant.
    CreateV1,
}

impl Call {
    fn retries(self, failed: Failed) -> bool {
        match failed {
            Failed::Status { status, .. } => match self {
                Call::Fetch | Call::Idempotent | Call::CreateV2 => {
                    matches!(status, 429 | 500 | 502 | 503 | 504)
                }
                Call::CreateV1 => status == 429,
            },
            Failed::Unreached => true,
            Failed::Ambiguous => self != Call::CreateV1,
            Failed::OutOfTime | Failed::NotSent => false,
        }
    }
}

/// How an attempt failed, as far as repeating it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failed {
    /// Twilio answered this error status, maybe saying when to try again.
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No connection: Twilio never saw the request.
    Unreached,
    /// The exchange broke off, or the attempt timed out: Twilio may have acted on it.
    Ambiguous,
    /// The attempt timed out at the call's deadline: it may have landed, and no time is
    /// left for another.
    OutOfTime,
    /// Nothing was sent: the deadline had passed, or a bound or the breaker refused.
    NotSent,
}

impl Failed {
    /// Whether Twilio may have acted on the request: it may act on a request it then
    /// fails to answer.
    fn may_have_landed(self) -> bool {
        match self {
            Failed::Status { status, .. } => status >= 500,
            Failed::Ambiguous | Failed::OutOfTime => true,
            Failed::Unreached | Failed::NotSent => false,
        }
    }
}

/// A failed exchange, and whether an attempt of it may have reached Twilio.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) error: Error,
    pub(super) failed: Failed,
    pub(super) maybe_landed: bool,
}

impl Failure {
    /// One attempt's failure.
    pub(super) fn new(error: Error, failed: Failed) -> Self {
        Failure {
            error,
            failed,
            maybe_landed: failed.may_have_landed(),
        }
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        f.error
    }
}

/// One attempt of a call, as the retry layer passes it on: the call's rules and deadline,
/// and what the earlier attempts did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attempt {
    pub(super) call: Call,
    /// The route's template: the metric label.
    pub(super) route: &'static str,
    pub(super) deadline: Instant,
    /// Attempts before this one (`http.request.resend_count`).
    pub(super) resends: u32,
    /// Whether an earlier attempt may have reached Twilio.
    pub(super) maybe_landed: bool,
}

impl Attempt {
    /// The first attempt of a call.
    pub(super) fn first(call: Call, route: &'static str, deadline: Instant) -> Self {
        Attempt {
            call,
            route,
            deadline,
            resends: 0,
            maybe_landed: false,
        }
    }
}

impl<T> Policy<Attempt, T, Failure> for RetryPolicy {
    type Future = Sleep;

    fn retry(&mut self, attempt: &mut Attempt, result: &mut Result<T, Failure>) -> Option<Sleep> {
        let failure = result.as_mut().err()?;
        let made = attempt.resends + 1;
        let Some(pause) = self.pause(attempt.call, made, failure.failed, attempt.deadline) else {
            failure.maybe_landed |= attempt.maybe_landed;
            return None;
        };
        attempt.maybe_landed |= failure.maybe_landed;
        attempt.resends = made;
        let route = attempt.route;
        tracing::debug!(route, attempt = made, ?pause, "retrying upstream call");
        METRICS.upstream_retries.with_label_values(&[route]).inc();
        Some(tokio::time::sleep(pause))
    }

    fn clone_request(&mut self, attempt: &Attempt) -> Option<Attempt> {
        Some(*attempt)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tower::retry::RetryLayer;
    use tower::{Layer as _, ServiceExt as _};

    use super::*;
    use crate::backend::twilio::errors::{MAX_RETRY_AFTER, parse_retry_after};

    const MS: Duration = Duration::from_millis(1);

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: 100 * MS,
            max_backoff: 250 * MS,
        }
    }

    fn status(status: u16) -> Failed {
        Failed::Status {
            status,
            retry_after: None,
        }
    }

    /// What each attempt saw: when it started, its resend count, and what earlier attempts
    /// may have done.
    #[derive(Debug, Clone, Copy)]
    struct Seen {
        at: Instant,
        resends: u32,
        maybe_landed: bool,
    }

    /// Runs one call of kind `call` under `policy`, with `deadline` from now, against an
    /// upstream whose attempts fail as `script` says (the last entry repeats; `None`:
    /// success). Returns the result and each attempt as the upstream saw it.
    async fn run(
        policy: RetryPolicy,
        call: Call,
        deadline: Duration,
        script: &[Option<Failed>],
    ) -> (Result<(), Failure>, Vec<Seen>) {
        run_on("/test", policy, call, deadline, script).await
    }

    /// As [`run`], on `route`.
    async fn run_on(
        route: &'static str,
        policy: RetryPolicy,
        call: Call,
        deadline: Duration,
        script: &[Option<Failed>],
    ) -> (Result<(), Failure>, Vec<Seen>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = script.to_vec();
        let upstream = {
            let seen = seen.clone();
            tower::service_fn(move |attempt: Attempt| {
                let mut seen = seen.lock().unwrap();
                let n = seen.len().min(script.len() - 1);
                seen.push(Seen {
                    at: Instant::now(),
                    resends: attempt.resends,
                    maybe_landed: attempt.maybe_landed,
                });
                let outcome = match script[n] {
                    None => Ok(()),
                    Some(failed) => Err(Failure::new(Error::Internal("failed".into()), failed)),
                };
                async move { outcome }
            })
        };
        let first = Attempt::first(call, route, Instant::now() + deadline);
        let result = RetryLayer::new(policy).layer(upstream).oneshot(first).await;
        let seen = seen.lock().unwrap().clone();
        (result, seen)
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_makes_up_to_max_attempts_each_knowing_its_resend_count() {
        for max in [1, 3, 5] {
            let (result, seen) = run(
                policy(max),
                Call::Fetch,
                Duration::from_secs(60),
                &[Some(status(503))],
            )
            .await;

            let failure = result.expect_err("every attempt failed");
            assert_eq!(failure.failed, status(503));
            assert_eq!(seen.len(), max as usize);
            let resends: Vec<u32> = seen.iter().map(|s| s.resends).collect();
            assert_eq!(resends, (0..max).collect::<Vec<_>>());
        }

        let (result, seen) = run(
            policy(5),
            Call::Fetch,
            Duration::from_secs(60),
            &[Some(status(503)), Some(Failed::Unreached), None],
        )
        .await;
        assert!(result.is_ok(), "the third attempt succeeded: {result:?}");
        assert_eq!(seen.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_are_full_jitter_below_the_exponential_cap() {
        // The pure backoff, sampled: never above its cap, and spread below it.
        let p = policy(5);
        for (next, cap) in [(2, 100 * MS), (3, 200 * MS), (4, 250 * MS), (9, 250 * MS)] {
            let samples: Vec<Duration> = (0..500).map(|_| p.backoff(next)).collect();
            assert!(
                samples.iter().all(|d| *d <= cap),
                "attempt {next}: {samples:?}"
            );
            assert!(
                samples.iter().any(|d| *d < cap / 4),
                "attempt {next}: no low pause"
            );
            assert!(
                samples.iter().any(|d| *d > cap * 3 / 4),
                "attempt {next}: no high pause"
            );
        }

        // The pauses a call takes, on the paused clock: each below its attempt's cap.
        for _ in 0..50 {
            let (_, seen) = run(
                policy(5),
                Call::Fetch,
                Duration::from_secs(60),
                &[Some(Failed::Unreached)],
            )
            .await;
            assert_eq!(seen.len(), 5);
            for (gap, cap) in seen
                .windows(2)
                .map(|w| w[1].at - w[0].at)
                .zip([100, 200, 250, 250])
            {
                assert!(gap <= cap * MS, "{gap:?} > {cap} ms");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_instead_of_the_backoff_up_to_its_cap() {
        for (header, pause) in [("7", Duration::from_secs(7)), ("999999", MAX_RETRY_AFTER)] {
            let throttled = Failed::Status {
                status: 429,
                retry_after: parse_retry_after(header),
            };

            let (result, seen) = run(
                policy(3),
                Call::CreateV1,
                MAX_RETRY_AFTER * 2,
                &[Some(throttled), None],
            )
            .await;

            assert!(result.is_ok(), "{header}: {result:?}");
            assert_eq!(seen.len(), 2, "{header}");
            assert_eq!(seen[1].at - seen[0].at, pause, "Retry-After: {header}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_pause_would_pass_the_deadline() {
        let throttled = |secs| Failed::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };

        // A Retry-After that reaches the deadline: the call ends at once, with Twilio's
        // answer (and so its Retry-After), rather than sleeping into the deadline.
        let started = Instant::now();
        let (result, seen) = run(
            policy(5),
            Call::Fetch,
            Duration::from_secs(10),
            &[Some(throttled(10))],
        )
        .await;
        assert_eq!(result.expect_err("throttled").failed, throttled(10));
        assert_eq!(seen.len(), 1);
        assert_eq!(Instant::now(), started, "no time passed");

        // Pauses of 4 s: attempts at 0, 4 and 8 s; the pause to a fourth at 12 s is taken
        // only if it ends before the deadline. The call ends right after its last attempt.
        let cases = [
            (Duration::from_secs(10), 3_u32),
            (Duration::from_secs(12), 3),
            (Duration::from_secs(12) + MS, 4),
        ];
        for (deadline, attempts) in cases {
            let started = Instant::now();
            let (result, seen) =
                run(policy(10), Call::Fetch, deadline, &[Some(throttled(4))]).await;
            assert!(result.is_err());
            assert_eq!(seen.len(), attempts as usize, "deadline {deadline:?}");
            assert_eq!(
                Instant::now() - started,
                Duration::from_secs(4) * (attempts - 1),
                "deadline {deadline:?}: no pause after the last attempt"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn statuses_are_retried_per_the_calls_rules() {
        for call in [
            Call::Fetch,
            Call::Idempotent,
            Call::CreateV2,
            Call::CreateV1,
        ] {
            for code in [
                400, 401, 403, 404, 409, 412, 422, 429, 499, 500, 501, 502, 503, 504, 505,
            ] {
                let retried = match call {
                    Call::Fetch | Call::Idempotent | Call::CreateV2 => {
                        [429, 500, 502, 503, 504].contains(&code)
                    }
                    Call::CreateV1 => code == 429,
                };

                let (_, seen) = run(
                    policy(3),
                    call,
                    Duration::from_secs(60),
                    &[Some(status(code))],
                )
                .await;

                let expected = if retried { 3 } else { 1 };
                assert_eq!(seen.len(), expected, "{call:?} answered {code}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ambiguous_failures_are_retried_except_by_a_v1_create() {
        for call in [
            Call::Fetch,
            Call::Idempotent,
            Call::CreateV2,
            Call::CreateV1,
        ] {
            let (ambiguous, seen) = run(
                policy(3),
                call,
                Duration::from_secs(60),
                &[Some(Failed::Ambiguous)],
            )
            .await;
            let expected = if call == Call::CreateV1 { 1 } else { 3 };
            assert_eq!(seen.len(), expected, "{call:?}: ambiguous");
            assert!(ambiguous.expect_err("failed").maybe_landed, "{call:?}");

            // No connection: Twilio never saw it, so even a v1 create repeats it.
            let (unreached, seen) = run(
                policy(3),
                call,
                Duration::from_secs(60),
                &[Some(Failed::Unreached)],
            )
            .await;
            assert_eq!(seen.len(), 3, "{call:?}: unreached");
            assert!(!unreached.expect_err("failed").maybe_landed, "{call:?}");

            // Out of time or not sent: final for every call.
            for last in [Failed::OutOfTime, Failed::NotSent] {
                let (_, seen) = run(policy(3), call, Duration::from_secs(60), &[Some(last)]).await;
                assert_eq!(seen.len(), 1, "{call:?}: {last:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn maybe_landed_remembers_any_earlier_attempt_that_may_have_reached_twilio() {
        // A 503 (may have landed), then no connection, then a refusal: the call's failure
        // still says an attempt may have landed, and so did the attempts after the 503.
        let (result, seen) = run(
            policy(5),
            Call::CreateV2,
            Duration::from_secs(60),
            &[
                Some(status(503)),
                Some(Failed::Unreached),
                Some(Failed::NotSent),
            ],
        )
        .await;
        let failure = result.expect_err("failed");
        assert_eq!(failure.failed, Failed::NotSent);
        assert!(failure.maybe_landed);
        let landed: Vec<bool> = seen.iter().map(|s| s.maybe_landed).collect();
        assert_eq!(landed, [false, true, true]);

        // Only failures that never reached Twilio: nothing may have landed.
        let (result, _) = run(
            policy(5),
            Call::CreateV2,
            Duration::from_secs(60),
            &[
                Some(Failed::Unreached),
                Some(status(429)),
                Some(status(400)),
            ],
        )
        .await;
        assert!(!result.expect_err("failed").maybe_landed);
    }

    #[tokio::test(start_paused = true)]
    async fn each_retry_is_counted_per_route() {
        // A route of its own: the metrics are the process's, shared by parallel tests.
        let route = "/test/counted";
        let counted = || METRICS.upstream_retries.with_label_values(&[route]).get();
        let (_, seen) = run_on(
            route,
            policy(4),
            Call::Fetch,
            Duration::from_secs(60),
            &[Some(status(500))],
        )
        .await;
        assert_eq!(seen.len(), 4);
        assert_eq!(counted(), 3, "three retries");
    }
}
