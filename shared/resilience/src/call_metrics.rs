//! The metrics of calls to dependencies, recorded by [`crate::downstream`].

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use shared_http::metrics::{LatencyFamily, Registry, latency_family};

use crate::names;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    dependency: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: &'static str,
}

/// Calls by outcome and latency, retries, and retries the budget refused;
/// one set per process, labelled by dependency.
#[derive(Clone)]
pub struct CallMetrics {
    calls: Family<CallLabels, Counter>,
    call_duration: LatencyFamily<DependencyLabels>,
    retries: Family<CallLabels, Counter>,
    budget_exhausted: Family<DependencyLabels, Counter>,
}

impl CallMetrics {
    /// Registers the families; the retry series of each of `dependencies`
    /// are present (at 0) from the start.
    pub fn register(registry: &mut Registry, dependencies: &[&'static str]) -> Self {
        let metrics = Self {
            calls: Family::default(),
            call_duration: latency_family(),
            retries: Family::default(),
            budget_exhausted: Family::default(),
        };
        registry.register(
            names::DEPENDENCY_CALLS,
            "Calls to dependencies, by outcome",
            metrics.calls.clone(),
        );
        registry.register(
            names::DEPENDENCY_CALL_DURATION,
            "Time taken by calls to dependencies",
            metrics.call_duration.clone(),
        );
        registry.register(
            names::DEPENDENCY_RETRIES,
            "Retries of calls to dependencies, by outcome (success: the retry's answer was usable)",
            metrics.retries.clone(),
        );
        registry.register(
            names::RETRY_BUDGET_EXHAUSTED,
            "Retries not made because the dependency's retry budget was spent",
            metrics.budget_exhausted.clone(),
        );
        for &dependency in dependencies {
            for outcome in ["success", "failure"] {
                let _ = metrics.retries.get_or_create(&CallLabels {
                    dependency,
                    outcome,
                });
            }
            let _ = metrics
                .budget_exhausted
                .get_or_create(&DependencyLabels { dependency });
        }
        metrics
    }

    /// One attempt at a call (a retried call counts each): `outcome` is
    /// success, client_error, server_error, timeout, transport, decode,
    /// credentials (this service's token could not be had),
    /// deadline_exceeded, rejected (breaker open, no network used) or busy
    /// (bulkhead full, no network used).
    pub fn call(&self, dependency: &'static str, outcome: &'static str, took: Duration) {
        let labels = CallLabels {
            dependency,
            outcome,
        };
        self.calls.get_or_create(&labels).inc();
        if outcome != "rejected" && outcome != "busy" {
            self.call_duration
                .get_or_create(&DependencyLabels { dependency })
                .observe(took.as_secs_f64());
        }
    }

    /// A retry of a call to `dependency` ended; `usable`: its answer was one
    /// (a success or a refusal), not another failure of the way.
    pub fn retried(&self, dependency: &'static str, usable: bool) {
        let outcome = if usable { "success" } else { "failure" };
        self.retries
            .get_or_create(&CallLabels {
                dependency,
                outcome,
            })
            .inc();
    }

    /// A retry to `dependency` was not made: its budget was spent.
    pub fn budget_exhausted(&self, dependency: &'static str) {
        self.budget_exhausted
            .get_or_create(&DependencyLabels { dependency })
            .inc();
    }
}
