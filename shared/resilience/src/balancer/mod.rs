//! Spreading a dependency's calls over its endpoints (replicas).
//!
//! - [`Strategy::PowerOfTwo`] (the default): of two endpoints drawn at
//!   random, the one with the lower peak-EWMA latency × (calls in flight + 1)
//!   gets the call (Finagle's and Linkerd's balancer): a slow or busy
//!   endpoint gets less, an idle fast one more, without herding every caller
//!   onto the one best endpoint. [`Strategy::RoundRobin`] takes turns.
//! - Outlier ejection, as Envoy does it ([`OutlierConfig`]): failures in a
//!   row, or a failure rate over a window, take an endpoint out of rotation
//!   for a base interval × the times it was ejected (capped); never more than
//!   a bounded share of the endpoints at once, and never the last one.
//! - Each endpoint has its own [`CircuitBreaker`](crate::breaker::CircuitBreaker),
//!   consulted while there are several endpoints: with one, the dependency's
//!   own breaker is that endpoint's breaker, and behaviour is as before.
//! - [`discovery`]: the set of endpoints comes from a list of base URLs; a
//!   host name with several addresses is that many endpoints, re-resolved
//!   periodically. Endpoints that appear join; endpoints that vanish get no
//!   new calls, and their calls in flight finish (they hold their endpoint).
//! - [`probe`]: an endpoint ejected because it could not be reached is asked
//!   every second whether it is ready again; a replica restarted at the same
//!   address is back in rotation as soon as it says so, not when its
//!   ejection runs out (Envoy's un-ejection on a passing health check).
//!
//! Time (latency decay, ejection lengths, failure windows, breakers) comes
//! from a [`Clock`], so tests drive it by hand. No business words.

pub mod discovery;
mod endpoint;
mod metrics;
pub mod probe;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::Rng;

use crate::breaker::{BreakerConfig, Clock, OwnedPermit, Rejected};
pub use endpoint::{Endpoint, EndpointState, EndpointView, OutlierConfig, Verdict};
pub use metrics::BalancerMetrics;

/// How the next endpoint is chosen (`LOAD_BALANCER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// `p2c`: power of two choices over peak EWMA × (in flight + 1).
    #[default]
    PowerOfTwo,
    /// `round_robin`: each endpoint in turn.
    RoundRobin,
}

impl std::str::FromStr for Strategy {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "p2c" => Ok(Self::PowerOfTwo),
            "round_robin" => Ok(Self::RoundRobin),
            _ => Err("expected p2c or round_robin"),
        }
    }
}

/// A balancer's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalancerConfig {
    pub strategy: Strategy,
    /// How often host names are resolved again (`DISCOVERY_REFRESH_MS`).
    pub refresh: Duration,
    pub outlier: OutlierConfig,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::PowerOfTwo,
            refresh: Duration::from_millis(5000),
            outlier: OutlierConfig::default(),
        }
    }
}

/// One dependency's endpoints and how calls are spread over them. Shared
/// by the workers (`Arc`); every lock is held for a few field updates.
pub struct Balancer {
    name: &'static str,
    config: BalancerConfig,
    breaker: BreakerConfig,
    clock: Arc<dyn Clock>,
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
    turn: AtomicUsize,
    /// Held while deciding and making an ejection.
    ejecting: Mutex<()>,
    metrics: Option<BalancerMetrics>,
}

/// An endpoint chosen for one attempt. Report how it went with
/// [`Picked::finish`]; dropped unreported, it only stops counting as in flight.
pub struct Picked {
    endpoint: Arc<Endpoint>,
    permit: Option<OwnedPermit>,
    reported: bool,
}

impl Picked {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        if !self.reported {
            self.endpoint.abandoned();
        }
    }
}

impl Balancer {
    /// A balancer over `urls` (base URLs, one endpoint each); each endpoint's
    /// breaker has the settings `breaker`.
    pub fn new(
        name: &'static str,
        urls: Vec<String>,
        config: BalancerConfig,
        breaker: BreakerConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let balancer = Self {
            name,
            config,
            breaker,
            clock,
            endpoints: RwLock::new(Vec::new()),
            turn: AtomicUsize::new(0),
            ejecting: Mutex::new(()),
            metrics: None,
        };
        balancer.set_endpoints(&urls);
        balancer
    }

    /// Reports each endpoint's calls, latency estimate and ejections in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: BalancerMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn config(&self) -> &BalancerConfig {
        &self.config
    }

    fn current(&self) -> Vec<Arc<Endpoint>> {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `urls` the set of endpoints: endpoints already known keep their
    /// state, new ones join, the others take no new calls (calls in flight
    /// keep theirs alive until they end). An empty list changes nothing: a
    /// dependency is never left with nowhere to send a call.
    pub fn set_endpoints(&self, urls: &[String]) {
        if urls.is_empty() {
            return;
        }
        let now = self.clock.now();
        let mut endpoints = self.endpoints.write().unwrap_or_else(|e| e.into_inner());
        let estimate = newcomer_estimate(&endpoints, now);
        let mut next: Vec<Arc<Endpoint>> = Vec::with_capacity(urls.len());
        for url in urls {
            if next.iter().any(|e| e.url() == url) {
                continue;
            }
            let known = endpoints.iter().find(|e| e.url() == url).cloned();
            next.push(known.unwrap_or_else(|| {
                tracing::info!(dependency = self.name, endpoint = %url, "endpoint joined");
                Arc::new(Endpoint::new(
                    self.name,
                    url.clone(),
                    self.breaker,
                    self.clock.clone(),
                    estimate,
                ))
            }));
        }
        for gone in endpoints
            .iter()
            .filter(|e| !urls.contains(&e.url().to_owned()))
        {
            tracing::info!(
                dependency = self.name,
                endpoint = gone.url(),
                "endpoint left"
            );
            if let Some(metrics) = &self.metrics {
                metrics.left(self.name, gone.url());
            }
        }
        *endpoints = next;
    }

    /// The endpoints now, as `/health` shows them.
    pub fn views(&self) -> Vec<EndpointView> {
        let now = self.clock.now();
        self.current().iter().map(|e| e.view(now)).collect()
    }

    /// The endpoint for the next attempt: never one of `avoid` (those a
    /// failed attempt of the same call went to) while another will take it,
    /// never an ejected one, never one whose breaker refuses.
    ///
    /// # Errors
    /// [`Rejected`] when every endpoint's breaker refuses (soonest retry).
    pub fn pick(&self, avoid: &[Arc<Endpoint>]) -> Result<Picked, Rejected> {
        let now = self.clock.now();
        let all = self.current();
        let several = all.len() > 1;
        let in_rotation: Vec<Arc<Endpoint>> =
            all.iter().filter(|e| !e.is_ejected(now)).cloned().collect();
        // Ejection always leaves one endpoint, but one may just have been
        // ejected by a call racing this one: then all of them are candidates.
        let in_rotation = if in_rotation.is_empty() {
            all
        } else {
            in_rotation
        };
        // Endpoints this call has not tried first; then, rather than none,
        // those it has.
        let (fresh, tried): (Vec<_>, Vec<_>) = in_rotation
            .into_iter()
            .partition(|e| !avoid.iter().any(|a| Arc::ptr_eq(a, e)));
        let mut refused: Option<Rejected> = None;
        for candidates in [fresh, tried] {
            if let Some(picked) = self.admit(candidates, several, now, &mut refused) {
                return Ok(picked);
            }
        }
        Err(refused.unwrap_or(Rejected {
            retry_after: shared_http::problem::RETRY_SOON,
        }))
    }

    /// Of `candidates`, the chosen one whose breaker (consulted when there
    /// are `several` endpoints) lets the call through; `refused` keeps the
    /// soonest retry of those that did not.
    fn admit(
        &self,
        mut candidates: Vec<Arc<Endpoint>>,
        several: bool,
        now: std::time::Instant,
        refused: &mut Option<Rejected>,
    ) -> Option<Picked> {
        while !candidates.is_empty() {
            let index = self.choose(&candidates, now);
            let endpoint = candidates.swap_remove(index);
            let permit = if several {
                match endpoint.breaker().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(rejected) => {
                        *refused = Some(refused.map_or(rejected, |r| Rejected {
                            retry_after: r.retry_after.min(rejected.retry_after),
                        }));
                        continue;
                    }
                }
            } else {
                None
            };
            endpoint.started();
            return Some(Picked {
                endpoint,
                permit,
                reported: false,
            });
        }
        None
    }

    /// The index in `candidates` (not empty) of the endpoint to try.
    fn choose(&self, candidates: &[Arc<Endpoint>], now: std::time::Instant) -> usize {
        let n = candidates.len();
        if n == 1 {
            return 0;
        }
        match self.config.strategy {
            Strategy::RoundRobin => self.turn.fetch_add(1, Ordering::Relaxed) % n,
            Strategy::PowerOfTwo => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..n);
                let b = (a + rng.random_range(1..n)) % n;
                if candidates[b].cost(now) < candidates[a].cost(now) {
                    b
                } else {
                    a
                }
            }
        }
    }

    /// Records how the attempt `picked` made went (`took`: its latency;
    /// `outcome`: the metric label), and ejects its endpoint if that makes
    /// it an outlier and the share of ejected endpoints allows.
    pub fn finish(
        &self,
        mut picked: Picked,
        took: Duration,
        verdict: Verdict,
        outcome: &'static str,
    ) {
        picked.reported = true;
        let now = self.clock.now();
        let endpoint = picked.endpoint.clone();
        if let Some(permit) = picked.permit.take() {
            match verdict {
                Verdict::Success => permit.record(true),
                Verdict::Failure | Verdict::Unreachable => permit.record(false),
                Verdict::Neither => drop(permit),
            }
        }
        let outlier = endpoint.finished(took, verdict, now, &self.config.outlier);
        // A call that ends after its endpoint left reports to nothing: its
        // series are gone and stay gone.
        let current = self.current().iter().any(|e| Arc::ptr_eq(e, &endpoint));
        if let Some(metrics) = self.metrics.as_ref().filter(|_| current) {
            metrics.call(
                self.name,
                endpoint.url(),
                outcome,
                endpoint.latency_ewma(now),
            );
        }
        if outlier {
            self.eject(&endpoint, now);
        }
    }

    /// Ejects `endpoint` if the share of ejected endpoints allows.
    fn eject(&self, endpoint: &Endpoint, now: std::time::Instant) {
        // One at a time: two calls failing at once on two endpoints must
        // not both take the last place under the share.
        let _one = self.ejecting.lock().unwrap_or_else(|e| e.into_inner());
        if endpoint.is_ejected(now) || !self.may_eject(now) {
            return;
        }
        let length = endpoint.eject(now, &self.config.outlier);
        tracing::warn!(
            dependency = self.name,
            endpoint = endpoint.url(),
            ejected_for_ms = shared_http::timestamp::millis(length),
            "endpoint ejected"
        );
        if let Some(metrics) = &self.metrics {
            metrics.ejected(self.name, endpoint.url());
        }
    }

    /// Whether one more endpoint may be ejected now: below the share, and
    /// one endpoint at least left in rotation.
    fn may_eject(&self, now: std::time::Instant) -> bool {
        let all = self.current();
        let ejected = all.iter().filter(|e| e.is_ejected(now)).count();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let share = (all.len() as f64 * self.config.outlier.max_ejected_share).floor() as usize;
        ejected < share.min(all.len().saturating_sub(1))
    }

    /// The endpoints ejected because they could not be reached, for
    /// [`probe`] to ask whether they are ready again.
    pub fn awaiting_probe(&self) -> Vec<Arc<Endpoint>> {
        let now = self.clock.now();
        self.current()
            .into_iter()
            .filter(|e| e.awaits_probe(now))
            .collect()
    }

    /// Puts `endpoint`, whose readiness probe answered, back in rotation:
    /// a new process, most likely, so it starts afresh as a newcomer does,
    /// at the others' latency estimate (its last one, of the calls that
    /// failed as it died or of those before, says nothing of the new one).
    pub fn revive(&self, endpoint: &Endpoint) {
        let now = self.clock.now();
        let others: Vec<Arc<Endpoint>> = self
            .current()
            .into_iter()
            .filter(|e| !std::ptr::eq(Arc::as_ptr(e), endpoint))
            .collect();
        endpoint.revive(now, newcomer_estimate(&others, now));
        tracing::info!(
            dependency = self.name,
            endpoint = endpoint.url(),
            "endpoint back in rotation: it answered its readiness probe"
        );
    }

    /// Whether an endpoint other than those in `tried` is in rotation: a
    /// retry would go somewhere new.
    pub fn has_other(&self, tried: &[Arc<Endpoint>]) -> bool {
        let now = self.clock.now();
        self.current()
            .iter()
            .any(|e| !e.is_ejected(now) && !tried.iter().any(|t| Arc::ptr_eq(t, e)))
    }
}

/// The latency estimate an endpoint joining `endpoints` starts at: their
/// mean, so that it is as cheap as they are and gets its share at once.
fn newcomer_estimate(endpoints: &[Arc<Endpoint>], now: std::time::Instant) -> f64 {
    let known: Vec<f64> = endpoints.iter().map(|e| e.latency_ewma(now)).collect();
    if known.is_empty() {
        endpoint::DEFAULT_RTT.as_secs_f64()
    } else {
        known.iter().sum::<f64>() / f64::from(u32::try_from(known.len()).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests;
