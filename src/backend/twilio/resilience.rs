//! Protection for calls to Twilio: retry backoff after gRPC's retry design (gRFC A6:
//! exponential backoff with full jitter) and a circuit breaker that fails fast while
//! Twilio is persistently failing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

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
}

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
pub struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
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
    pub fn admit(&self) -> Result<(), Duration> {
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
    pub fn record(&self, healthy: bool) {
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
    pub fn is_open(&self) -> bool {
        match *self.lock() {
            State::Closed { .. } => false,
            State::Open { until } => Instant::now() < until,
            State::HalfOpen { since } => since.elapsed() < self.cooldown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
        };
        for _ in 0..200 {
            assert!(p.backoff(2) <= Duration::from_millis(100));
            assert!(p.backoff(3) <= Duration::from_millis(200));
            assert!(p.backoff(9) <= Duration::from_millis(250));
        }
    }

    #[test]
    fn breaker_opens_only_after_consecutive_failures_and_recovers_through_a_probe() {
        let b = CircuitBreaker::new(3, Duration::from_millis(30));
        b.record(false);
        b.record(false);
        b.record(true);
        b.record(false);
        b.record(false);
        assert!(
            b.admit().is_ok(),
            "two failures after a success do not open it"
        );
        b.record(false);
        assert!(b.is_open());
        assert!(b.admit().is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.admit().is_ok(), "one probe after the cooldown");
        assert!(b.admit().is_err(), "only one probe at a time");
        b.record(true);
        assert!(!b.is_open());
        assert!(b.admit().is_ok());
    }
}
