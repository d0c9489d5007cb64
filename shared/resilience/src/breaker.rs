//! A circuit breaker, one per downstream dependency.
//!
//! States, as the HTTP contract describes them:
//!
//! - **closed**: calls go through; consecutive failures are counted and a
//!   success resets the count. At `failure_threshold` the breaker opens.
//! - **open**: calls are refused at once, without touching the network, until
//!   `reset_timeout` has passed since the breaker opened.
//! - **half-open**: the first caller after that is let through as a trial;
//!   everyone else is still refused. The trial's success closes the breaker,
//!   its failure opens it again for another `reset_timeout`.
//!
//! What counts as a failure is the caller's call: the order service counts 5xx,
//! timeouts and connection errors, not 4xx (those are the caller's own fault).
//!
//! Time comes from a [`Clock`], so tests drive every transition with a
//! `ManualClock` (feature `testing`) instead of sleeping.
//!
//! The state sits behind a `std::sync::Mutex`: every critical section is a few
//! field updates with no `.await` inside, so the lock is held for nanoseconds
//! and an async mutex would only add overhead (the same reasoning as
//! mini-redis's `db.rs`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;

use crate::names;
use shared_http::metrics::Registry;
use shared_http::problem::RETRY_SOON;

/// Where the breaker reads the time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to (tests).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Instant>>);

#[cfg(any(test, feature = "testing"))]
impl Default for ManualClock {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }
}

#[cfg(any(test, feature = "testing"))]
impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

#[cfg(any(test, feature = "testing"))]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open before a trial call.
    pub reset_timeout: Duration,
}

/// The call was refused without being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker is open; retry in {retry_after:?}")]
pub struct Rejected {
    /// When a trial call will next be let through (never less than a second,
    /// which is what `Retry-After` can express).
    pub retry_after: Duration,
}

/// A point-in-time view of a breaker, for `/health` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerSnapshot {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    pub failure_threshold: u32,
    pub reset_timeout_ms: u64,
    /// Wall-clock time (ms since the Unix epoch) when an open breaker lets
    /// its next trial call through; `None` unless open.
    pub next_trial_at_ms: Option<u64>,
    /// Calls refused without touching the network since start.
    pub rejected_calls: u64,
    /// State changes since start.
    pub transitions: u64,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Instant,
    trial_in_flight: bool,
    rejected_calls: u64,
    transitions: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    dependency: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    dependency: String,
    from: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: String,
}

/// The breakers' metrics: one gauge per state (1 for the current one),
/// transitions, and calls refused without touching the network.
#[derive(Clone, Default)]
pub struct BreakerMetrics {
    state: Family<StateLabels, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    rejected: Family<DependencyLabels, Counter>,
}

impl BreakerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            names::BREAKER_STATE,
            "1 for the state each dependency's circuit breaker is in, 0 for the others",
            metrics.state.clone(),
        );
        registry.register(
            names::BREAKER_TRANSITIONS,
            "Circuit breaker state changes",
            metrics.transitions.clone(),
        );
        registry.register(
            names::BREAKER_REJECTED_CALLS,
            "Calls refused by an open circuit breaker, without touching the network",
            metrics.rejected.clone(),
        );
        metrics
    }

    fn show_state(&self, dependency: &str, current: BreakerState) {
        for state in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ] {
            let labels = StateLabels {
                dependency: dependency.to_owned(),
                state: state.as_str().to_owned(),
            };
            self.state
                .get_or_create(&labels)
                .set(i64::from(state == current));
        }
    }
}

/// A circuit breaker. Share it between workers with an `Arc`.
pub struct CircuitBreaker {
    name: &'static str,
    /// The one endpoint of the dependency this breaker guards, if it guards one.
    endpoint: Option<String>,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    metrics: Option<BreakerMetrics>,
}

/// Permission to make one call. Report how it went with [`Permit::record`];
/// a permit dropped unreported (the caller was cancelled) frees a trial slot
/// without counting for or against the dependency.
#[must_use = "report the call's outcome with Permit::record"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    trial: bool,
    settled: bool,
}

impl Permit<'_> {
    /// Records the outcome of the call this permit allowed.
    pub fn record(mut self, success: bool) {
        self.settled = true;
        self.breaker.settle(self.trial, success);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.trial {
            self.breaker.abandon_trial();
        }
    }
}

/// A [`Permit`] that owns its breaker.
#[must_use = "report the call's outcome with OwnedPermit::record"]
pub struct OwnedPermit {
    breaker: Arc<CircuitBreaker>,
    trial: bool,
    settled: bool,
}

impl OwnedPermit {
    /// Records the outcome of the call this permit allowed.
    pub fn record(mut self, success: bool) {
        self.settled = true;
        self.breaker.settle(self.trial, success);
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if !self.settled && self.trial {
            self.breaker.abandon_trial();
        }
    }
}

impl CircuitBreaker {
    pub fn new(name: &'static str, config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        let config = BreakerConfig {
            failure_threshold: config.failure_threshold.max(1),
            ..config
        };
        let now = clock.now();
        Self {
            name,
            endpoint: None,
            config,
            clock,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: now,
                trial_in_flight: false,
                rejected_calls: 0,
                transitions: 0,
            }),
            metrics: None,
        }
    }

    /// A breaker of one endpoint (`url`) of the dependency: its log lines say which.
    #[must_use]
    pub fn for_endpoint(mut self, url: &str) -> Self {
        self.endpoint = Some(url.to_owned());
        self
    }

    /// Reports this breaker's state, transitions and refusals in `metrics`.
    pub fn with_metrics(mut self, metrics: BreakerMetrics) -> Self {
        metrics.show_state(self.name, BreakerState::Closed);
        self.metrics = Some(metrics);
        self
    }

    fn count_rejection(&self, inner: &mut Inner) {
        inner.rejected_calls += 1;
        if let Some(metrics) = &self.metrics {
            let labels = DependencyLabels {
                dependency: self.name.to_owned(),
            };
            metrics.rejected.get_or_create(&labels).inc();
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the state half-written
        // (each section is a handful of plain assignments), so a poisoned lock
        // is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks to make a call.
    ///
    /// # Errors
    /// [`Rejected`] while open, or while half-open with the trial call in flight.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let trial = match inner.state {
            BreakerState::Closed => false,
            BreakerState::Open => {
                let reopens = inner.opened_at + self.config.reset_timeout;
                if now < reopens {
                    self.count_rejection(&mut inner);
                    return Err(Rejected {
                        retry_after: (reopens - now).max(RETRY_SOON),
                    });
                }
                self.transition(&mut inner, BreakerState::HalfOpen);
                inner.trial_in_flight = true;
                true
            }
            BreakerState::HalfOpen => {
                if inner.trial_in_flight {
                    self.count_rejection(&mut inner);
                    return Err(Rejected {
                        retry_after: RETRY_SOON,
                    });
                }
                inner.trial_in_flight = true;
                true
            }
        };
        Ok(Permit {
            breaker: self,
            trial,
            settled: false,
        })
    }

    /// [`CircuitBreaker::try_acquire`] for a permit that owns its breaker
    /// (a call that holds its endpoint by `Arc` across awaits).
    ///
    /// # Errors
    /// As [`CircuitBreaker::try_acquire`].
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit, Rejected> {
        let mut permit = self.try_acquire()?;
        // Handed over to the owned permit, which settles or abandons it.
        permit.settled = true;
        Ok(OwnedPermit {
            breaker: self.clone(),
            trial: permit.trial,
            settled: false,
        })
    }

    fn settle(&self, trial: bool, success: bool) {
        let now = self.clock.now();
        let mut inner = self.lock();
        match (inner.state, trial) {
            (BreakerState::HalfOpen, true) => {
                inner.trial_in_flight = false;
                if success {
                    inner.consecutive_failures = 0;
                    self.transition(&mut inner, BreakerState::Closed);
                } else {
                    inner.opened_at = now;
                    self.transition(&mut inner, BreakerState::Open);
                }
            }
            (BreakerState::Closed, false) => {
                if success {
                    inner.consecutive_failures = 0;
                } else {
                    inner.consecutive_failures += 1;
                    if inner.consecutive_failures >= self.config.failure_threshold {
                        inner.opened_at = now;
                        self.transition(&mut inner, BreakerState::Open);
                    }
                }
            }
            // A call that started before the last state change reports late:
            // the breaker has already moved on, so the outcome says nothing
            // about the current state.
            _ => {}
        }
    }

    fn abandon_trial(&self) {
        let mut inner = self.lock();
        if inner.state == BreakerState::HalfOpen {
            inner.trial_in_flight = false;
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        if inner.state == to {
            return;
        }
        tracing::warn!(
            breaker = self.name,
            endpoint = self.endpoint.as_deref().unwrap_or("all"),
            from = inner.state.as_str(),
            to = to.as_str(),
            consecutive_failures = inner.consecutive_failures,
            "circuit breaker changed state"
        );
        if let Some(metrics) = &self.metrics {
            metrics.show_state(self.name, to);
            let labels = TransitionLabels {
                dependency: self.name.to_owned(),
                from: inner.state.as_str().to_owned(),
                to: to.as_str().to_owned(),
            };
            metrics.transitions.get_or_create(&labels).inc();
        }
        inner.state = to;
        inner.transitions += 1;
    }

    /// Closes the breaker now, its failures forgotten: what it guards
    /// answered a probe, which stands for the trial call it was waiting for.
    pub fn close_after_probe(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        inner.trial_in_flight = false;
        self.transition(&mut inner, BreakerState::Closed);
    }

    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = self.clock.now();
        let inner = self.lock();
        let next_trial_at_ms = (inner.state == BreakerState::Open).then(|| {
            let wait = (inner.opened_at + self.config.reset_timeout).saturating_duration_since(now);
            let at = SystemTime::now() + wait;
            at.duration_since(UNIX_EPOCH)
                .map_or(0, shared_http::timestamp::millis)
        });
        BreakerSnapshot {
            state: inner.state,
            consecutive_failures: inner.consecutive_failures,
            failure_threshold: self.config.failure_threshold,
            reset_timeout_ms: shared_http::timestamp::millis(self.config.reset_timeout),
            next_trial_at_ms,
            rejected_calls: inner.rejected_calls,
            transitions: inner.transitions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESET: Duration = Duration::from_secs(30);

    fn breaker(threshold: u32) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::default();
        let config = BreakerConfig {
            failure_threshold: threshold,
            reset_timeout: RESET,
        };
        (
            CircuitBreaker::new("test", config, Arc::new(clock.clone())),
            clock,
        )
    }

    fn fail(b: &CircuitBreaker) {
        b.try_acquire().expect("call allowed").record(false);
    }

    fn succeed(b: &CircuitBreaker) {
        b.try_acquire().expect("call allowed").record(true);
    }

    #[test]
    fn closed_breaker_counts_consecutive_failures_and_a_success_resets_them() {
        let (b, _) = breaker(3);
        fail(&b);
        fail(&b);
        assert_eq!(b.snapshot().consecutive_failures, 2);
        succeed(&b);
        assert_eq!(b.snapshot().consecutive_failures, 0);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn breaker_opens_at_the_threshold_and_then_fails_fast() {
        let (b, _) = breaker(3);
        for _ in 0..3 {
            fail(&b);
        }
        assert_eq!(b.state(), BreakerState::Open);
        let rejected = b.try_acquire().err().expect("open breaker refuses");
        assert_eq!(rejected.retry_after, RESET);
        let snap = b.snapshot();
        assert_eq!(snap.rejected_calls, 1);
        assert!(snap.next_trial_at_ms.is_some());
    }

    #[test]
    fn open_breaker_lets_one_trial_through_after_the_reset_timeout() {
        let (b, clock) = breaker(1);
        fail(&b);
        clock.advance(RESET - Duration::from_millis(1));
        assert!(
            b.try_acquire().is_err(),
            "still open just before the timeout"
        );
        clock.advance(Duration::from_millis(1));
        let trial = b.try_acquire().expect("trial allowed");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire().is_err(), "only one trial at a time");
        trial.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().consecutive_failures, 0);
        succeed(&b);
    }

    #[test]
    fn failed_trial_reopens_for_a_full_reset_timeout() {
        let (b, clock) = breaker(1);
        fail(&b);
        clock.advance(RESET);
        b.try_acquire().expect("trial").record(false);
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(RESET - Duration::from_secs(1));
        assert!(b.try_acquire().is_err());
        clock.advance(Duration::from_secs(1));
        assert!(b.try_acquire().is_ok());
    }

    #[test]
    fn abandoned_trial_frees_the_slot_for_the_next_caller() {
        let (b, clock) = breaker(1);
        fail(&b);
        clock.advance(RESET);
        drop(b.try_acquire().expect("trial"));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.try_acquire().expect("next trial").record(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn metrics_show_the_current_state_transitions_and_rejections() {
        let clock = ManualClock::default();
        let mut registry = Registry::default();
        let metrics = BreakerMetrics::register(&mut registry);
        let config = BreakerConfig {
            failure_threshold: 1,
            reset_timeout: RESET,
        };
        let b = CircuitBreaker::new("pricing", config, Arc::new(clock)).with_metrics(metrics);
        fail(&b);
        assert!(b.try_acquire().is_err());
        let text = shared_http::metrics::MetricsRegistry::new(registry).render();
        for line in [
            r#"circuit_breaker_state{dependency="pricing",state="open"} 1"#,
            r#"circuit_breaker_state{dependency="pricing",state="closed"} 0"#,
            r#"circuit_breaker_transitions_total{dependency="pricing",from="closed",to="open"} 1"#,
            r#"circuit_breaker_rejected_calls_total{dependency="pricing"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn late_outcomes_from_before_the_breaker_opened_are_ignored() {
        let (b, clock) = breaker(1);
        let slow = b.try_acquire().expect("closed");
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        slow.record(true);
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "a stale success does not close it"
        );
        clock.advance(RESET);
        let trial = b.try_acquire().expect("trial");
        trial.record(true);
        assert_eq!(
            b.snapshot().transitions,
            3,
            "closed->open->half_open->closed"
        );
    }
}
