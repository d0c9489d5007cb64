//! One endpoint of a dependency: its latency estimate, calls in flight,
//! breaker, and outlier state (Envoy's outlier detection).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::breaker::{BreakerConfig, BreakerState, CircuitBreaker, Clock};

/// When an endpoint is taken out of rotation, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierConfig {
    /// Failures in a row that eject an endpoint.
    pub consecutive_failures: u32,
    /// A share of failed calls (0..1) within `window` that ejects an
    /// endpoint, once it has had `min_calls` calls in that window.
    pub failure_rate: f64,
    pub min_calls: u32,
    pub window: Duration,
    /// The first ejection's length; the n-th lasts n times as long…
    pub base_ejection: Duration,
    /// …but never longer than this.
    pub max_ejection: Duration,
    /// The most endpoints (a share of them) ejected at once; at least one
    /// endpoint always stays in rotation.
    pub max_ejected_share: f64,
    /// How often an endpoint ejected because it could not be reached is
    /// asked whether it is ready again (a replica restarted at the same
    /// address); one that answers is back in rotation at once.
    pub probe_every: Duration,
}

impl Default for OutlierConfig {
    /// Envoy's defaults where it has them (5 in a row, 30 s growing, at most
    /// 300 s), a failure rate that a replica failing half its calls crosses
    /// after a handful of calls, and at most half the endpoints out at once.
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.3,
            min_calls: 10,
            window: Duration::from_secs(10),
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_share: 0.5,
            probe_every: Duration::from_secs(1),
        }
    }
}

/// How an endpoint is doing, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    Active,
    Ejected,
}

/// What `/health` shows of one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    pub url: String,
    pub state: EndpointState,
    pub in_flight: u32,
    pub latency_ewma_ms: f64,
    pub ejections: u64,
    pub breaker: BreakerState,
}

/// How one call to an endpoint ended, as far as the endpoint is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// The endpoint answered, wrongly or too late.
    Failure,
    /// The endpoint could not be reached (connection refused or dropped): a
    /// failure that a readiness probe can tell is over.
    Unreachable,
    /// Says nothing about the endpoint (the caller's deadline ran out).
    Neither,
}

#[derive(Debug)]
struct Stats {
    in_flight: u32,
    /// Peak EWMA of the latency, in seconds.
    ewma: f64,
    updated: Instant,
    consecutive_failures: u32,
    window_start: Instant,
    window_calls: u32,
    window_failures: u32,
    ejected_until: Option<Instant>,
    times_ejected: u32,
    ejections: u64,
    /// The last failure was [`Verdict::Unreachable`].
    unreachable: bool,
}

/// One endpoint. Calls in flight hold it by `Arc`, so an endpoint that
/// discovery dropped lives until its last call has reported.
pub struct Endpoint {
    url: String,
    breaker: Arc<CircuitBreaker>,
    stats: Mutex<Stats>,
}

/// What the latency estimate decays over (Finagle's and tower's 10 s).
pub(crate) const DECAY: Duration = Duration::from_secs(10);
/// The estimate of an endpoint not yet heard from, when no other endpoint
/// has one either (Linkerd's default RTT); one that joins later starts at
/// the others' mean, so that it gets its share at once.
pub(crate) const DEFAULT_RTT: Duration = Duration::from_millis(30);

impl Endpoint {
    pub(crate) fn new(
        dependency: &'static str,
        url: String,
        breaker: BreakerConfig,
        clock: Arc<dyn Clock>,
        estimate: f64,
    ) -> Self {
        let now = clock.now();
        let breaker = CircuitBreaker::new(dependency, breaker, clock).for_endpoint(&url);
        Self {
            url,
            breaker: Arc::new(breaker),
            stats: Mutex::new(Stats {
                in_flight: 0,
                ewma: estimate,
                updated: now,
                consecutive_failures: 0,
                window_start: now,
                window_calls: 0,
                window_failures: 0,
                ejected_until: None,
                times_ejected: 0,
                ejections: 0,
                unreachable: false,
            }),
        }
    }

    /// The base URL calls to this endpoint go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    fn stats(&self) -> MutexGuard<'_, Stats> {
        // Plain field updates only: a poisoned lock holds no half-written state.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Peak EWMA × (in flight + 1): what a call here is expected to cost.
    /// The estimate decays toward zero while nothing is heard, so that an
    /// endpoint that was slow once gets tried again.
    pub(crate) fn cost(&self, now: Instant) -> f64 {
        let stats = self.stats();
        decayed(stats.ewma, stats.updated, now) * f64::from(stats.in_flight + 1)
    }

    /// Whether the endpoint is out of rotation at `now`; an ejection that
    /// has run its time ends here.
    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        let mut stats = self.stats();
        match stats.ejected_until {
            Some(until) if now < until => true,
            Some(_) => {
                back_in_rotation(&mut stats, now);
                false
            }
            None => false,
        }
    }

    /// Whether the endpoint is out of rotation (ejected, or its breaker
    /// open) because it could not be reached: a readiness probe may bring it
    /// back before its ejection or reset timeout ends.
    pub(crate) fn awaits_probe(&self, now: Instant) -> bool {
        let out = self.is_ejected(now) || self.breaker.state() == BreakerState::Open;
        out && self.stats().unreachable
    }

    /// Ends the ejection now and closes the endpoint's breaker (its
    /// readiness probe answered); its latency estimate starts at `estimate`.
    pub(crate) fn revive(&self, now: Instant, estimate: f64) {
        let mut stats = self.stats();
        back_in_rotation(&mut stats, now);
        stats.ewma = estimate;
        stats.updated = now;
        drop(stats);
        self.breaker.close_after_probe();
    }

    pub(crate) fn started(&self) {
        self.stats().in_flight += 1;
    }

    /// A call that ended without reporting (its caller was cancelled).
    pub(crate) fn abandoned(&self) {
        let mut stats = self.stats();
        stats.in_flight = stats.in_flight.saturating_sub(1);
    }

    /// Records a finished call; `true` when its outcome calls for ejecting
    /// the endpoint (the balancer decides whether it may).
    pub(crate) fn finished(
        &self,
        took: Duration,
        verdict: Verdict,
        now: Instant,
        outlier: &OutlierConfig,
    ) -> bool {
        let mut stats = self.stats();
        stats.in_flight = stats.in_flight.saturating_sub(1);
        observe(&mut stats, took.as_secs_f64(), now);
        if verdict == Verdict::Neither {
            return false;
        }
        if now.saturating_duration_since(stats.window_start) >= outlier.window {
            // A whole window without a failure earns back one ejection's
            // length, as Envoy's interval does.
            if stats.window_failures == 0 && stats.window_calls > 0 {
                stats.times_ejected = stats.times_ejected.saturating_sub(1);
            }
            stats.window_start = now;
            stats.window_calls = 0;
            stats.window_failures = 0;
        }
        stats.window_calls += 1;
        if verdict == Verdict::Success {
            stats.consecutive_failures = 0;
            stats.unreachable = false;
            return false;
        }
        stats.unreachable = verdict == Verdict::Unreachable;
        stats.consecutive_failures += 1;
        stats.window_failures += 1;
        let rate = f64::from(stats.window_failures) / f64::from(stats.window_calls);
        stats.ejected_until.is_none()
            && (stats.consecutive_failures >= outlier.consecutive_failures
                || (stats.window_calls >= outlier.min_calls && rate >= outlier.failure_rate))
    }

    /// Takes the endpoint out of rotation for base × times ejected (capped).
    pub(crate) fn eject(&self, now: Instant, outlier: &OutlierConfig) -> Duration {
        let mut stats = self.stats();
        stats.times_ejected += 1;
        stats.ejections += 1;
        let length = outlier
            .base_ejection
            .saturating_mul(stats.times_ejected)
            .min(outlier.max_ejection);
        stats.ejected_until = Some(now + length);
        length
    }

    pub(crate) fn latency_ewma(&self, now: Instant) -> f64 {
        let stats = self.stats();
        decayed(stats.ewma, stats.updated, now)
    }

    pub(crate) fn view(&self, now: Instant) -> EndpointView {
        let ejected = self.is_ejected(now);
        let stats = self.stats();
        EndpointView {
            url: self.url.clone(),
            state: if ejected {
                EndpointState::Ejected
            } else {
                EndpointState::Active
            },
            in_flight: stats.in_flight,
            latency_ewma_ms: decayed(stats.ewma, stats.updated, now) * 1000.0,
            ejections: stats.ejections,
            breaker: self.breaker.state(),
        }
    }
}

/// The endpoint back in rotation at `now`, its failure counts started anew.
fn back_in_rotation(stats: &mut Stats, now: Instant) {
    stats.ejected_until = None;
    stats.consecutive_failures = 0;
    stats.unreachable = false;
    stats.window_start = now;
    stats.window_calls = 0;
    stats.window_failures = 0;
}

/// The estimate `ewma` set at `updated`, decayed to `now`.
fn decayed(ewma: f64, updated: Instant, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(updated).as_secs_f64();
    ewma * (-elapsed / DECAY.as_secs_f64()).exp()
}

/// Peak EWMA: a slower answer than the estimate is taken at once, a faster
/// one moves the estimate by how long it has been since the last.
fn observe(stats: &mut Stats, rtt: f64, now: Instant) {
    let current = decayed(stats.ewma, stats.updated, now);
    stats.ewma = if rtt > current {
        rtt
    } else {
        let elapsed = now.saturating_duration_since(stats.updated).as_secs_f64();
        let keep = (-elapsed / DECAY.as_secs_f64()).exp();
        stats.ewma * keep + rtt * (1.0 - keep)
    };
    stats.updated = now;
}
