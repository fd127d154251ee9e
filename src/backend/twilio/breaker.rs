//! The circuit breaker: fails calls fast while Twilio keeps failing. [`CircuitBreaker`] is
//! the state; [`BreakerLayer`] puts it in front of one attempt as a tower layer. It runs on
//! tokio's clock, so that a paused clock drives it in tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service};

use crate::domain::error::Error;

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out since `since`; if it never reports (its caller went away), another
    /// may go after a cooldown.
    HalfOpen {
        since: Instant,
    },
}

/// Opens after `threshold` consecutive failures (connection errors, timeouts, 5xx), fails
/// calls fast for `cooldown`, then lets one probe through: its success closes the
/// breaker, its failure opens it again. Single errors never open it.
#[derive(Debug)]
pub(super) struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain enum, valid whatever a panicking holder did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Ok` when a call may go upstream, else how long until the breaker tries again.
    pub(super) fn admit(&self) -> Result<(), Duration> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    Err(until - now)
                } else {
                    *state = State::HalfOpen { since: now };
                    Ok(())
                }
            }
            State::HalfOpen { since } => {
                let now = Instant::now();
                let waited = now.duration_since(since);
                if waited < self.cooldown {
                    Err(self.cooldown - waited)
                } else {
                    *state = State::HalfOpen { since: now };
                    Ok(())
                }
            }
        }
    }

    /// Records the outcome of an upstream attempt.
    pub(super) fn record(&self, healthy: bool) {
        let mut state = self.lock();
        *state = match (&*state, healthy) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (State::Closed { .. } | State::HalfOpen { .. }, false) => {
                tracing::warn!(cooldown = ?self.cooldown, "upstream failing; circuit breaker open");
                State::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
            (State::Open { until }, false) => State::Open { until: *until },
        };
    }

    /// Whether calls are being refused right now: the readiness signal. Once the cooldown
    /// is over the breaker reads as not open, so that traffic returns (readiness gates
    /// traffic) and the next call can probe; otherwise an instance taken out of rotation
    /// would never see the call that closes its breaker.
    pub(super) fn is_open(&self) -> bool {
        match *self.lock() {
            State::Closed { .. } => false,
            State::Open { until } => Instant::now() < until,
            State::HalfOpen { since } => since.elapsed() < self.cooldown,
        }
    }
}

/// What one attempt's outcome says of Twilio, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Health {
    /// Twilio answered, with a success or a status below 500.
    Healthy,
    /// No answer (connection error, broken exchange, timeout) or a 5xx.
    Failing,
    /// Nothing was sent, so nothing learnt.
    Untried,
}

/// The breaker refused an attempt; the next probe may go after `wait`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Open {
    pub(super) wait: Duration,
}

impl From<Open> for Error {
    fn from(open: Open) -> Error {
        Error::unavailable(
            "Twilio has been failing; the circuit breaker is open",
            Some(open.wait),
        )
    }
}

/// Puts `breaker` in front of a service; `classify` tells it what each outcome means.
#[derive(Debug, Clone)]
pub(super) struct BreakerLayer<C> {
    breaker: Arc<CircuitBreaker>,
    classify: C,
}

impl<C> BreakerLayer<C> {
    pub(super) fn new(breaker: Arc<CircuitBreaker>, classify: C) -> Self {
        BreakerLayer { breaker, classify }
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = Breaker<S, C>;

    fn layer(&self, inner: S) -> Breaker<S, C> {
        Breaker {
            inner,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// A service behind the breaker: refused with [`Open`] while it is open, and each outcome
/// recorded.
#[derive(Debug, Clone)]
pub(super) struct Breaker<S, C> {
    inner: S,
    breaker: Arc<CircuitBreaker>,
    classify: C,
}

impl<S, C, R> Service<R> for Breaker<S, C>
where
    S: Service<R>,
    S::Error: From<Open>,
    C: Fn(&Result<S::Response, S::Error>) -> Health + Clone + Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BreakerFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let attempt = match self.breaker.admit() {
            Ok(()) => Ok(Box::pin(self.inner.call(request))),
            Err(wait) => Err(Open { wait }),
        };
        BreakerFuture {
            attempt,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// An admitted attempt (boxed, so that this future is `Unpin` without unsafe code) or the
/// refusal.
pub(super) struct BreakerFuture<F, C> {
    attempt: Result<Pin<Box<F>>, Open>,
    breaker: Arc<CircuitBreaker>,
    classify: C,
}

impl<F, C, T, E> Future for BreakerFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: From<Open>,
    C: Fn(&Result<T, E>) -> Health + Unpin,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let attempt = match &mut this.attempt {
            Ok(attempt) => attempt,
            Err(open) => return Poll::Ready(Err(E::from(*open))),
        };
        let result = ready!(attempt.as_mut().poll(cx));
        match (this.classify)(&result) {
            Health::Healthy => this.breaker.record(true),
            Health::Failing => this.breaker.record(false),
            Health::Untried => {}
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tower::ServiceExt as _;

    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    /// A breaker that `threshold` consecutive failures have just opened.
    fn opened(threshold: u32) -> CircuitBreaker {
        let b = CircuitBreaker::new(threshold, COOLDOWN);
        for _ in 0..threshold {
            b.record(false);
        }
        assert!(b.is_open());
        b
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_after_the_threshold_of_consecutive_failures_only() {
        let b = CircuitBreaker::new(3, COOLDOWN);
        b.record(false);
        b.record(false);
        b.record(true);
        b.record(false);
        b.record(false);
        assert!(
            b.admit().is_ok(),
            "two failures after a success do not open it"
        );
        assert!(!b.is_open());

        b.record(false);

        assert!(b.is_open(), "the third consecutive failure opens it");
        assert_eq!(b.admit(), Err(COOLDOWN));
    }

    #[tokio::test(start_paused = true)]
    async fn while_open_it_refuses_with_the_remaining_wait() {
        let b = opened(1);

        tokio::time::advance(Duration::from_secs(12)).await;
        assert_eq!(b.admit(), Err(COOLDOWN - Duration::from_secs(12)));
        tokio::time::advance(Duration::from_secs(17)).await;
        assert_eq!(b.admit(), Err(Duration::from_secs(1)));
        assert!(b.is_open());

        // A late failure (of an attempt admitted before it opened) does not extend it.
        b.record(false);
        assert_eq!(b.admit(), Err(Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cooldown_exactly_one_probe_goes_through() {
        let b = opened(2);
        tokio::time::advance(COOLDOWN).await;
        assert!(
            !b.is_open(),
            "ready again once the cooldown is over, without a call"
        );

        assert_eq!(b.admit(), Ok(()), "the probe");
        assert_eq!(
            b.admit(),
            Err(COOLDOWN),
            "no second call while the probe is out"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.admit(), Err(COOLDOWN - Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_probe_closes_it_and_a_failed_one_opens_it_again() {
        let b = opened(2);
        tokio::time::advance(COOLDOWN).await;
        assert_eq!(b.admit(), Ok(()));

        b.record(false);

        assert_eq!(
            b.admit(),
            Err(COOLDOWN),
            "a failed probe opens it for a cooldown"
        );
        tokio::time::advance(COOLDOWN).await;
        assert_eq!(b.admit(), Ok(()));

        b.record(true);

        assert!(!b.is_open());
        assert_eq!(b.admit(), Ok(()));
        assert_eq!(b.admit(), Ok(()), "closed: every call goes through");
        b.record(false);
        assert_eq!(b.admit(), Ok(()), "and the count of failures starts again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_reports_lets_another_go_after_a_cooldown() {
        let b = opened(1);
        tokio::time::advance(COOLDOWN).await;
        assert_eq!(b.admit(), Ok(()), "a probe whose caller goes away");

        tokio::time::advance(COOLDOWN - Duration::from_millis(1)).await;
        assert_eq!(b.admit(), Err(Duration::from_millis(1)));
        assert!(b.is_open());
        tokio::time::advance(Duration::from_millis(1)).await;

        assert!(!b.is_open());
        assert_eq!(b.admit(), Ok(()), "the next probe");
        assert_eq!(b.admit(), Err(COOLDOWN));
    }

    /// What the test service answers: `Ok` or an error naming its health.
    type Outcome = Result<&'static str, Error>;

    fn classify(outcome: &Outcome) -> Health {
        match outcome {
            Ok(_) => Health::Healthy,
            Err(Error::Internal(what)) if what == "untried" => Health::Untried,
            Err(_) => Health::Failing,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_records_each_outcome_and_refuses_without_calling_the_service() {
        // Arrange: a service that answers as `mode` says, behind a breaker of threshold 2.
        let calls = Arc::new(AtomicUsize::new(0));
        let mode = Arc::new(Mutex::new("untried"));
        let service = {
            let (calls, mode) = (calls.clone(), mode.clone());
            tower::service_fn(move |()| {
                calls.fetch_add(1, Ordering::SeqCst);
                let outcome: Outcome = match *mode.lock().unwrap() {
                    "ok" => Ok("recovered"),
                    other => Err(Error::Internal(other.to_owned())),
                };
                async move { outcome }
            })
        };
        let breaker = Arc::new(CircuitBreaker::new(2, COOLDOWN));
        let layered = BreakerLayer::new(breaker.clone(), classify).layer(service);
        let set = |to: &'static str| *mode.lock().unwrap() = to;

        // Act and assert: untried outcomes count for nothing; two failures open it.
        for _ in 0..3 {
            let _ = layered.clone().oneshot(()).await;
        }
        assert!(!breaker.is_open(), "untried outcomes are not failures");
        set("failing");
        let _ = layered.clone().oneshot(()).await;
        assert!(!breaker.is_open());
        let _ = layered.clone().oneshot(()).await;
        assert!(breaker.is_open());
        assert_eq!(calls.load(Ordering::SeqCst), 5);

        // Open: refused with UNAVAILABLE and the wait, and the service is not called.
        tokio::time::advance(Duration::from_secs(10)).await;
        match layered.clone().oneshot(()).await {
            Err(Error::Unavailable {
                message,
                retry_after,
            }) => {
                assert_eq!(
                    message,
                    "Twilio has been failing; the circuit breaker is open"
                );
                assert_eq!(retry_after, Some(COOLDOWN - Duration::from_secs(10)));
            }
            other => panic!("expected the breaker's refusal: {other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 5, "a refusal never calls");

        // After the cooldown the probe reaches the service; its success closes it.
        tokio::time::advance(COOLDOWN).await;
        set("ok");
        assert_eq!(layered.clone().oneshot(()).await.ok(), Some("recovered"));
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        assert!(!breaker.is_open());
    }
}
