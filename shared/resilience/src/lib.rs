//! How a service calls the services it depends on without being taken down
//! by them: the circuit breaker, bulkheads, retries within a budget, and
//! batching of calls made at the same moment.
//!
//! It owns the breaker's state machine and metrics, the bulkhead's limits,
//! the retry budget and backoff, the batcher, and the call path that puts
//! them together over HTTP ([`downstream::Downstream`]). It does not know
//! what a call means: the service's typed clients build paths and bodies and
//! read the answers. No business words.
//!
//! - [`breaker`]: the circuit breaker, with an injectable clock.
//! - [`bulkhead`]: limits on work in flight that refuse at once instead of
//!   queueing.
//! - [`retry`] (breaker): retries within a budget (the Finagle / tower
//!   model), jittered exponential backoff, `Retry-After`.
//! - [`batch`]: calls made at the same moment sent as one, without waiting
//!   for a batch to fill ("smart batching").
//! - [`balancer`] (breaker): a dependency's endpoints (replicas), found by
//!   resolving its names, chosen by power of two choices or in turn, with
//!   outlier ejection and a breaker each.
//! - [`call_metrics`]: calls, latency, retries and refused retries per
//!   dependency.
//! - [`downstream`] (all of the above): the one path every call to a
//!   dependency takes: bulkhead, breaker, credentials, deadline, retries.

/// The metrics of calls to dependencies: breakers, bulkheads and [`CallMetrics`](call_metrics::CallMetrics) (counters gain `_total` on the wire).
pub mod names {
    pub const BREAKER_STATE: &str = "circuit_breaker_state";
    pub const BREAKER_TRANSITIONS: &str = "circuit_breaker_transitions";
    pub const BREAKER_REJECTED_CALLS: &str = "circuit_breaker_rejected_calls";
    pub const BULKHEAD_REJECTED: &str = "bulkhead_rejected";
    pub const DEPENDENCY_CALLS: &str = "dependency_calls";
    pub const DEPENDENCY_CALL_DURATION: &str = "dependency_call_duration_seconds";
    pub const DEPENDENCY_RETRIES: &str = "dependency_retries";
    pub const RETRY_BUDGET_EXHAUSTED: &str = "retry_budget_exhausted";
    pub const ENDPOINT_CALLS: &str = "dependency_endpoint_calls";
    pub const ENDPOINT_LATENCY_EWMA: &str = "dependency_endpoint_latency_ewma_seconds";
    pub const ENDPOINT_EJECTIONS: &str = "dependency_endpoint_ejections";
}

pub mod balancer;
pub mod batch;
pub mod breaker;
pub mod bulkhead;
pub mod call_metrics;
pub mod downstream;
pub mod retry;
